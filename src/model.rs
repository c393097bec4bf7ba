//! The resolved cluster model: every value derived from the profile, computed once. Templates, the PKI
//! spec and the plan read these fields; none of them derives an address, SAN or member list again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::profile::{
    self, Arch, BinarySource, Cidr, Cni, Endpoint, EtcdTopology, Host, KeyAlgorithm,
    KubernetesFrom, LayersFrom, LoadBalancerKind, NodeName, Profile, ProxyMode, Role, San,
    TaintEffect, Url, Version, defaults,
};

/// Labels and taints kubeadm puts on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    pub kubernetes: KubernetesModel,
    /// What every client dials.
    pub endpoint: Endpoint,
    /// `https://host:port` of `endpoint`.
    pub endpoint_url: String,
    /// Port every kube-apiserver listens on.
    pub apiserver_port: u16,
    /// Subject alternative names of every apiserver certificate.
    pub apiserver_sans: Sans,
    pub etcd: EtcdModel,
    pub load_balancer: Option<LoadBalancerModel>,
    /// /etc/hosts entries (empty when `os.hostsFile` is false).
    pub hosts: Vec<HostsEntry>,
    /// The control-plane node that applies cluster objects (first control-plane node in the profile).
    pub bootstrap_node: Option<NodeName>,
    /// Every node in profile order.
    pub nodes: Vec<NodeModel>,
    pub container_runtime: profile::ContainerRuntime,
    /// What containerd's config.toml must look like for `container_runtime.containerd`.
    pub containerd: ContainerdModel,
    pub pki: profile::Pki,
    pub binaries: BinariesModel,
    pub layers: profile::Layers,
    pub os: profile::Os,
    /// `os.limits` in systemd's Limit*= form for kimage's units.
    pub unit_limits: UnitLimits,
    pub network: profile::Network,
    /// Worker pools (`workerPools`), in profile order. Not in `nodes`: pool machines have no name or
    /// address kimage knows.
    pub pools: Vec<PoolModel>,
    /// What the bootstrap node applies besides RBAC: CoreDNS and the CNI.
    pub addons: AddonsModel,
}

/// Container images of the add-ons the bootstrap node applies, in one place. The release catalog has
/// no image digests, so they are pinned by tag (change them here). CoreDNS is the version kubeadm
/// v1.35 deploys; flannel and its CNI plugin are the pair one flannel release ships together.
pub mod images {
    pub const COREDNS: &str = "registry.k8s.io/coredns/coredns:v1.13.1";
    pub const FLANNEL: &str = "ghcr.io/flannel-io/flannel:v0.27.4";
    pub const FLANNEL_CNI_PLUGIN: &str = "ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddonImages {
    pub coredns: &'static str,
    pub flannel: &'static str,
    pub flannel_cni_plugin: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddonsModel {
    pub images: AddonImages,
    /// The pod network is IPv6 (flannel then takes it as IPv6Network with IPv4 off).
    pub pod_network_ipv6: bool,
}

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

/// The containerd config.toml dialect of the profile's containerd release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerdModel {
    /// 3 for containerd 2.x (CRI plugin ids io.containerd.cri.v1.*), 2 for 1.6/1.7
    /// (io.containerd.grpc.v1.cri).
    pub config_version: u8,
    /// containerd 2.1+ takes `cni.bin_dirs` (a list) and deprecates `bin_dir`; older ones only `bin_dir`.
    pub cni_bin_dirs: bool,
}

/// Resource limits as systemd unit settings (LimitNOFILE=, LimitNPROC=, LimitMEMLOCK=).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitLimits {
    pub nofile: u64,
    pub nproc: u64,
    /// `infinity` or a size with a `K` suffix (the profile gives KiB).
    pub memlock: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KubernetesModel {
    pub version: Version,
    pub service_cidr: Cidr,
    pub pod_cidr: Cidr,
    /// First address of the service CIDR: the `kubernetes` Service.
    pub first_service_ip: IpAddr,
    /// Tenth address of the service CIDR: cluster DNS.
    pub cluster_dns_ip: IpAddr,
    pub cluster_domain: String,
    pub proxy_mode: ProxyMode,
    pub node_port_range: String,
    pub cni: Cni,
    /// --service-account-issuer (kubeadm's default form).
    pub service_account_issuer: String,
    /// The service or pod network is IPv6 (nodes then forward IPv6 too).
    pub ipv6: bool,
}

/// Subject alternative names, in a fixed order without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sans {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Sans {
    pub fn add_dns(&mut self, name: impl Into<String>) {
        let name = name.into();
        if !self.dns.contains(&name) {
            self.dns.push(name);
        }
    }
    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }
    pub fn add_host(&mut self, host: &Host) {
        match host {
            Host::Ip(ip) => self.add_ip(*ip),
            Host::Dns(n) => self.add_dns(n.clone()),
        }
    }
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip)
    }
}

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
    /// `https://addr:2379,...`, kube-apiserver --etcd-servers.
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

#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancerModel {
    pub kind: LoadBalancerKind,
    pub vip: Option<IpAddr>,
    /// Port the proxy listens on.
    pub port: u16,
    /// Every kube-apiserver, in profile order.
    pub backends: Vec<Backend>,
    /// Load-balancer nodes, in profile order, with their VRRP priority and initial state.
    pub members: Vec<LoadBalancerMember>,
    pub interface: String,
    pub virtual_router_id: u8,
    pub advert_interval: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub name: NodeName,
    pub address: IpAddr,
    pub port: u16,
    /// `address:port`, IPv6 in brackets (haproxy `server` and nginx `server` lines).
    pub host_port: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancerMember {
    pub name: NodeName,
    pub address: IpAddr,
    pub priority: u8,
    /// `MASTER` for the highest priority, `BACKUP` for the others.
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostsEntry {
    pub address: IpAddr,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinariesModel {
    pub arch: Arch,
    pub source: BinarySource,
    pub mirror: Option<Url>,
    pub cfssl: Option<Version>,
    pub kubernetes_from: KubernetesFrom,
}

pub use crate::profile::Binary;

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
    /// This node's VRRP settings, when it is a load-balancer node and the cluster has a VIP.
    pub vrrp: Option<NodeVrrp>,
    /// Binaries the node runs that the profile says the image already has (`binaries.exclude`).
    pub excluded: BTreeSet<Binary>,
    /// Set on the template view of a worker pool (`PoolModel::node`): the pool's name.
    pub pool: Option<NodeName>,
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

/// keepalived settings of one load-balancer node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeVrrp {
    /// `MASTER` or `BACKUP`.
    pub state: &'static str,
    pub priority: u8,
    /// The other load-balancer nodes: VRRP advertisements go to them by unicast, since multicast is
    /// filtered on many cloud and virtual networks.
    pub unicast_peers: Vec<IpAddr>,
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

/// The n-th address of a network (0 is the network address itself).
pub fn nth_address(net: &Cidr, n: u128) -> IpAddr {
    match net.0.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(n as u32))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(n))),
    }
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

impl Cluster {
    /// Resolves a structurally valid profile. Never fails: whole-cluster problems (no control-plane
    /// node, an endpoint nothing serves, …) are for `validate` to report, with this model at hand.
    pub fn resolve(p: &Profile) -> Cluster {
        let k = &p.kubernetes;
        let apiserver_port = defaults::API_SERVER_PORT;
        let domain = k.cluster_domain.as_str().to_string();
        let first_service_ip = nth_address(&k.service_cidr, 1);
        let cluster_dns_ip = nth_address(&k.service_cidr, 10);

        let control_planes: Vec<&profile::Node> = p
            .nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .collect();
        let lb_nodes: Vec<&profile::Node> = p
            .nodes
            .iter()
            .filter(|n| n.role == Role::LoadBalancer)
            .collect();
        let bootstrap_node = p
            .control_plane
            .bootstrap_node
            .clone()
            .or_else(|| control_planes.first().map(|n| n.name.clone()));

        let endpoint = match &p.control_plane.endpoint {
            Some(e) => e.clone(),
            None => match (&p.load_balancer, lb_nodes.first()) {
                (Some(lb), Some(first)) => Endpoint {
                    host: Host::Ip(lb.vip.map(|v| v.0).unwrap_or(first.address.0)),
                    port: lb.port.unwrap_or(apiserver_port),
                },
                _ => Endpoint {
                    host: Host::Ip(
                        control_planes
                            .first()
                            .map(|n| n.address.0)
                            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    ),
                    port: apiserver_port,
                },
            },
        };

        let mut sans = Sans::default();
        for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc"] {
            sans.add_dns(name);
        }
        sans.add_dns(format!("kubernetes.default.svc.{domain}"));
        sans.add_dns("localhost");
        for n in &control_planes {
            sans.add_dns(n.name.as_str());
        }
        sans.add_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        sans.add_ip(first_service_ip);
        for n in &control_planes {
            sans.add_ip(n.address.0);
        }
        sans.add_host(&endpoint.host);
        match p.load_balancer.as_ref().map(|lb| lb.vip) {
            Some(Some(vip)) => sans.add_ip(vip.0),
            // Without a VIP the load-balancer node's own address serves the API (seed 003's k8s-master-lb).
            Some(None) => lb_nodes.iter().for_each(|n| sans.add_ip(n.address.0)),
            None => {}
        }
        for s in &p.control_plane.extra_sans {
            match s {
                San::Ip(ip) => sans.add_ip(*ip),
                San::Dns(n) => sans.add_dns(n.clone()),
            }
        }

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
        let etcd = EtcdModel {
            version: p.etcd.version.clone(),
            topology,
            initial_cluster: members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url))
                .collect::<Vec<_>>()
                .join(","),
            client_endpoints: members
                .iter()
                .map(|m| m.client_url.clone())
                .collect::<Vec<_>>()
                .join(","),
            members,
            joining: Vec::new(),
            cluster_token: p.name.as_str().to_string(),
            data_dir: p.etcd.data_dir.clone(),
            heartbeat_interval: p.etcd.heartbeat_interval,
            election_timeout: p.etcd.election_timeout,
            client_port: defaults::ETCD_CLIENT_PORT,
            peer_port: defaults::ETCD_PEER_PORT,
        };

        let load_balancer = p.load_balancer.as_ref().map(|lb| {
            let mut members: Vec<LoadBalancerMember> = lb_nodes
                .iter()
                .enumerate()
                .map(|(i, n)| LoadBalancerMember {
                    name: n.name.clone(),
                    address: n.address.0,
                    priority: n
                        .priority
                        .unwrap_or(150u8.saturating_sub(10 * i.min(14) as u8)),
                    state: "BACKUP",
                })
                .collect();
            if let Some(top) = members.iter().map(|m| m.priority).max()
                && let Some(m) = members.iter_mut().find(|m| m.priority == top)
            {
                m.state = "MASTER";
            }
            LoadBalancerModel {
                kind: lb.kind,
                vip: lb.vip.map(|v| v.0),
                port: lb.port.unwrap_or(endpoint.port),
                backends: control_planes
                    .iter()
                    .map(|n| Backend {
                        name: n.name.clone(),
                        address: n.address.0,
                        port: apiserver_port,
                        host_port: std::net::SocketAddr::new(n.address.0, apiserver_port)
                            .to_string(),
                    })
                    .collect(),
                members,
                interface: lb.interface.clone(),
                virtual_router_id: lb.virtual_router_id,
                advert_interval: lb.advert_interval,
            }
        });

        let mut hosts = Vec::new();
        if p.os.hosts_file {
            for n in &p.nodes {
                hosts.push(HostsEntry {
                    address: n.address.0,
                    names: vec![n.name.as_str().to_string()],
                });
            }
            // A DNS endpoint served by kimage's own load balancer resolves through /etc/hosts, as in seed 003.
            if let Host::Dns(name) = &endpoint.host
                && let Some(lb) = &load_balancer
                && let Some(addr) = lb.vip.or_else(|| lb.members.first().map(|m| m.address))
            {
                match hosts.iter_mut().find(|h| h.address == addr) {
                    Some(h) if h.names.contains(name) => {}
                    Some(h) => h.names.push(name.clone()),
                    None => hosts.push(HostsEntry {
                        address: addr,
                        names: vec![name.clone()],
                    }),
                }
            }
        }

        let nodes = p
            .nodes
            .iter()
            .enumerate()
            .map(|(index, n)| {
                let etcd_member = is_etcd_member(n.role, n.etcd_member, topology);
                let runs_kubelet = matches!(n.role, Role::ControlPlane | Role::Worker);
                let mut labels = n.labels.clone();
                let mut taints: Vec<TaintModel> = n
                    .taints
                    .iter()
                    .flatten()
                    .map(|t| TaintModel {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: t.effect,
                    })
                    .collect();
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
                let mut binaries = BTreeSet::new();
                if runs_kubelet {
                    binaries.extend([
                        Binary::Kubelet,
                        Binary::KubeProxy,
                        Binary::Containerd,
                        Binary::Runc,
                        Binary::Crictl,
                        Binary::CniPlugins,
                    ]);
                }
                if n.role == Role::ControlPlane {
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
                let (kubelet_labels, api_labels) = labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .partition(|(k, _)| kubelet_may_set_label(k));
                let node_etcd = etcd_member.then(|| {
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
                });
                let vrrp = load_balancer
                    .as_ref()
                    .filter(|lb| lb.vip.is_some() && n.role == Role::LoadBalancer)
                    .and_then(|lb| {
                        let me = lb.members.iter().find(|m| m.name == n.name)?;
                        Some(NodeVrrp {
                            state: me.state,
                            priority: me.priority,
                            unicast_peers: lb
                                .members
                                .iter()
                                .filter(|m| m.name != n.name)
                                .map(|m| m.address)
                                .collect(),
                        })
                    });
                let excluded: BTreeSet<Binary> = binaries
                    .iter()
                    .filter(|b| p.binaries.exclude.contains(b))
                    .copied()
                    .collect();
                binaries.retain(|b| !excluded.contains(b));
                NodeModel {
                    name: n.name.clone(),
                    role: n.role,
                    address: n.address.0,
                    index,
                    etcd_member,
                    runs_kubelet,
                    is_bootstrap: Some(&n.name) == bootstrap_node.as_ref(),
                    labels,
                    taints,
                    mac: n.mac.as_ref().map(|m| m.to_string()),
                    binaries,
                    kubelet_labels,
                    api_labels,
                    etcd: node_etcd,
                    vrrp,
                    excluded,
                    pool: None,
                }
            })
            .collect();

        let pools = p
            .worker_pools
            .iter()
            .enumerate()
            .map(|(index, wp)| {
                let mut binaries: BTreeSet<Binary> = [
                    Binary::Kubelet,
                    Binary::KubeProxy,
                    Binary::Containerd,
                    Binary::Runc,
                    Binary::Crictl,
                    Binary::CniPlugins,
                ]
                .into();
                let excluded: BTreeSet<Binary> = binaries
                    .iter()
                    .filter(|b| p.binaries.exclude.contains(b))
                    .copied()
                    .collect();
                binaries.retain(|b| !excluded.contains(b));
                let (kubelet_labels, api_labels) = wp
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .partition(|(k, _)| kubelet_may_set_label(k));
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
                        taints: wp
                            .taints
                            .iter()
                            .map(|t| TaintModel {
                                key: t.key.clone(),
                                value: t.value.clone(),
                                effect: t.effect,
                            })
                            .collect(),
                        mac: None,
                        binaries,
                        kubelet_labels,
                        api_labels,
                        etcd: None,
                        vrrp: None,
                        excluded,
                        pool: Some(wp.name.clone()),
                    },
                }
            })
            .collect();

        Cluster {
            name: p.name.as_str().to_string(),
            kubernetes: KubernetesModel {
                version: k.version.clone(),
                service_cidr: k.service_cidr,
                pod_cidr: k.pod_cidr,
                first_service_ip,
                cluster_dns_ip,
                service_account_issuer: format!("https://kubernetes.default.svc.{domain}"),
                cluster_domain: domain,
                proxy_mode: k.proxy_mode,
                node_port_range: k.node_port_range.to_string(),
                cni: k.cni,
                ipv6: k.service_cidr.0.addr().is_ipv6() || k.pod_cidr.0.addr().is_ipv6(),
            },
            endpoint_url: endpoint.url(),
            endpoint,
            apiserver_port,
            apiserver_sans: sans,
            etcd,
            load_balancer,
            hosts,
            bootstrap_node,
            nodes,
            container_runtime: p.container_runtime.clone(),
            containerd: {
                let v = &p.container_runtime.containerd.0;
                ContainerdModel {
                    config_version: if v.major >= 2 { 3 } else { 2 },
                    cni_bin_dirs: (v.major, v.minor) >= (2, 1),
                }
            },
            pki: p.pki.clone(),
            binaries: BinariesModel {
                arch: p.binaries.arch,
                source: p.binaries.source,
                mirror: p.binaries.mirror.clone(),
                cfssl: p.binaries.cfssl.clone(),
                kubernetes_from: p.binaries.kubernetes_from,
            },
            layers: p.layers.clone(),
            os: p.os.clone(),
            unit_limits: UnitLimits {
                nofile: p.os.limits.nofile,
                nproc: p.os.limits.nproc,
                memlock: match p.os.limits.memlock.as_str() {
                    "unlimited" | "infinity" => "infinity".to_string(),
                    kib => format!("{kib}K"),
                },
            },
            network: p.network.clone(),
            pools,
            addons: AddonsModel {
                images: AddonImages {
                    coredns: images::COREDNS,
                    flannel: images::FLANNEL,
                    flannel_cni_plugin: images::FLANNEL_CNI_PLUGIN,
                },
                pod_network_ipv6: k.pod_cidr.0.addr().is_ipv6(),
            },
        }
    }

    /// The model of a cluster that already formed with `formed` (member name and peer URL, from the
    /// state): those members keep the initial cluster they started with, so their artifacts do not
    /// change when members are added; every other member joins the running cluster.
    pub fn with_formed_etcd(mut self, formed: &[(String, String)]) -> Cluster {
        if formed.is_empty() {
            return self;
        }
        self.etcd.initial_cluster = formed
            .iter()
            .map(|(n, u)| format!("{n}={u}"))
            .collect::<Vec<_>>()
            .join(",");
        self.etcd.joining = self
            .etcd
            .members
            .iter()
            .filter(|m| !formed.iter().any(|(n, _)| n == m.name.as_str()))
            .map(|m| m.name.clone())
            .collect();
        for n in &mut self.nodes {
            if let Some(e) = n.etcd.as_mut() {
                e.joining = self.etcd.joining.contains(&e.name);
            }
        }
        self
    }

    /// The bootstrap node the cluster's first build chose, when the profile names none: `Err` with the
    /// recorded name when that node is no longer a control-plane node of the profile.
    pub fn with_recorded_bootstrap(mut self, recorded: &str) -> Result<Cluster, String> {
        if !self
            .nodes
            .iter()
            .any(|n| n.name.as_str() == recorded && n.role == Role::ControlPlane)
        {
            return Err(recorded.to_string());
        }
        for n in &mut self.nodes {
            n.is_bootstrap = n.name.as_str() == recorded;
        }
        self.bootstrap_node = self
            .nodes
            .iter()
            .find(|n| n.is_bootstrap)
            .map(|n| n.name.clone());
        Ok(self)
    }

    pub fn node(&self, name: &str) -> Option<&NodeModel> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }

    pub fn pool(&self, name: &str) -> Option<&PoolModel> {
        self.pools.iter().find(|p| p.name.as_str() == name)
    }

    pub fn control_planes(&self) -> impl Iterator<Item = &NodeModel> {
        self.nodes.iter().filter(|n| n.role == Role::ControlPlane)
    }

    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.pki.algorithm
    }

    pub fn layers_from(&self) -> LayersFrom {
        self.layers.from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_label_restrictions() {
        assert!(kubelet_may_set_label("disktype"));
        assert!(kubelet_may_set_label("example.com/tier"));
        assert!(kubelet_may_set_label("topology.kubernetes.io/zone"));
        assert!(kubelet_may_set_label("node.kubernetes.io/pool"));
        assert!(kubelet_may_set_label("x.kubelet.kubernetes.io/y"));
        assert!(!kubelet_may_set_label(CONTROL_PLANE_LABEL));
        assert!(!kubelet_may_set_label("kubernetes.io/role"));
        assert!(!kubelet_may_set_label("example.k8s.io/x"));
    }

    #[test]
    fn service_addresses() {
        let net: Cidr = "10.96.0.0/12".parse().unwrap();
        assert_eq!(nth_address(&net, 1).to_string(), "10.96.0.1");
        assert_eq!(nth_address(&net, 10).to_string(), "10.96.0.10");
        let v6: Cidr = "fd00:10:96::/112".parse().unwrap();
        assert_eq!(nth_address(&v6, 10).to_string(), "fd00:10:96::a");
    }
}
