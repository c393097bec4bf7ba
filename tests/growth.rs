//! Growth changes only what must change, per shipped profile (profiles/*.yaml), through the CLI as a
//! user runs it: `kimage build --all`, then the same cluster (a copy of its PKI and cluster state) with
//! one control-plane node added, one removed (the last one in the profile, when there are two or more)
//! or one worker added, built again; `kimage diff` between the two must name exactly the nodes each
//! step pins, with their verdicts. Every node not named is `unchanged`.
//!
//! What each step may change: a control-plane node added or removed changes the load balancers'
//! backends (replace) and, with `os.hostsFile` (every shipped profile), the /etc/hosts of every node
//! (optional): no apiserver certificate or node list names the other control-plane nodes, and the
//! apiservers' `--etcd-servers` name the members etcd formed with. Removing a stacked control-plane
//! node (an etcd member the others dial) also changes the other apiservers' `--etcd-servers`. A worker
//! added changes nothing else at all (workers are not in /etc/hosts by default).

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use support::tools::tempdir;

const BIN: &str = env!("CARGO_BIN_EXE_kimage");

fn kimage(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("KIMAGE_CACHE", dir.join("no-cache"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "kimage {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A shipped profile; one that downloads binaries at build time gets `binaries.source: fetch-at-boot`
/// (as tests/shipped_snapshots.rs does), so the build needs no network and no cache.
fn shipped(stem: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("profiles")
        .join(format!("{stem}.yaml"));
    let mut text = std::fs::read_to_string(&p).unwrap();
    if !text.lines().any(|l| l.starts_with("binaries:")) {
        text.push_str("binaries:\n  source: fetch-at-boot\n");
    }
    text
}

/// The profile's node lines (`  - {name: ...}`), as (index in `lines`, name, role, address).
fn node_lines(text: &str) -> Vec<(usize, String, String, Ipv4Addr)> {
    let field = |line: &str, key: &str| {
        let rest = &line[line.find(&format!("{key}:")).unwrap() + key.len() + 1..];
        rest.trim_start()
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("- {name:"))
        .map(|(i, l)| {
            (
                i,
                field(l, "name"),
                field(l, "role"),
                field(l, "address").parse().unwrap(),
            )
        })
        .collect()
}

/// The profile with a node line added after its last node.
fn with_node(text: &str, name: &str, role: &str) -> String {
    let nodes = node_lines(text);
    let (last, ..) = nodes.last().unwrap();
    // An address of the nodes' subnet that none of them has.
    let top = nodes
        .iter()
        .map(|(_, _, _, a)| u32::from(*a))
        .max()
        .unwrap();
    let offset = if role == "worker" { 10 } else { 11 };
    let address = Ipv4Addr::from(top + offset);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.insert(
        last + 1,
        format!("  - {{name: {name}, role: {role}, address: {address}}}"),
    );
    lines.join("\n") + "\n"
}

/// The profile without its last control-plane node, or None with fewer than two.
fn without_last_control_plane(text: &str) -> Option<String> {
    let cps: Vec<usize> = node_lines(text)
        .into_iter()
        .filter(|(_, _, role, _)| role == "control-plane")
        .map(|(i, ..)| i)
        .collect();
    let &last = cps.last()?;
    (cps.len() > 1).then(|| {
        text.lines()
            .enumerate()
            .filter(|(i, _)| *i != last)
            .map(|(_, l)| l)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    })
}

fn build(dir: &Path) {
    kimage(
        dir,
        &[
            "build",
            "--profile",
            "cluster.yaml",
            "--state",
            "state",
            "--out",
            "out",
            "--all",
        ],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The base build of a profile, kept for the steps.
struct Base {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    text: String,
}

impl Base {
    fn new(text: String) -> Base {
        let tmp = tempdir();
        let dir = tmp.path().join("base");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cluster.yaml"), &text).unwrap();
        build(&dir);
        Base {
            _tmp: tmp,
            dir,
            text,
        }
    }

    /// Builds `profile` for the same cluster (a copy of the base's state and lock) in a new directory
    /// and returns what `kimage diff` says: verdict → nodes, without the unchanged ones.
    fn step(&self, name: &str, profile: &str) -> String {
        self.step_allowing(name, profile, &[])
    }

    /// `step`, where a replaced node may also have the files `also` changed.
    fn step_allowing(&self, name: &str, profile: &str, also: &[&str]) -> String {
        let dir = self.dir.parent().unwrap().join(name);
        std::fs::create_dir(&dir).unwrap();
        copy_dir(&self.dir.join("state"), &dir.join("state"));
        if self.dir.join("kimage.lock").exists() {
            std::fs::copy(self.dir.join("kimage.lock"), dir.join("kimage.lock")).unwrap();
        }
        std::fs::write(dir.join("cluster.yaml"), profile).unwrap();
        build(&dir);
        let base_out = self.dir.join("out");
        let json: Json = serde_json::from_str(&kimage(
            &dir,
            &[
                "diff",
                base_out.to_str().unwrap(),
                "out",
                "--output",
                "json",
            ],
        ))
        .unwrap();
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in json.as_array().unwrap() {
            let node = d["node"].as_str().unwrap().to_string();
            let verdict = d["verdict"].as_str().unwrap().to_string();
            let files: Vec<&str> = d["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            // A node that must be replaced for a control-plane change is a load balancer whose
            // backends changed; nothing else on it (but `also`).
            if verdict == "replace" {
                for f in &files {
                    assert!(
                        [
                            "changed /etc/hosts",
                            "changed /etc/haproxy/kimage.cfg",
                            "changed /etc/nginx/kimage.conf"
                        ]
                        .contains(f)
                            || also.contains(f),
                        "{name}: {node} must be replaced for {f}: {files:?}"
                    );
                }
            }
            if verdict != "unchanged" {
                by.entry(verdict).or_default().push(node);
            }
        }
        by.iter()
            .map(|(v, nodes)| format!("{v}: {}", nodes.join(" ")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs the three steps on `stem` and compares each with what it pins (None: the profile has one
/// control-plane node, nothing to remove).
fn growth(stem: &str, add_cp: &str, remove_cp: Option<&str>, add_worker: &str) {
    let base = Base::new(shipped(stem));
    assert_eq!(
        base.step(
            "add-control-plane",
            &with_node(&base.text, "grow-cp", "control-plane")
        ),
        add_cp,
        "{stem}: a control-plane node added"
    );
    // A stacked etcd member removed: the apiservers that dial it drop it from --etcd-servers.
    assert_eq!(
        without_last_control_plane(&base.text).map(|p| base.step_allowing(
            "remove-control-plane",
            &p,
            &["changed /etc/systemd/system/kube-apiserver.service"]
        )),
        remove_cp.map(str::to_string),
        "{stem}: the last control-plane node removed"
    );
    assert_eq!(
        base.step(
            "add-worker",
            &with_node(&base.text, "grow-worker", "worker")
        ),
        add_worker,
        "{stem}: a worker added"
    );
}

#[test]
fn quickstart() {
    growth(
        "quickstart",
        "added: grow-cp\noptional: cp-1 worker-1 worker-2",
        None,
        "added: grow-worker",
    );
}

#[test]
fn seed_000_single_master() {
    growth(
        "000-single-master",
        "added: grow-cp\noptional: k8s-master1 k8s-node1 k8s-node2",
        None,
        "added: grow-worker",
    );
}

#[test]
fn seed_000_ha_nginx_keepalived() {
    growth(
        "000-ha-nginx-keepalived",
        "added: grow-cp\n\
         optional: k8s-master1 k8s-master2 k8s-node1 k8s-node2\n\
         replace: nginx-master nginx-slave",
        Some(
            "optional: k8s-master1 k8s-node1 k8s-node2\n\
             removed: k8s-master2\n\
             replace: nginx-master nginx-slave",
        ),
        "added: grow-worker",
    );
}

#[test]
fn seed_001_minimal() {
    growth(
        "001-minimal",
        "added: grow-cp\noptional: node server",
        None,
        "added: grow-worker",
    );
}

#[test]
fn seed_002_external_etcd_nginx() {
    growth(
        "002-external-etcd-nginx",
        "added: grow-cp\n\
         optional: etcd-0 etcd-1 etcd-2 master-1 master-2 master-3 node-1 node-2 node-3\n\
         replace: nginx",
        Some(
            "optional: etcd-0 etcd-1 etcd-2 master-1 master-2 node-1 node-2 node-3\n\
             removed: master-3\n\
             replace: nginx",
        ),
        "added: grow-worker",
    );
}

#[test]
fn seed_003_stacked_ha_ipvs() {
    growth(
        "003-stacked-ha-ipvs",
        "added: grow-cp\n\
         optional: k8s-master-1 k8s-master-2 k8s-master-3 k8s-node-1 k8s-node-2 k8s-node-3\n\
         replace: k8s-master-lb",
        // k8s-master-3 ran an etcd member: the other apiservers stop dialing it.
        Some(
            "optional: k8s-node-1 k8s-node-2 k8s-node-3\n\
             removed: k8s-master-3\n\
             replace: k8s-master-1 k8s-master-2 k8s-master-lb",
        ),
        "added: grow-worker",
    );
}

#[test]
fn seed_004_ha_haproxy() {
    growth(
        "004-ha-haproxy",
        "added: grow-cp\n\
         optional: ubuntu-70 ubuntu-72 ubuntu-73 ubuntu-74 ubuntu-75 ubuntu-81 ubuntu-82 ubuntu-83\n\
         replace: haproxy",
        // ubuntu-72 ran an etcd member: the other apiservers stop dialing it.
        Some(
            "optional: ubuntu-74 ubuntu-75 ubuntu-81 ubuntu-82 ubuntu-83\n\
             removed: ubuntu-72\n\
             replace: haproxy ubuntu-70 ubuntu-73",
        ),
        "added: grow-worker",
    );
}

/// Without /etc/hosts, the other control-plane nodes are byte for byte what they were: only the load
/// balancer changes.
#[test]
fn seed_003_without_hosts_file_leaves_the_masters_unchanged() {
    let text = shipped("003-stacked-ha-ipvs").replace("os:\n", "os:\n  hostsFile: false\n");
    let base = Base::new(text);
    assert_eq!(
        base.step(
            "add-control-plane",
            &with_node(&base.text, "grow-cp", "control-plane")
        ),
        "added: grow-cp\nreplace: k8s-master-lb"
    );
}
