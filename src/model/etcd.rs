//! The etcd cluster: its members and their URLs, and what each member node listens on.

use std::net::IpAddr;

use serde::Serialize;

use crate::profile::{self, EtcdTopology, NodeName, Profile, Role, Version, defaults};

#[derive(Debug, Clone, Serialize)]
pub struct EtcdModel {
    pub version: Version,
    pub topology: EtcdTopology,
    pub members: Vec<EtcdMember>,
    /// `name=https://addr:2380,...`, the --initial-cluster value of the members the cluster was formed
    /// with (every member, until the state records a formed cluster; see `with_formed_etcd`).
    pub initial_cluster: String,
    /// Members that join a running cluster (added to the profile after it was formed).
    pub joining: Vec<NodeName>,
    /// `https://addr:2379,...`, kube-apiserver --etcd-servers: every member until the state records a
    /// formed cluster, then the formed members still in the profile (see `Cluster::with_formed_etcd`),
    /// so that adding a member (or a stacked control-plane node) leaves every apiserver as it was.
    /// Not only the node's own member, as kubeadm's stacked control plane has it: the load balancers
    /// check an apiserver by its TLS handshake only, so an apiserver whose one member is gone (the
    /// node shutting down with every unit signalled at once) kept taking requests it could not serve
    /// for half a minute (tests/netns_control_plane.rs: a request through the VIP failed 34 s after
    /// the node stopped).
    /// Removing a member the apiservers dial changes their list: one that kept it would, once every
    /// formed member is gone, dial nothing that answers.
    pub client_endpoints: String,
    pub cluster_token: String,
    pub data_dir: String,
    pub heartbeat_interval: u32,
    pub election_timeout: u32,
    pub client_port: u16,
    pub peer_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdMember {
    pub name: NodeName,
    pub address: IpAddr,
    pub client_url: String,
    pub peer_url: String,
}

/// What one etcd member listens on and announces.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEtcd {
    pub name: NodeName,
    /// Only the node address, not 127.0.0.1: local tools dial the node address (the server
    /// certificate names it), and members sharing a host (tests on 127.0.0.x) cannot collide.
    pub listen_client_urls: String,
    pub advertise_client_urls: String,
    pub listen_peer_urls: String,
    pub initial_advertise_peer_urls: String,
    /// This member was added after the cluster formed: it adds itself (as a learner, then promotes
    /// itself) through the other members before it starts.
    pub joining: bool,
    /// Client URLs of the other members, which a joining member asks to add it.
    pub peers_client_urls: String,
}

/// Whether a node with this role and setting runs an etcd member.
pub fn is_etcd_member(role: Role, setting: Option<bool>, topology: EtcdTopology) -> bool {
    match (role, setting) {
        (Role::Etcd, _) => true,
        (Role::LoadBalancer, _) => false,
        (_, Some(s)) => s,
        (Role::ControlPlane, None) => topology == EtcdTopology::Stacked,
        (Role::Worker, None) => false,
    }
}

fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(a) => format!("https://[{a}]:{port}"),
        IpAddr::V4(a) => format!("https://{a}:{port}"),
    }
}

/// Every member in profile order, all of them forming the cluster (`Cluster::with_formed_etcd`
/// narrows that down once the state records a formed cluster).
pub(super) fn etcd(p: &Profile) -> EtcdModel {
    let topology = p.etcd.topology;
    let members: Vec<EtcdMember> = p
        .nodes
        .iter()
        .filter(|n| is_etcd_member(n.role, n.etcd_member, topology))
        .map(|n| EtcdMember {
            name: n.name.clone(),
            address: n.address.0,
            client_url: url(n.address.0, defaults::ETCD_CLIENT_PORT),
            peer_url: url(n.address.0, defaults::ETCD_PEER_PORT),
        })
        .collect();
    EtcdModel {
        version: p.etcd.version.clone(),
        topology,
        initial_cluster: members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(","),
        client_endpoints: client_endpoints(&members, |_| true),
        members,
        joining: Vec::new(),
        cluster_token: p.name.as_str().to_string(),
        data_dir: p.etcd.data_dir.clone(),
        heartbeat_interval: p.etcd.heartbeat_interval,
        election_timeout: p.etcd.election_timeout,
        client_port: defaults::ETCD_CLIENT_PORT,
        peer_port: defaults::ETCD_PEER_PORT,
    }
}

/// The client URLs of the members `keep` keeps, or of every member when it keeps none (every formed
/// member removed from the profile: the profile's members are then all there is to dial).
pub(super) fn client_endpoints(
    members: &[EtcdMember],
    keep: impl Fn(&EtcdMember) -> bool,
) -> String {
    let kept: Vec<&EtcdMember> = members.iter().filter(|m| keep(m)).collect();
    let list = if kept.is_empty() {
        members.iter().collect()
    } else {
        kept
    };
    list.iter()
        .map(|m| m.client_url.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// The member `n` runs.
pub(super) fn node_etcd(etcd: &EtcdModel, n: &profile::Node) -> NodeEtcd {
    let client = url(n.address.0, defaults::ETCD_CLIENT_PORT);
    let peer = url(n.address.0, defaults::ETCD_PEER_PORT);
    NodeEtcd {
        name: n.name.clone(),
        listen_client_urls: client.clone(),
        advertise_client_urls: client,
        listen_peer_urls: peer.clone(),
        initial_advertise_peer_urls: peer,
        joining: false,
        peers_client_urls: etcd
            .members
            .iter()
            .filter(|m| m.name != n.name)
            .map(|m| m.client_url.clone())
            .collect::<Vec<_>>()
            .join(","),
    }
}
