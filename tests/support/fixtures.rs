//! Test fixtures judged by real tools: digests come from coreutils' sha256sum/sha512sum, tarballs from
//! GNU tar, never from kimage's own code.

use std::path::Path;
use std::process::Command;

use super::tools::require;

/// The digest of a file as `tool` (sha256sum, sha512sum) prints it.
pub fn digest_file(tool: &str, path: &Path) -> String {
    require(tool);
    let out = Command::new(tool)
        .arg(path)
        .output()
        .expect("run digest tool");
    assert!(
        out.status.success(),
        "{tool} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

pub fn digest_bytes(tool: &str, bytes: &[u8]) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    digest_file(tool, f.path())
}

pub fn sha256(bytes: &[u8]) -> String {
    digest_bytes("sha256sum", bytes)
}

pub fn sha512(bytes: &[u8]) -> String {
    digest_bytes("sha512sum", bytes)
}

/// Deterministic, incompressible-ish content of `size` bytes that starts like a script naming `name`.
pub fn fake_binary(name: &str, size: usize) -> Vec<u8> {
    let mut v = format!("#!/bin/sh\necho {name}\nexit 0\n").into_bytes();
    let mut x: u64 = name
        .bytes()
        .fold(0x9E37_79B9_7F4A_7C15, |a, b| a.rotate_left(5) ^ b as u64);
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    v
}

/// A .tar.gz made by GNU tar of `files` (path inside the archive, content, mode). With `dot`, entries are
/// written as `./path` (as the CNI plugins release does).
pub fn tar_gz(files: &[(&str, Vec<u8>, u32)], dot: bool) -> Vec<u8> {
    require("tar");
    let dir = tempfile::tempdir().unwrap();
    for (p, content, mode) in files {
        let full = dir.path().join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.tar.gz");
    let mut cmd = Command::new("tar");
    cmd.args([
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "-czf",
    ])
    .arg(&out)
    .arg("-C")
    .arg(dir.path());
    if dot {
        cmd.arg(".");
    } else {
        let mut tops: Vec<&str> = files
            .iter()
            .map(|(p, _, _)| p.split('/').next().unwrap())
            .collect();
        tops.sort();
        tops.dedup();
        cmd.args(tops);
    }
    let st = cmd.status().expect("run tar");
    assert!(st.success(), "tar failed");
    std::fs::read(&out).unwrap()
}

/// Debian's `cloud-init schema --config-file` accepts the user-data at `path` with no error and no
/// deprecation; `what` names it in the failure, which shows cloud-init's words and the document.
pub fn assert_valid_cloud_config(path: &Path, what: &str) {
    require("cloud-init");
    let out = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(path)
        .output()
        .expect("run cloud-init schema");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let doc = || std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        out.status.success() && text.contains("Valid cloud-config"),
        "{what}: cloud-init schema failed:\n{text}\n{}",
        doc()
    );
    assert!(
        !text.to_lowercase().contains("deprecat"),
        "{what}: cloud-init schema reports a deprecation:\n{text}\n{}",
        doc()
    );
}
