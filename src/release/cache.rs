//! The content-addressed download cache:
//!
//! ```text
//! <cache>/blobs/<algorithm>/<digest>       verified artifacts, read-only, named by their digest
//! <cache>/tmp/<algorithm>-<digest>.partial downloads in progress (resumable); never served
//! <cache>/quarantine/<algorithm>-<digest>  the last file that failed verification, for inspection
//! <cache>/extracted/<algorithm>-<digest>/  tarball members (files/…) and their index.json
//! ```
//!
//! A blob is only ever created by renaming a fully verified file into place, so a path under `blobs/`
//! holds the right bytes unless something changed it afterwards; every reuse re-hashes it in full to catch
//! that (a few hundred MB hash in well under a second, see ci/bench/release.sh).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::digest::{Algorithm, hash_file};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache directory: set KIMAGE_CACHE, XDG_CACHE_HOME or HOME")]
    NoLocation,
    #[error("creating cache directory {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
}

/// The cache directory the settings resolved (`None`: no place for one: `CacheError::NoLocation`).
pub fn cache_dir(resolved: Option<&Path>) -> Result<PathBuf, CacheError> {
    resolved
        .map(Path::to_path_buf)
        .ok_or(CacheError::NoLocation)
}

/// State of a cache entry after re-hashing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobState {
    Missing,
    Valid { bytes: u64 },
    Corrupt { actual: String },
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob(&self, algorithm: Algorithm, digest: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(algorithm.as_str())
            .join(digest)
    }

    pub fn partial(&self, algorithm: Algorithm, digest: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{algorithm}-{digest}.partial"))
    }

    pub fn quarantine_path(&self, algorithm: Algorithm, digest: &str) -> PathBuf {
        self.root
            .join("quarantine")
            .join(format!("{algorithm}-{digest}"))
    }

    pub fn extracted_dir(&self, algorithm: Algorithm, digest: &str) -> PathBuf {
        self.root
            .join("extracted")
            .join(format!("{algorithm}-{digest}"))
    }

    /// Re-hashes a blob in full.
    pub fn check_blob(&self, algorithm: Algorithm, digest: &str) -> io::Result<BlobState> {
        let path = self.blob(algorithm, digest);
        match hash_file(algorithm, &path) {
            Ok((actual, bytes)) if actual == digest => Ok(BlobState::Valid { bytes }),
            Ok((actual, _)) => Ok(BlobState::Corrupt { actual }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BlobState::Missing),
            Err(e) => Err(e),
        }
    }

    /// Moves a file that failed verification out of the way (replacing an older quarantined copy).
    pub fn quarantine(
        &self,
        from: &Path,
        algorithm: Algorithm,
        digest: &str,
    ) -> io::Result<PathBuf> {
        let to = self.quarantine_path(algorithm, digest);
        fs::create_dir_all(to.parent().expect("quarantine path has a parent"))?;
        fs::rename(from, &to)?;
        Ok(to)
    }

    /// Makes a verified file the blob for `digest`: fsync, read-only, rename into place, fsync the directory.
    pub fn commit(
        &self,
        verified: &Path,
        algorithm: Algorithm,
        digest: &str,
    ) -> io::Result<PathBuf> {
        let to = self.blob(algorithm, digest);
        let dir = to.parent().expect("blob path has a parent");
        fs::create_dir_all(dir)?;
        let f = fs::File::open(verified)?;
        f.sync_all()?;
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(verified, fs::Permissions::from_mode(0o444))?;
        fs::rename(verified, &to)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(to)
    }
}
