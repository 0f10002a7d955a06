//! The `hookd` binary: parses the command line and hands over to `hookd::cli`.

use clap::Parser;

/// mimalloc instead of glibc's malloc: the delivery path allocates and frees many short-lived
/// buffers across threads, and glibc's allocator took about 14% of hookd's CPU in a throughput
/// profile (`malloc`, `_int_free`, `malloc_consolidate`; BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
