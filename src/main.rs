use std::process::ExitCode;

use clap::Parser;
use modbridge::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    modbridge::commands::run(cli)
}
