//! Worker pools' bootstrap tokens: generated in kubeadm's format and kept in the state, and what is
//! made from them: the token Secret (what `kubeadm token create` makes), the pool's bootstrap
//! kubeconfig. Also the public pieces of TLS bootstrapping: the cluster-info ConfigMap and the CA
//! certificate hash (`kubeadm join --discovery-token-ca-cert-hash`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::der;
use super::kubeconfig::yaml_scalar;
use super::state::{EncryptionKeyRecord, TokenRecord};

/// The group every kubeadm node-join token carries (`auth-extra-groups`); the kubelet-bootstrap and
/// node-autoapprove-bootstrap ClusterRoleBindings name it.
pub const AUTH_EXTRA_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// Namespace of bootstrap token Secrets.
pub const NAMESPACE: &str = "kube-system";
/// Type of bootstrap token Secrets.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// kubeadm's user entry in bootstrap-kubelet.conf.
pub const BOOTSTRAP_USER: &str = "tls-bootstrap-token-user";

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
pub const ID_LEN: usize = 6;
pub const SECRET_LEN: usize = 16;

/// The id under which reports and `kimage pki renew` name a pool's token.
pub fn token_id(pool: &str) -> String {
    format!("bootstrap-token@{pool}")
}

/// The pool a `bootstrap-token@<pool>` id names.
pub fn pool_of(id: &str) -> Option<&str> {
    id.strip_prefix("bootstrap-token@")
}

/// `n` characters of [a-z0-9], each uniform (bytes of 252 and above are drawn again).
fn random_chars(n: usize) -> Result<String, String> {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 32];
        aws_lc_rs::rand::fill(&mut buf)
            .map_err(|_| "reading the system random generator".to_string())?;
        for b in buf {
            if out.len() == n {
                break;
            }
            if b < 252 {
                out.push(ALPHABET[usize::from(b % 36)] as char);
            }
        }
    }
    Ok(out)
}

/// A new (id, secret) pair.
pub fn generate() -> Result<(String, String), String> {
    Ok((random_chars(ID_LEN)?, random_chars(SECRET_LEN)?))
}

/// Whether `id` and `secret` have kubeadm's token format ([a-z0-9]{6} and [a-z0-9]{16}).
pub fn valid(id: &str, secret: &str) -> bool {
    let ok = |s: &str, n| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
    ok(id, ID_LEN) && ok(secret, SECRET_LEN)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("formats")
}

/// The token Secret as kubeadm creates it (names, type, keys, usages, group); `data` is base64 like
/// kubeadm's, so server-side apply compares it byte for byte with what the API stores.
pub fn render_secret(pool: &str, rec: &TokenRecord) -> String {
    let b = |s: &str| STANDARD.encode(s);
    format!(
        "# Bootstrap token of worker pool {pool} (kimage). Secret: mode 0600, applied by kimage-bootstrap.\n\
         apiVersion: v1\n\
         kind: Secret\n\
         metadata:\n  name: bootstrap-token-{id}\n  namespace: {NAMESPACE}\n\
         type: {SECRET_TYPE}\n\
         data:\n  \
           auth-extra-groups: {groups}\n  \
           description: {description}\n  \
           expiration: {expiration}\n  \
           token-id: {token_id}\n  \
           token-secret: {token_secret}\n  \
           usage-bootstrap-authentication: {yes}\n  \
           usage-bootstrap-signing: {yes}\n",
        id = rec.id,
        groups = b(AUTH_EXTRA_GROUP),
        description = b(&format!("kimage worker pool {pool}")),
        expiration = b(&rfc3339(rec.expires_at)),
        token_id = b(&rec.id),
        token_secret = b(&rec.secret),
        yes = b("true"),
    )
}

/// bootstrap-kubelet.conf: the cluster with its CA, and the token as the user's credential (kubeadm's
/// layout and names).
pub fn render_bootstrap_kubeconfig(
    server: &str,
    cluster_name: &str,
    ca_pem: &str,
    rec: &TokenRecord,
) -> String {
    let cluster = yaml_scalar(cluster_name);
    let context = yaml_scalar(&format!("{BOOTSTRAP_USER}@{cluster_name}"));
    format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {cluster}\n\
         contexts:\n\
         - context:\n    cluster: {cluster}\n    user: {BOOTSTRAP_USER}\n  name: {context}\n\
         current-context: {context}\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: {BOOTSTRAP_USER}\n  user:\n    token: {token}\n",
        ca = STANDARD.encode(ca_pem),
        server = yaml_scalar(server),
        token = rec.token(),
    )
}

/// The cluster-info ConfigMap in kube-public: the endpoint and the CA, no credentials (kubeadm's
/// content; the bootstrap-signer controller adds a `jws-kubeconfig-<token id>` signature per token).
pub fn render_cluster_info(server: &str, ca_pem: &str) -> String {
    let kubeconfig = format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: \"\"\n\
         contexts: null\n\
         current-context: \"\"\n\
         kind: Config\n\
         preferences: {{}}\n\
         users: null\n",
        ca = STANDARD.encode(ca_pem),
        server = yaml_scalar(server),
    );
    let mut out = String::from(
        "# The cluster's endpoint and CA for joining nodes (kimage; public, no credentials).\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  name: cluster-info\n  namespace: kube-public\n\
         data:\n  kubeconfig: |\n",
    );
    for line in kubeconfig.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The kind of kube-apiserver's encryption configuration.
pub const ENCRYPTION_CONFIG_KIND: &str = "EncryptionConfiguration";

/// kube-apiserver's EncryptionConfiguration for the stored keys (secret): Secrets are written with the
/// first key's provider and key, read with any listed key, and `identity` last reads Secrets written
/// before encryption was on. None without keys.
pub fn render_encryption_config(keys: &[EncryptionKeyRecord]) -> Option<String> {
    use std::fmt::Write;
    let first = keys.first()?;
    let mut out = format!(
        "# Encryption at rest of Secrets (kimage). Secret: mode 0600, control-plane nodes only.\n\
         apiVersion: apiserver.config.k8s.io/v1\n\
         kind: {ENCRYPTION_CONFIG_KIND}\n\
         resources:\n\
         - resources:\n  - secrets\n  providers:\n"
    );
    // Every key under its own provider, the writing key's provider first (kube-apiserver writes with
    // the first provider's first key).
    let mut providers: Vec<crate::profile::EncryptionProvider> = vec![first.provider];
    for k in keys {
        if !providers.contains(&k.provider) {
            providers.push(k.provider);
        }
    }
    for p in providers {
        let _ = write!(out, "  - {}:\n      keys:\n", p.as_str());
        for k in keys.iter().filter(|k| k.provider == p) {
            let _ = write!(
                out,
                "      - name: {}\n        secret: {}\n",
                k.name, k.secret
            );
        }
    }
    out.push_str("  - identity: {}\n");
    Some(out)
}

/// `sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo, kubeadm's CA pin format.
pub fn ca_cert_hash(ca_pem: &str) -> Result<String, String> {
    let (_, cert_der) = der::pem_decode_one(ca_pem)?;
    let (_, x) = X509Certificate::from_der(&cert_der).map_err(|e| e.to_string())?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(x.tbs_certificate.subject_pki.raw))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_kubeadms_format() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let (id, secret) = generate().unwrap();
            assert!(valid(&id, &secret), "{id}.{secret}");
            seen.insert(id);
        }
        assert!(seen.len() > 190, "ids repeat: {}", seen.len());
        assert!(!valid("ABCDEF", "0123456789abcdef"));
        assert!(!valid("abcde", "0123456789abcdef"));
        assert!(!valid("abcdef", "0123456789abcde_"));
    }

    #[test]
    fn ids() {
        assert_eq!(token_id("gpu"), "bootstrap-token@gpu");
        assert_eq!(pool_of("bootstrap-token@gpu"), Some("gpu"));
        assert_eq!(pool_of("apiserver@gpu"), None);
    }
}
