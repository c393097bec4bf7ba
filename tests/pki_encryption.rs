//! Encryption at rest of Secrets (pki.encryptionAtRest): the key kept in the PKI state, the
//! EncryptionConfiguration delivered to control-plane nodes only (0600, user-data secrets), and
//! kube-apiserver's `--encryption-provider-config` pointing at it. The live proof (etcd holding
//! `k8s:enc:secretbox:v1:key-1:` values) is in tests/netns_control_plane.rs.

#[path = "support/pki.rs"]
mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kimage::model::Cluster;
use kimage::pki::{PkiMaterial, spec::PkiSource};
use serde_yaml_ng::Value;
use support::*;

const CONFIG: &str = "/etc/kubernetes/encryption-config.yaml";
const FLAG: &str = "--encryption-provider-config=";

/// The node's encryption configuration file, if it gets one (checked: 0600, secret).
fn config_of(m: &PkiMaterial, c: &Cluster, node: &str) -> Option<String> {
    let bundle = m.node_bundle(c, node).unwrap();
    let f = bundle.iter().find(|f| f.path == CONFIG)?;
    assert_eq!(f.mode, 0o600, "{node}: {CONFIG} mode");
    assert_eq!(f.source, PkiSource::EncryptionConfig);
    assert!(f.is_secret(), "{node}: {CONFIG} travels as a secret");
    Some(String::from_utf8(f.bytes.clone()).unwrap())
}

/// The value of kube-apiserver's `--encryption-provider-config` in the node's rendered unit.
fn apiserver_flag(c: &Cluster, node: &str) -> Option<String> {
    let n = c.node(node).unwrap();
    let files = kimage::render::render_node(c, n).unwrap();
    let unit = files
        .iter()
        .find(|f| f.path == "/etc/systemd/system/kube-apiserver.service")?;
    let text = String::from_utf8(unit.content.to_vec()).unwrap();
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(FLAG))
        .map(|v| v.trim_end_matches(" \\").to_string())
}

/// Checks the configuration parses as kube-apiserver's kind, for Secrets, writing with `provider`
/// and `key-1` (32 bytes), `identity` last; returns the key.
fn check_config(text: &str, provider: &str) -> String {
    let v: Value = serde_yaml_ng::from_str(text).unwrap();
    assert_eq!(v["apiVersion"], "apiserver.config.k8s.io/v1");
    assert_eq!(v["kind"], "EncryptionConfiguration");
    let rules = v["resources"].as_sequence().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["resources"],
        serde_yaml_ng::from_str::<Value>("[secrets]").unwrap()
    );
    let providers = rules[0]["providers"].as_sequence().unwrap();
    assert_eq!(providers.len(), 2, "{text}");
    let keys = providers[0][provider]["keys"].as_sequence().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "key-1");
    let secret = keys[0]["secret"].as_str().unwrap().to_string();
    assert_eq!(STANDARD.decode(&secret).unwrap().len(), 32);
    assert_eq!(providers[1]["identity"], Value::Mapping(Default::default()));
    secret
}

#[test]
fn only_control_planes_get_the_encryption_configuration() {
    // Seed 003: 3 control planes, 3 workers, a load balancer; encryption on by default.
    let c = cluster(SEED_003);
    let dir = tempdir();
    let (m, report) = ensure(&c, dir.path());
    let mut keys = std::collections::BTreeSet::new();
    for n in &c.nodes {
        let node = n.name.as_str();
        let cfg = config_of(&m, &c, node);
        if n.role.as_str() == "control-plane" {
            let cfg = cfg.unwrap_or_else(|| panic!("{node} has no {CONFIG}"));
            keys.insert(check_config(&cfg, "secretbox"));
            assert_eq!(apiserver_flag(&c, node).as_deref(), Some(CONFIG), "{node}");
        } else {
            assert!(cfg.is_none(), "{node} ({}) has {CONFIG}", n.role.as_str());
            assert!(apiserver_flag(&c, node).is_none());
        }
    }
    assert_eq!(keys.len(), 1, "every control plane has the same key");
    let key = keys.into_iter().next().unwrap();
    // Never printed: not in the report, not in debug output.
    assert!(!report.render_text().contains(&key));
    assert!(!format!("{m:?}").contains(&key));
    assert!(!format!("{report:?}").contains(&key));

    // Kept across runs: the same configuration byte for byte, nothing written.
    let before = config_of(&m, &c, "k8s-master-1").unwrap();
    let (m2, report2) = ensure(&c, dir.path());
    assert!(!report2.written, "a rerun writes nothing");
    assert_eq!(config_of(&m2, &c, "k8s-master-1").unwrap(), before);
}

#[test]
fn aescbc_is_written_as_aescbc_and_none_ships_nothing() {
    let aescbc = small_with("  encryptionAtRest: {provider: aescbc}");
    let dir = tempdir();
    let (m, _) = ensure(&aescbc, dir.path());
    check_config(&config_of(&m, &aescbc, "cp-1").unwrap(), "aescbc");

    let none = small_with("  encryptionAtRest: {provider: none}");
    let dir = tempdir();
    let (m, _) = ensure(&none, dir.path());
    assert!(config_of(&m, &none, "cp-1").is_none());
    assert!(apiserver_flag(&none, "cp-1").is_none());
    let state = std::fs::read_to_string(dir.path().join("pki/state.json")).unwrap();
    assert!(!state.contains("encryption_keys"), "no key is made");
}

#[test]
fn a_changed_provider_keeps_the_stored_key_with_a_warning() {
    let dir = tempdir();
    let (m, _) = ensure(&small_with("  algorithm: ecdsa-p256"), dir.path());
    let c = small_with("  encryptionAtRest: {provider: aescbc}");
    let first = check_config(&config_of(&m, &c, "cp-1").unwrap(), "secretbox");
    let (m2, report) = ensure(&c, dir.path());
    let again = check_config(&config_of(&m2, &c, "cp-1").unwrap(), "secretbox");
    assert_eq!(first, again);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("key-1 was made for secretbox")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn an_edited_key_is_refused() {
    let c = small_with("  algorithm: ecdsa-p256");
    let dir = tempdir();
    ensure(&c, dir.path());
    let path = dir.path().join("pki/state.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["encryption_keys"][0]["secret"] = STANDARD.encode([7u8; 32]).into();
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let err = kimage::pki::ensure(&c, dir.path(), now()).unwrap_err();
    assert!(err.to_string().contains("encryption-key:key-1"), "{err}");
}

fn small_with(pki_block: &str) -> Cluster {
    cluster(&format!(
        "apiVersion: kimage/v1alpha1
kind: Cluster
name: small
pki:
{pki_block}
nodes:
  - {{name: cp-1, role: control-plane, address: 10.0.0.11}}
  - {{name: w-1, role: worker, address: 10.0.0.21}}
"
    ))
}
