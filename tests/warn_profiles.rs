//! Profiles in tests/warn-profiles are valid but questionable: `kimage validate` exits 0 and prints
//! exactly the warnings in the sibling `.stdout` file, naming the path in the `# warns:` header.
//! KIMAGE_BLESS=1 rewrites the `.stdout` files.

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn questionable_profiles_warn_with_exact_text() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/warn-profiles");
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 5);
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_stem().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&case).unwrap();
        let path = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# warns: "))
            .expect("# warns: header")
            .to_string();
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cluster.yaml"), &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kimage"))
            .arg("validate")
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let expected_path = case.with_extension("stdout");
        if std::env::var_os("KIMAGE_BLESS").is_some() {
            fs::write(&expected_path, &stdout).unwrap();
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if out.status.code() != Some(0) {
            failures.push(format!(
                "{name}: exit {:?}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if stdout != expected {
            failures.push(format!(
                "{name}: stdout differs\n--- expected\n{expected}--- actual\n{stdout}"
            ));
        }
        if !stdout.contains(&format!("warning: {path}: ")) {
            failures.push(format!("{name}: no warning for {path}\n{stdout}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
