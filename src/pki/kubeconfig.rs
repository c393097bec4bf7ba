//! Kubeconfigs as kubeadm and client-go write them, byte for byte the same for the same inputs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::spec::KubeconfigSpec;

/// A YAML scalar as Go's yaml writer would leave it: plain when unambiguous, else double-quoted.
pub(crate) fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !s.contains(": ")
        && !s.ends_with(':')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("string serializes")
    }
}

/// A kubeconfig with the CA, client certificate and key embedded, in kubeadm's layout (keys sorted
/// as client-go writes them). The same inputs give the same bytes.
pub fn render_kubeconfig(
    k: &KubeconfigSpec,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let cluster = yaml_scalar(&k.cluster_name);
    let user = yaml_scalar(&k.user);
    let context = yaml_scalar(&k.context);
    format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {cluster}\n\
         contexts:\n\
         - context:\n    cluster: {cluster}\n    user: {user}\n  name: {context}\n\
         current-context: {context}\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = STANDARD.encode(ca_pem),
        server = yaml_scalar(&k.server),
        cert = STANDARD.encode(cert_pem),
        key = STANDARD.encode(key_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        assert_eq!(
            yaml_scalar("system:node:k8s-node-1"),
            "system:node:k8s-node-1"
        );
        assert_eq!(yaml_scalar("system:node:a@prod"), "system:node:a@prod");
        assert_eq!(
            yaml_scalar("https://10.0.0.1:6443"),
            "https://10.0.0.1:6443"
        );
        assert_eq!(yaml_scalar("https://[::1]:6443"), "\"https://[::1]:6443\"");
        assert_eq!(yaml_scalar("yes"), "\"yes\"");
        assert_eq!(yaml_scalar("1e3"), "\"1e3\"");
        assert_eq!(yaml_scalar(""), "\"\"");
    }
}
