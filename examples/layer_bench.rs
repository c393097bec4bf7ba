//! Builds one layer from the files given on the command line (as /usr/local/bin/<file name>, mode 0755) and
//! prints `<sha256> <bytes> <tar bytes>`. Used by ci/bench/layers.sh.
//!
//! usage: layer_bench OUT.tar.gz FILE...   (OUT "-" = digest only, nothing written;
//!        KIMAGE_BENCH_LEVEL=N picks another deflate level than the default 6)

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, files) = args
        .split_first()
        .ok_or("usage: layer_bench OUT.tar.gz FILE...")?;
    let mut b = kimage::layers::LayerBuilder::new(1_700_000_000);
    if let Ok(l) = std::env::var("KIMAGE_BENCH_LEVEL") {
        b.level(l.parse()?);
    }
    for f in files {
        let name = Path::new(f)
            .file_name()
            .ok_or("file without a name")?
            .to_string_lossy();
        b.file_from(&format!("/usr/local/bin/{name}"), 0o755, f);
    }
    let info = if out == "-" {
        b.digest()?
    } else {
        let w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
        b.build_to(w)?
    };
    println!("{} {} {}", info.sha256, info.bytes, info.tar_bytes);
    Ok(())
}
