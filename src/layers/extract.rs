//! Unpacking a layer into a directory (`kimage unpack`, tests).
//!
//! The digest is checked before anything is written. Entries must be relative paths without `..`; nothing is
//! ever written through a symlink (a symlink in the way of a later entry is an error, never followed), so
//! an archive cannot reach outside the target directory. Symlink entries themselves are created verbatim,
//! absolute targets included: they describe the node's filesystem.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{LayerError, io_err, sha256_file};

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Apply the recorded uid/gid (needs root). Off: files belong to whoever extracts.
    pub owners: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    pub files: usize,
    pub directories: usize,
    pub symlinks: usize,
}

/// Checks that `layer`'s sha256 is `expected` (lowercase hex).
pub fn verify(layer: &Path, expected: &str) -> Result<(), LayerError> {
    let (actual, _) =
        sha256_file(layer).map_err(io_err(format!("reading layer {}", layer.display())))?;
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(LayerError::DigestMismatch {
            file: layer.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Verifies `layer` against `expected_sha256`, then unpacks it into `into` (created if missing), restoring
/// modes and mtimes. Later layers extracted into the same directory replace earlier files.
pub fn extract(
    layer: &Path,
    expected_sha256: &str,
    into: &Path,
) -> Result<ExtractSummary, LayerError> {
    extract_with(layer, expected_sha256, into, ExtractOptions::default())
}

pub fn extract_with(
    layer: &Path,
    expected_sha256: &str,
    into: &Path,
    opts: ExtractOptions,
) -> Result<ExtractSummary, LayerError> {
    verify(layer, expected_sha256)?;
    fs::create_dir_all(into).map_err(io_err(format!("creating {}", into.display())))?;
    let f = File::open(layer).map_err(io_err(format!("opening layer {}", layer.display())))?;
    let gz = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 20, f));
    let mut archive = ::tar::Archive::new(gz);
    let reading = || format!("reading layer {}", layer.display());
    let mut summary = ExtractSummary::default();
    // Directory modes and mtimes are applied last, deepest first: a 0500 directory must not stop its own
    // children from being created, and creating children would bump the mtime.
    let mut dirs: Vec<(PathBuf, u32, u64, u64, u64)> = Vec::new();
    for entry in archive.entries().map_err(io_err(reading()))? {
        let mut entry = entry.map_err(io_err(reading()))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let unsafe_entry = |reason: &str| LayerError::UnsafeEntry {
            file: layer.to_path_buf(),
            entry: name.clone(),
            reason: reason.to_string(),
        };
        let rel = safe_relative(&raw).map_err(&unsafe_entry)?;
        let dest = into.join(&rel);
        prepare_parents(into, &rel).map_err(|r| unsafe_entry(&r))?;
        let h = entry.header();
        let mode = h.mode().map_err(io_err(reading()))? & 0o7777;
        let uid = h.uid().map_err(io_err(reading()))?;
        let gid = h.gid().map_err(io_err(reading()))?;
        let mtime = h.mtime().map_err(io_err(reading()))?;
        let kind = h.entry_type();
        let writing = || format!("extracting {} to {}", name, dest.display());
        if kind.is_dir() {
            match fs::symlink_metadata(&dest) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(unsafe_entry(
                        "a directory would replace an existing non-directory",
                    ));
                }
                Err(_) => fs::create_dir(&dest).map_err(io_err(writing()))?,
            }
            dirs.push((dest, mode, uid, gid, mtime));
            summary.directories += 1;
        } else if kind.is_file() {
            remove_non_dir(&dest).map_err(|r| unsafe_entry(&r))?;
            // create_new is O_CREAT|O_EXCL, which never follows a symlink, even one planted after the check.
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .map_err(io_err(writing()))?;
            io::copy(&mut entry, &mut out).map_err(io_err(writing()))?;
            out.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_err(writing()))?;
            out.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
                .map_err(io_err(writing()))?;
            if opts.owners {
                std::os::unix::fs::fchown(&out, Some(uid as u32), Some(gid as u32))
                    .map_err(io_err(writing()))?;
            }
            summary.files += 1;
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_entry("symlink without a target"))?
                .into_owned();
            remove_non_dir(&dest).map_err(|r| unsafe_entry(&r))?;
            let target = PathBuf::from(std::ffi::OsString::from(
                String::from_utf8_lossy(&target).into_owned(),
            ));
            std::os::unix::fs::symlink(&target, &dest).map_err(io_err(writing()))?;
            if opts.owners {
                std::os::unix::fs::lchown(&dest, Some(uid as u32), Some(gid as u32))
                    .map_err(io_err(writing()))?;
            }
            summary.symlinks += 1;
        } else {
            return Err(unsafe_entry(
                "only files, directories and symlinks are allowed in a layer",
            ));
        }
    }
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    for (dir, mode, uid, gid, mtime) in dirs {
        let ctx = || format!("setting mode and mtime of {}", dir.display());
        let d = File::open(&dir).map_err(io_err(ctx()))?;
        if opts.owners {
            std::os::unix::fs::fchown(&d, Some(uid as u32), Some(gid as u32))
                .map_err(io_err(ctx()))?;
        }
        d.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(ctx()))?;
        d.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
            .map_err(io_err(ctx()))?;
    }
    Ok(summary)
}

/// A relative path made only of normal components (a trailing slash is fine).
fn safe_relative(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.is_empty() || raw.contains(&0) {
        return Err("empty name or NUL byte");
    }
    let s = std::str::from_utf8(raw).map_err(|_| "name is not UTF-8")?;
    let p = Path::new(s);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
            Component::ParentDir => return Err("path contains .."),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("names the extraction root itself");
    }
    Ok(out)
}

/// Makes sure every parent of `rel` below `root` is a real directory (creating missing ones), never a symlink.
fn prepare_parents(root: &Path, rel: &Path) -> Result<(), String> {
    let mut cur = root.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "parent {} is a symlink; refusing to write through it",
                    cur.display()
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("parent {} is not a directory", cur.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| format!("creating {}: {e}", cur.display()))?;
            }
            Err(e) => return Err(format!("inspecting {}: {e}", cur.display())),
        }
    }
    Ok(())
}

/// Removes a file or symlink in the way (never its target); a directory in the way is an error.
fn remove_non_dir(p: &Path) -> Result<(), String> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(format!("{} is a directory", p.display())),
        Ok(_) => fs::remove_file(p).map_err(|e| format!("replacing {}: {e}", p.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("inspecting {}: {e}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_only() {
        assert!(safe_relative(b"etc/hosts").is_ok());
        assert!(safe_relative(b"etc/dir/").is_ok());
        assert!(safe_relative(b"/etc/hosts").is_err());
        assert!(safe_relative(b"etc/../../x").is_err());
        assert!(safe_relative(b"./").is_err());
    }
}
