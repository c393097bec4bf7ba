//! "Nothing is written until the plan is complete and valid": every kind of input error ends with exit
//! status 2 (or 3 where a prerequisite is missing) and leaves the file system exactly as it was: no
//! state, no lock, no out/, and an earlier build's state, lock, cluster record and out/ unchanged
//! (every file's bytes, mode and modification time).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const KIMAGE: &str = env!("CARGO_BIN_EXE_kimage");

const GOOD: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: untouched
network: {gateway: 10.0.0.1}
binaries: {source: fetch-at-boot}
nodes:
  - {name: cp-1, role: control-plane, address: 10.0.0.10}
  - {name: w-1, role: worker, address: 10.0.0.21}
";

/// Every file and directory under `dir`: (mode, size, modification time in ns, sha256 of the bytes).
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, u64, i128, String)> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let digest = if m.is_file() {
                hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()))
            } else {
                String::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(
                p.strip_prefix(dir).unwrap().display().to_string(),
                (
                    m.mode(),
                    m.len(),
                    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                    digest,
                ),
            );
        }
    }
    out
}

fn kimage(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(KIMAGE)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs `args` in `dir` after writing `profile`, expecting `status` and an unchanged tree apart from
/// the profile itself.
fn expect_untouched(dir: &Path, profile: &str, args: &[&str], status: i32, why: &str) {
    std::fs::write(dir.join("cluster.yaml"), profile).unwrap();
    let before = snapshot(dir);
    let (code, out) = kimage(dir, args);
    assert_eq!(code, Some(status), "kimage {args:?} ({why}):\n{out}");
    let after = snapshot(dir);
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "kimage {args:?} ({why}) exited {status} but changed {changed:?}:\n{out}"
    );
}

/// The input errors, each on an empty directory and on one with an earlier build.
fn cases() -> Vec<(&'static str, String, Vec<&'static str>, i32)> {
    vec![
        (
            "YAML syntax",
            GOOD.replace("nodes:", "nodes: [\n"),
            vec!["build", "--all"],
            2,
        ),
        (
            "a field the schema does not know",
            GOOD.replace("name: untouched", "name: untouched\nnodez: []"),
            vec!["build", "--all"],
            2,
        ),
        (
            "whole-cluster validation (no control-plane node)",
            GOOD.replace("role: control-plane", "role: worker"),
            vec!["build", "--all"],
            2,
        ),
        (
            "a value only the renderer refused before (a line break)",
            GOOD.replace(
                "nodes:",
                "os: {ntpServers: [\"pool.ntp.org\\nserver evil\"]}\nnodes:",
            ),
            vec!["build", "--all"],
            2,
        ),
        (
            "an unknown node name",
            GOOD.to_string(),
            vec!["build", "--role", "w-9"],
            2,
        ),
        (
            "unpack of an unknown node",
            GOOD.to_string(),
            vec!["unpack", "--role", "w-9", "--into", "node"],
            2,
        ),
    ]
}

#[test]
fn each_input_error_leaves_an_empty_directory_empty() {
    for (why, profile, args, status) in cases() {
        let tmp = tempfile::tempdir().unwrap();
        expect_untouched(tmp.path(), &profile, &args, status, why);
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{why}: only cluster.yaml may exist");
    }
}

#[test]
fn each_input_error_leaves_an_earlier_build_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), GOOD).unwrap();
    let (code, out) = kimage(tmp.path(), &["build", "--all"]);
    assert_eq!(code, Some(0), "{out}");
    for f in [
        "kimage-state/pki/state.json",
        "kimage.lock",
        "out/manifest.json",
    ] {
        assert!(tmp.path().join(f).exists(), "the good build wrote no {f}");
    }
    for (why, profile, args, status) in cases() {
        expect_untouched(tmp.path(), &profile, &args, status, why);
    }
}

/// Regression: `kimage unpack` in a directory without a build wrote the PKI state (every CA key) and
/// kimage.lock. It now says to build first, with exit 3, and writes nothing.
#[test]
fn unpack_without_a_build_wrote_the_state_and_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    expect_untouched(
        tmp.path(),
        GOOD,
        &["unpack", "--role", "w-1", "--into", "node"],
        3,
        "unpack before any build",
    );
    let (_, out) = kimage(tmp.path(), &["unpack", "--role", "w-1", "--into", "node"]);
    assert!(out.contains("kimage pki"), "{out}");
}

/// Regression: a line break in `os.ntpServers[0]` was refused by the renderer only, with exit 2 but
/// after the PKI state and kimage.lock had been written, and without a line number.
#[test]
fn a_value_only_the_renderer_refused_wrote_the_state_and_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = GOOD.replace(
        "nodes:",
        "os: {ntpServers: [\"pool.ntp.org\\nserver evil\"]}\nnodes:",
    );
    expect_untouched(
        tmp.path(),
        &profile,
        &["build", "--all"],
        2,
        "line break in an NTP server",
    );
    let (_, out) = kimage(tmp.path(), &["build", "--all"]);
    assert!(
        out.contains("cluster.yaml:6:19: error: os.ntpServers[0]"),
        "the error names the field and its line:\n{out}"
    );
}

/// Regression: a corrupt `kimage-state/cluster.json` ended a build with exit 2 ("invalid input"),
/// although the profile was fine: a file kimage wrote that no longer reads is corrupt state (4).
#[test]
fn a_corrupt_cluster_record_exited_2_as_if_the_profile_were_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), GOOD).unwrap();
    let (code, out) = kimage(tmp.path(), &["build", "--all"]);
    assert_eq!(code, Some(0), "{out}");
    std::fs::write(tmp.path().join("kimage-state/cluster.json"), "{not json").unwrap();
    expect_untouched(
        tmp.path(),
        GOOD,
        &["build", "--all"],
        4,
        "corrupt cluster.json",
    );
    let (_, out) = kimage(tmp.path(), &["build", "--all"]);
    assert!(
        out.contains("cluster.json is not a kimage cluster state"),
        "{out}"
    );
}
