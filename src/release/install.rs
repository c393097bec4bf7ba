//! For the build stage: the files each node's binaries install, as paths to verified bytes on disk.
//! Tarball members are extracted once into the cache (`extracted/<algorithm>-<digest>/`), so the
//! hundreds of MB of binaries are streamed from disk into layers and never held in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component as PathComponent, Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cache::{BlobState, Cache};
use super::catalog::{Format, Member};
use super::digest::{Algorithm, BUF_SIZE, hash_file};
use super::lock::{Lock, LockedArtifact, StaleLock, check_lock};
use super::need::node_needs;
use crate::model::Cluster;

/// Per node: each artifact it needs and the members it wants out of it.
type NodeNeeds<'a> = Vec<(String, Vec<(&'a LockedArtifact, BTreeSet<Member>)>)>;
/// Per member of an artifact: (install path, file in the cache) — several for a `*` member.
type MemberFiles = BTreeMap<Member, Vec<(String, PathBuf)>>;
/// One artifact prepared (by algorithm and digest), or why not.
type Prepared = Result<((Algorithm, String), MemberFiles), InstallError>;

/// One file a node gets from a release artifact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstallFile {
    /// Absolute path on the node.
    pub install: String,
    pub mode: u32,
    /// The verified bytes, in the cache.
    pub source: PathBuf,
    /// The program it belongs to (`model::Binary::name`).
    pub binary: String,
    /// The artifact it comes from (`name version (arch)`).
    pub artifact: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Stale(#[from] StaleLock),
    #[error("the kimage cache {} lacks {artifact} ({algorithm} {digest}); run `kimage fetch` to download it", cache.display())]
    Missing {
        cache: PathBuf,
        artifact: String,
        algorithm: Algorithm,
        digest: String,
    },
    /// Every artifact the cache lacks, named at once (not one per run).
    #[error(
        "the kimage cache {} lacks {} artifacts: {}; run `kimage fetch` to download them",
        cache.display(),
        artifacts.len(),
        artifacts.join(", ")
    )]
    MissingMany {
        cache: PathBuf,
        artifacts: Vec<String>,
    },
    #[error(
        "cache entry {} for {artifact} is corrupt (expected {algorithm} {expected}, got {actual}); it was moved to {}; run `kimage fetch` to download it again",
        path.display(), quarantined.display()
    )]
    Corrupt {
        path: PathBuf,
        artifact: String,
        algorithm: Algorithm,
        expected: String,
        actual: String,
        quarantined: PathBuf,
    },
    #[error(
        "{artifact}: the archive has no {member}; the catalog's member list does not fit this release"
    )]
    NoMember { artifact: String, member: String },
    #[error("{artifact}: {action} {}: {source}", path.display())]
    Io {
        artifact: String,
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Every node's release files (by node name, worker pools by `PoolModel::key`, each list sorted by
/// install path), after checking that the lock fits the profile and that every byte in the cache
/// still has its locked digest.
pub fn install_files(
    cluster: &Cluster,
    lock: &Lock,
    cache: &Cache,
) -> Result<BTreeMap<String, Vec<InstallFile>>, InstallError> {
    check_lock(cluster, lock)?;
    let per_node: NodeNeeds = cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str().to_string(), n))
        .chain(cluster.pools.iter().map(|p| (p.key(), &p.node)))
        .map(|(key, n)| {
            let needs = node_needs(cluster, n)
                .into_iter()
                .map(|(k, m)| (lock.artifact(&k).expect("check_lock saw every artifact"), m))
                .collect();
            (key, needs)
        })
        .collect();
    // Prepare each artifact once, for the members any node wants, in parallel.
    let mut wanted: BTreeMap<(Algorithm, String), (&LockedArtifact, BTreeSet<Member>)> =
        BTreeMap::new();
    for (_, needs) in &per_node {
        for (a, members) in needs {
            wanted
                .entry((a.algorithm, a.digest.clone()))
                .or_insert_with(|| (a, BTreeSet::new()))
                .1
                .extend(members.iter().cloned());
        }
    }
    let results: Vec<Prepared> = wanted
        .into_par_iter()
        .map(|(key, (a, members))| prepare(cache, a, &members).map(|m| (key, m)))
        .collect();
    // Every missing artifact in one message: a user fetching by hand should not meet them one by one.
    let mut missing: Vec<String> = results
        .iter()
        .filter_map(|r| match r {
            Err(InstallError::Missing { artifact, .. }) => Some(artifact.clone()),
            _ => None,
        })
        .collect();
    missing.sort();
    if missing.len() > 1 {
        return Err(InstallError::MissingMany {
            cache: cache.root().to_path_buf(),
            artifacts: missing,
        });
    }
    let prepared: Vec<((Algorithm, String), MemberFiles)> =
        results.into_iter().collect::<Result<_, _>>()?;
    let prepared: BTreeMap<_, _> = prepared.into_iter().collect();
    let mut out = BTreeMap::new();
    for (node, needs) in per_node {
        let mut files = Vec::new();
        for (a, members) in needs {
            let files_of = &prepared[&(a.algorithm, a.digest.clone())];
            for m in members {
                for (install, source) in &files_of[&m] {
                    files.push(InstallFile {
                        install: install.clone(),
                        mode: m.mode,
                        source: source.clone(),
                        binary: m.binary.clone(),
                        artifact: a.label(),
                    });
                }
            }
        }
        files.sort();
        out.insert(node, files);
    }
    Ok(out)
}

/// Verifies a blob in full; quarantines it when corrupt.
fn verified_blob(cache: &Cache, a: &LockedArtifact) -> Result<PathBuf, InstallError> {
    let path = cache.blob(a.algorithm, &a.digest);
    let io_err = |action, source| InstallError::Io {
        artifact: a.label(),
        action,
        path: path.clone(),
        source,
    };
    match cache
        .check_blob(a.algorithm, &a.digest)
        .map_err(|e| io_err("verifying", e))?
    {
        BlobState::Valid { .. } => Ok(path),
        BlobState::Missing => Err(InstallError::Missing {
            cache: cache.root().to_path_buf(),
            artifact: a.label(),
            algorithm: a.algorithm,
            digest: a.digest.clone(),
        }),
        BlobState::Corrupt { actual } => {
            let quarantined = cache
                .quarantine(&path, a.algorithm, &a.digest)
                .map_err(|e| io_err("quarantining", e))?;
            Err(InstallError::Corrupt {
                path,
                artifact: a.label(),
                algorithm: a.algorithm,
                expected: a.digest.clone(),
                actual,
                quarantined,
            })
        }
    }
}

/// The record of an extraction: every regular file the archive holds, and the sha256 of those extracted.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    entries: BTreeMap<String, IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    size: u64,
    mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

/// `./a/b` → `a/b`; `None` for absolute paths or `..` (never extracted).
fn clean_path(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            PathComponent::Normal(s) => parts.push(s.to_str()?.to_string()),
            PathComponent::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn glob_matches(dir: &str, path: &str, mode: u32) -> bool {
    let parent_ok = match path.rsplit_once('/') {
        Some((d, _)) => d == dir,
        None => dir.is_empty(),
    };
    parent_ok && mode & 0o111 != 0
}

fn member_wants(m: &Member, path: &str, mode: u32) -> bool {
    match m.glob_dir() {
        Some(dir) => glob_matches(dir, path, mode),
        None => m.path.as_deref() == Some(path),
    }
}

/// Files for each member of one artifact: (install path, cache path).
fn prepare(
    cache: &Cache,
    a: &LockedArtifact,
    members: &BTreeSet<Member>,
) -> Result<MemberFiles, InstallError> {
    if a.format == Format::File {
        let blob = verified_blob(cache, a)?;
        return Ok(members
            .iter()
            .map(|m| (m.clone(), vec![(m.install.clone(), blob.clone())]))
            .collect());
    }
    let dir = cache.extracted_dir(a.algorithm, &a.digest);
    let files_dir = dir.join("files");
    let index_path = dir.join("index.json");
    let io_err = |action, path: &Path, source| InstallError::Io {
        artifact: a.label(),
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut index: Option<Index> = fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());

    // Which extracted files are there and still verify; anything else forces an extraction pass.
    let usable = |index: &Index| -> Option<MemberFiles> {
        let mut out = BTreeMap::new();
        for m in members {
            let mut files = Vec::new();
            for (path, e) in index
                .entries
                .iter()
                .filter(|(p, e)| member_wants(m, p, e.mode))
            {
                let on_disk = files_dir.join(path);
                let digest = e.sha256.as_ref()?;
                match hash_file(Algorithm::Sha256, &on_disk) {
                    Ok((d, n)) if &d == digest && n == e.size => {}
                    _ => return None,
                }
                let install = match m.glob_dir() {
                    Some(_) => format!("{}{}", m.install, path.rsplit('/').next().unwrap_or(path)),
                    None => m.install.clone(),
                };
                files.push((install, on_disk));
            }
            if files.is_empty() {
                return None;
            }
            out.insert(m.clone(), files);
        }
        Some(out)
    };
    if let Some(ix) = &index
        && let Some(out) = usable(ix)
    {
        return Ok(out);
    }

    // Extract from the (re-verified) blob every wanted member, recording the archive's listing.
    let blob = verified_blob(cache, a)?;
    let mut ix = index.take().unwrap_or_default();
    let file = File::open(&blob).map_err(|e| io_err("opening", &blob, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        io::BufReader::with_capacity(BUF_SIZE, file),
    ));
    let entries = archive.entries().map_err(|e| io_err("reading", &blob, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_err("reading", &blob, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry
            .path()
            .map_err(|e| io_err("reading", &blob, e))?
            .into_owned();
        let Some(path) = clean_path(&raw) else {
            continue;
        };
        let mode = entry.header().mode().unwrap_or(0o644);
        let size = entry.size();
        let wanted = members.iter().any(|m| member_wants(m, &path, mode));
        let mut rec = IndexEntry {
            size,
            mode,
            sha256: None,
        };
        if wanted {
            let target = files_dir.join(&path);
            let parent = target.parent().expect("joined path has a parent");
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
            let mut tmp = tempfile::NamedTempFile::new_in(parent)
                .map_err(|e| io_err("creating", parent, e))?;
            let mut h = Algorithm::Sha256.hasher();
            let mut buf = vec![0u8; BUF_SIZE];
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(|e| io_err("extracting from", &blob, e))?;
                if n == 0 {
                    break;
                }
                tmp.write_all(&buf[..n])
                    .map_err(|e| io_err("writing", &target, e))?;
                h.update(&buf[..n]);
            }
            tmp.persist(&target)
                .map_err(|e| io_err("writing", &target, e.error))?;
            rec.sha256 = Some(h.finish());
        } else if let Some(prev) = ix.entries.get(&path) {
            rec.sha256 = prev.sha256.clone();
        }
        ix.entries.insert(path, rec);
    }
    let bytes = serde_json::to_vec_pretty(&ix).expect("index serializes");
    super::lock::write_atomic(&index_path, &bytes)
        .map_err(|e| io_err("writing", &index_path, e))?;
    match usable(&ix) {
        Some(out) => Ok(out),
        None => {
            let missing = members
                .iter()
                .find(|m| !ix.entries.iter().any(|(p, e)| member_wants(m, p, e.mode)))
                .map(|m| m.path.clone().unwrap_or_default())
                .unwrap_or_else(|| "verifiable copy of a member".to_string());
            Err(InstallError::NoMember {
                artifact: a.label(),
                member: missing,
            })
        }
    }
}
