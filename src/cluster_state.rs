//! What kimage remembers about a cluster beyond its PKI: the etcd members it formed with. Members added
//! to the profile later join the running cluster instead of forming a new one, and the members it
//! formed with keep the settings (and artifacts) they booted with. Lives in `<state>/cluster.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::Cluster;

pub const FILE: &str = "cluster.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub version: u32,
    /// The cluster these records belong to.
    pub cluster: String,
    /// (member name, peer URL) of the members etcd first formed with.
    pub etcd_formed_with: Vec<(String, String)>,
    /// The control-plane node the first build made the bootstrap node (absent in records of older
    /// kimage versions: the next build adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_node: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a kimage cluster state ({detail}); move it away if it is not needed")]
    Corrupt { path: PathBuf, detail: String },
    /// A record of a cluster that was built exists, but what built it is gone.
    #[error(
        "{missing} is gone, but {evidence} shows this cluster was built with it: {consequence}; restore {missing} from your backup, or pass --new-cluster if the cluster is to start over"
    )]
    Lost {
        missing: PathBuf,
        evidence: String,
        consequence: &'static str,
    },
    #[error(
        "{path} belongs to cluster `{found}`, not `{want}`; use a separate --state directory per cluster"
    )]
    OtherCluster {
        path: PathBuf,
        found: String,
        want: String,
    },
}

impl StateError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StateError::Read { .. } => crate::exit::FAILURE,
            // kimage wrote it: a file that no longer reads as one is corrupt, not bad input.
            StateError::Corrupt { .. } => crate::exit::VERIFY,
            StateError::Lost { .. } => crate::exit::STATE,
            // Another cluster's state given with this profile: the --state argument is wrong.
            StateError::OtherCluster { .. } => crate::exit::INVALID,
        }
    }
}

/// A build must not silently start a cluster over: a missing PKI state while the cluster's record or a
/// build exists would issue a new CA (every node then distrusts the others), and a missing record
/// while the PKI state exists would give etcd members added later a new cluster instead of a join.
pub fn check_history(state_dir: &Path, out: &Path, cluster: &str) -> Result<(), StateError> {
    check_pki_kept(state_dir, out, cluster)?;
    let record = path(state_dir);
    // A PKI state alone (after `kimage pki` or `pki import`) is no evidence: the first build writes
    // the record. A build of this cluster is.
    let manifest = out.join(crate::output::MANIFEST);
    if !record.exists() && built(&manifest, cluster) {
        return Err(StateError::Lost {
            missing: record,
            evidence: manifest.display().to_string(),
            consequence: "without it, etcd members added since the cluster formed would start a cluster of their own instead of joining",
        });
    }
    Ok(())
}

/// Whether `manifest` is a build of `cluster` (an out/ reused for another cluster is no evidence).
fn built(manifest: &Path, cluster: &str) -> bool {
    std::fs::read_to_string(manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<crate::output::Manifest>(&t).ok())
        .is_some_and(|m| m.cluster == cluster)
}

/// The PKI-state half of `check_history` (`kimage pki` and `pki renew` need no cluster record).
pub fn check_pki_kept(state_dir: &Path, out: &Path, cluster: &str) -> Result<(), StateError> {
    let pki = crate::pki::StateDir::new(state_dir).state_file();
    if pki.exists() {
        return Ok(());
    }
    let record = path(state_dir);
    let manifest = out.join(crate::output::MANIFEST);
    let evidence = [
        (&record, record.exists()),
        (&manifest, built(&manifest, cluster)),
    ]
    .into_iter()
    .find(|(_, is)| *is)
    .map(|(p, _)| p);
    match evidence {
        Some(e) => Err(StateError::Lost {
            missing: pki,
            evidence: e.display().to_string(),
            consequence: "a new CA would be issued, and every node built before would distrust every node built now",
        }),
        None => Ok(()),
    }
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Reads the cluster state, if there is one.
pub fn read(state_dir: &Path, cluster: &str) -> Result<Option<ClusterState>, StateError> {
    let p = path(state_dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Read { path: p, source }),
    };
    let s: ClusterState = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
        path: p.clone(),
        detail: e.to_string(),
    })?;
    if s.cluster != cluster {
        return Err(StateError::OtherCluster {
            path: p,
            found: s.cluster,
            want: cluster.to_string(),
        });
    }
    Ok(Some(s))
}

/// The state a first build records: the members the cluster forms with now.
pub fn initial(c: &Cluster) -> ClusterState {
    ClusterState {
        version: 1,
        cluster: c.name.clone(),
        etcd_formed_with: c
            .etcd
            .members
            .iter()
            .map(|m| (m.name.to_string(), m.peer_url.clone()))
            .collect(),
        bootstrap_node: c.bootstrap_node.as_ref().map(|n| n.to_string()),
    }
}

impl ClusterState {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("state serializes");
        s.push('\n');
        s
    }
}
