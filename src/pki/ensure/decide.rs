//! Deciding, without generating anything, what each CA, leaf, the service-account key and each
//! pool's token needs: kept, issued or re-issued, and why.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::report::Action;
use super::{EXPIRY_WARNING_DAYS, Requests, SA_ID, truncate};
use crate::model::Cluster;
use crate::pki::der;
use crate::pki::error::PkiError;
use crate::pki::keys::{self, Key};
use crate::pki::spec::{self, CertId, CertSpec};
use crate::pki::state::{
    CertRecord, EncryptionKeyRecord, Origin, SaRecord, StateDir, StateDoc, TokenRecord,
};
use crate::pki::token;
/// Differences between the spec a certificate was issued for and the one wanted now.
pub fn spec_diff(old: &CertSpec, new: &CertSpec) -> Vec<String> {
    fn list<T: PartialEq + ToString>(name: &str, old: &[T], new: &[T], out: &mut Vec<String>) {
        let added: Vec<String> = new
            .iter()
            .filter(|x| !old.contains(x))
            .map(|x| format!("+{}", x.to_string()))
            .collect();
        let removed: Vec<String> = old
            .iter()
            .filter(|x| !new.contains(x))
            .map(|x| format!("-{}", x.to_string()))
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            out.push(format!(
                "{name} {}",
                added
                    .into_iter()
                    .chain(removed)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        } else if old != new {
            out.push(format!("{name} reordered"));
        }
    }
    let mut out = Vec::new();
    if old.kind != new.kind {
        out.push(format!(
            "kind {} -> {}",
            old.kind.as_str(),
            new.kind.as_str()
        ));
    }
    if old.signer != new.signer {
        out.push(format!(
            "signer {} -> {}",
            old.signer.as_deref().unwrap_or("self"),
            new.signer.as_deref().unwrap_or("self")
        ));
    }
    if old.common_name != new.common_name {
        out.push(format!(
            "common_name {} -> {}",
            old.common_name, new.common_name
        ));
    }
    list(
        "organizations",
        &old.organizations,
        &new.organizations,
        &mut out,
    );
    list("dns_names", &old.dns_names, &new.dns_names, &mut out);
    list(
        "ip_addresses",
        &old.ip_addresses,
        &new.ip_addresses,
        &mut out,
    );
    if old.usage != new.usage {
        out.push(format!("usage {:?} -> {:?}", old.usage, new.usage));
    }
    if old.validity_secs != new.validity_secs {
        out.push(format!(
            "validity {}s -> {}s",
            old.validity_secs, new.validity_secs
        ));
    }
    if old.algorithm != new.algorithm {
        out.push(format!(
            "algorithm {} -> {}",
            old.algorithm.as_str(),
            new.algorithm.as_str()
        ));
    }
    if out.is_empty() && old != new {
        out.push("spec changed".into());
    }
    out
}

/// Parses a stored certificate and key and checks they belong together.
pub(crate) fn check_record(rec: &CertRecord) -> Result<(Key, Vec<u8>), String> {
    let (label, cert_der) =
        der::pem_decode_one(&rec.cert).map_err(|e| format!("certificate: {e}"))?;
    if label != der::CERTIFICATE {
        return Err(format!("certificate PEM block is \"{label}\""));
    }
    let (_, x) = X509Certificate::from_der(&cert_der).map_err(|e| format!("certificate: {e}"))?;
    let key = Key::from_pem(&rec.key).map_err(|e| format!("key: {e}"))?;
    if x.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err("the key does not belong to the certificate".into());
    }
    if hex::encode(x.tbs_certificate.raw_serial()).trim_start_matches('0')
        != rec.serial.trim_start_matches('0')
    {
        return Err("the certificate's serial differs from the recorded one".into());
    }
    Ok((key, cert_der))
}

fn check_sa(sa: &SaRecord) -> Result<Key, String> {
    let key = Key::from_pem(&sa.key).map_err(|e| format!("sa.key: {e}"))?;
    if keys::public_pem_raw(&sa.public).map_err(|e| format!("sa.pub: {e}"))? != key.public_key_raw()
    {
        return Err("sa.pub does not belong to sa.key".into());
    }
    Ok(key)
}

/// What to do with one leaf certificate: keep it, or re-issue it (and why); and a warning when it
/// is kept but expires soon.
fn decide_leaf(
    s: &CertSpec,
    old: Option<CertRecord>,
    ca_serial: &BTreeMap<&str, Option<&str>>,
    req: &Requests,
    now: OffsetDateTime,
) -> (Decision, Option<String>) {
    let mut d = Decision {
        spec: s.clone(),
        action: Action::Kept,
        reasons: vec![],
        old,
        key: None,
        cert_der: None,
    };
    let mut warning = None;
    let signer = s.signer.as_deref().expect("leaf has a signer");
    let Some(rec) = d.old.as_ref() else {
        d.action = Action::Issued;
        d.reasons.push("new".into());
        return (d, None);
    };
    if req.renew.contains(&s.id) {
        d.reasons.push("renewal requested".into());
    }
    d.reasons.extend(spec_diff(&rec.spec, s));
    match ca_serial.get(signer).copied().flatten() {
        Some(serial) if rec.signer_serial.as_deref() == Some(serial) => {}
        _ => d.reasons.push(format!("signer {signer} was replaced")),
    }
    match check_record(rec) {
        Ok((key, _)) => {
            if rec.key_algorithm == s.algorithm {
                d.key = Some(key);
            }
        }
        Err(e) => d.reasons.push(format!("stored certificate unusable: {e}")),
    }
    let left = days_left(rec.not_after, now);
    if rec.not_after <= now {
        d.reasons
            .push(format!("expired on {}", rec.not_after.date()));
    } else if d.reasons.is_empty() && left < EXPIRY_WARNING_DAYS {
        warning = Some(format!(
            "{} expires in {left} days; renew it with `kimage pki renew {}`",
            s.id, s.id
        ));
    }
    if d.reasons.is_empty() {
        // Kept: its parsed key is not needed.
        d.key = None;
    } else {
        d.action = Action::Reissued;
    }
    (d, warning)
}

fn days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_days()
}

/// A decision for one CA or leaf.
pub(crate) struct Decision {
    pub spec: CertSpec,
    pub action: Action,
    pub reasons: Vec<String>,
    /// The stored record (kept as is when the action is Kept).
    pub old: Option<CertRecord>,
    /// The stored key when it is usable (reused for a re-issued leaf of the same algorithm).
    pub key: Option<Key>,
    /// The stored certificate's DER when usable.
    pub cert_der: Option<Vec<u8>>,
}

/// A decision for one worker pool's bootstrap token.
pub(crate) struct TokenDecision {
    pub pool: String,
    pub ttl_secs: u64,
    pub action: Action,
    pub reasons: Vec<String>,
    pub old: Option<TokenRecord>,
}

pub(crate) struct Plan {
    pub cas: Vec<Decision>,
    pub leaves: Vec<Decision>,
    pub sa: (Action, Vec<String>, Option<(SaRecord, Key)>),
    pub tokens: Vec<TokenDecision>,
    pub encryption: EncryptionDecision,
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
}

/// The keys that encrypt Secrets at rest: the stored ones are always kept (dropping one would make
/// what it encrypted unreadable); a first one is made when the profile turns encryption on.
pub(crate) struct EncryptionDecision {
    /// `Issued` when a key is to be made, with the provider it is for.
    pub action: Action,
    pub reasons: Vec<String>,
    pub provider: crate::profile::EncryptionProvider,
    pub keys: Vec<EncryptionKeyRecord>,
}

/// Id of the Secrets encryption keys in reports.
pub const ENCRYPTION_ID: &str = "encryption-key";

/// Whether a stored encryption key is usable: 32 bytes of base64, a provider that encrypts.
fn check_encryption_key(k: &EncryptionKeyRecord) -> Result<(), String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&k.secret)
        .map_err(|e| format!("{}: not base64 ({e})", k.name))?;
    if raw.len() != 32 {
        return Err(format!("{}: {} bytes, not 32", k.name, raw.len()));
    }
    if k.provider == crate::profile::EncryptionProvider::None {
        return Err(format!("{}: provider none", k.name));
    }
    Ok(())
}

fn plan_encryption(
    cluster: &Cluster,
    old: &mut StateDoc,
    sd: &StateDir,
    warnings: &mut Vec<String>,
) -> Result<EncryptionDecision, PkiError> {
    let wanted = cluster.pki.encryption_at_rest.provider;
    let keys = std::mem::take(&mut old.encryption_keys);
    for k in &keys {
        check_encryption_key(k).map_err(|reason| PkiError::CaUnusable {
            id: ENCRYPTION_ID.into(),
            path: sd.state_file(),
            reason,
        })?;
    }
    let mut d = EncryptionDecision {
        action: Action::Kept,
        reasons: vec![],
        provider: wanted,
        keys,
    };
    match d.keys.first() {
        None if cluster.pki.encryption_at_rest.enabled() => {
            d.action = Action::Issued;
            d.reasons.push("new".into());
        }
        None => {}
        Some(k) if !cluster.pki.encryption_at_rest.enabled() => warnings.push(format!(
            "pki.encryptionAtRest.provider is none, but Secrets written while it was {} need key {} to be read: the key is kept, and control-plane nodes get no encryption configuration",
            k.provider.as_str(),
            k.name
        )),
        Some(k) if k.provider != wanted => warnings.push(format!(
            "pki.encryptionAtRest.provider is {} but key {} was made for {}; it is kept with its provider, because Secrets it encrypted read only with it (key rotation is not implemented yet)",
            wanted.as_str(),
            k.name,
            k.provider.as_str()
        )),
        Some(_) => {}
    }
    Ok(d)
}

/// `24h`, `90m`, `45s`: a token lifetime as the profile writes it.
fn human_secs(s: u64) -> String {
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Whether each pool's token is kept, issued or replaced. A token is replaced when renewal is
/// requested, when the pool's tokenTTL changed, when it expired or is malformed; never otherwise, so
/// rebuilds carry the same token.
fn plan_tokens(
    cluster: &Cluster,
    old: &StateDoc,
    now: OffsetDateTime,
    req: &Requests,
    warnings: &mut Vec<String>,
) -> Vec<TokenDecision> {
    let mut out = Vec::new();
    for p in &cluster.pools {
        let pool = p.name.to_string();
        let id = token::token_id(&pool);
        let rec = old.bootstrap_tokens.get(&pool);
        let mut d = TokenDecision {
            pool,
            ttl_secs: p.token_ttl_secs,
            action: Action::Kept,
            reasons: vec![],
            old: rec.cloned(),
        };
        match rec {
            None => {
                d.action = Action::Issued;
                d.reasons.push("new".into());
            }
            Some(r) => {
                if req.renew.contains(id.as_str()) {
                    d.reasons.push("renewal requested".into());
                }
                if !token::valid(&r.id, &r.secret) {
                    d.reasons.push("stored token is malformed".into());
                }
                if r.ttl_secs != p.token_ttl_secs {
                    d.reasons.push(format!(
                        "tokenTTL {} -> {}",
                        human_secs(r.ttl_secs),
                        human_secs(p.token_ttl_secs)
                    ));
                }
                if r.expires_at <= now {
                    d.reasons.push(format!("expired at {}", r.expires_at));
                } else if d.reasons.is_empty()
                    && (r.expires_at - now).whole_seconds() < (r.ttl_secs / 4) as i64
                {
                    warnings.push(format!(
                        "{id} expires at {}: machines of pool {} that boot later cannot join; renew it with `kimage pki renew {id}`, rebuild, and apply out/pools/{}/bootstrap-token.yaml",
                        r.expires_at, d.pool, d.pool
                    ));
                }
                if !d.reasons.is_empty() {
                    d.action = Action::Reissued;
                    warnings.push(format!(
                        "{id} is replaced: the old token stays valid until it expires; pool {} machines booting from the new user-data join once the cluster has the new token Secret (after `kimage build`: kubectl apply --server-side -f out/pools/{}/bootstrap-token.yaml, or re-provision the bootstrap node)",
                        d.pool, d.pool
                    ));
                }
            }
        }
        out.push(d);
    }
    out
}

impl Plan {
    /// Everything that is not kept, as "id: reasons" lines.
    pub fn pending(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cas
            .iter()
            .chain(&self.leaves)
            .filter(|d| d.action != Action::Kept)
            .map(|d| format!("  {}: {}", d.spec.id, d.reasons.join("; ")))
            .collect();
        if self.sa.0 != Action::Kept {
            out.push(format!("  {SA_ID}: {}", self.sa.1.join("; ")));
        }
        if self.encryption.action != Action::Kept {
            out.push(format!(
                "  {ENCRYPTION_ID}: {}",
                self.encryption.reasons.join("; ")
            ));
        }
        for t in self.tokens.iter().filter(|t| t.action != Action::Kept) {
            out.push(format!(
                "  {}: {}",
                token::token_id(&t.pool),
                t.reasons.join("; ")
            ));
        }
        out
    }
}

fn replace_hint(id: &str) -> String {
    format!("`kimage pki renew {id} --replace-ca`")
}

/// Decides, without generating anything, what each certificate needs.
pub(crate) fn plan(
    cluster: &Cluster,
    mut old: StateDoc,
    now: OffsetDateTime,
    req: &Requests,
    sd: &StateDir,
) -> Result<Plan, PkiError> {
    let now = truncate(now);
    let desired = spec::cert_specs(cluster);
    let wanted: BTreeSet<&str> = desired.iter().map(|s| s.id.as_str()).collect();
    // Parsing RSA keys is the slow part of a rerun; do it on every core (leaves below).
    let mut checked: BTreeMap<CertId, Result<(Key, Vec<u8>), String>> = desired
        .par_iter()
        .filter(|s| s.signer.is_none())
        .filter_map(|s| {
            old.certs
                .get(&s.id)
                .map(|r| (s.id.clone(), check_record(r)))
        })
        .collect();
    let mut warnings = Vec::new();

    let mut cas = Vec::new();
    let mut replaced_cas = BTreeSet::new();
    for s in desired.iter().filter(|s| s.signer.is_none()) {
        let check = checked.remove(&s.id);
        // Moved out of the old state, not copied: at 10,000 nodes it is tens of MB.
        let mut d = Decision {
            spec: s.clone(),
            action: Action::Kept,
            reasons: vec![],
            old: old.certs.remove(&s.id),
            key: None,
            cert_der: None,
        };
        match (d.old.as_ref(), check) {
            (None, _) => {
                d.action = Action::Issued;
                d.reasons.push("new".into());
                replaced_cas.insert(s.id.clone());
            }
            (Some(_), _) if req.replace.contains(&s.id) => {
                d.action = Action::Reissued;
                d.reasons.push("replacement requested".into());
                replaced_cas.insert(s.id.clone());
            }
            (Some(_), Some(Err(reason))) => {
                return Err(PkiError::CaUnusable {
                    id: s.id.to_string(),
                    path: sd.state_file(),
                    reason,
                });
            }
            (Some(rec), Some(Ok((key, der)))) => {
                if rec.origin == Origin::Generated && rec.spec != *s {
                    warnings.push(format!(
                        "{} was issued for a different spec ({}); CAs are never replaced implicitly, so it is kept. To replace it (every certificate it signed is re-issued and running nodes need the new files): {}",
                        s.id,
                        spec_diff(&rec.spec, s).join("; "),
                        replace_hint(&s.id)
                    ));
                }
                let left = days_left(rec.not_after, now);
                if left < 0 {
                    return Err(PkiError::CaUnusable {
                        id: s.id.to_string(),
                        path: sd.state_file(),
                        reason: format!("it expired on {}", rec.not_after.date()),
                    });
                } else if left < EXPIRY_WARNING_DAYS {
                    warnings.push(format!(
                        "{} expires in {left} days; plan its replacement: {}",
                        s.id,
                        replace_hint(&s.id)
                    ));
                }
                d.key = Some(key);
                d.cert_der = Some(der);
            }
            (Some(_), None) => unreachable!("every stored desired record was checked"),
        }
        cas.push(d);
    }
    let ca_serial: BTreeMap<&str, Option<&str>> = cas
        .iter()
        .map(|d| {
            (
                d.spec.id.as_str(),
                if replaced_cas.contains(&d.spec.id) {
                    None
                } else {
                    d.old.as_ref().map(|r| r.serial.as_str())
                },
            )
        })
        .collect();

    // Records move out of the old state (at 10,000 nodes it is tens of MB), then every leaf is
    // checked and decided in parallel; a parsed key is kept only when the leaf is re-issued with it.
    let stored: Vec<(&CertSpec, Option<CertRecord>)> = desired
        .iter()
        .filter(|s| s.signer.is_some())
        .map(|s| (s, old.certs.remove(&s.id)))
        .collect();
    let decided: Vec<(Decision, Option<String>)> = stored
        .into_par_iter()
        .map(|(s, rec)| decide_leaf(s, rec, &ca_serial, req, now))
        .collect();
    let mut leaves = Vec::with_capacity(decided.len());
    for (d, warning) in decided {
        warnings.extend(warning);
        leaves.push(d);
    }

    let algorithm = cluster.pki.algorithm;
    let sa = match &old.service_account {
        None => (Action::Issued, vec!["new".to_string()], None),
        Some(_) if req.replace.contains(SA_ID) => (
            Action::Reissued,
            vec!["replacement requested".to_string()],
            None,
        ),
        Some(rec) => {
            let key = check_sa(rec).map_err(|reason| PkiError::CaUnusable {
                id: SA_ID.into(),
                path: sd.state_file(),
                reason,
            })?;
            if rec.origin == Origin::Generated && rec.algorithm != algorithm {
                warnings.push(format!(
                    "the service-account key is {} but pki.algorithm is {}; it is kept because replacing it invalidates every service-account token. To replace it: {}",
                    rec.algorithm.as_str(),
                    algorithm.as_str(),
                    replace_hint(SA_ID)
                ));
            }
            (Action::Kept, vec![], Some((rec.clone(), key)))
        }
    };

    let tokens = plan_tokens(cluster, &old, now, req, &mut warnings);
    let encryption = plan_encryption(cluster, &mut old, sd, &mut warnings)?;
    let mut removed: Vec<String> = old
        .certs
        .keys()
        .filter(|id| !wanted.contains(id.as_str()))
        .map(|id| id.to_string())
        .collect();
    removed.extend(
        old.bootstrap_tokens
            .keys()
            .filter(|pool| cluster.pool(pool).is_none())
            .map(|pool| token::token_id(pool)),
    );
    Ok(Plan {
        cas,
        leaves,
        sa,
        tokens,
        encryption,
        removed,
        warnings,
    })
}
