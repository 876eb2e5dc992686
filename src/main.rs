#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]
use std::process::ExitCode;

fn main() -> ExitCode {
    modbridge::commands::main()
}
