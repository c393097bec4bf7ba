//! What the cluster's PKI must contain, derived from the model alone: every certificate (CN, O, SANs,
//! usages, signer, validity), every kubeconfig, and which file each node gets. The facts follow
//! ../shared/reference/k8s-pki-requirements.yaml (kubeadm 1.29+). Generation and state live beside it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::model::{Cluster, NodeModel};
use crate::profile::{KeyAlgorithm, Role};

pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// Where the bootstrap node keeps the manifests kimage-bootstrap applies, in file-name order
/// (image-layers/bootstrap/ puts the rendered ones there too).
pub const BOOTSTRAP_MANIFEST_DIR: &str = "/etc/kimage/bootstrap";

/// The three CAs.
pub const CA: &str = "ca";
pub const ETCD_CA: &str = "etcd-ca";
pub const FRONT_PROXY_CA: &str = "front-proxy-ca";

/// What a certificate is for; decides its key usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    /// keyCertSign + digitalSignature + keyEncipherment, basicConstraints CA:TRUE.
    Ca,
    /// serverAuth.
    Server,
    /// clientAuth.
    Client,
    /// serverAuth + clientAuth (etcd server and peer).
    ServerClient,
}

impl Usage {
    pub fn is_ca(&self) -> bool {
        matches!(self, Usage::Ca)
    }
    pub fn server_auth(&self) -> bool {
        matches!(self, Usage::Server | Usage::ServerClient)
    }
    pub fn client_auth(&self) -> bool {
        matches!(self, Usage::Client | Usage::ServerClient)
    }
}

/// Names of certificate kinds, as in the reference table (`name:` there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    Ca,
    EtcdCa,
    FrontProxyCa,
    Apiserver,
    ApiserverKubeletClient,
    ApiserverEtcdClient,
    FrontProxyClient,
    EtcdServer,
    EtcdPeer,
    EtcdHealthcheckClient,
    Admin,
    SuperAdmin,
    ControllerManager,
    Scheduler,
    KubeletClient,
    KubeletServing,
    KubeProxy,
}

impl CertKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CertKind::Ca => "ca",
            CertKind::EtcdCa => "etcd-ca",
            CertKind::FrontProxyCa => "front-proxy-ca",
            CertKind::Apiserver => "apiserver",
            CertKind::ApiserverKubeletClient => "apiserver-kubelet-client",
            CertKind::ApiserverEtcdClient => "apiserver-etcd-client",
            CertKind::FrontProxyClient => "front-proxy-client",
            CertKind::EtcdServer => "etcd-server",
            CertKind::EtcdPeer => "etcd-peer",
            CertKind::EtcdHealthcheckClient => "etcd-healthcheck-client",
            CertKind::Admin => "admin",
            CertKind::SuperAdmin => "super-admin",
            CertKind::ControllerManager => "controller-manager",
            CertKind::Scheduler => "scheduler",
            CertKind::KubeletClient => "kubelet",
            CertKind::KubeletServing => "kubelet-serving",
            CertKind::KubeProxy => "kube-proxy",
        }
    }
}

/// Everything a certificate is issued for. Two specs that compare equal give interchangeable
/// certificates; the state re-issues a certificate exactly when its spec changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CertSpec {
    /// Stable identifier and state file stem: `ca`, `apiserver@master-1`, `etcd-peer@etcd-1`, `admin@master-1`.
    pub id: CertId,
    pub kind: CertKind,
    /// The signing CA's id; `None` for the self-signed CAs.
    pub signer: Option<CertId>,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub usage: Usage,
    /// Lifetime in seconds.
    pub validity_secs: u64,
    pub algorithm: KeyAlgorithm,
}

/// A kubeconfig with embedded client certificate, key and CA.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KubeconfigSpec {
    /// Same id as its client certificate.
    pub id: CertId,
    /// The client certificate's id.
    pub cert: CertId,
    /// The CA embedded as certificate-authority-data.
    pub ca: CertId,
    /// https://host:port the client dials.
    pub server: String,
    pub cluster_name: String,
    /// User entry name (the certificate's CN).
    pub user: String,
    /// Context name `user@cluster`.
    pub context: String,
}

/// Where a piece of PKI material lands on a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum PkiSource {
    /// PEM certificate of the spec with this id.
    Cert(CertId),
    /// PEM private key of the spec with this id.
    Key(CertId),
    /// The service-account private key.
    SaKey,
    /// The service-account public key (PKIX PEM).
    SaPub,
    /// A kubeconfig (of the spec with this id).
    Kubeconfig(CertId),
    /// The bootstrap kubeconfig of the worker pool of this name (its token as credential).
    BootstrapKubeconfig(String),
    /// The bootstrap token Secret manifest of the worker pool of this name.
    BootstrapTokenSecret(String),
    /// The cluster-info ConfigMap manifest (endpoint and CA; public).
    ClusterInfo,
    /// kube-apiserver's EncryptionConfiguration with the keys that encrypt Secrets at rest.
    EncryptionConfig,
}

impl PkiSource {
    /// Private material: delivered only through user-data, mode 0600, never in a layer.
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            PkiSource::Key(_)
                | PkiSource::SaKey
                | PkiSource::Kubeconfig(_)
                | PkiSource::BootstrapKubeconfig(_)
                | PkiSource::BootstrapTokenSecret(_)
                | PkiSource::EncryptionConfig
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PkiFile {
    /// Absolute path on the node.
    pub path: String,
    pub source: PkiSource,
    pub mode: u32,
}

/// A certificate's id, the key of its record in the state: a CA's name (`ca`, `etcd-ca`), or its kind
/// and the node it is for (`apiserver@master-1`), or the worker pool whose machines share it
/// (`kube-proxy@pool:gpu`; node names never contain ':').
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CertId(String);

// Like the string it is (debug output and snapshots show `Cert("ca")`).
impl fmt::Debug for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Whom a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertOwner<'a> {
    /// Every node that has it (the CAs).
    Cluster,
    Node(&'a str),
    Pool(&'a str),
}

impl CertId {
    /// A CA (or any certificate the whole cluster shares), by its id.
    pub fn shared(id: &str) -> CertId {
        CertId(id.to_string())
    }

    /// A per-node certificate.
    pub fn node(kind: CertKind, node: &str) -> CertId {
        CertId(format!("{}@{node}", kind.as_str()))
    }

    /// A certificate every machine of a worker pool shares.
    pub fn pool(kind: CertKind, pool: &str) -> CertId {
        CertId(format!("{}@pool:{pool}", kind.as_str()))
    }

    /// An id as written (state keys, `kimage pki renew` arguments).
    pub fn parse(s: &str) -> CertId {
        CertId(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind, or the CA's name: `apiserver` of `apiserver@master-1`.
    pub fn kind(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(k, _)| k)
    }

    pub fn owner(&self) -> CertOwner<'_> {
        match self.0.split_once('@') {
            None => CertOwner::Cluster,
            Some((_, o)) => match o.strip_prefix("pool:") {
                Some(pool) => CertOwner::Pool(pool),
                None => CertOwner::Node(o),
            },
        }
    }

    /// The same on every node that has it (no node or pool of its own).
    pub fn is_shared(&self) -> bool {
        self.owner() == CertOwner::Cluster
    }
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for CertId {
    fn from(s: &str) -> CertId {
        CertId::parse(s)
    }
}

impl From<String> for CertId {
    fn from(s: String) -> CertId {
        CertId(s)
    }
}

impl std::ops::Deref for CertId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CertId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for CertId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for CertId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for CertId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<CertId> for String {
    fn eq(&self, other: &CertId) -> bool {
        self == &other.0
    }
}

impl PartialEq<&str> for CertId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The id of a per-node certificate.
pub fn node_id(kind: CertKind, node: &str) -> CertId {
    CertId::node(kind, node)
}

/// The id of a certificate every machine of a worker pool shares.
pub fn pool_cert_id(kind: CertKind, pool: &str) -> CertId {
    CertId::pool(kind, pool)
}

fn loopbacks() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
}

struct Builder<'a> {
    c: &'a Cluster,
    out: Vec<CertSpec>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &mut self,
        kind: CertKind,
        node: Option<&str>,
        signer: &str,
        cn: String,
        orgs: &[&str],
        dns: Vec<String>,
        ips: Vec<IpAddr>,
        usage: Usage,
    ) {
        self.out.push(CertSpec {
            id: node
                .map(|n| node_id(kind, n))
                .unwrap_or_else(|| CertId::shared(kind.as_str())),
            kind,
            signer: Some(CertId::shared(signer)),
            common_name: cn,
            organizations: orgs.iter().map(|s| s.to_string()).collect(),
            dns_names: dns,
            ip_addresses: ips,
            usage,
            validity_secs: self.c.pki.validity.as_secs(),
            algorithm: self.c.pki.algorithm,
        });
    }

    fn ca(&mut self, id: &str, kind: CertKind, cn: &str) {
        self.out.push(CertSpec {
            id: CertId::shared(id),
            kind,
            signer: None,
            common_name: cn.to_string(),
            organizations: Vec::new(),
            // kubeadm's self-signed CAs carry one DNS SAN equal to their CN.
            dns_names: vec![cn.to_string()],
            ip_addresses: Vec::new(),
            usage: Usage::Ca,
            validity_secs: self.c.pki.ca_validity.as_secs(),
            algorithm: self.c.pki.algorithm,
        });
    }
}

/// Every certificate the cluster needs, CAs first, then per node in profile order.
pub fn cert_specs(c: &Cluster) -> Vec<CertSpec> {
    let mut b = Builder { c, out: Vec::new() };
    b.ca(CA, CertKind::Ca, "kubernetes");
    b.ca(ETCD_CA, CertKind::EtcdCa, "etcd-ca");
    b.ca(FRONT_PROXY_CA, CertKind::FrontProxyCa, "front-proxy-ca");
    for n in &c.nodes {
        let name = n.name.as_str();
        if n.role == Role::ControlPlane {
            // Cluster::resolve gives every control-plane node its own.
            let sans = n.apiserver_sans.clone().unwrap_or_default();
            let s = Some(name);
            b.leaf(
                CertKind::Apiserver,
                s,
                CA,
                "kube-apiserver".into(),
                &[],
                sans.dns.clone(),
                sans.ips.clone(),
                Usage::Server,
            );
            b.leaf(
                CertKind::ApiserverKubeletClient,
                s,
                CA,
                "kube-apiserver-kubelet-client".into(),
                &["kubeadm:cluster-admins"],
                vec![],
                vec![],
                Usage::Client,
            );
            b.leaf(
                CertKind::ApiserverEtcdClient,
                s,
                ETCD_CA,
                "kube-apiserver-etcd-client".into(),
                &[],
                vec![],
                vec![],
                Usage::Client,
            );
            b.leaf(
                CertKind::FrontProxyClient,
                s,
                FRONT_PROXY_CA,
                "front-proxy-client".into(),
                &[],
                vec![],
                vec![],
                Usage::Client,
            );
            b.leaf(
                CertKind::Admin,
                s,
                CA,
                "kubernetes-admin".into(),
                &["kubeadm:cluster-admins"],
                vec![],
                vec![],
                Usage::Client,
            );
            if n.is_bootstrap {
                b.leaf(
                    CertKind::SuperAdmin,
                    s,
                    CA,
                    "kubernetes-super-admin".into(),
                    &["system:masters"],
                    vec![],
                    vec![],
                    Usage::Client,
                );
            }
            b.leaf(
                CertKind::ControllerManager,
                s,
                CA,
                "system:kube-controller-manager".into(),
                &[],
                vec![],
                vec![],
                Usage::Client,
            );
            b.leaf(
                CertKind::Scheduler,
                s,
                CA,
                "system:kube-scheduler".into(),
                &[],
                vec![],
                vec![],
                Usage::Client,
            );
        }
        if n.etcd_member {
            let mut ips = vec![n.address];
            ips.extend(loopbacks());
            let dns = vec![name.to_string(), "localhost".to_string()];
            let s = Some(name);
            b.leaf(
                CertKind::EtcdServer,
                s,
                ETCD_CA,
                name.into(),
                &[],
                dns.clone(),
                ips.clone(),
                Usage::ServerClient,
            );
            b.leaf(
                CertKind::EtcdPeer,
                s,
                ETCD_CA,
                name.into(),
                &[],
                dns,
                ips,
                Usage::ServerClient,
            );
            b.leaf(
                CertKind::EtcdHealthcheckClient,
                s,
                ETCD_CA,
                "kube-etcd-healthcheck-client".into(),
                &[],
                vec![],
                vec![],
                Usage::Client,
            );
        }
        if n.runs_kubelet {
            let s = Some(name);
            let cn = format!("system:node:{name}");
            b.leaf(
                CertKind::KubeletClient,
                s,
                CA,
                cn.clone(),
                &["system:nodes"],
                vec![],
                vec![],
                Usage::Client,
            );
            b.leaf(
                CertKind::KubeletServing,
                s,
                CA,
                cn,
                &["system:nodes"],
                vec![name.to_string()],
                vec![n.address],
                Usage::Server,
            );
            b.leaf(
                CertKind::KubeProxy,
                s,
                CA,
                "system:kube-proxy".into(),
                &[],
                vec![],
                vec![],
                Usage::Client,
            );
        }
    }
    // Pool machines share one kube-proxy identity (the same CN every static node's kube-proxy has):
    // their user-data is the same for all of them.
    for p in &c.pools {
        b.out.push(CertSpec {
            id: pool_cert_id(CertKind::KubeProxy, p.name.as_str()),
            kind: CertKind::KubeProxy,
            signer: Some(CA.into()),
            common_name: "system:kube-proxy".into(),
            organizations: vec![],
            dns_names: vec![],
            ip_addresses: vec![],
            usage: Usage::Client,
            validity_secs: c.pki.validity.as_secs(),
            algorithm: c.pki.algorithm,
        });
    }
    b.out
}

/// Every kubeconfig, each pointing at the control-plane endpoint.
pub fn kubeconfig_specs(c: &Cluster, certs: &[CertSpec]) -> Vec<KubeconfigSpec> {
    certs
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                CertKind::Admin
                    | CertKind::SuperAdmin
                    | CertKind::ControllerManager
                    | CertKind::Scheduler
                    | CertKind::KubeletClient
                    | CertKind::KubeProxy
            )
        })
        .map(|s| KubeconfigSpec {
            id: s.id.clone(),
            cert: s.id.clone(),
            ca: CA.into(),
            server: c.endpoint_url.clone(),
            cluster_name: c.name.clone(),
            user: s.common_name.clone(),
            context: format!("{}@{}", s.common_name, c.name),
        })
        .collect()
}

/// The PKI files one node gets, sorted by path, as `image-layers/pki/files.yaml` declares them. Private
/// keys appear only where the role needs them.
pub fn pki_files(c: &Cluster, n: &NodeModel) -> Vec<PkiFile> {
    use crate::declared::{self, Each, PkiSourceDecl as D};
    let ctx = declared::Context {
        cluster: c,
        node: n,
    };
    let node = n.name.as_str();
    let own_pool = n.pool.as_ref().map_or("", |p| p.as_str());
    let mut out = Vec::new();
    for f in declared::pki_files().iter().filter(|f| f.applies(&ctx)) {
        let pools: Vec<&str> = match f.each {
            Some(Each::Pool) => c.pools.iter().map(|p| p.name.as_str()).collect(),
            None => vec![own_pool],
        };
        for pool in pools {
            let id = |t: &str| CertId::parse(&declared::fill(t, node, pool));
            out.push(PkiFile {
                path: declared::fill(&f.dest, node, pool),
                source: match &f.source {
                    D::Cert(t) => PkiSource::Cert(id(t)),
                    D::Key(t) => PkiSource::Key(id(t)),
                    D::Kubeconfig(t) => PkiSource::Kubeconfig(id(t)),
                    D::SaKey => PkiSource::SaKey,
                    D::SaPub => PkiSource::SaPub,
                    D::BootstrapKubeconfig => PkiSource::BootstrapKubeconfig(pool.to_string()),
                    D::BootstrapTokenSecret => PkiSource::BootstrapTokenSecret(pool.to_string()),
                    D::ClusterInfo => PkiSource::ClusterInfo,
                    D::EncryptionConfig => PkiSource::EncryptionConfig,
                },
                mode: f.mode,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Certificate ids a node receives (for `kimage plan`).
pub fn node_cert_ids(c: &Cluster, n: &NodeModel) -> Vec<CertId> {
    let mut ids: Vec<CertId> = pki_files(c, n)
        .into_iter()
        .filter_map(|f| match f.source {
            PkiSource::Cert(id) | PkiSource::Kubeconfig(id) => Some(id),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_ids_say_what_and_whom_they_are_for() {
        let ca = CertId::shared(CA);
        assert_eq!((ca.kind(), ca.owner()), ("ca", CertOwner::Cluster));
        let a = CertId::node(CertKind::Apiserver, "master-1");
        assert_eq!(a.as_str(), "apiserver@master-1");
        assert_eq!(
            (a.kind(), a.owner()),
            ("apiserver", CertOwner::Node("master-1"))
        );
        // A pool's id has a colon of its own: the owner is still found.
        let p = CertId::pool(CertKind::KubeProxy, "gpu");
        assert_eq!(p.as_str(), "kube-proxy@pool:gpu");
        assert_eq!(
            (p.kind(), p.owner()),
            ("kube-proxy", CertOwner::Pool("gpu"))
        );
        assert!(ca.is_shared() && !a.is_shared() && !p.is_shared());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"apiserver@master-1\"",
            "state.json keys stay plain strings"
        );
    }
}
