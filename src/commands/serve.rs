//! `modbridge serve`: load settings and rules, check that every platform in
//! use has its credentials, start the service ([`crate::app`] builds it) and
//! run until SIGTERM/SIGINT; SIGHUP reloads the rules.

use std::path::Path;
use std::process::ExitCode;

use tracing::{error, info, warn};

use super::EXIT_CONFIG;
use crate::config::{Env, ProcessEnv, Settings};
use crate::rules::RuleSet;
use crate::telemetry;

// The composition root moved to `crate::app`; these paths stay for callers.
pub use crate::app::{Running, start, start_with, store_for};

pub fn main(config: Option<&Path>, dry_run: bool) -> ExitCode {
    let settings = match Settings::load(config, dry_run, &ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modbridge: configuration errors:\n{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = telemetry::init_logs(
        settings.server.log_format,
        ProcessEnv.var("RUST_LOG").as_deref(),
    ) {
        eprintln!("modbridge: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let rules = match RuleSet::load_dir(&settings.rules_dir, &settings.destinations) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                warn!("{w}");
            }
            loaded.rules
        }
        Err(errors) => {
            eprintln!(
                "modbridge: the rules in {} do not load:\n{errors}",
                settings.rules_dir.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(no_rules) = rules.refusal(&settings.rules_dir) {
        eprintln!("modbridge: nothing to do:\n{no_rules}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Err(problems) = check_sinks(&settings, &rules, &ProcessEnv) {
        eprintln!("modbridge: cannot deliver cards:\n{}", problems.join("\n"));
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("modbridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings, rules)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("modbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Without `--dry-run`, every platform that a destination uses needs its
/// token or webhook URL: a forgotten one must not turn into silently dropped
/// posts.
pub fn check_sinks(settings: &Settings, rules: &RuleSet, env: &dyn Env) -> Result<(), Vec<String>> {
    if settings.dry_run {
        return Ok(());
    }
    let mut problems = Vec::new();
    let targets = settings
        .destinations
        .iter()
        .map(|d| d.target().clone())
        .chain(rules.destinations().into_iter().map(|d| d.target().clone()));
    let mut seen = std::collections::BTreeSet::new();
    for target in targets {
        let need = target.credential_env();
        if !seen.insert(need.clone()) {
            continue;
        }
        if env.var(&need).is_none() {
            problems.push(format!(
                "{} destinations need {need}; set it, or run with --dry-run to print cards instead",
                target.platform()
            ));
        }
        // Present is enough here: the platforms judge the token itself
        // (`modbridge check --live`, and `/readyz` after a failed delivery).
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

async fn run(settings: Settings, rules: RuleSet) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let running = start(settings, rules, true).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                info!("SIGHUP: reloading rules");
                let live = running.state.pipeline.rules().clone();
                let _ = tokio::task::spawn_blocking(move || live.reload_now()).await;
            }
        }
    }
    info!(
        grace_secs = running.state.settings.server.shutdown_timeout.as_secs(),
        "shutting down: finishing in-flight requests and deliveries"
    );
    running.stop().await;
    info!("stopped");
    Ok(())
}
