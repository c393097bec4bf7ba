//! SOURCE_DATE_EPOCH, read once at the command line's edge (src/settings.rs): every layer entry gets it
//! as its modification time, and a value that is not a number is invalid input (exit 2, nothing
//! written). The test gives the variable to the kimage process it runs; it changes nothing in its own
//! environment.

use std::process::Command;

const PROFILE: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: epoch
network: {gateway: 10.0.0.1}
binaries: {source: fetch-at-boot}
nodes:
  - {name: cp-1, role: control-plane, address: 10.0.0.10}
  - {name: w-1, role: worker, address: 10.0.0.21}
";

fn build(dir: &std::path::Path, epoch: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kimage"))
        .args(["build", "--all"])
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .unwrap()
}

#[test]
fn source_date_epoch_sets_every_layer_entrys_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), PROFILE).unwrap();
    let out = build(tmp.path(), "1234567890");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut layers = 0;
    for e in std::fs::read_dir(tmp.path().join("out/layers")).unwrap() {
        let p = e.unwrap().path();
        let list = Command::new("tar")
            .args(["--full-time", "-tvzf"])
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&list.stdout);
        assert!(!text.is_empty(), "{}", p.display());
        for line in text.lines() {
            assert!(
                line.contains("2009-02-13 23:31:30"),
                "{}: {line}",
                p.display()
            );
        }
        layers += 1;
    }
    assert!(layers >= 2);
}

#[test]
fn source_date_epoch_that_is_not_a_number_is_invalid_input() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), PROFILE).unwrap();
    let out = build(tmp.path(), "yesterday");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SOURCE_DATE_EPOCH=\"yesterday\""), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing but the profile");
}
