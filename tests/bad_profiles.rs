//! Every file in tests/bad-profiles is a malformed profile. For each, `kimage build --all` must exit with
//! status 2, print exactly the text in the sibling `.stderr` file (which names the field path given in the
//! file's `# path:` header), and create nothing: no output directory, no state directory.
//! Set KIMAGE_BLESS=1 to (re)write the `.stderr` files after reviewing a change in wording.

use std::fs;
use std::path::Path;
use std::process::Command;

fn cases() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-profiles");
    let mut v: Vec<_> = fs::read_dir(&dir)
        .expect("tests/bad-profiles exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn at_least_forty_malformed_profiles() {
    assert!(cases().len() >= 40, "only {} bad profiles", cases().len());
}

#[test]
fn each_malformed_profile_fails_with_exact_text_and_writes_nothing() {
    let bless = std::env::var_os("KIMAGE_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_stem().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&case).unwrap();
        let path = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# path: "))
            .unwrap_or_else(|| panic!("{name}: first line must be `# path: FIELD`"))
            .to_string();
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cluster.yaml"), &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kimage"))
            .args(["build", "--all"])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_path = case.with_extension("stderr");
        if bless {
            fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        let mut left: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{name}: exit status {:?}, expected 2\n{stderr}",
                out.status.code()
            ));
        }
        if stderr != expected {
            failures.push(format!(
                "{name}: stderr differs\n--- expected\n{expected}--- actual\n{stderr}"
            ));
        }
        if !path.starts_with('(') && !without_subjects(&stderr).contains(&format!(": {path}: ")) {
            failures.push(format!(
                "{name}: stderr does not name the field path `{path}`\n{stderr}"
            ));
        }
        if !stderr.contains("cluster.yaml:") || !stderr.contains("= fix: ") {
            failures.push(format!(
                "{name}: stderr lacks a location or a fix\n{stderr}"
            ));
        }
        if left != ["cluster.yaml"] {
            failures.push(format!("{name}: the run left files behind: {left:?}"));
        }
        if !stdout_is_empty(&out.stdout) {
            failures.push(format!("{name}: wrote to stdout"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The text with the node names that follow list indices taken out (`nodes[7] (etcd-9).address` is
/// `nodes[7].address`), to find the field path of a header.
fn without_subjects(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("] (") {
        out.push_str(&rest[..=i]);
        let after = &rest[i + 3..];
        match after.find(')') {
            Some(j) if !after[..j].contains([' ', '\n']) => rest = &after[j + 1..],
            _ => rest = &rest[i + 1..],
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn errors_about_a_node_name_the_node() {
    // Regression: `nodes[7].address` alone made a reader count list items to find the node.
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-profiles/duplicate-address.stderr"),
    )
    .unwrap();
    assert!(text.contains("nodes[1] ("), "{text}");
    assert_eq!(
        without_subjects("a: nodes[1] (w-1).address: x"),
        "a: nodes[1].address: x"
    );
}

fn stdout_is_empty(b: &[u8]) -> bool {
    b.is_empty()
}
