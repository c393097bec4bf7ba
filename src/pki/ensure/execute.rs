//! Carrying out a decision: generating keys in parallel, signing, and assembling the new state
//! document and the report.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use time::{Duration, OffsetDateTime};

use super::decide::Plan;
use super::report::{Action, Change, EnsureReport};
use super::{BACKDATE, SA_ID, truncate};
use crate::model::Cluster;
use crate::pki::der;
use crate::pki::error::PkiError;
use crate::pki::issue::{self, Signer};
use crate::pki::keys::Key;
use crate::pki::state::{CertRecord, EncryptionKeyRecord, Origin, SaRecord, StateDoc, TokenRecord};
use crate::pki::token;
use crate::profile::KeyAlgorithm;
enum Slot {
    Ca(usize),
    Sa,
}

/// Generates the keys and certificates the plan needs and assembles the new state document.
pub(crate) fn execute(
    cluster: &Cluster,
    mut plan: Plan,
    now: OffsetDateTime,
    state_file: &Path,
) -> Result<(StateDoc, EnsureReport), PkiError> {
    let now = truncate(now);
    let algorithm = cluster.pki.algorithm;

    // New CA and service-account keys at once, on every core (leaf keys are made as they are signed).
    let mut jobs: Vec<(Slot, KeyAlgorithm)> = Vec::new();
    for (i, d) in plan.cas.iter().enumerate() {
        if d.action != Action::Kept {
            jobs.push((Slot::Ca(i), d.spec.algorithm));
        }
    }
    if plan.sa.0 != Action::Kept {
        jobs.push((Slot::Sa, algorithm));
    }
    let generated: Vec<Key> = jobs
        .par_iter()
        .map(|(_, alg)| {
            Key::generate(*alg).map_err(PkiError::crypto(format!(
                "generating a {} key",
                alg.as_str()
            )))
        })
        .collect::<Result<_, _>>()?;
    let mut sa_key = None;
    for ((slot, _), key) in jobs.into_iter().zip(generated) {
        match slot {
            Slot::Ca(i) => plan.cas[i].key = Some(key),
            Slot::Sa => sa_key = Some(key),
        }
    }

    let mut doc = StateDoc::default();
    let mut changes = Vec::new();

    // CAs.
    for d in plan.cas.iter_mut() {
        if d.action == Action::Kept {
            doc.certs.insert(
                d.spec.id.clone(),
                d.old.clone().expect("kept CA has a record"),
            );
        } else {
            let key = d.key.as_ref().expect("new CA has a key");
            let serial =
                issue::random_serial().map_err(PkiError::crypto("choosing a serial number"))?;
            let nb = now - BACKDATE;
            let na = nb + Duration::seconds(d.spec.validity_secs as i64);
            let cert = issue::self_signed(&d.spec, key, serial, nb, na)
                .map_err(PkiError::crypto(format!("issuing {}", d.spec.id)))?;
            d.cert_der = Some(cert.clone());
            doc.certs.insert(
                d.spec.id.clone(),
                CertRecord {
                    spec: d.spec.clone(),
                    origin: Origin::Generated,
                    key_algorithm: key.algorithm(),
                    serial: format!("{serial:x}"),
                    signer_serial: None,
                    issued_at: now,
                    not_before: nb,
                    not_after: na,
                    cert: der::pem_encode(der::CERTIFICATE, &cert),
                    key: key.pem().to_string(),
                },
            );
        }
        changes.push(Change {
            id: d.spec.id.to_string(),
            action: d.action,
            reasons: d.reasons.clone(),
        });
    }

    // The service-account key pair.
    let (sa_action, sa_reasons, sa_old) =
        std::mem::replace(&mut plan.sa, (Action::Kept, vec![], None));
    doc.service_account = Some(match sa_old {
        Some((rec, _)) => rec,
        None => {
            let key = sa_key.expect("new sa has a key");
            SaRecord {
                algorithm,
                key_algorithm: key.algorithm(),
                origin: Origin::Generated,
                created_at: now,
                key: key.pem().to_string(),
                public: key.public_pem(),
            }
        }
    });
    changes.push(Change {
        id: SA_ID.into(),
        action: sa_action,
        reasons: sa_reasons,
    });

    // Leaves, signed in parallel by their CA.
    let signers: BTreeMap<&str, (Signer<'_>, String)> = plan
        .cas
        .iter()
        .map(|d| {
            let der = d
                .cert_der
                .as_deref()
                .expect("every CA has a certificate now");
            let key = d.key.as_ref().expect("every CA has a key now");
            let signer = Signer::new(der, key).map_err(|reason| PkiError::CaUnusable {
                id: d.spec.id.to_string(),
                path: state_file.to_path_buf(),
                reason,
            })?;
            Ok((
                d.spec.id.as_str(),
                (signer, doc.certs[&d.spec.id].serial.clone()),
            ))
        })
        .collect::<Result<_, PkiError>>()?;
    let issued: Vec<Option<CertRecord>> = plan
        .leaves
        .par_iter()
        .map(|d| {
            if d.action == Action::Kept {
                return Ok(None);
            }
            let signer_id = d.spec.signer.as_deref().expect("leaf has a signer");
            let (signer, signer_serial) = &signers[signer_id];
            // A new leaf key is made here, where it is used, so 20,000 of them are not held at once.
            let generated;
            let key = match &d.key {
                Some(k) => k,
                None => {
                    generated = Key::generate(d.spec.algorithm).map_err(PkiError::crypto(
                        format!("generating a {} key", d.spec.algorithm.as_str()),
                    ))?;
                    &generated
                }
            };
            let nb = signer.not_before.max(now - BACKDATE);
            let na = (nb + Duration::seconds(d.spec.validity_secs as i64)).min(signer.not_after);
            if na <= now {
                return Err(PkiError::CaUnusable {
                    id: signer_id.to_string(),
                    path: state_file.to_path_buf(),
                    reason: format!(
                        "it expires on {}, too soon to sign {}",
                        signer.not_after.date(),
                        d.spec.id
                    ),
                });
            }
            let serial =
                issue::random_serial().map_err(PkiError::crypto("choosing a serial number"))?;
            let cert = signer
                .sign(&d.spec, key, serial, nb, na)
                .map_err(PkiError::crypto(format!("issuing {}", d.spec.id)))?;
            Ok(Some(CertRecord {
                spec: d.spec.clone(),
                origin: Origin::Generated,
                key_algorithm: key.algorithm(),
                serial: format!("{serial:x}"),
                signer_serial: Some(signer_serial.clone()),
                issued_at: now,
                not_before: nb,
                not_after: na,
                cert: der::pem_encode(der::CERTIFICATE, &cert),
                key: key.pem().to_string(),
            }))
        })
        .collect::<Result<_, PkiError>>()?;
    let mut warnings = std::mem::take(&mut plan.warnings);
    for (d, new) in std::mem::take(&mut plan.leaves).into_iter().zip(issued) {
        let rec = match new {
            Some(r) => {
                if r.not_after < r.not_before + Duration::seconds(d.spec.validity_secs as i64) {
                    warnings.push(format!(
                        "{} is valid only until {}, when its CA expires",
                        d.spec.id,
                        r.not_after.date()
                    ));
                }
                r
            }
            None => d.old.expect("kept leaf has a record"),
        };
        doc.certs.insert(d.spec.id.clone(), rec);
        changes.push(Change {
            id: d.spec.id.to_string(),
            action: d.action,
            reasons: d.reasons.clone(),
        });
    }
    for t in &plan.tokens {
        let rec = match (&t.old, t.action) {
            (Some(old), Action::Kept) => old.clone(),
            _ => loop {
                let (id, secret) =
                    token::generate().map_err(PkiError::crypto("generating a bootstrap token"))?;
                // Token ids name Secrets: never two pools with one id.
                if doc.bootstrap_tokens.values().all(|r| r.id != id)
                    && plan.tokens.iter().all(|o| {
                        o.action != Action::Kept || o.old.as_ref().is_none_or(|r| r.id != id)
                    })
                {
                    break TokenRecord {
                        id,
                        secret,
                        ttl_secs: t.ttl_secs,
                        issued_at: now,
                        expires_at: now + Duration::seconds(t.ttl_secs as i64),
                    };
                }
            },
        };
        doc.bootstrap_tokens.insert(t.pool.clone(), rec);
        changes.push(Change {
            id: token::token_id(&t.pool),
            action: t.action,
            reasons: t.reasons.clone(),
        });
    }
    // The Secrets encryption keys: a new one is 32 bytes of the system random generator.
    let enc = &mut plan.encryption;
    doc.encryption_keys = std::mem::take(&mut enc.keys);
    if enc.action != Action::Kept {
        use base64::Engine;
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| {
            PkiError::crypto("generating an encryption key")(
                "reading the system random generator".to_string(),
            )
        })?;
        let n = doc
            .encryption_keys
            .iter()
            .filter_map(|k| k.name.strip_prefix("key-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        doc.encryption_keys.insert(
            0,
            EncryptionKeyRecord {
                name: format!("key-{n}"),
                provider: enc.provider,
                created_at: now,
                secret: base64::engine::general_purpose::STANDARD.encode(raw),
            },
        );
    }
    if enc.action != Action::Kept || !doc.encryption_keys.is_empty() {
        changes.push(Change {
            id: super::decide::ENCRYPTION_ID.into(),
            action: enc.action,
            reasons: enc.reasons.clone(),
        });
    }
    for id in &plan.removed {
        changes.push(Change {
            id: id.clone(),
            action: Action::Removed,
            reasons: vec!["not in the profile".into()],
        });
    }
    Ok((
        doc,
        EnsureReport {
            changes,
            warnings,
            ..Default::default()
        },
    ))
}
