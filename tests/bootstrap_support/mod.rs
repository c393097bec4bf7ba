//! Shared helpers for the bootstrap_* and pools_* tests: profiles with worker pools, the manifests the
//! bootstrap node applies (rendered ones and those made from a PKI state), a loopback stand-in for
//! kube-apiserver's discovery endpoints so real kubectl can run its client-side checks offline, and the
//! real kubectl binaries on this machine (from the shared support files, with temp dirs and tools).
#![allow(dead_code)]

#[path = "../support/http.rs"]
mod http;
#[path = "../support/kubectl.rs"]
mod kubectl;
#[path = "../support/profiles.rs"]
mod profiles;
#[path = "../support/real.rs"]
mod real;
#[path = "../support/tools.rs"]
mod tools;

#[allow(unused_imports)] // each test binary uses some
pub use kubectl::kubectls;
#[allow(unused_imports)]
pub use profiles::{cluster, repo};
#[allow(unused_imports)]
pub use tools::{require, tempdir};

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use http::TestServer;
use kimage::model::{Cluster, NodeModel};
use kimage::pki::{self, PkiMaterial};
use kimage::render;

/// A cluster with two control-plane nodes (stacked etcd), a labelled worker and two worker pools.
pub const POOLS_PROFILE: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: prod
kubernetes:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/12
  clusterDomain: cluster.local
nodes:
  - {name: master-1, role: control-plane, address: 10.0.0.11}
  - {name: master-2, role: control-plane, address: 10.0.0.12}
  - name: node-1
    role: worker
    address: 10.0.0.21
    labels: {node-role.kubernetes.io/worker: \"\", disktype: ssd}
workerPools:
  - name: gpu
    tokenTTL: 48h
    labels: {example.com/accelerator: nvidia, node.kubernetes.io/pool: gpu}
    taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
  - name: general
";

pub fn pools_cluster() -> Cluster {
    cluster(POOLS_PROFILE)
}

/// A fresh PKI state for the cluster in `dir`.
pub fn pki(c: &Cluster, dir: &Path) -> PkiMaterial {
    pki::ensure(c, &dir.join("state"), time::OffsetDateTime::now_utc())
        .unwrap()
        .0
}

pub fn bootstrap_node(c: &Cluster) -> &NodeModel {
    let name = c.bootstrap_node.as_ref().expect("a bootstrap node");
    c.node(name.as_str()).unwrap()
}

/// Every file of the bootstrap node below `/etc/kimage/bootstrap/`, rendered and from the PKI
/// state, by file name.
pub fn bootstrap_files(c: &Cluster, m: &PkiMaterial) -> BTreeMap<String, Vec<u8>> {
    let n = bootstrap_node(c);
    let dir = format!("{}/", pki::spec::BOOTSTRAP_MANIFEST_DIR);
    let mut out = BTreeMap::new();
    for f in render::render_node(c, n).unwrap() {
        if let Some(name) = f.path.strip_prefix(&dir) {
            out.insert(name.to_string(), f.content.to_vec());
        }
    }
    for f in m.node_bundle(c, n.name.as_str()).unwrap() {
        if let Some(name) = f.path.strip_prefix(&dir) {
            assert!(
                out.insert(name.to_string(), f.bytes).is_none(),
                "{name} twice"
            );
        }
    }
    out
}

/// Only the manifests (`*.yaml`).
pub fn manifests(c: &Cluster, m: &PkiMaterial) -> BTreeMap<String, Vec<u8>> {
    bootstrap_files(c, m)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".yaml"))
        .collect()
}

/// The YAML documents of a manifest, parsed.
pub fn docs(text: &[u8]) -> Vec<serde_yaml_ng::Value> {
    let text = std::str::from_utf8(text).unwrap();
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| <serde_yaml_ng::Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// (kind, namespace, name) of an object.
pub fn key(v: &serde_yaml_ng::Value) -> (String, String, String) {
    let s = |v: &serde_yaml_ng::Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&v["kind"]),
        s(&v["metadata"]["namespace"]),
        s(&v["metadata"]["name"]),
    )
}

/// Every object of every manifest, by (kind, namespace, name).
pub fn objects(
    files: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<(String, String, String), serde_yaml_ng::Value> {
    let mut out = BTreeMap::new();
    for (name, bytes) in files {
        for d in docs(bytes) {
            let k = key(&d);
            assert!(out.insert(k.clone(), d).is_none(), "{k:?} twice ({name})");
        }
    }
    out
}

pub fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The API resources kimage's manifests use, as kube-apiserver's discovery lists them.
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    // (group/version, plural, kind, namespaced)
    ("v1", "namespaces", "Namespace", false),
    ("v1", "nodes", "Node", false),
    ("v1", "configmaps", "ConfigMap", true),
    ("v1", "secrets", "Secret", true),
    ("v1", "services", "Service", true),
    ("v1", "serviceaccounts", "ServiceAccount", true),
    ("apps/v1", "deployments", "Deployment", true),
    ("apps/v1", "daemonsets", "DaemonSet", true),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        "ClusterRole",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    ),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", true),
    (
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
        true,
    ),
];

fn discovery(path: &str) -> Option<String> {
    let list = |gv: &str| {
        let resources: Vec<String> = RESOURCES
            .iter()
            .filter(|r| r.0 == gv)
            .map(|(_, plural, kind, ns)| {
                format!(
                    r#"{{"name":"{plural}","singularName":"","namespaced":{ns},"kind":"{kind}","verbs":["create","delete","get","list","patch","update","watch"]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"{gv}","resources":[{}]}}"#,
            resources.join(",")
        )
    };
    match path {
        "/api" => Some(
            r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}"#
                .into(),
        ),
        "/apis" => {
            let groups: Vec<String> = ["apps", "rbac.authorization.k8s.io"]
                .iter()
                .map(|g| {
                    format!(
                        r#"{{"name":"{g}","versions":[{{"groupVersion":"{g}/v1","version":"v1"}}],"preferredVersion":{{"groupVersion":"{g}/v1","version":"v1"}}}}"#
                    )
                })
                .collect();
            Some(format!(
                r#"{{"kind":"APIGroupList","apiVersion":"v1","groups":[{}]}}"#,
                groups.join(",")
            ))
        }
        "/api/v1" => Some(list("v1")),
        "/apis/apps/v1" => Some(list("apps/v1")),
        "/apis/rbac.authorization.k8s.io/v1" => Some(list("rbac.authorization.k8s.io/v1")),
        _ => None,
    }
}

/// A loopback stand-in for kube-apiserver (a [`TestServer`]): discovery documents for the resources
/// above, a 404 Status for every object (so `kubectl apply --dry-run=client` creates everything), and
/// a log of requests.
pub struct FakeApiserver {
    pub url: String,
    server: TestServer,
}

impl FakeApiserver {
    pub fn start() -> FakeApiserver {
        let server = TestServer::start();
        for path in [
            "/api",
            "/apis",
            "/api/v1",
            "/apis/apps/v1",
            "/apis/rbac.authorization.k8s.io/v1",
        ] {
            server.put_typed(path, "application/json", discovery(path).unwrap());
        }
        server.not_found("application/json", |path| {
            format!(
                r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{path} not found","reason":"NotFound","code":404}}"#
            )
            .into_bytes()
        });
        FakeApiserver {
            url: server.url(),
            server,
        }
    }

    /// The requests so far, as `METHOD /path`.
    pub fn log(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// A kubeconfig for it (plain HTTP, no credentials).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let p = dir.join("fake-apiserver.conf");
        std::fs::write(
            &p,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
                self.url
            ),
        )
        .unwrap();
        p
    }
}
