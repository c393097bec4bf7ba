//! The bootstrap node (kimage-bootstrap.service, super-admin.conf) is pinned: the first build records
//! it in kimage-state/cluster.json, and reordering `nodes` later never moves it to another node (a
//! joining member would otherwise get super-admin.conf and re-apply the cluster's objects). A profile
//! may name it (`controlPlane.bootstrapNode`); when the recorded node leaves the profile, kimage says
//! to name its successor.

use std::path::Path;
use std::process::{Command, Output};

fn kimage(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kimage"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn profile(nodes: &[&str], extra: &str) -> String {
    let mut s = format!(
        "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: pin\nbinaries: {{source: fetch-at-boot}}\nnetwork: {{gateway: 10.0.0.1}}\n{extra}nodes:\n"
    );
    for n in nodes {
        s.push_str(&format!("  - {n}\n"));
    }
    s
}

const CP1: &str = "{name: cp-1, role: control-plane, address: 10.0.0.11}";
const CP2: &str = "{name: cp-2, role: control-plane, address: 10.0.0.12}";
const CP3: &str = "{name: cp-3, role: control-plane, address: 10.0.0.13}";
const W1: &str = "{name: w-1, role: worker, address: 10.0.0.21}";

fn bootstrap_of(dir: &Path) -> String {
    let plan: serde_json::Value =
        serde_json::from_str(&ok(kimage(dir, &["plan", "--output", "json"]))).unwrap();
    plan["bootstrap_node"].as_str().unwrap().to_string()
}

#[test]
fn reordering_nodes_moved_super_admin_to_another_node() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("cluster.yaml"), profile(&[CP1, CP2, W1], "")).unwrap();
    ok(kimage(d, &["build", "--all"]));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("kimage-state/cluster.json")).unwrap())
            .unwrap();
    assert_eq!(record["bootstrap_node"], "cp-1");

    // cp-2 listed first: cp-1 stays the bootstrap node, and only it has super-admin.conf.
    std::fs::write(d.join("cluster.yaml"), profile(&[CP2, CP1, W1], "")).unwrap();
    assert_eq!(bootstrap_of(d), "cp-1");
    ok(kimage(d, &["build", "--all"]));
    for (node, has) in [("cp-1", true), ("cp-2", false)] {
        let into = d.join("unpacked").join(node);
        ok(kimage(
            d,
            &["unpack", "--node", node, "--into", into.to_str().unwrap()],
        ));
        assert_eq!(
            into.join("etc/kubernetes/super-admin.conf").exists(),
            has,
            "{node}"
        );
    }

    // cp-1 leaves: kimage does not pick a successor by list order.
    std::fs::write(d.join("cluster.yaml"), profile(&[CP2, CP3, W1], "")).unwrap();
    let o = kimage(d, &["build", "--all"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("the bootstrap node `cp-1`") && e.contains("controlPlane.bootstrapNode"),
        "{e}"
    );
    // Named, it moves, and the record follows.
    let named = "controlPlane: {bootstrapNode: cp-3}\n";
    std::fs::write(d.join("cluster.yaml"), profile(&[CP2, CP3, W1], named)).unwrap();
    ok(kimage(d, &["build", "--all"]));
    assert_eq!(bootstrap_of(d), "cp-3");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("kimage-state/cluster.json")).unwrap())
            .unwrap();
    assert_eq!(record["bootstrap_node"], "cp-3");
}

#[test]
fn a_record_of_an_older_kimage_gets_its_bootstrap_node() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("cluster.yaml"), profile(&[CP1, CP2, W1], "")).unwrap();
    ok(kimage(d, &["build", "--all"]));
    let p = d.join("kimage-state/cluster.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    record.as_object_mut().unwrap().remove("bootstrap_node");
    std::fs::write(&p, serde_json::to_string(&record).unwrap()).unwrap();
    ok(kimage(d, &["build", "--all"]));
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(record["bootstrap_node"], "cp-1");
}
