//! Adopting the CAs and service-account key of a running cluster, so kimage can grow it (seed 004):
//! nodes it adds get certificates that the existing members already trust.
//!
//! Layouts read:
//! - kubeadm (`/etc/kubernetes/pki`): ca.crt/ca.key, front-proxy-ca.crt/.key, etcd/ca.crt/.key,
//!   sa.key/sa.pub;
//! - cfssl (the seeds' tutorials): ca.pem/ca-key.pem, front-proxy-ca.pem/front-proxy-ca-key.pem,
//!   etcd/ca.pem/etcd/ca-key.pem (or etcd-ca.pem/etcd-ca-key.pem), sa.key/sa.pub or sa/sa.*.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::der;
use super::ensure::{self, Action, Change, EnsureReport, Requests, SA_ID};
use super::error::PkiError;
use super::keys::{self, Key};
use super::material::PkiMaterial;
use super::spec::{self, CA, ETCD_CA, FRONT_PROXY_CA};
use super::state::{CertRecord, LockMode, Origin, SaRecord, StateDoc};
use crate::model::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Kubeadm,
    Cfssl,
}

/// What was found in an import directory.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub layout: Layout,
    /// (ca id, certificate file, key file).
    pub cas: Vec<(String, PathBuf, PathBuf)>,
    /// (sa.key, sa.pub if present).
    pub sa: Option<(PathBuf, Option<PathBuf>)>,
    /// CA ids not found (kimage generates them).
    pub missing: Vec<String>,
}

fn first_existing(dir: &Path, names: &[(&str, &str)]) -> Option<(PathBuf, PathBuf)> {
    names
        .iter()
        .map(|(c, k)| (dir.join(c), dir.join(k)))
        .find(|(c, _)| c.is_file())
}

/// Finds the CAs and service-account key in `dir`.
pub fn detect(dir: &Path) -> Result<Found, PkiError> {
    let err = |reason: String| PkiError::Import {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(err("not a directory".into()));
    }
    let layout = if dir.join("ca.crt").is_file() {
        Layout::Kubeadm
    } else if dir.join("ca.pem").is_file() {
        Layout::Cfssl
    } else {
        return Err(err(
            "no CA found: expected ca.crt and ca.key (kubeadm, /etc/kubernetes/pki) or ca.pem and ca-key.pem (cfssl)"
                .into(),
        ));
    };
    let candidates: [(&str, &[(&str, &str)]); 3] = match layout {
        Layout::Kubeadm => [
            (CA, &[("ca.crt", "ca.key")]),
            (
                FRONT_PROXY_CA,
                &[("front-proxy-ca.crt", "front-proxy-ca.key")],
            ),
            (ETCD_CA, &[("etcd/ca.crt", "etcd/ca.key")]),
        ],
        Layout::Cfssl => [
            (CA, &[("ca.pem", "ca-key.pem")]),
            (
                FRONT_PROXY_CA,
                &[("front-proxy-ca.pem", "front-proxy-ca-key.pem")],
            ),
            (
                ETCD_CA,
                &[
                    ("etcd/ca.pem", "etcd/ca-key.pem"),
                    ("etcd-ca.pem", "etcd-ca-key.pem"),
                ],
            ),
        ],
    };
    let mut cas = Vec::new();
    let mut missing = Vec::new();
    for (id, names) in candidates {
        match first_existing(dir, names) {
            Some((cert, key)) if key.is_file() => cas.push((id.to_string(), cert, key)),
            Some((cert, key)) => {
                return Err(err(format!(
                    "{} has no private key {}: kimage signs certificates offline and needs the CA key",
                    cert.display(),
                    key.display()
                )));
            }
            None => missing.push(id.to_string()),
        }
    }
    let sa = [("sa.key", "sa.pub"), ("sa/sa.key", "sa/sa.pub")]
        .iter()
        .map(|(k, p)| (dir.join(k), dir.join(p)))
        .find(|(k, _)| k.is_file())
        .map(|(k, p)| {
            let p = p.is_file().then_some(p);
            (k, p)
        });
    Ok(Found {
        layout,
        cas,
        sa,
        missing,
    })
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(PkiError::io("reading", path))
}

/// A CA certificate and key from files, checked: a CA certificate, the key belongs to it, not expired.
fn read_ca(
    cert_path: &Path,
    key_path: &Path,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, Key), PkiError> {
    let bad = |path: &Path, reason: String| PkiError::Import {
        path: path.to_path_buf(),
        reason,
    };
    let text = read(cert_path)?;
    let blocks = der::pem_decode_all(&text).map_err(|e| bad(cert_path, e))?;
    // A bundle's first certificate is the CA itself.
    let (_, cert_der) = blocks
        .into_iter()
        .find(|(l, _)| l == der::CERTIFICATE)
        .ok_or_else(|| bad(cert_path, "no CERTIFICATE PEM block".into()))?;
    let (_, x) = X509Certificate::from_der(&cert_der).map_err(|e| bad(cert_path, e.to_string()))?;
    if !x.is_ca() {
        return Err(bad(
            cert_path,
            "not a CA certificate (basicConstraints CA:TRUE missing)".into(),
        ));
    }
    if x.validity().not_after.to_datetime() <= now {
        return Err(bad(
            cert_path,
            format!("the CA expired on {}", x.validity().not_after),
        ));
    }
    let key = Key::from_pem(&read(key_path)?).map_err(|e| bad(key_path, e))?;
    if x.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(bad(
            key_path,
            format!("is not the key of {}", cert_path.display()),
        ));
    }
    Ok((cert_der, key))
}

fn read_sa(key_path: &Path, pub_path: Option<&Path>) -> Result<Key, PkiError> {
    let bad = |path: &Path, reason: String| PkiError::Import {
        path: path.to_path_buf(),
        reason,
    };
    let key = Key::from_pem(&read(key_path)?).map_err(|e| bad(key_path, e))?;
    if let Some(p) = pub_path {
        let raw = keys::public_pem_raw(&read(p)?).map_err(|e| bad(p, e))?;
        if raw != key.public_key_raw() {
            return Err(bad(
                p,
                format!("is not the public key of {}", key_path.display()),
            ));
        }
    }
    Ok(key)
}

/// Imports the CAs and service-account key found in `from` into the state, then brings every other
/// certificate in line with the profile (re-issuing whatever the previous CAs signed), in one commit.
/// A state that already holds a different CA or service-account key is refused unless `replace`.
pub fn import(
    cluster: &Cluster,
    state_dir: &Path,
    from: &Path,
    replace: bool,
    now: OffsetDateTime,
    lock: LockMode,
) -> Result<(PkiMaterial, EnsureReport), PkiError> {
    let found = detect(from)?;
    let now_t = ensure::truncate(now);
    let specs = spec::cert_specs(cluster);
    let mut records = Vec::new();
    for (id, cert_path, key_path) in &found.cas {
        let (cert_der, key) = read_ca(cert_path, key_path, now_t)?;
        let (_, x) = X509Certificate::from_der(&cert_der).expect("parsed before");
        let spec = specs
            .iter()
            .find(|s| &s.id == id)
            .expect("every CA id has a spec")
            .clone();
        records.push((
            cert_path.clone(),
            CertRecord {
                spec,
                origin: Origin::Imported,
                key_algorithm: key.algorithm(),
                serial: hex::encode(x.tbs_certificate.raw_serial()),
                signer_serial: None,
                issued_at: now_t,
                not_before: x.validity().not_before.to_datetime(),
                not_after: x.validity().not_after.to_datetime(),
                cert: der::pem_encode(der::CERTIFICATE, &cert_der),
                key: key.pem().to_string(),
            },
        ));
    }
    let sa = match &found.sa {
        Some((k, p)) => {
            let key = read_sa(k, p.as_deref())?;
            Some((
                k.clone(),
                SaRecord {
                    algorithm: cluster.pki.algorithm,
                    key_algorithm: key.algorithm(),
                    origin: Origin::Imported,
                    created_at: now_t,
                    key: key.pem().to_string(),
                    public: key.public_pem(),
                },
            ))
        }
        None => None,
    };

    let (doc, mut report) = ensure::transaction(state_dir, lock, |sd, old| {
        let mut doc = old.unwrap_or_else(StateDoc::default);
        let mut imported = Vec::new();
        for (path, rec) in &records {
            let id = &rec.spec.id;
            match doc.certs.get(id) {
                Some(cur) if cur.cert == rec.cert && cur.key == rec.key => continue,
                Some(cur) if !replace => {
                    return Err(PkiError::ImportConflict {
                        id: id.to_string(),
                        existing: cur.serial.clone(),
                        path: path.clone(),
                    });
                }
                _ => {}
            }
            doc.certs.insert(id.clone(), rec.clone());
            imported.push((id.to_string(), path.clone()));
        }
        if let Some((path, rec)) = &sa {
            match &doc.service_account {
                Some(cur) if cur.key == rec.key => {}
                Some(_) if !replace => {
                    return Err(PkiError::ImportConflict {
                        id: SA_ID.into(),
                        existing: "-".into(),
                        path: path.clone(),
                    });
                }
                _ => {
                    doc.service_account = Some(rec.clone());
                    imported.push((SA_ID.to_string(), path.clone()));
                }
            }
        }
        let plan = ensure::plan(cluster, doc, now, &Requests::default(), sd)?;
        let (doc, mut report) = ensure::execute(cluster, plan, now, &sd.state_file())?;
        for (id, path) in imported {
            if let Some(c) = report.changes.iter_mut().find(|c| c.id == id) {
                *c = Change {
                    id,
                    action: Action::Imported,
                    reasons: vec![format!("from {}", path.display())],
                };
            }
        }
        Ok((doc, report))
    })?;
    for id in &found.missing {
        report.warnings.push(format!(
            "{} has no {id}; kimage generated one, which certificates of the running cluster do not chain to",
            from.display()
        ));
    }
    if found.sa.is_none() {
        report.warnings.push(format!(
            "{} has no sa.key; kimage generated a service-account key, so tokens of the running cluster will not validate on new control-plane nodes",
            from.display()
        ));
    }
    Ok((PkiMaterial::from_state(cluster, doc), report))
}
