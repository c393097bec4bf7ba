//! `kimage.lock`: every release artifact the profile's nodes need, pinned by URL and digest, with where
//! each digest came from. TOML: each artifact is an `[[artifact]]` table with one key per line, so a
//! version bump diffs as a few changed lines; every string is quoted, so no value changes type on a
//! hand edit; the order is fixed by sorting, so the same profile gives the same bytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::{CATALOG, Format, Member, file_name};
use super::checksums::find_digest;
use super::digest::Algorithm;
use super::need::{ArtifactKey, cluster_needs, fingerprint};
use super::net::{Net, NetError, RetryPolicy, via_mirror};
use crate::model::Cluster;
use crate::profile::{Arch, KubernetesFrom, Version};

pub const LOCK_FILE: &str = "kimage.lock";
/// Format version of the lock file.
pub const LOCK_VERSION: u32 = 1;

const HEADER: &str = "\
# kimage.lock: the release artifacts this cluster's nodes run, pinned by URL and digest.
# Written by `kimage lock`; `kimage fetch` downloads exactly these and uses nothing whose digest differs.
# Regenerate it with `kimage lock` instead of editing it.
";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    pub version: u32,
    pub resolved_for: ResolvedFor,
    #[serde(rename = "artifact", default)]
    pub artifacts: Vec<LockedArtifact>,
    /// Container images (the profile's `images`), by reference.
    #[serde(rename = "image", default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<crate::images::LockedImage>,
}

/// What the lock was resolved for, readable, plus a fingerprint of the exact artifact and member set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ResolvedFor {
    pub arch: Arch,
    pub kubernetes_from: KubernetesFrom,
    /// Every binary some node runs (`model::Binary::name`), sorted.
    pub binaries: Vec<String>,
    pub fingerprint: String,
    /// Component → version, for the components some node needs.
    pub versions: BTreeMap<String, Version>,
    /// Every container image reference the nodes get (`images`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedArtifact {
    /// The upstream file name.
    pub name: String,
    /// The catalog kind (`kubelet`, `etcd`, `kubernetes-server`, ...).
    pub kind: String,
    pub version: Version,
    pub arch: Arch,
    /// The upstream URL (a mirror, when used, keeps its path).
    pub url: String,
    pub algorithm: Algorithm,
    pub digest: String,
    /// Where the digest came from: a catalog entry and the file it was copied from, or the checksum URL read.
    pub source: String,
    pub format: Format,
    /// The files that come out of it and where they install, sorted by install path.
    #[serde(rename = "member")]
    pub members: Vec<Member>,
}

impl LockedArtifact {
    pub fn key(&self) -> ArtifactKey {
        ArtifactKey {
            kind: self.kind.clone(),
            version: self.version.clone(),
            arch: self.arch,
        }
    }

    /// `name version (arch)` for messages.
    pub fn label(&self) -> String {
        format!("{} {} ({})", self.name, self.version, self.arch.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockFileError {
    #[error("reading {}: {source}; run `kimage lock` to create it", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {}: {message}; run `kimage lock` to write it again", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The body no longer matches the seal `kimage lock` wrote under it.
    #[error("{}: {what} since `kimage lock` wrote it; a lock is not edited by hand: restore it (git checkout) or run `kimage lock` to resolve it again", path.display())]
    Edited { path: PathBuf, what: String },
}

/// The last line of a lock: a digest of each block of its body (blocks are separated by blank lines),
/// so that an edit is found and its lines named.
const SEAL_PREFIX: &str = "# sealed: ";

/// The body's blocks with the line each starts on (1-based, counted in the whole file).
fn blocks(body: &str, first_line: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut line = first_line;
    for b in body.split("\n\n") {
        if !b.trim().is_empty() {
            let lead = b.len() - b.trim_start_matches('\n').len();
            out.push((line + lead, b.trim_matches('\n')));
        }
        line += b.matches('\n').count() + 2;
    }
    out
}

fn block_digest(block: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(block.as_bytes())[..8])
}

/// Checks the seal of a lock's text; a lock without one (written before seals) passes.
fn check_seal(text: &str, path: &Path) -> Result<(), LockFileError> {
    let Some(at) = text.rfind(SEAL_PREFIX) else {
        return Ok(());
    };
    let edited = |what: String| LockFileError::Edited {
        path: path.to_path_buf(),
        what,
    };
    let seal: Vec<&str> = text[at + SEAL_PREFIX.len()..].split_whitespace().collect();
    let body_start = text.find(HEADER).map_or(0, |i| i + HEADER.len());
    let first_line = text[..body_start].matches('\n').count() + 1;
    let got = blocks(&text[body_start.min(at)..at], first_line);
    for (i, (line, block)) in got.iter().enumerate() {
        match seal.get(i) {
            Some(d) if *d == block_digest(block) => {}
            _ => {
                let end = line + block.matches('\n').count();
                let name = block
                    .lines()
                    .find_map(|l| l.strip_prefix("name = "))
                    .map(|n| format!(" ({})", n.trim_matches('"')))
                    .unwrap_or_default();
                return Err(edited(format!("lines {line}-{end}{name} changed")));
            }
        }
    }
    if seal.len() != got.len() {
        return Err(edited(format!(
            "it has {} blocks, {} were written",
            got.len(),
            seal.len()
        )));
    }
    Ok(())
}

/// The profile's release artifacts differ from what the lock pins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct StaleLock {
    pub reasons: Vec<String>,
}

impl fmt::Display for StaleLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{LOCK_FILE} does not match the profile ({}); run `kimage lock` to resolve the release artifacts again",
            self.reasons.join("; ")
        )
    }
}

/// Resolution problems, all of them.
#[derive(Debug, thiserror::Error)]
#[error("resolving release artifacts:\n  {}", problems.join("\n  "))]
pub struct ResolveError {
    pub problems: Vec<String>,
}

impl Lock {
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a lock always serializes");
        let text = format!("{HEADER}\n{body}");
        let digests: Vec<String> = blocks(&text[HEADER.len()..], 0)
            .iter()
            .map(|(_, b)| block_digest(b))
            .collect();
        format!("{text}\n{SEAL_PREFIX}{}\n", digests.join(" "))
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Lock, LockFileError> {
        let parse = |message: String| LockFileError::Parse {
            path: path.to_path_buf(),
            message,
        };
        check_seal(text, path)?;
        let lock: Lock =
            toml::from_str(text).map_err(|e| parse(e.to_string().trim().to_string()))?;
        if lock.version != LOCK_VERSION {
            return Err(parse(format!(
                "lock format version {} is not {LOCK_VERSION}",
                lock.version
            )));
        }
        for i in &lock.images {
            let hex = i.digest.strip_prefix("sha256:").unwrap_or("");
            let index_ok = i.index.is_empty()
                || i.index
                    .strip_prefix("sha256:")
                    .is_some_and(|h| Algorithm::Sha256.is_digest(h));
            if !Algorithm::Sha256.is_digest(hex) || !index_ok || i.size.parse::<u64>().is_err() {
                return Err(parse(format!(
                    "{}: digest, index or size is not what `kimage lock` writes (sha256:<64 lowercase hex>, a byte count)",
                    i.label()
                )));
            }
        }
        for a in &lock.artifacts {
            if !a.algorithm.is_digest(&a.digest) {
                return Err(parse(format!(
                    "{}: `{}` is not a lowercase-hex {} digest",
                    a.label(),
                    a.digest,
                    a.algorithm
                )));
            }
        }
        Ok(lock)
    }

    pub fn read(path: &Path) -> Result<Lock, LockFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Lock::from_toml(&text, path)
    }

    /// Writes atomically: temp file, fsync, rename, fsync the directory.
    pub fn write(&self, path: &Path) -> Result<(), LockFileError> {
        write_atomic(path, self.to_toml().as_bytes()).map_err(|source| LockFileError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn artifact(&self, key: &ArtifactKey) -> Option<&LockedArtifact> {
        self.artifacts
            .iter()
            .find(|a| a.kind == key.kind && a.version == key.version && a.arch == key.arch)
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".kimage-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Whether the lock pins exactly what the profile's nodes need. The error says what differs and to run
/// `kimage lock`.
pub fn check_lock(cluster: &Cluster, lock: &Lock) -> Result<(), StaleLock> {
    let needs = cluster_needs(cluster);
    let mut reasons = Vec::new();
    // Kinds whose version or arch differs are reported once, not again as "no node needs" leftovers.
    let mut changed = std::collections::BTreeSet::new();
    for (key, members) in &needs {
        match lock.artifact(key) {
            Some(a) => {
                for m in members.iter().filter(|m| !a.members.contains(m)) {
                    reasons.push(format!("it takes no {} out of {key}", m.install));
                }
            }
            None => match lock.artifacts.iter().find(|a| a.kind == key.kind) {
                Some(a) if a.arch == key.arch => {
                    changed.insert(a.kind.clone());
                    reasons.push(format!(
                        "the profile wants {} {}, the lock pins {}",
                        key.kind, key.version, a.version
                    ));
                }
                Some(a) => {
                    changed.insert(a.kind.clone());
                    reasons.push(format!(
                        "the profile wants {} for {}, the lock pins it for {}",
                        key.kind,
                        key.arch.as_str(),
                        a.arch.as_str()
                    ));
                }
                None => reasons.push(format!("the lock has no {key}")),
            },
        }
    }
    for a in &lock.artifacts {
        let key = a.key();
        if !needs.contains_key(&key) && !changed.contains(&a.kind) {
            reasons.push(format!("the lock pins {key}, which no node needs"));
        }
    }
    let arch = cluster.binaries.arch;
    let wanted: Vec<&crate::profile::ImageRef> = cluster
        .images
        .iter()
        .flat_map(|i| i.needed.values().map(|n| &n.reference))
        .collect();
    for r in &wanted {
        match lock.images.iter().find(|l| l.reference == **r) {
            Some(l) if l.arch != arch => reasons.push(format!(
                "the profile wants image {r} for {}, the lock pins it for {}",
                arch.as_str(),
                l.arch.as_str()
            )),
            Some(_) => {}
            None => reasons.push(format!("the lock pins no image {r}")),
        }
    }
    for l in &lock.images {
        if !wanted.contains(&&l.reference) {
            reasons.push(format!(
                "the lock pins image {}, which no node needs",
                l.reference
            ));
        }
    }
    if reasons.is_empty() && lock.resolved_for.fingerprint != fingerprint(&needs) {
        reasons.push("its fingerprint differs from the profile's artifact set".to_string());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(StaleLock { reasons })
    }
}

/// How `resolve_lock` may find digests that are not in the catalog.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// Never use the network: only the catalog and the previous lock.
    pub offline: bool,
    /// Read checksum files through this mirror (base URL keeping the upstream paths).
    pub mirror: Option<String>,
    /// The lock being replaced: its online-resolved entries are reused (offline) unless `refresh`.
    pub previous: Option<Lock>,
    pub refresh: bool,
    pub retry: RetryPolicy,
    /// Read image manifests through this registry mirror instead of `images.mirror`.
    pub image_mirror: Option<String>,
    /// Take every digest from the mirror's checksum files, also for releases the catalog pins: the
    /// mirror serves a site's own builds of those versions, whose bytes are not upstream's.
    pub mirror_checksums: bool,
}

/// Resolves every artifact the cluster needs: catalog first, then the previous lock, then upstream's
/// checksum files (online, through the mirror when given).
pub fn resolve_lock(cluster: &Cluster, opts: &ResolveOptions) -> Result<Lock, ResolveError> {
    let needs = cluster_needs(cluster);
    let mut online = Online {
        net: None,
        texts: HashMap::new(),
        opts,
    };
    let mut problems = Vec::new();
    let mut artifacts = Vec::new();
    let mut versions = BTreeMap::new();
    for (key, members) in &needs {
        let kind = CATALOG.kind(&key.kind).expect("needs name catalog kinds");
        versions.insert(kind.component.as_str().to_string(), key.version.clone());
        let url = kind.url_for(&key.version, key.arch);
        let previous = opts
            .previous
            .as_ref()
            .and_then(|l| l.artifact(key))
            .filter(|p| !opts.refresh && p.url == url && p.algorithm == kind.algorithm);
        let catalogued = CATALOG
            .release(&key.kind, &key.version, key.arch)
            .filter(|_| !opts.mirror_checksums);
        let (digest, source) = if let Some(r) = catalogued {
            (r.digest().1.to_string(), CATALOG.provenance(r))
        } else if let Some(p) = previous {
            (p.digest.clone(), p.source.clone())
        } else {
            let checksum_url = kind.checksum_url_for(&key.version, key.arch);
            if opts.offline {
                problems.push(format!(
                    "{key}: not in the built-in catalog; run `kimage lock` without --offline (with binaries.mirror on \
                     an air-gapped site) to read its digest from {checksum_url}"
                ));
                continue;
            }
            match online.digest(
                &checksum_url,
                kind.checksum.format,
                file_name(&url),
                &key.version,
                kind.algorithm,
            ) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("{key}: {e}"));
                    continue;
                }
            }
        };
        let mut members: Vec<Member> = members.iter().cloned().collect();
        members.sort_by(|a, b| a.install.cmp(&b.install).then(a.cmp(b)));
        artifacts.push(LockedArtifact {
            name: file_name(&url).to_string(),
            kind: key.kind.clone(),
            version: key.version.clone(),
            arch: key.arch,
            url,
            algorithm: kind.algorithm,
            digest,
            source,
            format: kind.format,
            members,
        });
    }
    let no_images = Vec::new();
    let images = crate::images::resolve(
        cluster,
        &crate::images::ResolveImages {
            offline: opts.offline,
            refresh: opts.refresh,
            mirror: opts.image_mirror.clone(),
            previous: opts.previous.as_ref().map_or(&no_images, |l| &l.images),
            retry: opts.retry,
        },
    )
    .unwrap_or_else(|p| {
        problems.extend(p);
        Vec::new()
    });
    if !problems.is_empty() {
        return Err(ResolveError { problems });
    }
    artifacts.sort_by(|a, b| {
        (&a.name, &a.version, a.arch, &a.kind).cmp(&(&b.name, &b.version, b.arch, &b.kind))
    });
    let mut binaries: Vec<String> = cluster
        .nodes
        .iter()
        .flat_map(|n| n.binaries.iter().map(|b| b.name().to_string()))
        .collect();
    binaries.sort();
    binaries.dedup();
    Ok(Lock {
        version: LOCK_VERSION,
        resolved_for: ResolvedFor {
            arch: cluster.binaries.arch,
            kubernetes_from: cluster.binaries.kubernetes_from,
            binaries,
            fingerprint: fingerprint(&needs),
            versions,
            images: images.iter().map(|i| i.reference.to_string()).collect(),
        },
        artifacts,
        images,
    })
}

/// Online lookups of one `resolve_lock` run; each checksum file is read once (SHA256SUMS, the CHANGELOG
/// and cfssl's list serve several artifacts).
struct Online<'a> {
    net: Option<Net>,
    texts: HashMap<String, Result<String, String>>,
    opts: &'a ResolveOptions,
}

impl Online<'_> {
    fn digest(
        &mut self,
        checksum_url: &str,
        format: super::catalog::ChecksumFormat,
        file: &str,
        version: &Version,
        algorithm: Algorithm,
    ) -> Result<(String, String), String> {
        let mirror = self.opts.mirror.as_deref();
        let fetch_url = via_mirror(checksum_url, mirror);
        if self.net.is_none() {
            self.net = Some(Net::new(self.opts.retry).map_err(|e| e.to_string())?);
        }
        let net = self.net.as_ref().expect("set above");
        let text = self
            .texts
            .entry(fetch_url.clone())
            .or_insert_with(|| {
                net.get_text(&fetch_url, "a checksum file", format.max_bytes())
                    .map_err(|e: NetError| e.to_string())
            })
            .clone()
            .map_err(|e| format!("reading its checksum file: {e}"))?;
        let digest = find_digest(format, &text, file, version, algorithm)
            .map_err(|e| format!("in {fetch_url}: {e}"))?;
        let source = match mirror {
            Some(m) => format!("{checksum_url} (read through mirror {m})"),
            None => checksum_url.to_string(),
        };
        Ok((digest, source))
    }
}
