//! `modbridge test`: run every `[[test]]` in every rules file; exit 1 on any
//! failure, for CI.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{ProcessEnv, Settings};
use crate::rules::RuleSet;

pub fn main(config: Option<&Path>) -> ExitCode {
    let settings = match Settings::load(config, true, &ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modbridge: configuration errors:\n{e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let rules = match RuleSet::load_dir(&settings.rules_dir, &settings.destinations) {
        Ok(l) => l.rules,
        Err(e) => {
            eprintln!("modbridge: the rules do not load:\n{e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let report = rules.run_tests();
    print!("{report}");
    println!("{} passed, {} failed", report.passed(), report.failed());
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
