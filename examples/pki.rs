//! Stand-in for `kimage pki` until the CLI wires it: same arguments, same handlers.
//! `cargo run --release --example pki -- --profile profiles/003-stacked-ha-ipvs.yaml [--state DIR] [status|renew|import]`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kimage::pki::command::{self, Context, PkiArgs};

#[derive(Debug, Parser)]
struct Cli {
    /// The cluster profile.
    #[arg(long, short = 'p', global = true, default_value = "cluster.yaml")]
    profile: PathBuf,
    /// Output format: text or json.
    #[arg(long, short = 'o', global = true, default_value = "text")]
    output: String,
    #[command(flatten)]
    pki: PkiArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let checked = match kimage::cli::check_profile(&cli.profile) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let ctx = Context {
        cluster: &checked.cluster,
        profile_dir: &checked.loaded.dir(),
        json: cli.output == "json",
        now: time::OffsetDateTime::now_utc(),
    };
    match command::run(
        &cli.pki,
        &ctx,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
