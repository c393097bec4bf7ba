use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = kimage::cli::Cli::parse();
    match kimage::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            kimage::cli::report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
