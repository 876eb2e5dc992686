//! One file per command: each turns raw CLI values into settings, does its
//! job, and returns the process exit code.
//!
//! Commands talk to the person at the terminal: printing to standard output
//! and standard error is their job, so the crate-wide ban on `print*!` is
//! lifted here and nowhere else (the service logs through `tracing`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod backtest;
pub mod check;
pub mod explain;
pub mod parked;
pub mod probe;
pub mod send;
pub mod serve;
pub mod stats;
pub mod test;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Exit status for configuration or rules errors found at start-up (and an
/// invalid `RUST_LOG`).
pub const EXIT_CONFIG: u8 = 2;

/// Exit status for a command line that does not parse (an unknown command or
/// option, a missing or bad argument): `EX_USAGE` from sysexits.h, so that it
/// is never mistaken for [`EXIT_CONFIG`]. `--help` and `--version` exit 0.
pub const EXIT_USAGE: u8 = 64;

/// Parses the command line and runs the command: what `main` does.
pub fn main() -> ExitCode {
    use clap::Parser;
    match Cli::try_parse() {
        Ok(cli) => run(cli),
        Err(e) => {
            // clap prints help and version to standard output and errors
            // (with the usage line) to standard error.
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve { dry_run } => serve::main(config, dry_run),
        Command::Send {
            file,
            url,
            execution_id,
        } => send::main(&file, &url, execution_id.as_deref()),
        Command::Check { live, send_test } => check::main(config, live, send_test),
        Command::Explain { payload } => explain::main(config, &payload),
        Command::Test => test::main(config),
        Command::Backtest {
            file,
            baseline,
            json,
        } => backtest::main(config, &file, baseline.as_deref(), json),
        Command::Parked { action: None } => parked::list(config),
        Command::Parked {
            action: Some(crate::cli::ParkedAction::Drop { id }),
        } => parked::drop(config, &id),
        Command::Replay { id: Some(id), .. } => parked::replay_one(config, &id),
        Command::Replay { id: None, target } => parked::replay(config, target.as_deref()),
        Command::Stats { days, json } => stats::main(config, days, json),
        Command::Probe { url, timeout } => {
            probe::main(url.as_deref(), std::time::Duration::from_secs(timeout))
        }
        Command::Completions { shell } => completions(shell),
    }
}

/// `modbridge completions SHELL`: the completion script on standard output.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "modbridge", &mut script);
    // Written here, not by clap_complete (which panics on a write error such
    // as a closed pipe).
    match std::io::stdout().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modbridge: cannot write the completion script: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Settings (as for a dry run: admins' tools need no secrets) and the rules,
/// or the exit code after printing every error.
fn settings_and_rules(
    config: Option<&std::path::Path>,
) -> Result<(crate::config::Settings, crate::rules::RuleSet), ExitCode> {
    use crate::config::{ProcessEnv, Settings};
    let settings = Settings::load(config, true, &ProcessEnv).map_err(|e| {
        eprintln!("modbridge: configuration errors:\n{e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let rules = crate::rules::RuleSet::load_dir(&settings.rules_dir, &settings.destinations)
        .map_err(|e| {
            eprintln!("modbridge: the rules do not load:\n{e}");
            ExitCode::from(EXIT_CONFIG)
        })?
        .rules
        .with_max_eval(settings.rules_max_eval);
    Ok((settings, rules))
}
