//! Which artifacts (and which files out of them) each node needs, from the model's per-node binary sets.
//! Pure and offline: `kimage lock` resolves these, `check_lock` compares them with a lock, and the build
//! stage maps them onto nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest as _, Sha256};

use super::catalog::{CATALOG, Component, Member};
use crate::model::{Binary, Cluster, NodeModel};
use crate::profile::{Arch, KubernetesFrom, Version};

/// One artifact: a catalog kind at a version for an architecture.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactKey {
    pub kind: String,
    pub version: Version,
    pub arch: Arch,
}

impl fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.kind, self.version, self.arch.as_str())
    }
}

/// Artifacts and, per artifact, the members wanted out of it.
pub type Needs = BTreeMap<ArtifactKey, BTreeSet<Member>>;

/// The version the profile pins for a component (`None`: cfssl not requested).
pub fn component_version(cluster: &Cluster, c: Component) -> Option<Version> {
    let rt = &cluster.container_runtime;
    Some(match c {
        Component::Kubernetes => cluster.kubernetes.version.clone(),
        Component::Etcd => cluster.etcd.version.clone(),
        Component::Containerd => rt.containerd.clone(),
        Component::Runc => rt.runc.clone(),
        Component::Crictl => rt.crictl.clone(),
        Component::CniPlugins => rt.cni_plugins.clone(),
        Component::Cfssl => return cluster.binaries.cfssl.clone(),
    })
}

/// The catalog kind a binary comes out of on a node running `all`.
fn kind_for(binary: Binary, all: &BTreeSet<Binary>, from: KubernetesFrom) -> &'static str {
    use Binary::*;
    let kube = |file: &'static str| match from {
        KubernetesFrom::Files => file,
        // The node tarball lacks the control-plane programs; a node running any takes all from the server one.
        KubernetesFrom::Tarballs => {
            if all
                .iter()
                .any(|b| matches!(b, KubeApiserver | KubeControllerManager | KubeScheduler))
            {
                "kubernetes-server"
            } else {
                "kubernetes-node"
            }
        }
    };
    match binary {
        KubeApiserver => kube("kube-apiserver"),
        KubeControllerManager => kube("kube-controller-manager"),
        KubeScheduler => kube("kube-scheduler"),
        Kubelet => kube("kubelet"),
        KubeProxy => kube("kube-proxy"),
        Kubectl => kube("kubectl"),
        Etcd | Etcdctl | Etcdutl => "etcd",
        Containerd => "containerd",
        Runc => "runc",
        Crictl => "crictl",
        CniPlugins => "cni-plugins",
        Cfssl => "cfssl",
        Cfssljson => "cfssljson",
    }
}

/// What one node needs.
pub fn node_needs(cluster: &Cluster, node: &NodeModel) -> Needs {
    let arch = cluster.binaries.arch;
    let mut needs = Needs::new();
    for &b in &node.binaries {
        let kind_name = kind_for(b, &node.binaries, cluster.binaries.kubernetes_from);
        let kind = CATALOG
            .kind(kind_name)
            .expect("every binary maps to a catalog kind");
        // cfssl is only in the node's set when the profile names its version; nothing to install otherwise.
        let Some(version) = component_version(cluster, kind.component) else {
            continue;
        };
        let members: Vec<Member> = kind
            .members_for(&version, arch)
            .into_iter()
            .filter(|m| m.binary == b.name())
            .collect();
        debug_assert!(
            !members.is_empty(),
            "kind {kind_name} has no member for {}",
            b.name()
        );
        needs
            .entry(ArtifactKey {
                kind: kind_name.to_string(),
                version,
                arch,
            })
            .or_default()
            .extend(members);
    }
    needs
}

/// What the whole cluster needs: the union over its nodes and worker pools.
pub fn cluster_needs(cluster: &Cluster) -> Needs {
    let mut all = Needs::new();
    // Worker-pool machines run binaries too (with the tarballs, the node tarball even when no listed
    // node is a plain worker).
    for n in cluster
        .nodes
        .iter()
        .chain(cluster.pools.iter().map(|p| &p.node))
    {
        for (k, m) in node_needs(cluster, n) {
            all.entry(k).or_default().extend(m);
        }
    }
    all
}

/// A digest of exactly what the needs are (kinds, versions, arch, members): recorded in the lock, so a
/// profile changed without re-locking is caught even if someone edits the lock's readable summary.
pub fn fingerprint(needs: &Needs) -> String {
    let mut h = Sha256::new();
    for (k, members) in needs {
        h.update(format!("artifact {} {} {}\n", k.kind, k.version, k.arch.as_str()).as_bytes());
        for m in members {
            let path = m.path.as_deref().unwrap_or("-");
            h.update(
                format!(
                    "  member {} {} {} {:o}\n",
                    m.binary, path, m.install, m.mode
                )
                .as_bytes(),
            );
        }
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}
