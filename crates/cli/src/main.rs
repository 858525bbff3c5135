//! `artifactstore`: the server, the administration tool and the client, in
//! one binary. Every command maps onto the shared `Registry` (directly for
//! `serve` and `admin`, over HTTP for the rest).

mod args;
mod client;
mod commands;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

/// mimalloc keeps freed memory for reuse, where glibc's malloc hands the
/// buffers of a streamed upload back to the kernel and faults fresh zeroed
/// pages in for the next ones (a tenth of the server's CPU on a large
/// ingest), and its small allocations are cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
