//! The nodes of the profile and the worker pools: what each runs, its labels, taints and binaries.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::CONTROL_PLANE_LABEL;
use super::etcd::{self, EtcdModel, NodeEtcd};
use super::load_balancer::{self, LoadBalancerModel, NodeVrrp};
use super::sans::Sans;
use crate::profile::{self, Binary, NodeName, Profile, Role, TaintEffect};

/// One worker pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolModel {
    pub name: NodeName,
    /// Lifetime of the pool's bootstrap token, in seconds.
    pub token_ttl_secs: u64,
    /// The pool's machines as templates and the PKI spec see them: a worker whose `name` is the
    /// pool's, whose `address` is unspecified (DHCP) and whose `pool` is set.
    pub node: NodeModel,
}

impl PoolModel {
    /// Key of the pool's entries in per-node maps (release files, boot manifests); node names never
    /// contain ':'.
    pub fn key(&self) -> String {
        format!("pool:{}", self.name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeModel {
    pub name: NodeName,
    pub role: Role,
    pub address: IpAddr,
    /// Index in the profile's `nodes` list (for diagnostics).
    pub index: usize,
    pub etcd_member: bool,
    /// Runs kubelet, kube-proxy and containerd (control-plane and worker nodes).
    pub runs_kubelet: bool,
    pub is_bootstrap: bool,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<TaintModel>,
    pub mac: Option<String>,
    /// Release binaries kimage delivers to this node.
    pub binaries: BTreeSet<Binary>,
    /// Labels the kubelet may set on its own Node (--node-labels).
    pub kubelet_labels: BTreeMap<String, String>,
    /// Labels the NodeRestriction admission plugin forbids a kubelet to set (node-role.kubernetes.io/*
    /// and other kubernetes.io / k8s.io keys); the bootstrap node applies them through the API.
    pub api_labels: BTreeMap<String, String>,
    /// This node's etcd member, when it runs one.
    pub etcd: Option<NodeEtcd>,
    /// Subject alternative names of this control-plane node's apiserver certificate.
    pub apiserver_sans: Option<Sans>,
    /// This node's VRRP settings, when it is a load-balancer node and the cluster has a VIP.
    pub vrrp: Option<NodeVrrp>,
    /// Binaries the node runs that the profile says the image already has (`binaries.exclude`).
    pub excluded: BTreeSet<Binary>,
    /// Set on the template view of a worker pool (`PoolModel::node`): the pool's name.
    pub pool: Option<NodeName>,
}

/// Whether the NodeRestriction admission plugin lets a kubelet set this label on its own Node
/// (the kubelet refuses to start with any other kubernetes.io / k8s.io label in --node-labels).
pub fn kubelet_may_set_label(key: &str) -> bool {
    const ALLOWED: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    let Some((namespace, _)) = key.split_once('/') else {
        return true;
    };
    let restricted = |ns: &str| {
        ns == "kubernetes.io"
            || ns.ends_with(".kubernetes.io")
            || ns == "k8s.io"
            || ns.ends_with(".k8s.io")
    };
    if !restricted(namespace) || ALLOWED.contains(&key) {
        return true;
    }
    ["kubelet.kubernetes.io", "node.kubernetes.io"]
        .iter()
        .any(|ns| namespace == *ns || namespace.ends_with(&format!(".{ns}")))
}

impl NodeModel {
    pub fn is(&self, role: Role) -> bool {
        self.role == role
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaintModel {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

impl TaintModel {
    /// `key[=value]:Effect`, the kubelet --register-with-taints form.
    pub fn spec(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={}:{}", self.key, v, self.effect.as_str()),
            None => format!("{}:{}", self.key, self.effect.as_str()),
        }
    }
}

/// The programs every kubelet-running machine needs.
const KUBELET_BINARIES: [Binary; 6] = [
    Binary::Kubelet,
    Binary::KubeProxy,
    Binary::Containerd,
    Binary::Runc,
    Binary::Crictl,
    Binary::CniPlugins,
];

/// Splits `binaries` into what kimage delivers and what `binaries.exclude` says the image has.
fn exclude(p: &Profile, mut binaries: BTreeSet<Binary>) -> (BTreeSet<Binary>, BTreeSet<Binary>) {
    let excluded: BTreeSet<Binary> = binaries
        .iter()
        .filter(|b| p.binaries.exclude.contains(b))
        .copied()
        .collect();
    binaries.retain(|b| !excluded.contains(b));
    (binaries, excluded)
}

/// Labels the kubelet may set itself, and the ones the bootstrap node applies through the API.
fn split_labels(
    labels: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| kubelet_may_set_label(k))
}

fn taints(list: &[profile::Taint]) -> Vec<TaintModel> {
    list.iter()
        .map(|t| TaintModel {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect,
        })
        .collect()
}

/// The programs a node of this role runs.
fn binaries(p: &Profile, role: Role, etcd_member: bool) -> BTreeSet<Binary> {
    let mut binaries = BTreeSet::new();
    if matches!(role, Role::ControlPlane | Role::Worker) {
        binaries.extend(KUBELET_BINARIES);
    }
    if role == Role::ControlPlane {
        binaries.extend([
            Binary::KubeApiserver,
            Binary::KubeControllerManager,
            Binary::KubeScheduler,
            Binary::Kubectl,
        ]);
        if p.binaries.cfssl.is_some() {
            binaries.extend([Binary::Cfssl, Binary::Cfssljson]);
        }
    }
    if etcd_member {
        binaries.extend([Binary::Etcd, Binary::Etcdctl]);
        // etcdutl was split out of etcdctl in v3.5.
        if p.etcd.version.0 >= semver::Version::new(3, 5, 0) {
            binaries.insert(Binary::Etcdutl);
        }
    }
    binaries
}

/// One node of the profile. Control-plane nodes get kubeadm's control-plane label, and its taint
/// unless the profile gives their taints.
pub(super) fn node(
    p: &Profile,
    index: usize,
    n: &profile::Node,
    etcd: &EtcdModel,
    load_balancer: Option<&LoadBalancerModel>,
    bootstrap_node: Option<&NodeName>,
    apiserver_sans: Option<Sans>,
) -> NodeModel {
    let etcd_member = etcd::is_etcd_member(n.role, n.etcd_member, p.etcd.topology);
    let mut labels = n.labels.clone();
    let mut taints = taints(n.taints.as_deref().unwrap_or_default());
    if n.role == Role::ControlPlane {
        labels.entry(CONTROL_PLANE_LABEL.to_string()).or_default();
        if n.taints.is_none() {
            taints.push(TaintModel {
                key: CONTROL_PLANE_LABEL.to_string(),
                value: None,
                effect: TaintEffect::NoSchedule,
            });
        }
    }
    let (binaries, excluded) = exclude(p, binaries(p, n.role, etcd_member));
    let (kubelet_labels, api_labels) = split_labels(&labels);
    NodeModel {
        name: n.name.clone(),
        role: n.role,
        address: n.address.0,
        index,
        etcd_member,
        runs_kubelet: matches!(n.role, Role::ControlPlane | Role::Worker),
        is_bootstrap: Some(&n.name) == bootstrap_node,
        labels,
        taints,
        mac: n.mac.as_ref().map(|m| m.to_string()),
        binaries,
        kubelet_labels,
        api_labels,
        etcd: etcd_member.then(|| etcd::node_etcd(etcd, n)),
        apiserver_sans,
        vrrp: load_balancer::node_vrrp(load_balancer, n),
        excluded,
        pool: None,
    }
}

/// One worker pool: its machines are workers without a name or address kimage knows.
pub(super) fn pool(p: &Profile, index: usize, wp: &profile::WorkerPool) -> PoolModel {
    let (binaries, excluded) = exclude(p, KUBELET_BINARIES.into());
    let (kubelet_labels, api_labels) = split_labels(&wp.labels);
    PoolModel {
        name: wp.name.clone(),
        token_ttl_secs: wp.token_ttl.as_secs(),
        node: NodeModel {
            name: wp.name.clone(),
            role: Role::Worker,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            index,
            etcd_member: false,
            runs_kubelet: true,
            is_bootstrap: false,
            labels: wp.labels.clone(),
            taints: taints(&wp.taints),
            mac: None,
            binaries,
            kubelet_labels,
            api_labels,
            etcd: None,
            apiserver_sans: None,
            vrrp: None,
            excluded,
            pool: Some(wp.name.clone()),
        },
    }
}
