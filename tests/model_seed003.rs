//! The resolved model of the shipped seed-003 profile, field by field: the apiserver SAN sets, service
//! addresses, etcd members and initial cluster, the load balancer's backends, /etc/hosts, bootstrap node.

use std::net::IpAddr;
use std::path::Path;

use kimage::model::Cluster;
use kimage::profile::load_file;

fn seed003() -> Cluster {
    let p =
        load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/003-stacked-ha-ipvs.yaml"))
            .unwrap();
    Cluster::resolve(&p.profile)
}

fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// Each apiserver certificate names its own node, not the other control-plane nodes: adding one leaves
/// the others' certificates as they were.
#[test]
fn apiserver_san_set() {
    let c = seed003();
    for (node, address) in [
        ("k8s-master-1", "192.168.1.26"),
        ("k8s-master-2", "192.168.1.28"),
        ("k8s-master-3", "192.168.1.29"),
    ] {
        let sans = c.node(node).unwrap().apiserver_sans.as_ref().unwrap();
        assert_eq!(
            sans.dns,
            [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
                node,
                "k8s-master-lb",
            ]
        );
        assert_eq!(
            sans.ips,
            ips(&["127.0.0.1", "10.96.0.1", address, "192.168.1.34"])
        );
    }
    assert!(c.node("k8s-node-1").unwrap().apiserver_sans.is_none());
}

#[test]
fn services_etcd_lb_hosts_bootstrap() {
    let c = seed003();
    assert_eq!(c.kubernetes.first_service_ip.to_string(), "10.96.0.1");
    assert_eq!(c.kubernetes.cluster_dns_ip.to_string(), "10.96.0.10");
    assert_eq!(
        c.kubernetes.service_account_issuer,
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(c.endpoint_url, "https://k8s-master-lb:6443");
    assert_eq!(
        c.etcd.initial_cluster,
        "k8s-master-1=https://192.168.1.26:2380,k8s-master-2=https://192.168.1.28:2380,k8s-master-3=https://192.168.1.29:2380"
    );
    assert_eq!(
        c.etcd.client_endpoints,
        "https://192.168.1.26:2379,https://192.168.1.28:2379,https://192.168.1.29:2379"
    );

    let lb = c.load_balancer.as_ref().unwrap();
    let backends: Vec<String> = lb
        .backends
        .iter()
        .map(|b| format!("{}={}:{}", b.name, b.address, b.port))
        .collect();
    assert_eq!(
        backends,
        [
            "k8s-master-1=192.168.1.26:6443",
            "k8s-master-2=192.168.1.28:6443",
            "k8s-master-3=192.168.1.29:6443"
        ]
    );
    assert_eq!(lb.port, 6443);
    assert_eq!(lb.vip, None);
    let hosts: Vec<String> = c
        .hosts
        .iter()
        .map(|h| format!("{} {}", h.address, h.names.join(" ")))
        .collect();
    assert_eq!(
        hosts,
        [
            "192.168.1.26 k8s-master-1",
            "192.168.1.28 k8s-master-2",
            "192.168.1.29 k8s-master-3",
            "192.168.1.34 k8s-master-lb",
        ]
    );
    assert_eq!(c.bootstrap_node.as_ref().unwrap().as_str(), "k8s-master-1");
    let members: Vec<&str> = c.etcd.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members, ["k8s-master-1", "k8s-master-2", "k8s-master-3"]);
}

#[test]
fn every_shipped_profile_validates_and_plans_every_node() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let loaded = load_file(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let c = Cluster::resolve(&loaded.profile);
        let d = kimage::validate::check(&loaded, &c);
        assert!(!d.has_errors(), "{}:\n{}", path.display(), d.render("x"));
        let plan = kimage::plan::plan(&c).unwrap();
        assert_eq!(plan.nodes.len(), loaded.profile.nodes.len());
        for node in &plan.nodes {
            if node.role != "load-balancer" {
                assert!(
                    !node.certs.is_empty(),
                    "{}: {} has no certs",
                    path.display(),
                    node.name
                );
            }
        }
        n += 1;
    }
    assert!(n >= 7);
}
