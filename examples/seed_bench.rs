//! Writes a seed image from `NAME=FILE` arguments and prints `<sha256> <bytes> <fat type>`.
//!
//! usage: seed_bench OUT.img NAME=FILE...    (OUT "-" = digest only)

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, rest) = args
        .split_first()
        .ok_or("usage: seed_bench OUT.img NAME=FILE...")?;
    let mut files = Vec::new();
    for a in rest {
        let (name, file) = a.split_once('=').ok_or("arguments are NAME=FILE")?;
        files.push((name.to_string(), kimage::seed::Source::Path(file.into())));
    }
    let info = if out == "-" {
        kimage::seed::write_seed_to(std::io::sink(), &files, 1_700_000_000)?
    } else {
        kimage::seed::write_seed(out.as_ref(), &files, 1_700_000_000)?
    };
    println!(
        "{} {} {:?} {:08X}",
        info.sha256, info.bytes, info.fat, info.serial
    );
    Ok(())
}
