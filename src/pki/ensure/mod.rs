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
//!
//! `decide` makes the plan, `execute` carries it out, `report` is what the user reads.

mod decide;
mod execute;
mod report;

pub(crate) use decide::plan;
pub use decide::spec_diff;
pub(crate) use execute::execute;
pub use report::{Action, Change, EnsureReport};

use std::collections::BTreeSet;
use std::path::Path;

use time::{Duration, OffsetDateTime, UtcOffset};

use crate::model::Cluster;
use crate::pki::error::PkiError;
use crate::pki::material::PkiMaterial;
use crate::pki::spec::CertId;
use crate::pki::state::{LockMode, StateDir, StateDoc};

/// kubeadm's constants.CertificateBackdate.
pub const BACKDATE: Duration = Duration::minutes(5);
/// Certificates closer than this to their NotAfter are reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Id of the service-account key pair in reports and `renew`.
pub const SA_ID: &str = "sa";

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
    /// The new document, when it differs from the stored one: spilled to an unnamed temporary file
    /// (no name in any directory, gone when closed, so a run that stops before the commit leaves
    /// nothing), because at 10,000 nodes it is 50 MB the build would otherwise hold while assembling.
    spilled: Option<std::fs::File>,
    report: EnsureReport,
}

impl std::fmt::Debug for PendingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingState")
            .field("state_dir", &self.state_dir)
            .field("changed", &self.spilled.is_some())
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
        if let Some(mut file) = self.spilled {
            use std::io::Seek;
            file.rewind()
                .map_err(PkiError::io("reading back", sd.state_file()))?;
            sd.write_with(|f| std::io::copy(&mut file, f).map(drop))?;
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
    let spilled = if base.is_none_or(|b| b != digest) {
        let dir = state_dir
            .ancestors()
            .find(|d| d.is_dir())
            .unwrap_or(Path::new("."));
        let mut f = tempfile::tempfile_in(dir)
            .map_err(PkiError::io("spilling the new state beside", dir))?;
        doc.write_json(&mut f)
            .map_err(PkiError::io("spilling the new state beside", dir))?;
        Some(f)
    } else {
        None
    };
    report.written = spilled.is_some();
    report.state_file = sd.state_file();
    Ok((
        PkiMaterial::from_state(cluster, doc),
        PendingState {
            state_dir: state_dir.to_path_buf(),
            base,
            spilled,
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

/// The material of an existing state, read-only: fails with `Stale` when anything the profile needs
/// is missing, changed or expired (run `kimage pki`). Takes a shared lock when the state has a lock file.
pub fn load(
    cluster: &Cluster,
    state_dir: &Path,
    now: OffsetDateTime,
) -> Result<PkiMaterial, PkiError> {
    let sd = StateDir::new(state_dir);
    let (_lock, doc) = sd.read_existing()?;
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
