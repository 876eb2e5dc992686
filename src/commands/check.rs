//! `modbridge check`: validate the configuration and every rules file,
//! printing every problem (not just the first) as `file:line:col: message`.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{ProcessEnv, Settings};
use crate::rules::RuleSet;

pub fn main(config: Option<&Path>) -> ExitCode {
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
            let used: std::collections::BTreeSet<String> = loaded
                .rules
                .destinations()
                .into_iter()
                .map(|d| d.name.clone())
                .collect();
            for d in settings.destinations.iter() {
                let alert = settings.alerts_to.as_deref() == Some(d.name.as_str());
                if !used.contains(&d.name) && !alert {
                    println!(
                        "warning: destination {:?} is declared but no rules file sends to it",
                        d.name
                    );
                }
            }
            println!(
                "ok: {} rules file(s) in {}",
                loaded.rules.files(),
                settings.rules_dir.display()
            );
            ExitCode::SUCCESS
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
