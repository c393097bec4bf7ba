//! out/ defends itself: one build at a time (a lock naming its holder), no directory of it followed
//! through a symbolic link, temporary files of killed runs removed, and `kimage verify` to check every
//! file against manifest.json.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Error, MANIFEST, Manifest};

/// The lock file inside out/ (not an artifact: manifest.json never names it).
pub const LOCK_FILE: &str = ".kimage.lock";

/// out/'s lock, held until dropped.
#[derive(Debug)]
pub struct OutLock {
    file: File,
}

impl Drop for OutLock {
    // A finished build leaves the lock file empty, so that two builds leave identical out/ trees.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// Takes out/'s exclusive lock, creating out/ if needed. When another run holds it, `waiting` is told
/// that run's pid (as it wrote it) before this one blocks until it finishes.
pub fn lock(out: &Path, waiting: impl FnOnce(&str)) -> Result<OutLock, Error> {
    refuse_symlink(out.join(LOCK_FILE).as_path())?;
    fs::create_dir_all(out).map_err(Error::io(out))?;
    let path = out.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(Error::io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            waiting(holder.trim());
            file.lock().map_err(Error::io(&path))?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path)(e)),
    }
    // Who holds it, for the message another run prints; best effort (a full disk must fail where
    // the build writes, not here).
    let pid = std::process::id().to_string();
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    Ok(OutLock { file })
}

/// An error when `path` is a symbolic link: kimage never writes, reads or deletes through one under
/// out/ (a linked `out/nodes` made an earlier build delete files elsewhere).
pub fn refuse_symlink(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "is a symbolic link; kimage does not write through links in its output \
                     directory: remove the link (and build again)"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// Creates `dir` (and its parents below `out`) as real directories, refusing symbolic links on the way.
pub fn real_dir(out: &Path, dir: &Path) -> Result<(), Error> {
    let rel = dir.strip_prefix(out).unwrap_or(dir);
    let mut p = out.to_path_buf();
    for part in rel.components() {
        p.push(part);
        refuse_symlink(&p)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                // A stray file where kimage keeps a directory: it is kimage's to replace.
                fs::remove_file(&p).map_err(Error::io(&p))?;
                fs::create_dir(&p).map_err(Error::io(&p))?;
            }
            Err(_) => fs::create_dir(&p).map_err(Error::io(&p))?,
        }
    }
    Ok(())
}

/// Removes the temporary files a killed run left in `dir` (names starting with `prefix`). Call with
/// out/'s lock held: no other run's temporary files can be there then.
pub fn clean_temp(dir: &Path, prefix: &str) -> Result<usize, Error> {
    let mut removed = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                fs::remove_file(e.path()).map_err(Error::io(e.path()))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Whether the file at `path` is a regular file (not followed through a link) whose sha256 is `sha256`.
pub fn holds(path: &Path, sha256: &str) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && crate::layers::sha256_file(path).is_ok_and(|(h, _)| h == sha256)
}

/// One file of out/ that does not match manifest.json.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    pub path: PathBuf,
    pub problem: String,
}

/// Checks every file manifest.json names: present, a regular file, its size and sha256 as recorded.
pub fn verify(out: &Path) -> Result<(usize, Vec<Mismatch>), Error> {
    let mpath = out.join(MANIFEST);
    refuse_symlink(&mpath)?;
    let text = fs::read_to_string(&mpath).map_err(Error::io(&mpath))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: mpath.clone(),
        reason: format!("is not a kimage manifest: {e}"),
    })?;
    let mut files: Vec<(String, String, u64)> = Vec::new();
    let mut add = |path: &str, sha256: &str, bytes: u64| {
        files.push((path.to_string(), sha256.to_string(), bytes))
    };
    for n in m.nodes.values() {
        for a in [&n.user_data, &n.meta_data, &n.network_config]
            .into_iter()
            .chain(n.seed.as_ref())
        {
            add(&a.path, &a.sha256, a.bytes);
        }
        for l in &n.layers {
            add(&l.path, &l.sha256, l.bytes);
        }
    }
    for p in m.pools.values() {
        for a in [
            &p.user_data,
            &p.meta_data,
            &p.network_config,
            &p.bootstrap_token_secret,
        ]
        .into_iter()
        .chain(p.seed.as_ref())
        {
            add(&a.path, &a.sha256, a.bytes);
        }
        for l in &p.layers {
            add(&l.path, &l.sha256, l.bytes);
        }
    }
    files.sort();
    files.dedup();
    let checked = files.len();
    let problems = {
        use rayon::prelude::*;
        files
            .par_iter()
            .filter_map(|(rel, sha256, bytes)| {
                let path = out.join(rel);
                let problem = if rel.split('/').any(|c| c == ".." || c.is_empty()) {
                    Some("the manifest names a path outside out/".to_string())
                } else if let Some(link) = rel_symlink(out, rel) {
                    Some(format!("{} is a symbolic link", link.display()))
                } else {
                    match fs::symlink_metadata(&path) {
                        Err(_) => Some("is missing".to_string()),
                        Ok(md) if !md.is_file() => Some("is not a regular file".to_string()),
                        Ok(md) if md.len() != *bytes => {
                            Some(format!("is {} bytes, the manifest says {bytes}", md.len()))
                        }
                        Ok(_) => match crate::layers::sha256_file(&path) {
                            Ok((h, _)) if h == *sha256 => None,
                            Ok((h, _)) => {
                                Some(format!("has sha256 {h}, the manifest says {sha256}"))
                            }
                            Err(e) => Some(format!("cannot be read: {e}")),
                        },
                    }
                };
                problem.map(|problem| Mismatch { path, problem })
            })
            .collect::<Vec<_>>()
    };
    Ok((checked, problems))
}

/// The first component of `rel` below `out` that is a symbolic link.
fn rel_symlink(out: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = out.to_path_buf();
    for part in rel.split('/') {
        p.push(part);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(p);
        }
    }
    None
}
