//! The `hookd` binary: parses the command line and hands over to `hookd::cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = hookd::cli::Cli::parse();
    match hookd::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
