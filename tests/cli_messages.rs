//! What a new user meets first, as exact text: each message was found wanting when kimage was tried as
//! a new user would (a missing profile, a flag after a subcommand, status before any state, no network,
//! an empty cache), and each test is named after what was wrong.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const KIMAGE: &str = env!("CARGO_BIN_EXE_kimage");

const PROFILE: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: msgs
network: {gateway: 10.0.0.1}
nodes:
  - {name: cp-1, role: control-plane, address: 10.0.0.10}
  - {name: w-1, role: worker, address: 10.0.0.21}
";

fn kimage(dir: &Path, args: &[&str]) -> Output {
    Command::new(KIMAGE)
        .args(args)
        .current_dir(dir)
        .env("KIMAGE_CACHE", dir.join("cache"))
        .env_remove("KIMAGE_PROFILE")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_without_a_profile_did_not_say_where_one_comes_from() {
    let tmp = tempfile::tempdir().unwrap();
    let o = kimage(tmp.path(), &["validate"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: no profile at cluster.yaml; write one with `kimage init` (templates: `kimage init \
         --list`), or name yours with --profile\n"
    );
}

#[test]
fn etcd_endpoints_after_the_subcommand_were_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), PROFILE).unwrap();
    let o = kimage(
        tmp.path(),
        &["etcd", "members", "--endpoints", "https://10.0.0.10:2379"],
    );
    // It gets as far as the missing state: the flag was taken.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no pki state yet"), "{}", stderr(&o));
    let help = String::from_utf8_lossy(&kimage(tmp.path(), &["etcd", "members", "--help"]).stdout)
        .into_owned();
    assert!(help.contains("--endpoints <ENDPOINTS>"), "{help}");
}

#[test]
fn pki_status_before_any_state_warned_once_per_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), PROFILE).unwrap();
    let o = kimage(tmp.path(), &["pki", "status"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "error: pki state ./kimage-state/pki/state.json is missing or out of date:\n  no pki \
         state yet\nrun `kimage pki` to create or refresh it\n"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn build_named_one_missing_artifact_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), PROFILE).unwrap();
    let o = kimage(tmp.path(), &["build", "--all"]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(
        e.contains("lacks 11 artifacts: ")
            && e.contains("kube-apiserver v1.35.0 (amd64)")
            && e.contains("etcd-v3.6.12-linux-amd64.tar.gz v3.6.12 (amd64)")
            && e.ends_with("; run `kimage fetch` to download them\n"),
        "{e}"
    );
}

#[test]
fn fetch_without_a_network_retried_every_artifact_for_45_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), PROFILE).unwrap();
    assert!(kimage(tmp.path(), &["lock"]).status.success());
    // No network at all: an empty network namespace (root; CI runs as root).
    let t = Instant::now();
    let o = Command::new("/usr/bin/unshare")
        .args(["--net", KIMAGE, "fetch"])
        .current_dir(tmp.path())
        .env("KIMAGE_CACHE", tmp.path().join("cache"))
        .output()
        .unwrap();
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(gave up after 1 try)"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn init_list_cut_descriptions_mid_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let o = kimage(tmp.path(), &["init", "--list"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.lines().count() >= 7, "{text}");
    for l in text.lines() {
        assert!(l.ends_with('.'), "{l}");
    }
}

#[test]
fn a_byte_order_mark_became_part_of_the_first_key() {
    // Editors on Windows start UTF-8 files with U+FEFF; it was read as part of a field name
    // ("unknown field `\u{feff}apiVersion`"). YAML allows it at the start: the profile is valid.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("cluster.yaml"),
        format!("\u{feff}{PROFILE}"),
    )
    .unwrap();
    let o = kimage(tmp.path(), &["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
