//! The read-only view of the PKI the rest of the pipeline uses: PEM of every certificate and key by
//! id, the service-account key pair, rendered kubeconfigs, and the files of one node.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use super::error::PkiError;
use super::kubeconfig::render_kubeconfig;
use super::spec::{self, CertId, CertSpec, KubeconfigSpec, PkiFile, PkiSource};
use super::state::{Origin, StateDoc, TokenRecord};
use super::token;
use crate::model::Cluster;

/// One certificate with its key.
#[derive(Clone)]
pub struct CertMaterial {
    pub spec: CertSpec,
    pub cert_pem: String,
    key_pem: String,
    /// Lowercase hex.
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub origin: Origin,
}

impl CertMaterial {
    /// The private key PEM (secret: deliver with mode 0600, never log).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl fmt::Debug for CertMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertMaterial")
            .field("id", &self.spec.id)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .field("key_pem", &"[secret key elided]")
            .finish()
    }
}

/// Every certificate, key and kubeconfig of a PKI state.
#[derive(Clone, Default)]
pub struct PkiMaterial {
    certs: BTreeMap<CertId, CertMaterial>,
    sa_key: Option<String>,
    sa_pub: Option<String>,
    /// Kubeconfigs are rendered when asked for: at 10,000 nodes, rendering all up front holds 100 MB.
    kubeconfigs: BTreeMap<CertId, KubeconfigSpec>,
    /// Bootstrap token per worker pool name.
    tokens: BTreeMap<String, TokenRecord>,
    /// Rendered per pool: bootstrap kubeconfig and token Secret manifest.
    bootstrap_kubeconfigs: BTreeMap<String, String>,
    token_secrets: BTreeMap<String, String>,
    cluster_info: Option<String>,
    /// kube-apiserver's EncryptionConfiguration (secret), when the state holds keys.
    encryption_config: Option<String>,
}

impl fmt::Debug for PkiMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PkiMaterial")
            .field("certs", &self.certs.keys().collect::<Vec<_>>())
            .field("kubeconfigs", &self.kubeconfigs.keys().collect::<Vec<_>>())
            .field("sa", &self.sa_key.as_ref().map(|_| "[secret key elided]"))
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// A file for a node, with its content.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct NodeFile {
    /// Absolute path on the node.
    pub path: String,
    pub mode: u32,
    pub source: PkiSource,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl NodeFile {
    /// Private material (a key or a kubeconfig with an embedded key).
    pub fn is_secret(&self) -> bool {
        self.source.is_secret()
    }
}

impl fmt::Debug for NodeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let content = if self.is_secret() {
            "[secret elided]".to_string()
        } else {
            format!("{} bytes", self.bytes.len())
        };
        f.debug_struct("NodeFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("source", &self.source)
            .field("bytes", &content)
            .finish()
    }
}

impl PkiMaterial {
    /// The material of a state document, with the cluster's kubeconfigs rendered (those whose
    /// certificates exist). Its certificates and keys move out of the document, not copied.
    pub fn from_state(cluster: &Cluster, doc: StateDoc) -> PkiMaterial {
        let certs: BTreeMap<CertId, CertMaterial> = doc
            .certs
            .into_iter()
            .map(|(id, r)| {
                (
                    id,
                    CertMaterial {
                        spec: r.spec,
                        cert_pem: r.cert,
                        key_pem: r.key,
                        serial: r.serial,
                        not_before: r.not_before,
                        not_after: r.not_after,
                        origin: r.origin,
                    },
                )
            })
            .collect();
        let specs = spec::cert_specs(cluster);
        let kubeconfigs = spec::kubeconfig_specs(cluster, &specs)
            .into_iter()
            .filter(|k| certs.contains_key(&k.ca) && certs.contains_key(&k.cert))
            .map(|k| (k.id.clone(), k))
            .collect();
        let ca_pem = certs.get(spec::CA).map(|c| c.cert_pem.clone());
        let mut bootstrap_kubeconfigs = BTreeMap::new();
        let mut token_secrets = BTreeMap::new();
        for (pool, rec) in &doc.bootstrap_tokens {
            token_secrets.insert(pool.clone(), token::render_secret(pool, rec));
            if let Some(ca) = &ca_pem {
                bootstrap_kubeconfigs.insert(
                    pool.clone(),
                    token::render_bootstrap_kubeconfig(
                        &cluster.endpoint_url,
                        &cluster.name,
                        ca,
                        rec,
                    ),
                );
            }
        }
        let encryption_config = token::render_encryption_config(&doc.encryption_keys);
        let (sa_key, sa_pub) = match doc.service_account {
            Some(s) => (Some(s.key), Some(s.public)),
            None => (None, None),
        };
        PkiMaterial {
            certs,
            sa_key,
            sa_pub,
            kubeconfigs,
            tokens: doc.bootstrap_tokens,
            bootstrap_kubeconfigs,
            token_secrets,
            cluster_info: ca_pem
                .as_deref()
                .map(|ca| token::render_cluster_info(&cluster.endpoint_url, ca)),
            encryption_config,
        }
    }

    /// A worker pool's bootstrap token (secret).
    pub fn bootstrap_token(&self, pool: &str) -> Option<&TokenRecord> {
        self.tokens.get(pool)
    }

    /// `sha256:<hex>` of the cluster CA's public key (kubeadm's --discovery-token-ca-cert-hash).
    pub fn ca_cert_hash(&self) -> Result<String, PkiError> {
        let ca = self.cert_pem(spec::CA).ok_or_else(|| PkiError::Missing {
            what: "certificate ca".into(),
        })?;
        token::ca_cert_hash(ca).map_err(|message| PkiError::Crypto {
            context: "hashing the CA's public key".into(),
            message,
        })
    }

    pub fn cert(&self, id: &str) -> Option<&CertMaterial> {
        self.certs.get(id)
    }

    pub fn cert_pem(&self, id: &str) -> Option<&str> {
        self.certs.get(id).map(|c| c.cert_pem.as_str())
    }

    /// A private key PEM (secret).
    pub fn key_pem(&self, id: &str) -> Option<&str> {
        self.certs.get(id).map(|c| c.key_pem())
    }

    /// A rendered kubeconfig (secret: it embeds the client key).
    pub fn kubeconfig(&self, id: &str) -> Option<String> {
        let k = self.kubeconfigs.get(id)?;
        let ca = self.certs.get(&k.ca)?;
        let c = self.certs.get(&k.cert)?;
        let mut text = render_kubeconfig(k, &ca.cert_pem, &c.cert_pem, &c.key_pem);
        // A build holds every node's kubeconfigs until its layers and user-data are written: keep only
        // the bytes, not format!'s doubling slack.
        text.shrink_to_fit();
        Some(text)
    }

    /// Every certificate id, sorted.
    pub fn cert_ids(&self) -> impl Iterator<Item = &str> {
        self.certs.keys().map(CertId::as_str)
    }

    /// Every kubeconfig id, sorted.
    pub fn kubeconfig_ids(&self) -> impl Iterator<Item = &str> {
        self.kubeconfigs.keys().map(CertId::as_str)
    }

    /// sa.key (secret).
    pub fn sa_key_pem(&self) -> Option<&str> {
        self.sa_key.as_deref()
    }

    /// sa.pub (PKIX "PUBLIC KEY").
    pub fn sa_pub_pem(&self) -> Option<&str> {
        self.sa_pub.as_deref()
    }

    /// The content of a spec.rs PkiFile source.
    pub fn bytes(&self, source: &PkiSource) -> Result<Vec<u8>, PkiError> {
        let missing = |what: String| PkiError::Missing { what };
        let s = match source {
            PkiSource::Cert(id) => self
                .cert_pem(id)
                .ok_or_else(|| missing(format!("certificate {id}")))?,
            PkiSource::Key(id) => self
                .key_pem(id)
                .ok_or_else(|| missing(format!("key {id}")))?,
            PkiSource::SaKey => self
                .sa_key_pem()
                .ok_or_else(|| missing("service-account key".into()))?,
            PkiSource::SaPub => self
                .sa_pub_pem()
                .ok_or_else(|| missing("service-account public key".into()))?,
            PkiSource::Kubeconfig(id) => {
                return self
                    .kubeconfig(id)
                    .map(String::into_bytes)
                    .ok_or_else(|| missing(format!("kubeconfig {id}")));
            }
            PkiSource::BootstrapKubeconfig(pool) => self
                .bootstrap_kubeconfigs
                .get(pool)
                .ok_or_else(|| missing(format!("bootstrap token of worker pool {pool}")))?,
            PkiSource::BootstrapTokenSecret(pool) => self
                .token_secrets
                .get(pool)
                .ok_or_else(|| missing(format!("bootstrap token of worker pool {pool}")))?,
            PkiSource::ClusterInfo => self
                .cluster_info
                .as_deref()
                .ok_or_else(|| missing("certificate ca".into()))?,
            PkiSource::EncryptionConfig => self
                .encryption_config
                .as_deref()
                .ok_or_else(|| missing("Secrets encryption key".into()))?,
        };
        Ok(s.as_bytes().to_vec())
    }

    /// Every PKI file one node gets (spec::pki_files), with content, sorted by path.
    pub fn node_bundle(&self, cluster: &Cluster, node: &str) -> Result<Vec<NodeFile>, PkiError> {
        let n = cluster
            .node(node)
            .ok_or_else(|| PkiError::Usage(format!("no node named `{node}` in the profile")))?;
        spec::pki_files(cluster, n)
            .into_iter()
            .map(|PkiFile { path, source, mode }| {
                Ok(NodeFile {
                    bytes: self.bytes(&source)?,
                    path,
                    mode,
                    source,
                })
            })
            .collect()
    }
}
