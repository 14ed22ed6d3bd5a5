use std::process::ExitCode;

use clap::Parser;

use qcnn_host::cli::Cli;

fn main() -> ExitCode {
    match qcnn_host::commands::run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("qcnn: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
