//! The NoCloud seed image: a FAT volume labelled `cidata` that carries `user-data`, `meta-data`,
//! `network-config` and the node's layers, for libvirt/QEMU (attach it as a read-only disk).
//!
//! kimage writes the FAT filesystem itself (FAT12 up to 16 MiB of content, FAT16 up to 256 MiB, FAT32
//! beyond), in one sequential pass: no formatting tool, no loop mount, file contents streamed from disk.
//! The volume is no larger than its content needs, and written sparse: zero blocks are holes. Everything is fixed by the inputs: timestamps are the given mtime, the volume serial comes from
//! a sha256 of the names, sizes and in-memory contents, short names are generated deterministically, and files
//! are laid out contiguously in a fixed order. Same inputs → identical image bytes.
//!
//! vfat rather than ISO 9660: long names (`layers/<64 hex>.tar.gz` is longer than Joliet allows) need no
//! extension, and a writer for it is small enough to own completely.

mod fat;
mod sparse;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use fat::FatType;

/// The volume label cloud-init's NoCloud datasource looks for.
pub const LABEL: &str = "cidata";

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("seed file {name}: given twice (FAT names are case-insensitive)")]
    Duplicate { name: String },
    #[error("seed file {name}: {parent} is both a file and a directory")]
    FileIsDirectory { name: String, parent: String },
    #[error("seed file {name}: {bytes} bytes is more than a FAT file can hold (4 GiB - 1)")]
    TooLarge { name: String, bytes: u64 },
    #[error("seed file {name}: reading {}: {source}", file.display())]
    Source {
        name: String,
        file: PathBuf,
        source: io::Error,
    },
    #[error("seed file {name}: {} changed size while the seed was written", file.display())]
    SourceChanged { name: String, file: PathBuf },
    #[error("seed content is too large for a FAT volume")]
    VolumeTooLarge,
    #[error("{action}: {source}")]
    Io { action: String, source: io::Error },
}

/// Where a seed file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Bytes(Vec<u8>),
    /// Streamed from disk (layers: hundreds of MB).
    Path(PathBuf),
}

impl From<Vec<u8>> for Source {
    fn from(v: Vec<u8>) -> Self {
        Source::Bytes(v)
    }
}
impl From<&str> for Source {
    fn from(v: &str) -> Self {
        Source::Bytes(v.as_bytes().to_vec())
    }
}
impl From<String> for Source {
    fn from(v: String) -> Self {
        Source::Bytes(v.into_bytes())
    }
}
impl From<PathBuf> for Source {
    fn from(v: PathBuf) -> Self {
        Source::Path(v)
    }
}

/// The usual seed content: the three NoCloud files at the root and each layer as
/// `layers/<sha256>.tar.gz`, streamed from `out/layers/`. `layers` are `(sha256 hex, path of the .tar.gz)`.
pub fn nocloud_files(
    user_data: impl Into<Vec<u8>>,
    meta_data: impl Into<Vec<u8>>,
    network_config: impl Into<Vec<u8>>,
    layers: &[(String, PathBuf)],
) -> Vec<(String, Source)> {
    let mut files = vec![
        ("user-data".to_string(), Source::Bytes(user_data.into())),
        ("meta-data".to_string(), Source::Bytes(meta_data.into())),
        (
            "network-config".to_string(),
            Source::Bytes(network_config.into()),
        ),
    ];
    files.extend(
        layers
            .iter()
            .map(|(sha, path)| (format!("layers/{sha}.tar.gz"), Source::Path(path.clone()))),
    );
    files
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedInfo {
    /// Lowercase hex sha256 of the image bytes.
    pub sha256: String,
    /// Image length.
    pub bytes: u64,
    pub fat: FatType,
    /// The volume serial (what `blkid` shows as UUID, `XXXX-XXXX`).
    pub serial: u32,
}

/// Writes the seed image at `path` atomically (temp file in the same directory, fsync, rename, fsync dir),
/// mode 0600 because user-data carries private keys. `files` are `(name in the image, source)`; names use
/// `/` for subdirectories (`layers/<sha256>.tar.gz`). All timestamps are `mtime` (seconds since the epoch).
pub fn write_seed(
    path: &Path,
    files: &[(String, Source)],
    mtime: u64,
) -> Result<SeedInfo, SeedError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io_err = |action: String| move |source| SeedError::Io { action, source };
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".seed-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io_err(format!("creating temp file in {}", dir.display())))?;
    let info = write_seed_file(tmp.as_file(), files, mtime)?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err(format!("syncing {}", tmp.path().display())))?;
    tmp.persist(path).map_err(|e| SeedError::Io {
        action: format!("renaming into {}", path.display()),
        source: e.error,
    })?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing directory {}", dir.display())))?;
    Ok(info)
}

/// Streams the seed image into `w` (e.g. `io::sink()` for the digest only).
pub fn write_seed_to<W: Write>(
    w: W,
    files: &[(String, Source)],
    mtime: u64,
) -> Result<SeedInfo, SeedError> {
    let image = fat::Image::plan(files, mtime, LABEL, volume_serial(files, mtime))?;
    let mut hw = crate::layers::HashingWriter {
        inner: w,
        sha: Sha256::new(),
        bytes: 0,
    };
    image.write(&mut hw, files)?;
    hw.flush().map_err(|source| SeedError::Io {
        action: "writing seed image".into(),
        source,
    })?;
    Ok(SeedInfo {
        sha256: hex::encode(hw.sha.finalize()),
        bytes: hw.bytes,
        fat: image.fat_type(),
        serial: image.serial(),
    })
}

/// Writes the seed image into `file` from its start, sparse: whole zero blocks (free clusters, slack at the
/// end of a file's last cluster, zero runs inside files) are left as holes, which read back as the same
/// zeros, so the digest (of the logical bytes) is that of `write_seed_to`. `file` is truncated first.
pub fn write_seed_file(
    file: &File,
    files: &[(String, Source)],
    mtime: u64,
) -> Result<SeedInfo, SeedError> {
    let wr = |source| SeedError::Io {
        action: "writing seed image".into(),
        source,
    };
    let mut w = sparse::SparseWriter::new(file).map_err(wr)?;
    let info = write_seed_to(&mut w, files, mtime)?;
    w.finish().map_err(wr)?;
    Ok(info)
}

/// The image size `files` will produce, without writing anything (sizes only; sources are stat'ed).
pub fn image_size(files: &[(String, Source)], mtime: u64) -> Result<u64, SeedError> {
    Ok(fat::Image::plan(files, mtime, LABEL, 0)?.bytes())
}

/// Derived from what is cheap to know before writing: names, sizes, in-memory contents (user-data,
/// meta-data, network-config differ per node) and the mtime. Files on disk count by name and size; layers
/// are named by their own digest.
fn volume_serial(files: &[(String, Source)], mtime: u64) -> u32 {
    let mut sorted: Vec<&(String, Source)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    h.update(b"kimage seed v1\0");
    h.update(mtime.to_le_bytes());
    for (name, src) in sorted {
        h.update(name.as_bytes());
        h.update([0]);
        match src {
            Source::Bytes(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            Source::Path(p) => {
                let len = fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                h.update(len.to_le_bytes());
            }
        }
    }
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}
