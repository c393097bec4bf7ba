//! Drivers for ci/bench/release.sh, not tests: ignored, and inert without the benchmark's environment.
//! They run the real `kimage fetch` handler (arguments parsed by the same clap `FetchArgs` the CLI
//! flattens) and kimage's streaming digest, so the benchmark works before the CLI wires the commands.

use clap::Parser;
use kimage::release::command::{FetchArgs, run_fetch};
use kimage::release::digest::{Algorithm, hash_file};

#[derive(Parser)]
struct FetchCli {
    #[command(flatten)]
    args: FetchArgs,
}

/// `KIMAGE_BENCH_FETCH_ARGS="--lock bench.lock --cache DIR -j 4 --quiet"`.
#[test]
#[ignore = "driver for ci/bench/release.sh"]
fn bench_fetch() {
    let Ok(args) = std::env::var("KIMAGE_BENCH_FETCH_ARGS") else {
        eprintln!("KIMAGE_BENCH_FETCH_ARGS is not set: nothing to do (see ci/bench/release.sh)");
        return;
    };
    let cli = FetchCli::parse_from(
        std::iter::once("kimage-fetch".to_string())
            .chain(args.split_whitespace().map(String::from)),
    );
    run_fetch(&cli.args).unwrap();
}

/// `KIMAGE_BENCH_FILES="a:b:c"`: sha256 of each, in sequence, the way a cache entry is re-verified.
#[test]
#[ignore = "driver for ci/bench/release.sh"]
fn bench_digest() {
    let Ok(files) = std::env::var("KIMAGE_BENCH_FILES") else {
        eprintln!("KIMAGE_BENCH_FILES is not set: nothing to do (see ci/bench/release.sh)");
        return;
    };
    for f in files.split(':') {
        let (d, n) = hash_file(Algorithm::Sha256, std::path::Path::new(f)).unwrap();
        println!("{d}  {f} ({n} bytes)");
    }
}
