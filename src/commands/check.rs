//! `modbridge check`: validate the configuration and every rules file,
//! printing every problem (not just the first) as `file:line:col: message`.
//! With `--live`, also ask each platform what it thinks of its credentials
//! and channels (and with `--send-test`, post a test card to each): the
//! platform boundary does the asking ([`Platforms::preflight`]).

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Env, Layered, ProcessEnv, Settings};
use crate::destination::Destination;
use crate::platforms::{Platforms, Target};
use crate::rules::RuleSet;

pub fn main(config: Option<&Path>, live: bool, send_test: bool) -> ExitCode {
    // Secrets are an operator's concern, not an admin's: check as for a dry run.
    let settings = match Settings::load(config, true, &ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            for line in e.0 {
                println!("error: {line}");
            }
            return ExitCode::FAILURE;
        }
    };
    match RuleSet::load_dir(&settings.rules_dir, &settings.destinations) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            // What `serve` refuses to start with, `check` reports as an error.
            if let Some(no_rules) = loaded.rules.refusal(&settings.rules_dir) {
                for d in &no_rules.0 {
                    println!("error: {d}");
                }
                return ExitCode::FAILURE;
            }
            let used: std::collections::BTreeSet<String> = loaded
                .rules
                .destinations()
                .into_iter()
                .map(|d| d.name().to_owned())
                .collect();
            for d in settings.destinations.iter() {
                let alert = settings.alerts_to.as_deref() == Some(d.name());
                if !used.contains(d.name()) && !alert {
                    println!(
                        "warning: destination {:?} is declared but no rules file sends to it",
                        d.name()
                    );
                }
            }
            println!(
                "ok: {} rules file(s) and {} list(s) in {}",
                loaded.rules.files(),
                loaded.rules.lists(),
                settings.rules_dir.display()
            );
            // Moderator buttons: which platform has its secret, which lacks it.
            for line in settings.triage.report() {
                println!("{line}");
            }
            println!(
                "{}",
                settings.waves.report(
                    settings.redis_url.is_some() || !settings.dedupe.redis.sentinels.is_empty()
                )
            );
            if !live {
                return ExitCode::SUCCESS;
            }
            let mut destinations: Vec<std::sync::Arc<Destination>> =
                settings.destinations.iter().cloned().collect();
            destinations.extend(loaded.rules.destinations());
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    println!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let lines =
                runtime.block_on(live_check(&settings, &ProcessEnv, &destinations, send_test));
            let mut ok = true;
            for line in lines {
                ok &= !line.starts_with("error:");
                println!("{line}");
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(errors) => {
            for d in &errors.0 {
                println!("error: {d}");
            }
            println!("{} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// Builds the platforms from `env` and asks each about its credentials and
/// every destination; returns the report, one line each (`ok:`, `warning:`,
/// `error:`, `note:`).
pub async fn live_check(
    settings: &Settings,
    env: &dyn Env,
    destinations: &[std::sync::Arc<Destination>],
    send_test: bool,
) -> Vec<String> {
    let targets: Vec<(String, Target)> = destinations
        .iter()
        .map(|d| (d.name().to_owned(), d.target().clone()))
        .collect();
    let env = Layered {
        env,
        defaults: &settings.env_defaults,
    };
    match Platforms::from_env(
        &env,
        targets.iter().map(|(_, t)| t),
        settings.delivery.timeout,
    ) {
        Ok(platforms) => platforms.preflight(&targets, send_test).await,
        Err(errors) => errors.into_iter().map(|e| format!("error: {e}")).collect(),
    }
}
