//! Shared helpers for the pki_* integration tests: profiles, writing PEMs out for real tools, and
//! (from the shared support files) running openssl / kubectl. Included with
//! `#[path = "support/pki.rs"] mod support;`.
#![allow(dead_code)]

#[path = "kubectl.rs"]
pub mod kubectl;
#[path = "openssl.rs"]
pub mod openssl;
#[path = "profiles.rs"]
pub mod profiles;
#[path = "real.rs"]
pub mod real;
#[path = "tools.rs"]
pub mod tools;

#[allow(unused_imports)] // each test binary uses some
pub use kubectl::{kubectl, kubectls};
#[allow(unused_imports)]
pub use openssl::{Server, openssl, s_client, s_server};
#[allow(unused_imports)]
pub use profiles::{repo, resolve as cluster};
#[allow(unused_imports)]
pub use tools::{free_port, require, tempdir};

use std::path::{Path, PathBuf};

use kimage::model::Cluster;
use kimage::pki::{self, EnsureReport, PkiMaterial};
use time::OffsetDateTime;

pub const SEED_003: &str = include_str!("../../profiles/003-stacked-ha-ipvs.yaml");

/// Inserts `pki:` settings into a profile that has none.
pub fn with_pki(yaml: &str, pki_block: &str) -> String {
    assert!(
        !yaml.contains("\npki:"),
        "profile already has a pki section"
    );
    yaml.replacen("\nnodes:", &format!("\npki:\n{pki_block}\nnodes:"), 1)
}

/// Seed 003 (3 stacked control planes, 3 workers, nginx LB) with the given key algorithm.
pub fn seed003(algorithm: &str) -> Cluster {
    cluster(&with_pki(SEED_003, &format!("  algorithm: {algorithm}")))
}

/// One control plane with stacked etcd and one worker: small enough for slow RSA sizes.
pub fn small(algorithm: &str) -> Cluster {
    cluster(&format!(
        "apiVersion: kimage/v1alpha1
kind: Cluster
name: small
pki:
  algorithm: {algorithm}
nodes:
  - {{name: cp-1, role: control-plane, address: 10.0.0.11}}
  - {{name: w-1, role: worker, address: 10.0.0.21}}
"
    ))
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn ensure(c: &Cluster, dir: &Path) -> (PkiMaterial, EnsureReport) {
    pki::ensure(c, dir, now()).unwrap_or_else(|e| panic!("ensure failed: {e}"))
}

/// Writes a string to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    p
}

/// Writes a certificate's PEM (and key, and its CA's PEM) under `dir` as `<id>.crt`, `<id>.key`.
pub fn write_pair(m: &PkiMaterial, id: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let cert = write(
        dir,
        &format!("{id}.crt"),
        m.cert_pem(id).unwrap_or_else(|| panic!("no cert {id}")),
    );
    let key = write(dir, &format!("{id}.key"), m.key_pem(id).unwrap());
    (cert, key)
}

/// Writes every file of a node under `root` (absolute node paths become relative to `root`).
pub fn write_node(m: &PkiMaterial, c: &Cluster, node: &str, root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for f in m.node_bundle(c, node).unwrap() {
        let p = root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
    }
}

/// Parses the one certificate of a PEM with x509-parser, owning the DER.
pub fn der_of(pem: &str) -> Vec<u8> {
    let start = pem
        .find("-----BEGIN CERTIFICATE-----")
        .expect("certificate PEM");
    let body: String = pem[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

/// The state file's bytes.
pub fn state_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("pki/state.json")).unwrap()
}
