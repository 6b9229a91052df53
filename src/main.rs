use std::process::ExitCode;

use clap::Parser;

use skiff::cli::Cli;

fn main() -> ExitCode {
    let args = match skiff::cli::config::args_with_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(err) => {
            eprintln!("skiff: error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    match skiff::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("skiff: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
