//! `kimage verify`: every file manifest.json names, checked against its size and sha256; writes nothing.

use super::*;

pub(super) fn cmd_verify(cli: &Cli, out: &Option<PathBuf>) -> Result<(), Error> {
    let out = out.clone().unwrap_or_else(|| {
        match cli.profile.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.join("out"),
            None => PathBuf::from("out"),
        }
    });
    let (checked, problems) = crate::output::guard::verify(&out)?;
    if cli.output == Output::Json {
        print_json(&serde_json::json!({"out": out, "checked": checked, "mismatches": problems}))?;
    } else {
        for p in &problems {
            eprintln!("{}: {}", p.path.display(), p.problem);
        }
    }
    if problems.is_empty() {
        if cli.output == Output::Text {
            println!(
                "{}: {checked} files match {}",
                out.display(),
                crate::output::MANIFEST
            );
        }
        return Ok(());
    }
    Err(crate::output::OutputError::Corrupt {
        path: out.join(crate::output::MANIFEST),
        reason: format!(
            "{} of the {checked} files it names do not match (listed above); rebuild with `kimage build --all` to rewrite them",
            problems.len()
        ),
    }
    .into())
}
