//! `kimage diff` on real builds: growing the cluster by a worker leaves the others' artifacts identical
//! (workers are not in /etc/hosts), with `os.hostsWorkers` it changes their /etc/hosts only (optional),
//! and a new VIP on the endpoint means replacing the control-plane nodes, whose apiserver certificate
//! changed. tests/growth.rs pins every growth step of every shipped profile.

use std::path::Path;
use std::process::Command;

fn kimage(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kimage"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kimage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const BASE: &str =
    "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: diffs\nbinaries: {source: fetch-at-boot}\n";

fn nodes(extra: &str) -> String {
    format!(
        "nodes:\n  - {{name: cp-1, role: control-plane, address: 10.0.0.10}}\n  - {{name: w-1, role: worker, address: 10.0.0.21}}\n{extra}"
    )
}

#[test]
fn growth_and_endpoint_changes_say_what_to_replace() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w2 = "  - {name: w-2, role: worker, address: 10.0.0.22}\n";

    std::fs::write(d.join("cluster.yaml"), format!("{BASE}{}", nodes(""))).unwrap();
    kimage(d, &["build", "--all", "--out", "a"]);
    std::fs::write(d.join("cluster.yaml"), format!("{BASE}{}", nodes(w2))).unwrap();
    kimage(d, &["build", "--all", "--out", "b"]);
    let text = kimage(d, &["diff", "a", "b"]);
    assert_eq!(
        text,
        "cp-1: unchanged\nw-1: unchanged\nw-2: added: boot it from the new artifacts\n"
    );

    // Workers listed in /etc/hosts: a new one changes every node's, and nothing else.
    let listed = format!("{BASE}os: {{hostsWorkers: true}}\n");
    std::fs::write(d.join("cluster.yaml"), format!("{listed}{}", nodes(""))).unwrap();
    kimage(d, &["build", "--all", "--out", "g"]);
    std::fs::write(d.join("cluster.yaml"), format!("{listed}{}", nodes(w2))).unwrap();
    kimage(d, &["build", "--all", "--out", "h"]);
    let text = kimage(d, &["diff", "g", "h"]);
    assert_eq!(
        text,
        "cp-1: optional: replace when convenient (only /etc/hosts differs)\n    changed /etc/hosts\n\
         w-1: optional: replace when convenient (only /etc/hosts differs)\n    changed /etc/hosts\n\
         w-2: added: boot it from the new artifacts\n"
    );

    // Without /etc/hosts, likewise nothing on the others.
    let base = format!("{BASE}os: {{hostsFile: false}}\n");
    std::fs::write(d.join("cluster.yaml"), format!("{base}{}", nodes(""))).unwrap();
    kimage(d, &["build", "--all", "--out", "c"]);
    std::fs::write(d.join("cluster.yaml"), format!("{base}{}", nodes(w2))).unwrap();
    kimage(d, &["build", "--all", "--out", "e"]);
    let text = kimage(d, &["diff", "c", "e"]);
    assert_eq!(
        text,
        "cp-1: unchanged\nw-1: unchanged\nw-2: added: boot it from the new artifacts\n"
    );

    // A load balancer with a VIP in front: the apiserver certificate gains the VIP (seed 004), so the
    // control plane must be replaced; the kubeconfigs (secret) point at the new endpoint everywhere.
    let lb = format!(
        "{base}controlPlane: {{endpoint: 10.0.0.100:6443}}\nloadBalancer: {{kind: haproxy, vip: 10.0.0.100}}\n{}",
        nodes(&format!(
            "{w2}  - {{name: lb-1, role: load-balancer, address: 10.0.0.5}}\n"
        ))
    );
    std::fs::write(d.join("cluster.yaml"), lb).unwrap();
    kimage(d, &["build", "--all", "--out", "f"]);
    let json: serde_json::Value =
        serde_json::from_str(&kimage(d, &["diff", "e", "f", "-o", "json"])).unwrap();
    let by = |n: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|x| x["node"] == n)
            .unwrap()
            .clone()
    };
    let cp = by("cp-1");
    assert_eq!(cp["verdict"], "replace");
    let files: Vec<&str> = cp["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"changed /etc/kubernetes/pki/apiserver.crt"),
        "{files:?}"
    );
    assert!(
        files.contains(&"changed /etc/kubernetes/admin.conf (secret)"),
        "{files:?}"
    );
    assert_eq!(by("w-1")["verdict"], "replace");
    assert!(
        by("w-1")["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "changed /etc/kubernetes/kubelet.conf (secret)")
    );
    assert_eq!(by("lb-1")["verdict"], "added");
}

/// Regression: `kimage diff` called every file with a private mode a secret, so a changed 0600 unit
/// (kube-apiserver.service) read like a changed key. Secrets are what the user-data's secrets carry.
#[test]
fn a_changed_private_unit_was_called_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("cluster.yaml"), format!("{BASE}{}", nodes(""))).unwrap();
    kimage(d, &["build", "--all", "--out", "a"]);
    let ports = "kubernetes: {nodePortRange: 30000-32000}\n";
    std::fs::write(
        d.join("cluster.yaml"),
        format!("{BASE}{ports}{}", nodes("")),
    )
    .unwrap();
    kimage(d, &["build", "--all", "--out", "b"]);
    let text = kimage(d, &["diff", "a", "b"]);
    assert!(
        text.contains("    changed /etc/systemd/system/kube-apiserver.service\n"),
        "{text}"
    );
    assert!(!text.contains("kube-apiserver.service (secret)"), "{text}");
}
