//! Bringing the state in line with the model: decide per certificate whether to keep, issue or
//! re-issue it (`plan`), then generate keys in parallel and sign (`execute`).
//!
//! Rules:
//! - A certificate is kept exactly when its recorded spec equals the model's, its signer is still the
//!   CA that signed it, it is readable and its key matches, and it has not expired. So a rerun with an
//!   unchanged profile changes nothing, and adding a VIP re-issues the apiserver certificates only.
//! - A CA (and the service-account key) is never replaced implicitly: a changed spec keeps it with a
//!   warning, an unusable one is an error; both name `kimage pki renew ID --replace-ca`.
//! - A re-issued leaf keeps its key when the algorithm is unchanged (as `kubeadm certs renew` does).
//! - Validity (kubeadm's): CA NotBefore = now - 5 min, NotAfter = NotBefore + CA validity; leaf
//!   NotBefore = its CA's NotBefore, or now - 5 min when the CA is older than that, NotAfter =
//!   NotBefore + leaf validity, never past the CA's NotAfter. Dates are fixed at issuance and stored,
//!   so reruns reproduce the same certificates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;
use time::{Duration, OffsetDateTime, UtcOffset};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::der;
use super::error::PkiError;
use super::issue::{self, Signer};
use super::keys::{self, Key};
use super::material::PkiMaterial;
use super::spec::{self, CertId, CertSpec};
use super::state::{CertRecord, LockMode, Origin, SaRecord, StateDir, StateDoc, TokenRecord};
use super::token;
use crate::model::Cluster;
use crate::profile::KeyAlgorithm;

/// kubeadm's constants.CertificateBackdate.
pub const BACKDATE: Duration = Duration::minutes(5);
/// Certificates closer than this to their NotAfter are reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Id of the service-account key pair in reports and `renew`.
pub const SA_ID: &str = "sa";

/// What happened to one certificate (or the service-account key pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Issued,
    Reissued,
    Kept,
    Removed,
    Imported,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Issued => "issued",
            Action::Reissued => "reissued",
            Action::Kept => "kept",
            Action::Removed => "removed",
            Action::Imported => "imported",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub id: String,
    pub action: Action,
    /// Why it was (re-)issued: `new`, a spec difference such as `ip_addresses +10.21.22.101`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What `ensure` (or `renew`, `import`) did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnsureReport {
    pub state_file: std::path::PathBuf,
    /// Whether the state file was replaced (false on a rerun that changed nothing).
    pub written: bool,
    /// Every CA, leaf and `sa`, CAs first, then in profile order; removed ids last.
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    /// Temporary files of an interrupted run that were removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_temp_files: Vec<std::path::PathBuf>,
}

impl EnsureReport {
    pub fn ids(&self, action: Action) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| c.id.as_str())
            .collect()
    }

    /// Changed entries one per line, then a summary and the warnings.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let width = self
            .changes
            .iter()
            .filter(|c| c.action != Action::Kept)
            .map(|c| c.id.len())
            .max()
            .unwrap_or(0);
        for c in self.changes.iter().filter(|c| c.action != Action::Kept) {
            out.push_str(&format!(
                "{:<9} {:<width$}  {}\n",
                c.action.as_str(),
                c.id,
                c.reasons.join("; ")
            ));
        }
        let count = |a| self.changes.iter().filter(|c| c.action == a).count();
        out.push_str(&format!(
            "{}: {} issued, {} reissued, {} kept, {} removed{}\n",
            self.state_file.display(),
            count(Action::Issued) + count(Action::Imported),
            count(Action::Reissued),
            count(Action::Kept),
            count(Action::Removed),
            if self.written {
                ""
            } else {
                " (unchanged, nothing written)"
            }
        ));
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct EnsureOptions {
    pub now: OffsetDateTime,
    pub lock: LockMode,
}

/// Explicit requests beyond "match the profile".
#[derive(Debug, Clone, Default)]
pub struct Requests {
    /// Leaf ids to re-issue even though nothing changed.
    pub renew: BTreeSet<CertId>,
    /// CA ids (or `sa`) to replace with new keys.
    pub replace: BTreeSet<CertId>,
}

/// Creates or refreshes the PKI state under `state_dir` for the cluster and returns the material.
/// Waits for another run holding the lock.
pub fn ensure(
    cluster: &Cluster,
    state_dir: &Path,
    now: OffsetDateTime,
) -> Result<(PkiMaterial, EnsureReport), PkiError> {
    ensure_with(
        cluster,
        state_dir,
        &EnsureOptions {
            now,
            lock: LockMode::Wait,
        },
        &Requests::default(),
    )
}

/// `ensure` with a lock mode and explicit renew/replace requests.
pub fn ensure_with(
    cluster: &Cluster,
    state_dir: &Path,
    opts: &EnsureOptions,
    req: &Requests,
) -> Result<(PkiMaterial, EnsureReport), PkiError> {
    let (doc, report) = transaction(state_dir, opts.lock, |sd, old| {
        let old = old.unwrap_or_default();
        let plan = plan(cluster, old, opts.now, req, sd)?;
        execute(cluster, plan, opts.now, &sd.state_file())
    })?;
    Ok((PkiMaterial::from_state(cluster, doc), report))
}

/// The state a build computed, not written yet: the output stage commits it once everything else
/// is assembled, so a build that fails before then leaves the state directory as it was.
pub struct PendingState {
    state_dir: std::path::PathBuf,
    /// Digest of the stored state the change was computed from (`None`: there was none).
    base: Option<[u8; 32]>,
    /// The new document, when it differs from the stored one.
    bytes: Option<Vec<u8>>,
    report: EnsureReport,
}

impl std::fmt::Debug for PendingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingState")
            .field("state_dir", &self.state_dir)
            .field("changed", &self.bytes.is_some())
            .field("report", &self.report)
            .finish()
    }
}

impl PendingState {
    /// What the build does to the state, as `kimage pki` would report it (`written` says whether a
    /// commit writes).
    pub fn report(&self) -> &EnsureReport {
        &self.report
    }

    /// Writes the new state under the exclusive lock, if the stored one is still the one it was
    /// computed from (another run may have changed it meanwhile: then nothing is written).
    pub fn commit(self, lock: LockMode) -> Result<EnsureReport, PkiError> {
        let sd = StateDir::new(&self.state_dir);
        let mut report = self.report;
        report.state_file = sd.state_file();
        // Also when nothing changed: a run killed while writing left a temp file to remove.
        sd.create()?;
        let _lock = sd.lock(lock)?;
        report.removed_temp_files = sd.clean_temp()?;
        let stored = sd
            .read_bytes()?
            .map(|b| <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&b)));
        if stored != self.base {
            return Err(PkiError::ChangedMeanwhile {
                path: sd.state_file(),
            });
        }
        if let Some(bytes) = &self.bytes {
            sd.write(bytes)?;
        }
        Ok(report)
    }
}

/// What the state under `state_dir` must become for the cluster, computed in memory: reads the stored
/// state (if any) without creating, locking or cleaning anything, issues what the profile needs, and
/// returns the material to build with and the change to commit.
pub fn compute(
    cluster: &Cluster,
    state_dir: &Path,
    now: OffsetDateTime,
    req: &Requests,
) -> Result<(PkiMaterial, PendingState), PkiError> {
    let sd = StateDir::new(state_dir);
    let (current, base) = match sd.read()? {
        Some((doc, bytes)) => (
            Some(doc),
            Some(<[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(
                &bytes,
            ))),
        ),
        None => (None, None),
    };
    let plan = plan(cluster, current.unwrap_or_default(), now, req, &sd)?;
    let (doc, mut report) = execute(cluster, plan, now, &sd.state_file())?;
    let digest = doc.digest();
    let bytes = if base.is_none_or(|b| b != digest) {
        let mut v = Vec::new();
        doc.write_json(&mut v)
            .map_err(PkiError::io("serializing", sd.state_file()))?;
        Some(v)
    } else {
        None
    };
    report.written = bytes.is_some();
    report.state_file = sd.state_file();
    Ok((
        PkiMaterial::from_state(cluster, doc),
        PendingState {
            state_dir: state_dir.to_path_buf(),
            base,
            bytes,
            report,
        },
    ))
}

/// Runs `f` on the current state under the exclusive lock and commits what it returns, writing
/// only when the document changed.
pub(crate) fn transaction(
    state_dir: &Path,
    lock: LockMode,
    f: impl FnOnce(&StateDir, Option<StateDoc>) -> Result<(StateDoc, EnsureReport), PkiError>,
) -> Result<(StateDoc, EnsureReport), PkiError> {
    let sd = StateDir::new(state_dir);
    sd.create()?;
    let _lock = sd.lock(lock)?;
    let removed = sd.clean_temp()?;
    // Only the digest of the stored bytes is kept: a large state is not held twice.
    let (current, old_digest) = match sd.read()? {
        Some((doc, bytes)) => (
            Some(doc),
            Some(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        ),
        None => (None, None),
    };
    let (doc, mut report) = f(&sd, current)?;
    if old_digest.is_none_or(|d| d[..] != doc.digest()[..]) {
        sd.write_doc(&doc)?;
        report.written = true;
    }
    report.state_file = sd.state_file();
    report.removed_temp_files = removed;
    Ok((doc, report))
}

pub(crate) fn truncate(now: OffsetDateTime) -> OffsetDateTime {
    now.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
}

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
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
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
        removed,
        warnings,
    })
}

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

/// The material of an existing state, read-only: fails with `Stale` when anything the profile needs
/// is missing, changed or expired (run `kimage pki`). Takes a shared lock when the state has a lock file.
pub fn load(
    cluster: &Cluster,
    state_dir: &Path,
    now: OffsetDateTime,
) -> Result<PkiMaterial, PkiError> {
    let sd = StateDir::new(state_dir);
    let _lock = sd.lock_shared()?;
    let Some((doc, _)) = sd.read()? else {
        return Err(PkiError::Stale {
            path: sd.state_file(),
            problems: vec!["  no pki state yet".into()],
        });
    };
    let plan = plan(cluster, doc.clone(), now, &Requests::default(), &sd)?;
    // Records of nodes no longer in the profile are harmless here; `kimage pki` drops them.
    let problems = plan.pending();
    if !problems.is_empty() {
        return Err(PkiError::Stale {
            path: sd.state_file(),
            problems,
        });
    }
    Ok(PkiMaterial::from_state(cluster, doc))
}
