//! `binaries.source: fetch-at-boot`: the per-node manifest kimage writes, and the node-side script
//! (image-layers/boot/kimage-fetch) run for real with python3 against the in-process server into a temp
//! root: once with good files, once with a corrupted one that it must refuse.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kimage::model::Cluster;
use kimage::profile;
use kimage::release::boot::{boot_manifests, fetch_script};
use kimage::release::command::LockArgs;
use kimage::release::lock::Lock;
use support::fixtures::sha256;
use support::http::{Fault, TestServer};
use support::releases::{FakeUpstream, Versions, lock, profile_yaml};
use support::tools::require;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("image-layers/boot/kimage-fetch")
}

fn run_script(manifest: &Path, root: &Path, console: &Path) -> Output {
    require("python3");
    Command::new("python3")
        .arg(script())
        .arg(manifest)
        .arg("--root")
        .arg(root)
        .arg("--tries")
        .arg("2")
        .env("KIMAGE_FETCH_CONSOLE", console)
        .output()
        .expect("run python3")
}

/// Every file under `dir`, as absolute node paths (`/usr/local/bin/kubelet`).
fn tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(format!("/{}", p.strip_prefix(base).unwrap().display()));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_embedded_script_is_the_file_and_compiles() {
    assert_eq!(fetch_script(), std::fs::read_to_string(script()).unwrap());
    require("python3");
    let out = Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())"])
        .arg(script())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_node_installs_verified_binaries_and_refuses_a_corrupt_one() {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "amd64");
    let srv = TestServer::start();
    up.serve(&srv, "/m");
    let mirror = format!("{}/m", srv.url());
    let text = profile_yaml(
        &v,
        "amd64",
        &format!("  source: fetch-at-boot\n  mirror: {mirror}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cluster.yaml");
    std::fs::write(&p, &text).unwrap();
    lock(
        &p,
        &LockArgs {
            image_mirror: None,
            mirror_checksums: false,
            offline: false,
            mirror: None,
            refresh: false,
            net: Default::default(),
        },
    )
    .unwrap();
    let lock = Lock::read(&dir.path().join("kimage.lock")).unwrap();
    let cluster = Cluster::resolve(&profile::load_str(&text, "t").unwrap().profile);
    let manifests = boot_manifests(&cluster, &lock).unwrap();

    let worker = &manifests["node-1"];
    assert!(
        worker
            .artifacts
            .iter()
            .all(|a| !a.label.starts_with("kube-apiserver")),
        "a worker fetches no control plane"
    );
    assert!(manifests["lb-1"].artifacts.is_empty());
    let m = &manifests["master-1"];
    assert!(
        m.artifacts
            .iter()
            .all(|a| a.url.starts_with(&mirror) && a.upstream_url.starts_with("https://"))
    );
    let json = m.to_json();
    assert_eq!(
        json,
        boot_manifests(&cluster, &lock).unwrap()["master-1"].to_json(),
        "deterministic"
    );
    let manifest = dir.path().join("fetch.json");
    std::fs::write(&manifest, &json).unwrap();

    // Good: every member lands with mode 0755 and the upstream bytes; nothing else does.
    let root = tempfile::tempdir().unwrap();
    let console = dir.path().join("console");
    let out = run_script(&manifest, root.path(), &console);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "kimage-fetch failed:\n{stderr}");
    let mut want: BTreeSet<String> = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
        "etcd",
        "etcdctl",
        "etcdutl",
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "runc",
        "crictl",
    ]
    .iter()
    .map(|n| format!("/usr/local/bin/{n}"))
    .collect();
    want.extend(
        ["bridge", "host-local", "loopback", "portmap"]
            .iter()
            .map(|n| format!("/opt/cni/bin/{n}")),
    );
    want.insert("/var/lib/kimage/fetch.done".into());
    assert_eq!(
        tree(root.path()),
        want,
        "installed files (and no leftover downloads)"
    );
    for f in want.iter().filter(|f| !f.starts_with("/var/")) {
        let path = root.path().join(f.trim_start_matches('/'));
        let name = f.rsplit('/').next().unwrap();
        assert_eq!(
            sha256(&std::fs::read(&path).unwrap()),
            sha256(up.program(name)),
            "{f}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o755,
            "{f}"
        );
    }
    // A second boot finds everything in place and downloads nothing.
    let before = srv.requests().len();
    let out = run_script(&manifest, root.path(), &console);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already installed")
    );
    assert_eq!(srv.requests().len(), before);

    // Corrupt kubelet on the mirror: refused with one clear line on stderr and the console; nothing installed.
    let kubelet_path = "/m/release/v1.35.99/bin/linux/amd64/kubelet";
    let garbage = b"#!/bin/sh\necho owned\n".to_vec();
    srv.fault_always(kubelet_path, Fault::Body(garbage.clone()));
    let root = tempfile::tempdir().unwrap();
    let out = run_script(&manifest, root.path(), &console);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let kubelet = lock.artifacts.iter().find(|a| a.name == "kubelet").unwrap();
    let line = format!(
        "kimage-fetch: DIGEST MISMATCH: kubelet v1.35.99 (amd64) from {}{kubelet_path}: expected sha256 {}, got {}; not installed",
        srv.url(),
        kubelet.digest,
        sha256(&garbage)
    );
    assert!(
        stderr.lines().any(|l| l == line),
        "stderr lacks\n{line}\n---\n{stderr}"
    );
    let console_text = std::fs::read_to_string(&console).unwrap();
    assert!(
        console_text.lines().any(|l| l == line),
        "console lacks the line: {console_text}"
    );
    assert!(console_text.contains("nothing was installed"));
    assert_eq!(
        tree(root.path()),
        BTreeSet::new(),
        "nothing installed, nothing left behind"
    );
}
