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

use clap::Parser;
use modbridge::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    modbridge::commands::run(cli)
}
