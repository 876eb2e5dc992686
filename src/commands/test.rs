//! `modbridge test`: run every `[[test]]` in every rules file; exit 1 on any
//! failure, for CI.

use std::path::Path;
use std::process::ExitCode;

pub fn main(config: Option<&Path>) -> ExitCode {
    let (_, rules) = match super::settings_and_rules(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let report = rules.run_tests();
    // The report ends with its "N passed, M failed" summary line.
    println!("{report}");
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
