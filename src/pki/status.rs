//! `kimage pki status`: every certificate as it actually is (parsed from the stored certificate, not
//! from the record), its days left, and whether it still matches the profile.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::der;
use super::ensure::{EXPIRY_WARNING_DAYS, spec_diff, truncate};
use super::error::PkiError;
use super::spec;
use super::state::{CertRecord, Origin, StateDir, TokenRecord};
use super::token;
use crate::model::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertState {
    Ok,
    /// Fewer than EXPIRY_WARNING_DAYS left.
    Expiring,
    Expired,
    /// Issued for a different spec or signer: `kimage pki` re-issues it (a CA: see the note).
    Outdated,
    /// In the profile, not in the state: `kimage pki` issues it.
    Missing,
    /// In the state, no longer in the profile: `kimage pki` drops it.
    NotInProfile,
    Unreadable,
}

impl CertState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CertState::Ok => "ok",
            CertState::Expiring => "expiring",
            CertState::Expired => "expired",
            CertState::Outdated => "outdated",
            CertState::Missing => "missing",
            CertState::NotInProfile => "not-in-profile",
            CertState::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub id: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    pub state: CertState,
    pub imported: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state_file: PathBuf,
    pub rows: Vec<StatusRow>,
    /// Rows whose state is not `ok`, as messages.
    pub warnings: Vec<String>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("formats")
}

fn parse_row(id: &str, rec: &CertRecord, now: OffsetDateTime) -> StatusRow {
    let mut row = StatusRow {
        id: id.to_string(),
        subject: String::new(),
        issuer: String::new(),
        serial: rec.serial.clone(),
        dns_names: vec![],
        ip_addresses: vec![],
        not_before: None,
        not_after: None,
        days_left: None,
        state: CertState::Ok,
        imported: rec.origin == Origin::Imported,
        notes: vec![],
    };
    let parsed = der::pem_decode_one(&rec.cert).and_then(|(_, d)| {
        let (_, x) = X509Certificate::from_der(&d).map_err(|e| e.to_string())?;
        row.subject = x.subject().to_string();
        row.issuer = x.issuer().to_string();
        row.serial = hex::encode(x.tbs_certificate.raw_serial());
        if let Ok(Some(san)) = x.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(s) => row.dns_names.push(s.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            row.ip_addresses.push(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            row.ip_addresses.push(IpAddr::from(a));
                        }
                    }
                    _ => {}
                }
            }
        }
        let nb = x.validity().not_before.to_datetime();
        let na = x.validity().not_after.to_datetime();
        row.not_before = Some(rfc3339(nb));
        row.not_after = Some(rfc3339(na));
        let left = (na - now).whole_days();
        row.days_left = Some(left);
        row.state = if na <= now {
            CertState::Expired
        } else if left < EXPIRY_WARNING_DAYS {
            CertState::Expiring
        } else {
            CertState::Ok
        };
        Ok(())
    });
    if let Err(e) = parsed {
        row.state = CertState::Unreadable;
        row.notes.push(e);
    }
    row
}

/// A bootstrap token as a status row: its public id as subject, its expiration; the secret is never
/// shown. Expiring when less than a quarter of its lifetime is left.
fn token_row(id: &str, rec: &TokenRecord, now: OffsetDateTime) -> StatusRow {
    let left = rec.expires_at - now;
    StatusRow {
        id: id.to_string(),
        subject: format!("bootstrap token {}", rec.id),
        issuer: "-".into(),
        serial: String::new(),
        dns_names: vec![],
        ip_addresses: vec![],
        not_before: Some(rfc3339(rec.issued_at)),
        not_after: Some(rfc3339(rec.expires_at)),
        days_left: Some(left.whole_days()),
        state: if rec.expires_at <= now {
            CertState::Expired
        } else if left.whole_seconds() < (rec.ttl_secs / 4) as i64 {
            CertState::Expiring
        } else {
            CertState::Ok
        },
        imported: false,
        notes: vec![],
    }
}

fn placeholder_token() -> TokenRecord {
    TokenRecord {
        id: String::new(),
        secret: String::new(),
        ttl_secs: 0,
        issued_at: OffsetDateTime::UNIX_EPOCH,
        expires_at: OffsetDateTime::UNIX_EPOCH,
    }
}

/// The status of every certificate of the profile and of the state. Reads only.
pub fn status(
    cluster: &Cluster,
    state_dir: &Path,
    now: OffsetDateTime,
) -> Result<StatusReport, PkiError> {
    let now = truncate(now);
    let sd = StateDir::new(state_dir);
    let (_lock, doc) = sd.read_existing()?;
    let specs = spec::cert_specs(cluster);
    let mut rows = Vec::new();
    for s in &specs {
        let Some(rec) = doc.certs.get(&s.id) else {
            rows.push(StatusRow {
                id: s.id.to_string(),
                subject: String::new(),
                issuer: String::new(),
                serial: String::new(),
                dns_names: vec![],
                ip_addresses: vec![],
                not_before: None,
                not_after: None,
                days_left: None,
                state: CertState::Missing,
                imported: false,
                notes: vec!["run `kimage pki`".into()],
            });
            continue;
        };
        let mut row = parse_row(&s.id, rec, now);
        if row.state == CertState::Unreadable {
            rows.push(row);
            continue;
        }
        let diff = if rec.origin == Origin::Imported {
            vec![]
        } else {
            spec_diff(&rec.spec, s)
        };
        let signer_changed = s.signer.as_ref().is_some_and(|sig| {
            doc.certs
                .get(sig)
                .map(|ca| Some(&ca.serial) != rec.signer_serial.as_ref())
                .unwrap_or(true)
        });
        if !diff.is_empty() || signer_changed {
            row.state = CertState::Outdated;
            row.notes.extend(diff);
            if signer_changed {
                row.notes.push("signed by a replaced CA".into());
            }
            row.notes.push(if s.signer.is_none() {
                format!(
                    "kept until replaced with `kimage pki renew {} --replace-ca`",
                    s.id
                )
            } else {
                "run `kimage pki`".into()
            });
        } else if row.state == CertState::Expiring || row.state == CertState::Expired {
            row.notes.push(if s.signer.is_none() {
                format!("replace with `kimage pki renew {} --replace-ca`", s.id)
            } else {
                format!("renew with `kimage pki renew {}`", s.id)
            });
        }
        rows.push(row);
    }
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.id.as_str()).collect();
    for (id, rec) in doc
        .certs
        .iter()
        .filter(|(id, _)| !wanted.contains(id.as_str()))
    {
        let mut row = parse_row(id, rec, now);
        row.state = CertState::NotInProfile;
        row.notes.push("`kimage pki` drops it".into());
        rows.push(row);
    }
    for p in &cluster.pools {
        let id = token::token_id(p.name.as_str());
        let mut row = match doc.bootstrap_tokens.get(p.name.as_str()) {
            Some(rec) => token_row(&id, rec, now),
            None => {
                let mut r = token_row(&id, &placeholder_token(), now);
                r.subject = String::new();
                r.not_after = None;
                r.days_left = None;
                r.state = CertState::Missing;
                r.notes.push("run `kimage pki`".into());
                r
            }
        };
        if let Some(rec) = doc.bootstrap_tokens.get(p.name.as_str()) {
            if rec.ttl_secs != p.token_ttl_secs {
                row.state = CertState::Outdated;
                row.notes
                    .push("issued with another tokenTTL: run `kimage pki`".into());
            } else if matches!(row.state, CertState::Expiring | CertState::Expired) {
                row.notes.push(format!(
                    "renew with `kimage pki renew {id}`, rebuild, apply out/pools/{}/bootstrap-token.yaml",
                    p.name
                ));
            }
        }
        rows.push(row);
    }
    for (pool, rec) in doc
        .bootstrap_tokens
        .iter()
        .filter(|(pool, _)| cluster.pool(pool).is_none())
    {
        let mut row = token_row(&token::token_id(pool), rec, now);
        row.state = CertState::NotInProfile;
        row.notes.push("`kimage pki` drops it".into());
        rows.push(row);
    }
    let warnings = rows
        .iter()
        .filter(|r| r.state != CertState::Ok)
        .map(|r| {
            let left = r
                .days_left
                .map(|d| format!(" ({d} days left)"))
                .unwrap_or_default();
            format!(
                "{} is {}{left}: {}",
                r.id,
                r.state.as_str(),
                r.notes.join("; ")
            )
        })
        .collect();
    Ok(StatusReport {
        state_file: sd.state_file(),
        rows,
        warnings,
    })
}

impl StatusReport {
    /// What needs attention within `secs` of `now`, earliest first: rows that expire by then, are
    /// expired, missing or unreadable.
    pub fn expiring(&self, now: OffsetDateTime, secs: u64) -> Vec<StatusRow> {
        let by = now + time::Duration::seconds(secs.min(i64::MAX as u64) as i64);
        let when = |r: &StatusRow| {
            r.not_after
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        };
        let mut v: Vec<StatusRow> = self
            .rows
            .iter()
            .filter(|r| match when(r) {
                Some(t) => t <= by,
                None => matches!(r.state, CertState::Missing | CertState::Unreadable),
            })
            .cloned()
            .collect();
        v.sort_by_key(|r| (when(r), r.id.clone()));
        v
    }

    /// A table: id, subject, issuer, not-after, days left, state, SANs; then the warnings.
    pub fn render_text(&self) -> String {
        let header = [
            "ID",
            "SUBJECT",
            "ISSUER",
            "NOT AFTER",
            "DAYS",
            "STATE",
            "SANS",
        ];
        let mut table: Vec<[String; 7]> = vec![header.map(String::from)];
        for r in &self.rows {
            let sans: Vec<String> = r
                .dns_names
                .iter()
                .cloned()
                .chain(r.ip_addresses.iter().map(|i| i.to_string()))
                .collect();
            table.push([
                r.id.clone(),
                r.subject.clone(),
                r.issuer.clone(),
                r.not_after
                    .as_deref()
                    .map(|s| s.get(..10).unwrap_or(s).to_string())
                    .unwrap_or_else(|| "-".into()),
                r.days_left
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.state.as_str().to_string(),
                sans.join(","),
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &table {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for row in &table {
            let mut line = String::new();
            for (i, c) in row.iter().enumerate() {
                if i == 6 {
                    line.push_str(c);
                } else if i == 4 {
                    line.push_str(&format!("{c:>w$}  ", w = widths[i]));
                } else {
                    line.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

/// The nodes that carry a certificate or token, as the timeline names them.
fn carried_by(cluster: &Cluster, id: &str) -> String {
    if let Some(pool) = id.strip_prefix("bootstrap-token@") {
        return format!("machines of pool {pool} that join later");
    }
    match spec::CertId::parse(id).owner() {
        spec::CertOwner::Node(n) => n.to_string(),
        spec::CertOwner::Pool(p) => format!("machines of pool {p}"),
        spec::CertOwner::Cluster => {
            let n = cluster.nodes.len() + cluster.pools.len();
            format!("every node that carries {id} ({n} nodes and pools in the profile)")
        }
    }
}

/// `kimage pki status --within`: what expires by then, earliest first, with the nodes it is on.
pub fn render_timeline(cluster: &Cluster, rows: &[StatusRow], within: &str) -> String {
    if rows.is_empty() {
        return format!("nothing expires within {within}\n");
    }
    let mut out = String::from("NOT AFTER   DAYS  ID  (ON)\n");
    for r in rows {
        let date = r
            .not_after
            .as_deref()
            .map(|s| s.get(..10).unwrap_or(s).to_string())
            .unwrap_or_else(|| r.state.as_str().to_string());
        let days = r
            .days_left
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{date:<10}  {days:>4}  {}  ({})\n",
            r.id,
            carried_by(cluster, &r.id)
        ));
    }
    out
}
