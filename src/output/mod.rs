//! The only stage that writes to disk: output directories, profiles from templates, and the atomic file
//! writes everything else relies on.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Errors of the output stage.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// An argument that cannot be used (a path outside `--into`, a directory that is no build).
    #[error("{0}")]
    Usage(String),
    /// A file kimage wrote that no longer reads as what it was.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Build(Box<crate::assemble::BuildError>),
}

impl From<crate::assemble::BuildError> for OutputError {
    fn from(e: crate::assemble::BuildError) -> Self {
        OutputError::Build(Box::new(e))
    }
}

impl OutputError {
    pub fn io(path: impl Into<std::path::PathBuf>) -> impl FnOnce(std::io::Error) -> OutputError {
        let path = path.into();
        move |source| OutputError::Io { path, source }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            OutputError::Io { .. } => crate::exit::FAILURE,
            OutputError::Usage(_) => crate::exit::INVALID,
            OutputError::Corrupt { .. } => crate::exit::VERIFY,
            OutputError::Build(e) => e.exit_code(),
        }
    }
}

// The stage's functions say `Error`: this stage's.
use OutputError as Error;

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    replace_file(path, bytes, mode, true)
}

/// A temp file beside `path` with `mode` and `bytes`, renamed over `path`; with `durable`, the file and
/// then its directory are synced too.
fn replace_file(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kimage-")
        .tempfile_in(dir)
        .map_err(Error::io(dir))?;
    // Errors name the file being written, not the temporary name it is written under (a full disk
    // while writing cluster.json said `.kimage-Xb3k9q: No space left on device`).
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io(path))?;
    tmp.as_file_mut()
        .write_all(bytes)
        .map_err(Error::io(path))?;
    if durable {
        tmp.as_file().sync_all().map_err(Error::io(path))?;
    }
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    if durable {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(dir))?;
    }
    Ok(())
}

pub mod diff;
pub mod guard;
pub mod unpack;
mod write;

pub use write::{
    ArtifactRef, BuildReport, LayerEntry, MANIFEST, Manifest, NodeEntry, NodeReport, PoolEntry,
    write_build,
};
