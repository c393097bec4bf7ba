//! The NoCloud documents as cloud-init 22.4 itself reads them: user-data passes `cloud-init schema` with no
//! errors or deprecations, network-config parses into cloud-init's network state with the node's address,
//! gateway and resolvers, and meta-data is what NoCloud expects.

mod support;

use std::process::Command;

use kimage::model::Cluster;
use kimage::userdata::{self, BootInputs, LayerRef};
use support::fixtures::assert_valid_cloud_config;
use support::profiles::{repo, resolve_file};
use support::tools::require;

/// A shipped profile, resolved.
fn cluster(profile: &str) -> Cluster {
    resolve_file(&repo().join("profiles").join(profile))
}

#[test]
fn user_data_passes_cloud_init_schema() {
    require("cloud-init");
    for profile in [
        "000-ha-nginx-keepalived.yaml",
        "002-external-etcd-nginx.yaml",
        "quickstart.yaml",
    ] {
        let c = cluster(profile);
        for n in &c.nodes {
            let layers = vec![
                LayerRef {
                    name: "binaries".into(),
                    sha256: "a".repeat(64),
                    bytes: 1,
                },
                LayerRef {
                    name: format!("node-{}", n.name),
                    sha256: "b".repeat(64),
                    bytes: 2,
                },
            ];
            let secrets = userdata::gzip(b"not really a tar");
            let inp = BootInputs {
                layers: &layers,
                secrets_gz: &secrets,
                start: "restart:systemd-modules-load.service enable-now:containerd.service",
            };
            let ud = userdata::user_data(&c, n, &inp);
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("user-data");
            std::fs::write(&f, &ud).unwrap();
            assert_valid_cloud_config(&f, &format!("{profile}/{}", n.name));
        }
    }
}

#[test]
fn network_config_parses_in_cloud_init() {
    require("/usr/bin/python3");
    let c = cluster("quickstart.yaml");
    let n = &c.nodes[0];
    let nc = userdata::network_config(&c, n);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("network-config");
    std::fs::write(&f, &nc).unwrap();
    let script = r#"
import sys, yaml
from cloudinit.net.network_state import parse_net_config_data
cfg = yaml.safe_load(open(sys.argv[1]))
ns = parse_net_config_data(cfg)
for iface in ns.iter_interfaces():
    for s in iface["subnets"]:
        print(iface["name"], s["type"], s["address"], s.get("prefix") or s.get("netmask"))
for r in ns.iter_routes():
    print("route", r["network"], r["gateway"])
print("dns", *ns.dns_nameservers)
for iface in ns.iter_interfaces():
    for s in iface["subnets"]:
        for r in s.get("routes", []):
            print("route", r["network"], r["gateway"])
        print("dns", *s.get("dns_nameservers", []))
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}\n{nc}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("eth0 static 192.168.122.10 24"), "{text}");
    assert!(text.contains("route 0.0.0.0 192.168.122.1"), "{text}");
    assert!(text.contains("dns 192.168.122.1"), "{text}");
}

#[test]
fn meta_data_names_instance_and_host() {
    let c = cluster("quickstart.yaml");
    let n = &c.nodes[1];
    let id = userdata::instance_id(n, &["x", "y"]);
    assert!(id.starts_with("kimage-worker-1-"));
    assert_ne!(id, userdata::instance_id(n, &["x", "z"]));
    let md: serde_json::Value = serde_yaml_ng::from_str(&userdata::meta_data(n, &id)).unwrap();
    assert_eq!(md["instance-id"], id.as_str());
    assert_eq!(md["local-hostname"], "worker-1");
}
