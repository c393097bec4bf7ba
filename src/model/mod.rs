//! The resolved cluster model: every value derived from the profile, computed once. Templates, the PKI
//! spec and the plan read these fields; none of them derives an address, SAN or member list again.

//!
//! `Cluster::resolve` runs the steps, one module each: `load_balancer` (the endpoint and the load
//! balancers), `sans` (each apiserver certificate's names), `etcd`, `hosts`, `nodes` (nodes and pools).

mod etcd;
mod hosts;
mod image_set;
mod load_balancer;
mod naming;
mod nodes;
mod sans;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

pub use self::etcd::{EtcdMember, EtcdModel, NodeEtcd, is_etcd_member};
pub use self::hosts::HostsEntry;
pub use self::image_set::{ImageNeed, ImagesModel};
pub use self::load_balancer::{Backend, LoadBalancerMember, LoadBalancerModel, NodeVrrp};
pub use self::nodes::{NodeModel, PoolModel, TaintModel, kubelet_may_set_label};
pub use self::sans::Sans;
use crate::profile::{
    self, Arch, BinarySource, Cidr, Cni, Endpoint, KeyAlgorithm, KubernetesFrom, LayersFrom,
    NodeName, Profile, ProxyMode, Role, Url, Version, defaults,
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
    pub etcd: EtcdModel,
    pub load_balancer: Option<LoadBalancerModel>,
    /// /etc/hosts entries (empty when `os.hostsFile` is false).
    pub hosts: Vec<HostsEntry>,
    /// The control-plane node that applies cluster objects (first control-plane node in the profile).
    pub bootstrap_node: Option<NodeName>,
    /// Every node in profile order.
    pub nodes: Vec<NodeModel>,
    #[serde(serialize_with = "naming::container_runtime")]
    pub container_runtime: profile::ContainerRuntime,
    /// What containerd's config.toml must look like for `container_runtime.containerd`.
    pub containerd: ContainerdModel,
    #[serde(serialize_with = "naming::pki")]
    pub pki: profile::Pki,
    pub binaries: BinariesModel,
    #[serde(serialize_with = "naming::layers")]
    pub layers: profile::Layers,
    #[serde(serialize_with = "naming::os")]
    pub os: profile::Os,
    /// `os.limits` in systemd's Limit*= form for kimage's units.
    pub unit_limits: UnitLimits,
    #[serde(serialize_with = "naming::network")]
    pub network: profile::Network,
    /// Worker pools (`workerPools`), in profile order. Not in `nodes`: pool machines have no name or
    /// address kimage knows.
    pub pools: Vec<PoolModel>,
    /// What the bootstrap node applies besides RBAC: CoreDNS and the CNI.
    pub addons: AddonsModel,
    /// Container images pinned by digest and delivered to the nodes (`images`), when the profile asks.
    pub images: Option<ImagesModel>,
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

#[derive(Debug, Clone, Serialize)]
pub struct BinariesModel {
    pub arch: Arch,
    pub source: BinarySource,
    pub mirror: Option<Url>,
    pub cfssl: Option<Version>,
    pub kubernetes_from: KubernetesFrom,
}

pub use crate::profile::Binary;

/// The n-th address of a network (0 is the network address itself).
pub fn nth_address(net: &Cidr, n: u128) -> IpAddr {
    match net.0.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(n as u32))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(n))),
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
        let addon_images = AddonImages {
            coredns: images::COREDNS,
            flannel: images::FLANNEL,
            flannel_cni_plugin: images::FLANNEL_CNI_PLUGIN,
        };
        let with_role = |role| {
            p.nodes
                .iter()
                .filter(|n| n.role == role)
                .collect::<Vec<_>>()
        };
        let control_planes = with_role(Role::ControlPlane);
        let lb_nodes = with_role(Role::LoadBalancer);
        let bootstrap_node = p
            .control_plane
            .bootstrap_node
            .clone()
            .or_else(|| control_planes.first().map(|n| n.name.clone()));

        let endpoint = load_balancer::endpoint(p, &control_planes, &lb_nodes, apiserver_port);
        let etcd = etcd::etcd(p);
        let load_balancer =
            load_balancer::load_balancer(p, &control_planes, &lb_nodes, &endpoint, apiserver_port);
        let hosts = hosts::hosts(p, &endpoint, load_balancer.as_ref());
        let nodes = p
            .nodes
            .iter()
            .enumerate()
            .map(|(index, n)| {
                let sans = (n.role == Role::ControlPlane).then(|| {
                    sans::apiserver_sans(p, n, &lb_nodes, &endpoint, &domain, first_service_ip)
                });
                nodes::node(
                    p,
                    index,
                    n,
                    &etcd,
                    load_balancer.as_ref(),
                    bootstrap_node.as_ref(),
                    sans,
                )
            })
            .collect();
        let pools = p
            .worker_pools
            .iter()
            .enumerate()
            .map(|(index, wp)| nodes::pool(p, index, wp))
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
            images: ImagesModel::new(p, &addon_images),
            addons: AddonsModel {
                images: addon_images,
                pod_network_ipv6: k.pod_cidr.0.addr().is_ipv6(),
            },
        }
    }

    /// The model of a cluster that already formed with `formed` (member name and peer URL, from the
    /// state): those members keep the initial cluster they started with, so their artifacts do not
    /// change when members are added; every other member joins the running cluster. The apiservers dial
    /// the formed members still in the profile: a joining member is a learner for a while (it refuses
    /// clients), and adding one must not rebuild every apiserver.
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
        self.etcd.client_endpoints =
            etcd::client_endpoints(&self.etcd.members, |m| !self.etcd.joining.contains(&m.name));
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
