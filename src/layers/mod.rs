//! Deterministic, content-addressed tar.gz layers.
//!
//! A layer is a set of entries (files, directories, symlinks) with absolute node paths, explicit modes and
//! numeric owners. [`LayerBuilder`] turns them into a GNU-format tar (sorted per directory like
//! `tar --sort=name`, one fixed mtime, no atime/ctime, no user/group names unless given) compressed by
//! pigz-style parallel deflate into a single gzip member with a fixed header. The same entries give the same
//! bytes whatever the insertion order, thread count or machine; the layer's id is the sha256 of those bytes.
//!
//! ```no_run
//! use kimage::layers::LayerBuilder;
//! let mut b = LayerBuilder::new(1_700_000_000);
//! b.file("/etc/hosts", 0o644, "127.0.0.1 localhost\n")
//!     .file_from("/usr/local/bin/etcd", 0o755, "/var/cache/etcd")
//!     .dir("/var/lib/etcd", 0o700);
//! let stored = b.write_into_dir("out/layers".as_ref())?; // out/layers/<sha256>.tar.gz
//! println!("{} {}", stored.info.sha256, stored.info.bytes);
//! # Ok::<(), kimage::layers::LayerError>(())
//! ```

mod extract;
pub mod pgzip;
mod tar;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use extract::{ExtractOptions, ExtractSummary, extract, extract_with, verify};

/// Mode of the parent directories that nobody declared.
pub const IMPLICIT_DIR_MODE: u32 = 0o755;
/// Default deflate level (gzip's and pigz's default).
pub const DEFAULT_LEVEL: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer entry {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("layer entry {path}: declared twice")]
    Duplicate { path: String },
    #[error("layer entry {path}: parent {parent} is not a directory in this layer")]
    ParentNotDirectory { path: String, parent: String },
    #[error("layer entry {path}: owner name {name:?} is longer than the 31 bytes tar can hold")]
    OwnerName { path: String, name: String },
    #[error("layer entry {path}: mode {mode:#o} has bits outside 0o7777")]
    InvalidMode { path: String, mode: u32 },
    #[error("layer entry {path}: reading source {}: {source}", file.display())]
    Source {
        path: String,
        file: PathBuf,
        source: io::Error,
    },
    #[error("layer entry {path}: source {} is not a regular file", file.display())]
    NotRegularFile { path: String, file: PathBuf },
    #[error("{action}: {source}")]
    Io { action: String, source: io::Error },
    #[error("layer {}: sha256 is {actual}, expected {expected}; the file is corrupt or not this layer", file.display())]
    DigestMismatch {
        file: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("layer {}: entry {entry:?}: {reason}", file.display())]
    UnsafeEntry {
        file: PathBuf,
        entry: String,
        reason: String,
    },
}

fn io_err(action: impl Into<String>) -> impl FnOnce(io::Error) -> LayerError {
    let action = action.into();
    move |source| LayerError::Io { action, source }
}

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// Bytes many entries share (a file rendered once for every node of a role).
    Shared(Blob),
    /// Streamed from disk while the layer is built (large binaries are never loaded whole).
    Path(PathBuf),
}

impl Content {
    /// The bytes, unless they stream from a file.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Content::Bytes(b) => Some(b),
            Content::Shared(b) => Some(b),
            Content::Path(_) => None,
        }
    }
}

/// Immutable bytes behind a shared pointer, with their sha256 computed once: a file rendered once
/// and placed on 10,000 nodes is neither copied nor rehashed per node when layers are compared.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    bytes: std::sync::Arc<[u8]>,
    sha256: [u8; 32],
}

impl Blob {
    pub fn new(bytes: impl Into<std::sync::Arc<[u8]>>) -> Blob {
        let bytes = bytes.into();
        let sha256 = Sha256::digest(&bytes).into();
        Blob { bytes, sha256 }
    }
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }
}

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Blob({} bytes, sha256 {})",
            self.bytes.len(),
            hex::encode(self.sha256)
        )
    }
}

impl From<Blob> for Content {
    fn from(b: Blob) -> Self {
        Content::Shared(b)
    }
}

impl From<Vec<u8>> for Content {
    fn from(v: Vec<u8>) -> Self {
        Content::Bytes(v)
    }
}
impl From<&[u8]> for Content {
    fn from(v: &[u8]) -> Self {
        Content::Bytes(v.to_vec())
    }
}
impl From<String> for Content {
    fn from(v: String) -> Self {
        Content::Bytes(v.into_bytes())
    }
}
impl From<&str> for Content {
    fn from(v: &str) -> Self {
        Content::Bytes(v.as_bytes().to_vec())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File(Content),
    Directory,
    /// Stored verbatim (absolute targets are fine: they point into the node's filesystem).
    Symlink(String),
}

/// One declared entry. `path` is absolute on the node (`/etc/hosts`); it is stored as `etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (≤ 0o7777). Ignored for symlinks (stored as 0o777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Optional names; empty means numeric only (what the node resolves is then its own business).
    pub uname: String,
    pub gname: String,
}

impl Entry {
    pub fn file(path: impl Into<String>, mode: u32, content: impl Into<Content>) -> Self {
        Self::new(path.into(), mode, EntryKind::File(content.into()))
    }
    pub fn dir(path: impl Into<String>, mode: u32) -> Self {
        Self::new(path.into(), mode, EntryKind::Directory)
    }
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Self::new(path.into(), 0o777, EntryKind::Symlink(target.into()))
    }
    fn new(path: String, mode: u32, kind: EntryKind) -> Self {
        Entry {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: String::new(),
            gname: String::new(),
        }
    }
    /// Numeric owner (default 0/0).
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    /// Owner names recorded beside the numbers (at most 31 bytes each).
    pub fn names(mut self, uname: impl Into<String>, gname: impl Into<String>) -> Self {
        self.uname = uname.into();
        self.gname = gname.into();
        self
    }
}

/// Sizes and digest of a built layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Lowercase hex sha256 of the .tar.gz bytes: the layer's id.
    pub sha256: String,
    /// Length of the .tar.gz.
    pub bytes: u64,
    /// Length of the uncompressed tar.
    pub tar_bytes: u64,
}

impl LayerInfo {
    /// `<sha256>.tar.gz`, the layer's name in `out/layers/` and on the seed.
    pub fn file_name(&self) -> String {
        format!("{}.tar.gz", self.sha256)
    }
}

/// A layer written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayer {
    pub info: LayerInfo,
    pub path: PathBuf,
}

/// What the tar writer needs of an entry once the tree is complete (borrowing contents from the builder).
#[derive(Debug)]
struct ResolvedEntry<'a> {
    /// Relative path, no leading or trailing slash.
    path: String,
    kind: &'a EntryKind,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: &'a str,
    gname: &'a str,
    /// For files: content length (stat'ed once for files on disk).
    size: u64,
}

static IMPLICIT_DIR: Entry = Entry {
    path: String::new(),
    kind: EntryKind::Directory,
    mode: IMPLICIT_DIR_MODE,
    uid: 0,
    gid: 0,
    uname: String::new(),
    gname: String::new(),
};

impl ResolvedEntry<'_> {
    fn source_name(&self) -> String {
        match self.kind {
            EntryKind::File(Content::Path(p)) => format!("/{} (from {})", self.path, p.display()),
            _ => format!("/{}", self.path),
        }
    }
}

/// Checks an absolute node path and returns its components.
fn components(path: &str) -> Result<Vec<&str>, LayerError> {
    let bad = |reason| LayerError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| bad("must be an absolute path on the node (start with /)"))?;
    if rest.is_empty() {
        return Err(bad("the root directory cannot be an entry"));
    }
    if path.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    for p in &parts {
        match *p {
            "" => return Err(bad("has an empty component (double or trailing slash)")),
            "." | ".." => return Err(bad("has a . or .. component")),
            _ => {}
        }
    }
    Ok(parts)
}

/// Collects entries and writes them as one deterministic layer.
#[derive(Debug, Clone)]
pub struct LayerBuilder {
    mtime: u64,
    level: u32,
    entries: Vec<Entry>,
}

impl LayerBuilder {
    /// A builder whose entries all get `mtime` (seconds since the epoch; `SOURCE_DATE_EPOCH` when set,
    /// see [`crate::settings::Settings`]).
    pub fn new(mtime: u64) -> Self {
        LayerBuilder {
            mtime,
            level: DEFAULT_LEVEL,
            entries: Vec::new(),
        }
    }

    /// Deflate level 0–9 (default 6).
    pub fn level(&mut self, level: u32) -> &mut Self {
        self.level = level.min(9);
        self
    }

    pub fn mtime(&self) -> u64 {
        self.mtime
    }

    /// Adds any entry. Problems (bad paths, duplicates) are reported when the layer is built.
    pub fn entry(&mut self, e: Entry) -> &mut Self {
        self.entries.push(e);
        self
    }

    pub fn file(&mut self, path: &str, mode: u32, content: impl Into<Content>) -> &mut Self {
        self.entry(Entry::file(path, mode, content))
    }

    /// A file whose bytes are streamed from `source` on the build machine.
    pub fn file_from(&mut self, path: &str, mode: u32, source: impl Into<PathBuf>) -> &mut Self {
        self.entry(Entry::file(path, mode, Content::Path(source.into())))
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entry(Entry::dir(path, mode))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(Entry::symlink(path, target))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks every entry, adds the implicit parents and orders the tree (per directory, by name bytes).
    fn resolve(&self) -> Result<Vec<ResolvedEntry<'_>>, LayerError> {
        // Keyed by components so a directory's subtree directly follows it, as with `tar --sort=name`.
        let mut tree: BTreeMap<Vec<&str>, (&Entry, u64)> = BTreeMap::new();
        for e in &self.entries {
            let parts = components(&e.path)?;
            if e.mode > 0o7777 {
                return Err(LayerError::InvalidMode {
                    path: e.path.clone(),
                    mode: e.mode,
                });
            }
            if let EntryKind::Symlink(t) = &e.kind
                && (t.is_empty() || t.contains('\0'))
            {
                return Err(LayerError::InvalidPath {
                    path: e.path.clone(),
                    reason: "symlink target is empty or has NUL",
                });
            }
            let size = match &e.kind {
                EntryKind::File(Content::Bytes(b)) => b.len() as u64,
                EntryKind::File(Content::Shared(b)) => b.len() as u64,
                EntryKind::File(Content::Path(p)) => {
                    let m = fs::metadata(p).map_err(|source| LayerError::Source {
                        path: e.path.clone(),
                        file: p.clone(),
                        source,
                    })?;
                    if !m.is_file() {
                        return Err(LayerError::NotRegularFile {
                            path: e.path.clone(),
                            file: p.clone(),
                        });
                    }
                    m.len()
                }
                _ => 0,
            };
            if tree.insert(parts, (e, size)).is_some() {
                return Err(LayerError::Duplicate {
                    path: e.path.clone(),
                });
            }
        }
        let mut implicit: BTreeMap<Vec<&str>, ()> = BTreeMap::new();
        for (parts, (e, _)) in &tree {
            for n in 1..parts.len() {
                let parent = &parts[..n];
                match tree.get(parent) {
                    Some((p, _)) if p.kind != EntryKind::Directory => {
                        return Err(LayerError::ParentNotDirectory {
                            path: e.path.clone(),
                            parent: format!("/{}", parent.join("/")),
                        });
                    }
                    Some(_) => {}
                    None => {
                        implicit.insert(parent.to_vec(), ());
                    }
                }
            }
        }
        let mut all: BTreeMap<Vec<&str>, (&Entry, u64)> = tree;
        for k in implicit.into_keys() {
            all.insert(k, (&IMPLICIT_DIR, 0));
        }
        Ok(all
            .into_iter()
            .map(|(parts, (e, size))| ResolvedEntry {
                path: parts.join("/"),
                kind: &e.kind,
                mode: if matches!(e.kind, EntryKind::Symlink(_)) {
                    0o777
                } else {
                    e.mode
                },
                uid: e.uid,
                gid: e.gid,
                uname: &e.uname,
                gname: &e.gname,
                size,
            })
            .collect())
    }

    /// Writes the uncompressed tar (for inspection and tests). Returns its length.
    pub fn write_tar<W: Write>(&self, mut w: W) -> Result<u64, LayerError> {
        let entries = self.resolve()?;
        let mut stream = tar::TarStream::new(&entries, self.mtime);
        io::copy(&mut stream, &mut w).map_err(io_err("writing tar stream"))
    }

    /// Builds the layer into `w` (the .tar.gz bytes) and returns its digest and sizes. Compression runs on
    /// the current rayon pool.
    pub fn build_to<W: Write + Send>(&self, w: W) -> Result<LayerInfo, LayerError> {
        let entries = self.resolve()?;
        let stream = tar::TarStream::new(&entries, self.mtime);
        let mut hw = HashingWriter {
            inner: w,
            sha: Sha256::new(),
            bytes: 0,
        };
        let tar_bytes =
            pgzip::compress(stream, self.level, &mut hw).map_err(io_err("building layer"))?;
        Ok(LayerInfo {
            sha256: hex::encode(hw.sha.finalize()),
            bytes: hw.bytes,
            tar_bytes,
        })
    }

    /// The digest and sizes only (compresses into a hashing sink, writes nothing).
    pub fn digest(&self) -> Result<LayerInfo, LayerError> {
        self.build_to(io::sink())
    }

    /// Writes `dir/<sha256>.tar.gz` atomically (temp file, fsync, rename, fsync dir), compressing once.
    pub fn write_into_dir(&self, dir: &Path) -> Result<StoredLayer, LayerError> {
        fs::create_dir_all(dir).map_err(io_err(format!(
            "creating layer directory {}",
            dir.display()
        )))?;
        let tmp = tempfile::Builder::new()
            .prefix(".layer-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io_err(format!("creating temp file in {}", dir.display())))?;
        let info = {
            let w = io::BufWriter::with_capacity(1 << 20, tmp.as_file());
            self.build_to(w)?
        };
        tmp.as_file()
            .sync_all()
            .map_err(io_err(format!("syncing {}", tmp.path().display())))?;
        let path = dir.join(info.file_name());
        set_mode(tmp.path(), 0o644)
            .map_err(io_err(format!("setting mode of {}", tmp.path().display())))?;
        tmp.persist(&path).map_err(|e| LayerError::Io {
            action: format!("renaming into {}", path.display()),
            source: e.error,
        })?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(format!("syncing directory {}", dir.display())))?;
        Ok(StoredLayer { info, path })
    }
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

/// Passes bytes through while hashing and counting them.
pub(crate) struct HashingWriter<W> {
    pub(crate) inner: W,
    pub(crate) sha: Sha256,
    pub(crate) bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a file through sha256; returns (hex digest, length).
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = io::Read::read(&mut f, &mut buf)?;
        if k == 0 {
            break;
        }
        sha.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(sha.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_paths_and_conflicts() {
        for p in [
            "etc/hosts",
            "/",
            "/etc//hosts",
            "/etc/../x",
            "/etc/./x",
            "/etc/",
        ] {
            let mut b = LayerBuilder::new(0);
            b.file(p, 0o644, "x");
            assert!(
                matches!(b.digest(), Err(LayerError::InvalidPath { .. })),
                "{p}"
            );
        }
        let mut b = LayerBuilder::new(0);
        b.file("/etc/hosts", 0o644, "x")
            .file("/etc/hosts", 0o600, "y");
        assert!(matches!(b.digest(), Err(LayerError::Duplicate { .. })));
        let mut b = LayerBuilder::new(0);
        b.file("/etc", 0o644, "x").file("/etc/hosts", 0o600, "y");
        assert!(matches!(
            b.digest(),
            Err(LayerError::ParentNotDirectory { .. })
        ));
        let mut b = LayerBuilder::new(0);
        b.file("/etc/x", 0o10644, "x");
        assert!(matches!(b.digest(), Err(LayerError::InvalidMode { .. })));
    }

    #[test]
    fn order_is_per_directory_and_parents_are_implicit() {
        let mut b = LayerBuilder::new(0);
        b.file("/a-c", 0o644, "1")
            .file("/a/b", 0o644, "2")
            .dir("/a", 0o700);
        let r = b.resolve().unwrap();
        let names: Vec<_> = r.iter().map(|e| (e.path.as_str(), e.mode)).collect();
        assert_eq!(names, vec![("a", 0o700), ("a/b", 0o644), ("a-c", 0o644)]);
    }
}
