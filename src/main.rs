use std::process::ExitCode;

use clap::Parser;

use skiff::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match skiff::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("skiff: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
