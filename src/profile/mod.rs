//! The cluster profile: the one YAML file a user writes. Typed structs with unknown fields rejected;
//! `load` turns text into a `Profile` and reports every problem at once (see `load.rs`).
//!
//! Doc comments on fields are user documentation: `kimage docs` renders them into docs/profile.md.

mod load;
mod schema;
pub mod templates;
pub mod types;
mod yaml;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use load::{LoadError, LoadedProfile, Location, SCHEMA, SourceMap, load_file, load_str};
pub use schema::suggest;
pub use types::{
    Address, Cidr, ClusterName, DnsDomain, Duration, Endpoint, Host, ImageRef, MacAddr, NodeName,
    PortRange, San, Url, Version,
};

pub const API_VERSION: &str = "kimage/v1alpha1";

/// A whole cluster: every node, its role and address, and the versions and settings they share.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    /// Always `kimage/v1alpha1`.
    pub api_version: ApiVersion,
    /// Always `Cluster`.
    pub kind: ProfileKind,
    /// Cluster name: the kubeconfig cluster entry and the etcd cluster token.
    pub name: ClusterName,
    /// Kubernetes version and cluster networking.
    #[serde(default)]
    pub kubernetes: Kubernetes,
    /// How clients reach the Kubernetes API.
    #[serde(default)]
    pub control_plane: ControlPlane,
    /// The L4 load balancer in front of every kube-apiserver. Required when load-balancer nodes exist.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancer>,
    /// etcd version and where its members run.
    #[serde(default)]
    pub etcd: Etcd,
    /// containerd, runc, crictl and CNI plugin versions and the pod sandbox image.
    #[serde(default)]
    pub container_runtime: ContainerRuntime,
    /// Key algorithm and certificate lifetimes.
    #[serde(default)]
    pub pki: Pki,
    /// Which release binaries nodes run and how they get them.
    #[serde(default)]
    pub binaries: Binaries,
    /// Container images as pinned artifacts: the pod sandbox image, CoreDNS, the CNI's images and
    /// `extra`, each pinned by digest in kimage.lock and delivered to every node that runs pods. Without
    /// this section nodes pull images from their registries when the kubelet first needs them, unpinned.
    #[serde(default)]
    pub images: Option<Images>,
    /// Where nodes find their layers at boot.
    #[serde(default)]
    pub layers: Layers,
    /// Operating-system settings every node gets.
    #[serde(default)]
    pub os: Os,
    /// Static network configuration written to every node's network-config.
    #[serde(default)]
    pub network: Network,
    /// Every node of the cluster.
    pub nodes: Vec<Node>,
    /// Groups of identical workers that are not listed one by one (autoscaling groups, managed
    /// instance groups). Each pool gets one user-data (out/pools/<name>/) that any number of machines
    /// boot from; they join with a bootstrap token through kubelet TLS bootstrapping.
    #[serde(default)]
    pub worker_pools: Vec<WorkerPool>,
}

/// A group of identical workers that all boot from the same user-data and join with a bootstrap
/// token. Machines keep the hostname their platform gives them (it becomes the Node name) and get
/// their address by DHCP.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkerPool {
    /// Pool name: names the pool's artifacts (out/pools/<name>/), its bootstrap token and its layers.
    pub name: NodeName,
    /// How long the pool's bootstrap token is valid, counted from when `kimage pki` (or `kimage
    /// build`) issues it. A machine needs the token only for its first boot, until the controller
    /// manager has signed its kubelet client certificate; after that the kubelet renews with its own
    /// certificate. Default 24h: long enough for slow first boots and for artifacts built some hours
    /// before the machines start, short enough that a leaked user-data stops admitting nodes soon.
    /// Pools that scale out later need a TTL covering that time, or a renewed token
    /// (`kimage pki renew bootstrap-token@<name>`, rebuild, apply the new token Secret).
    #[serde(default = "defaults::token_ttl", rename = "tokenTTL")]
    pub token_ttl: Duration,
    /// Labels every pool node registers with. Only labels a kubelet may set on its own Node: no
    /// node-role.kubernetes.io/* and no other kubernetes.io / k8s.io keys except node.kubernetes.io/*.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints every pool node registers with.
    #[serde(default)]
    pub taints: Vec<Taint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "kimage/v1alpha1")]
    V1Alpha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ProfileKind {
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kubernetes {
    /// Kubernetes release of every control-plane and node binary.
    #[serde(default = "defaults::kubernetes_version")]
    pub version: Version,
    /// Service network. Its first address is the `kubernetes` Service (an apiserver SAN); its tenth is cluster DNS.
    #[serde(rename = "serviceCIDR", default = "defaults::service_cidr")]
    pub service_cidr: Cidr,
    /// Pod network (kube-controller-manager --cluster-cidr, kube-proxy clusterCIDR, the CNI).
    #[serde(rename = "podCIDR", default = "defaults::pod_cidr")]
    pub pod_cidr: Cidr,
    /// Cluster DNS domain.
    #[serde(default = "defaults::cluster_domain")]
    pub cluster_domain: DnsDomain,
    /// kube-proxy mode. `ipvs` is deprecated in Kubernetes 1.35.
    #[serde(default)]
    pub proxy_mode: ProxyMode,
    /// NodePort range (kube-apiserver --service-node-port-range).
    #[serde(default = "defaults::node_port_range")]
    pub node_port_range: PortRange,
    /// Pod network add-on applied by the bootstrap node: `flannel` or `none` (bring your own).
    #[serde(default)]
    pub cni: Cni,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            version: defaults::kubernetes_version(),
            service_cidr: defaults::service_cidr(),
            pod_cidr: defaults::pod_cidr(),
            cluster_domain: defaults::cluster_domain(),
            proxy_mode: ProxyMode::default(),
            node_port_range: defaults::node_port_range(),
            cni: Cni::default(),
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    #[default]
    Nftables,
    Iptables,
    Ipvs,
}

impl ProxyMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
            ProxyMode::Ipvs => "ipvs",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    #[default]
    Flannel,
    None,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlPlane {
    /// What every client dials (VIP, load balancer or DNS name) as host:port. Default: the first
    /// control-plane node's address on port 6443.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// Extra names and addresses for the apiserver certificate.
    #[serde(default, rename = "extraSANs")]
    pub extra_sans: Vec<San>,
    /// The control-plane node that applies the cluster's objects (kimage-bootstrap.service) and carries
    /// super-admin.conf. Default: the one the cluster's first build chose (kimage-state/cluster.json),
    /// else the first control-plane node; reordering `nodes` never moves it.
    #[serde(default)]
    pub bootstrap_node: Option<NodeName>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancer {
    /// The L4 proxy on load-balancer nodes.
    pub kind: LoadBalancerKind,
    /// keepalived VRRP address shared by the load-balancer nodes. Leave out for a single load-balancer
    /// node that clients reach at its own address.
    #[serde(default)]
    pub vip: Option<Address>,
    /// Port the proxy listens on. Default: the controlPlane endpoint's port.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Network interface keepalived announces the VIP on.
    #[serde(default = "defaults::interface")]
    pub interface: String,
    /// VRRP virtual router id (1-255), unique on the network segment.
    #[serde(default = "defaults::virtual_router_id")]
    pub virtual_router_id: u8,
    /// VRRP advertisement interval in seconds.
    #[serde(default = "defaults::advert_interval")]
    pub advert_interval: u8,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LoadBalancerKind {
    Haproxy,
    Nginx,
}

impl LoadBalancerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            LoadBalancerKind::Haproxy => "haproxy",
            LoadBalancerKind::Nginx => "nginx",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Etcd {
    /// etcd release.
    #[serde(default = "defaults::etcd_version")]
    pub version: Version,
    /// `stacked`: a member on each control-plane node; `external`: members on etcd nodes.
    #[serde(default)]
    pub topology: EtcdTopology,
    /// Data directory on members (created 0700, owned by the etcd user).
    #[serde(default = "defaults::etcd_data_dir")]
    pub data_dir: String,
    /// Raft heartbeat interval in milliseconds.
    #[serde(default = "defaults::heartbeat_interval")]
    pub heartbeat_interval: u32,
    /// Raft election timeout in milliseconds (at least 5 × heartbeatInterval).
    #[serde(default = "defaults::election_timeout")]
    pub election_timeout: u32,
}

impl Default for Etcd {
    fn default() -> Self {
        Etcd {
            version: defaults::etcd_version(),
            topology: EtcdTopology::default(),
            data_dir: defaults::etcd_data_dir(),
            heartbeat_interval: defaults::heartbeat_interval(),
            election_timeout: defaults::election_timeout(),
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EtcdTopology {
    #[default]
    Stacked,
    External,
}

impl EtcdTopology {
    pub fn as_str(&self) -> &'static str {
        match self {
            EtcdTopology::Stacked => "stacked",
            EtcdTopology::External => "external",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerRuntime {
    /// containerd release.
    #[serde(default = "defaults::containerd_version")]
    pub containerd: Version,
    /// runc release.
    #[serde(default = "defaults::runc_version")]
    pub runc: Version,
    /// crictl (cri-tools) release; keep its minor equal to Kubernetes'.
    #[serde(default = "defaults::crictl_version")]
    pub crictl: Version,
    /// CNI plugins release.
    #[serde(default = "defaults::cni_plugins_version")]
    pub cni_plugins: Version,
    /// Pod sandbox ("pause") image containerd uses (and pins against image garbage collection).
    #[serde(default = "defaults::sandbox_image")]
    pub sandbox_image: ImageRef,
}

impl Default for ContainerRuntime {
    fn default() -> Self {
        ContainerRuntime {
            containerd: defaults::containerd_version(),
            runc: defaults::runc_version(),
            crictl: defaults::crictl_version(),
            cni_plugins: defaults::cni_plugins_version(),
            sandbox_image: defaults::sandbox_image(),
        }
    }
}

/// Container images nodes run, pinned by digest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Images {
    /// `embed`: a layer carries every image (`kimage fetch` fills the cache from the registry) and the
    /// node imports them into containerd's `k8s.io` namespace before the kubelet starts, checking each
    /// manifest digest: no registry is needed at boot (air-gapped sites). `mirror`: nodes pull through
    /// `mirror` (containerd registry hosts for every image's registry).
    #[serde(default)]
    pub delivery: ImageDelivery,
    /// A registry (OCI distribution API) that serves every image under its upstream repository path
    /// (`<mirror>/v2/coredns/coredns/...`), for air-gapped sites and tests. `kimage lock` and `kimage
    /// fetch` read through it; with `delivery: mirror` nodes pull through it.
    #[serde(default)]
    pub mirror: Option<Url>,
    /// More images every node that runs pods gets (your workloads' images), by reference with a tag or
    /// a digest.
    #[serde(default)]
    pub extra: Vec<ImageRef>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ImageDelivery {
    #[default]
    Embed,
    Mirror,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pki {
    /// Key algorithm of every CA, leaf and the service-account key pair.
    #[serde(default)]
    pub algorithm: KeyAlgorithm,
    /// Lifetime of the three CAs.
    #[serde(default = "defaults::ca_validity")]
    pub ca_validity: Duration,
    /// Lifetime of every leaf certificate.
    #[serde(default = "defaults::leaf_validity")]
    pub validity: Duration,
    /// Also place the etcd CA private key on control-plane nodes (kubeadm does; kimage signs offline and
    /// does not need it there).
    #[serde(default)]
    pub etcd_ca_key_on_control_plane: bool,
    /// Also place the front-proxy CA private key on control-plane nodes.
    #[serde(default)]
    pub front_proxy_ca_key_on_control_plane: bool,
    /// Encryption at rest of Secrets in etcd (kube-apiserver's EncryptionConfiguration).
    #[serde(default)]
    pub encryption_at_rest: EncryptionAtRest,
}

/// Encryption at rest of Secrets: kube-apiserver encrypts every Secret before writing it to etcd, so
/// etcd's data directory, its snapshots and backups hold no Secret in plain text. On by default with
/// `secretbox`, unlike kubeadm (off): CIS Kubernetes Benchmark 1.2.27 and 1.2.28 ask for it, and kimage
/// already keeps private material in its state and delivers it to control-plane nodes only, which is
/// all a local key needs. The 32-byte key is generated once into the PKI state (`state.json`,
/// `encryption_keys`, named `key-1`) and kept across rebuilds; control-plane nodes get
/// `/etc/kubernetes/encryption-config.yaml` (0600, through the user-data's secrets) and
/// kube-apiserver `--encryption-provider-config`. A KMS v2 provider (key held by an external key
/// service) is the extension point for sites that must not keep the key beside the cluster's other
/// keys; kimage does not render one yet.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EncryptionAtRest {
    /// `secretbox` (XSalsa20-Poly1305, authenticated: the local provider Kubernetes' documentation
    /// calls strong), `aescbc` (AES-CBC with PKCS#7 padding, which Kubernetes no longer recommends
    /// because of CBC's padding-oracle weakness; for sites whose policy names it), or `none` (Secrets
    /// in plain text, kubeadm's default). The provider is bound to the key when the key is made:
    /// changing it later keeps the stored key's provider (with a warning), since data written under
    /// one provider reads only with it and key rotation is not implemented yet.
    #[serde(default)]
    pub provider: EncryptionProvider,
}

impl EncryptionAtRest {
    /// Whether Secrets are encrypted.
    pub fn enabled(&self) -> bool {
        self.provider != EncryptionProvider::None
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionProvider {
    #[default]
    Secretbox,
    Aescbc,
    None,
}

impl EncryptionProvider {
    /// The provider's name in an EncryptionConfiguration and in the etcd value prefix
    /// (`k8s:enc:<name>:v1:<key name>:`).
    pub fn as_str(&self) -> &'static str {
        match self {
            EncryptionProvider::Secretbox => "secretbox",
            EncryptionProvider::Aescbc => "aescbc",
            EncryptionProvider::None => "none",
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki {
            algorithm: KeyAlgorithm::default(),
            ca_validity: defaults::ca_validity(),
            validity: defaults::leaf_validity(),
            etcd_ca_key_on_control_plane: false,
            front_proxy_ca_key_on_control_plane: false,
            encryption_at_rest: EncryptionAtRest::default(),
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
)]
pub enum KeyAlgorithm {
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyAlgorithm {
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Binaries {
    /// CPU architecture of the release binaries.
    #[serde(default)]
    pub arch: Arch,
    /// `embed`: layers carry the binaries (`kimage fetch` fills the cache first); `fetch-at-boot`: the node
    /// downloads each from the locked URL and checks its digest.
    #[serde(default)]
    pub source: BinarySource,
    /// Base URL that keeps the upstream paths (air-gapped sites, tests). Used by `kimage fetch` and by
    /// nodes fetching at boot.
    #[serde(default)]
    pub mirror: Option<Url>,
    /// Also install cfssl and cfssljson of this version on control-plane nodes, for operators. The
    /// built-in catalog has no digest for cfssl: `kimage lock` resolves it online.
    #[serde(default)]
    pub cfssl: Option<Version>,
    /// Programs kimage does not deliver because the image already has them (or, in tests, because they
    /// cannot be had). Their units and configuration are still rendered; `kimage plan` and `build` list
    /// them as excluded.
    #[serde(default)]
    pub exclude: Vec<Binary>,
    /// `files`: each Kubernetes binary is its own download (sha256 published beside it); `tarballs`: the
    /// binaries come out of the kubernetes-server and kubernetes-node tarballs, whose SHA512 the release
    /// CHANGELOG publishes.
    #[serde(default)]
    pub kubernetes_from: KubernetesFrom,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesFrom {
    #[default]
    Files,
    Tarballs,
}

impl KubernetesFrom {
    pub fn as_str(&self) -> &'static str {
        match self {
            KubernetesFrom::Files => "files",
            KubernetesFrom::Tarballs => "tarballs",
        }
    }
}

/// A program a node runs, from an upstream release.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Binary {
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubelet,
    KubeProxy,
    Kubectl,
    Etcd,
    Etcdctl,
    Etcdutl,
    Containerd,
    Runc,
    Crictl,
    CniPlugins,
    Cfssl,
    Cfssljson,
}

impl Binary {
    pub fn name(&self) -> &'static str {
        match self {
            Binary::KubeApiserver => "kube-apiserver",
            Binary::KubeControllerManager => "kube-controller-manager",
            Binary::KubeScheduler => "kube-scheduler",
            Binary::Kubelet => "kubelet",
            Binary::KubeProxy => "kube-proxy",
            Binary::Kubectl => "kubectl",
            Binary::Etcd => "etcd",
            Binary::Etcdctl => "etcdctl",
            Binary::Etcdutl => "etcdutl",
            Binary::Containerd => "containerd",
            Binary::Runc => "runc",
            Binary::Crictl => "crictl",
            Binary::CniPlugins => "cni-plugins",
            Binary::Cfssl => "cfssl",
            Binary::Cfssljson => "cfssljson",
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[default]
    Amd64,
    Arm64,
}

impl Arch {
    pub fn as_str(&self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BinarySource {
    #[default]
    Embed,
    FetchAtBoot,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Layers {
    /// `seed`: on the NoCloud seed volume; `url`: downloaded from baseURL; `image`: already baked into the image.
    #[serde(default)]
    pub from: LayersFrom,
    /// Where layers are served when `from: url` (layers/<sha256>.tar.gz below it).
    #[serde(default, rename = "baseURL")]
    pub base_url: Option<Url>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LayersFrom {
    #[default]
    Seed,
    Url,
    Image,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Os {
    /// Write /etc/hosts with the cluster's control-plane, load-balancer and etcd nodes by name (and
    /// the workers with `hostsWorkers`).
    #[serde(default = "defaults::yes")]
    pub hosts_file: bool,
    /// List the workers in /etc/hosts too. Off by default: every node's /etc/hosts would change with
    /// every worker added or removed, a fleet-wide rebuild for one worker, and nothing needs their
    /// names (the apiserver reaches a kubelet at its address, kubelet's --node-ip).
    #[serde(default)]
    pub hosts_workers: bool,
    /// Disable swap (the kubelet refuses to run with swap by default).
    #[serde(default = "defaults::yes")]
    pub swap_off: bool,
    /// NTP servers for chrony. Empty: leave time synchronisation as the image has it.
    #[serde(default)]
    pub ntp_servers: Vec<String>,
    /// Extra sysctl settings, added to (or overriding) kimage's Kubernetes defaults.
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    /// Extra kernel modules to load at boot, added to kimage's defaults.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Resource limits for every user (/etc/security/limits.d) and kimage's units.
    #[serde(default)]
    pub limits: Limits,
    /// Timezone (e.g. `Asia/Shanghai`); empty leaves the image's.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl Default for Os {
    fn default() -> Self {
        Os {
            hosts_file: true,
            hosts_workers: false,
            swap_off: true,
            ntp_servers: Vec::new(),
            sysctl: BTreeMap::new(),
            modules: Vec::new(),
            limits: Limits::default(),
            timezone: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Maximum open files.
    #[serde(default = "defaults::nofile")]
    pub nofile: u64,
    /// Maximum processes.
    #[serde(default = "defaults::nproc")]
    pub nproc: u64,
    /// Locked memory: `unlimited` or a number of KiB.
    #[serde(default = "defaults::memlock")]
    pub memlock: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nofile: defaults::nofile(),
            nproc: defaults::nproc(),
            memlock: defaults::memlock(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    /// Interface name the static address is set on.
    #[serde(default = "defaults::interface")]
    pub interface: String,
    /// Prefix length of every node address (at most 32 for IPv4, 128 for IPv6).
    #[serde(default = "defaults::prefix_length")]
    #[schemars(range(min = 1, max = 128))]
    pub prefix_length: u8,
    /// Default gateway; none leaves the node without a default route.
    #[serde(default)]
    pub gateway: Option<Address>,
    /// DNS resolvers.
    #[serde(default)]
    pub nameservers: Vec<Address>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            interface: defaults::interface(),
            prefix_length: defaults::prefix_length(),
            gateway: None,
            nameservers: Vec::new(),
        }
    }
}

/// One machine of the cluster.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    /// Node name: hostname, Kubernetes Node name and certificate identity.
    pub name: NodeName,
    /// `control-plane`, `worker`, `etcd` or `load-balancer`.
    pub role: Role,
    /// The node's static address.
    pub address: Address,
    /// keepalived priority of a load-balancer node (1-254; highest holds the VIP). Default: 150 for
    /// the first load-balancer node, then 10 less for each next one.
    #[serde(default)]
    pub priority: Option<u8>,
    /// Run an etcd member on this node as well. Default: every control-plane node with the stacked
    /// topology and every etcd node; set `true` on a worker or `false` on a control-plane node to
    /// co-locate members the way seed 000 does.
    #[serde(default)]
    pub etcd_member: Option<bool>,
    /// Node labels (control-plane nodes also get node-role.kubernetes.io/control-plane).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Node taints (control-plane nodes get node-role.kubernetes.io/control-plane:NoSchedule unless
    /// taints are given).
    #[serde(default)]
    pub taints: Option<Vec<Taint>>,
    /// MAC address to match in network-config (default: match the interface by name).
    #[serde(default)]
    pub mac: Option<MacAddr>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
    Etcd,
    LoadBalancer,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
            Role::Etcd => "etcd",
            Role::LoadBalancer => "load-balancer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Taint {
    /// Taint key, e.g. `dedicated` or `node-role.kubernetes.io/control-plane`.
    pub key: String,
    /// Taint value; leave out for a key-only taint.
    #[serde(default)]
    pub value: Option<String>,
    /// What happens to pods that do not tolerate the taint.
    pub effect: TaintEffect,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// Defaults, in one place so docs, templates and validation agree.
pub mod defaults {
    use super::*;

    pub fn kubernetes_version() -> Version {
        "v1.35.0".parse().expect("valid default")
    }
    pub fn etcd_version() -> Version {
        "v3.6.12".parse().expect("valid default")
    }
    pub fn containerd_version() -> Version {
        "v2.2.4".parse().expect("valid default")
    }
    pub fn runc_version() -> Version {
        "v1.4.2".parse().expect("valid default")
    }
    pub fn crictl_version() -> Version {
        "v1.35.0".parse().expect("valid default")
    }
    pub fn cni_plugins_version() -> Version {
        "v1.9.1".parse().expect("valid default")
    }
    pub fn sandbox_image() -> ImageRef {
        "registry.k8s.io/pause:3.10.1"
            .parse()
            .expect("valid default")
    }
    pub fn service_cidr() -> Cidr {
        "10.96.0.0/12".parse().expect("valid default")
    }
    pub fn pod_cidr() -> Cidr {
        "10.244.0.0/16".parse().expect("valid default")
    }
    pub fn cluster_domain() -> DnsDomain {
        "cluster.local".parse().expect("valid default")
    }
    pub fn node_port_range() -> PortRange {
        "30000-32767".parse().expect("valid default")
    }
    pub fn etcd_data_dir() -> String {
        "/var/lib/etcd".to_string()
    }
    pub fn heartbeat_interval() -> u32 {
        100
    }
    pub fn election_timeout() -> u32 {
        1000
    }
    pub fn ca_validity() -> Duration {
        Duration::from_hours(87600)
    }
    pub fn leaf_validity() -> Duration {
        Duration::from_hours(8760)
    }
    pub fn interface() -> String {
        "eth0".to_string()
    }
    pub fn virtual_router_id() -> u8 {
        51
    }
    pub fn advert_interval() -> u8 {
        1
    }
    pub fn prefix_length() -> u8 {
        24
    }
    pub fn nofile() -> u64 {
        1_048_576
    }
    pub fn nproc() -> u64 {
        655_350
    }
    /// Bootstrap-token lifetime of a worker pool (kubeadm's default token TTL).
    pub fn token_ttl() -> Duration {
        Duration::from_hours(24)
    }
    pub fn memlock() -> String {
        "unlimited".to_string()
    }
    pub fn yes() -> bool {
        true
    }
    pub const API_SERVER_PORT: u16 = 6443;
    pub const ETCD_CLIENT_PORT: u16 = 2379;
    pub const ETCD_PEER_PORT: u16 = 2380;
}
