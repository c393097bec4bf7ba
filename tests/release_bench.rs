//! A driver for ci/bench/release.sh, not a test: ignored, and inert without the benchmark's environment.
//! It runs kimage's streaming digest alone, to compare with sha256sum on the same bytes.

use kimage::release::digest::{Algorithm, hash_file};

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
