//! `kimage unpack`: one node's filesystem as it will be once cloud-init has run: every layer's entries
//! in extraction order, then what the user-data writes (the apply script, its settings, the secrets).

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use super::OutputError as Error;
use crate::assemble::{Assembly, NodeArtifacts, Secrets};
use crate::layers::{Content, Entry, EntryKind};

/// `/etc/hosts` → `<into>/etc/hosts`, refusing anything that would leave `into`.
fn target(into: &Path, path: &str) -> Result<PathBuf, Error> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Error::Usage(format!(
            "refusing to unpack {path}: not a plain absolute path"
        )));
    }
    Ok(into.join(rel))
}

fn is_root() -> bool {
    // SAFETY-free check: the effective uid of this process via /proc (no libc dependency).
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Writes one entry below `into` with its mode (and owner, when running as root).
pub fn materialize(into: &Path, e: &Entry) -> Result<(), Error> {
    let p = target(into, &e.path)?;
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    match &e.kind {
        EntryKind::Directory => {
            fs::create_dir_all(&p).map_err(Error::io(&p))?;
        }
        EntryKind::Symlink(t) => {
            let _ = fs::remove_file(&p);
            symlink(t, &p).map_err(Error::io(&p))?;
            return Ok(());
        }
        EntryKind::File(Content::Bytes(b)) => fs::write(&p, b).map_err(Error::io(&p))?,
        EntryKind::File(Content::Shared(b)) => fs::write(&p, b).map_err(Error::io(&p))?,
        EntryKind::File(Content::Path(src)) => {
            fs::copy(src, &p).map_err(Error::io(&p))?;
        }
    }
    fs::set_permissions(&p, fs::Permissions::from_mode(e.mode)).map_err(Error::io(&p))?;
    if (e.uid != 0 || e.gid != 0) && is_root() {
        std::os::unix::fs::chown(&p, Some(e.uid as u32), Some(e.gid as u32))
            .map_err(Error::io(&p))?;
    }
    Ok(())
}

/// Materializes one assembled node into `into`. `boot_files` are what the user-data writes besides the
/// secrets (path, mode, content).
pub fn unpack_node(
    a: &Assembly,
    n: &NodeArtifacts,
    boot_files: &[(String, u32, Vec<u8>)],
    into: &Path,
) -> Result<usize, Error> {
    fs::create_dir_all(into).map_err(Error::io(into))?;
    let mut count = 0;
    for &i in &n.layers {
        let files = a.layers[i]
            .files()
            .expect("unpack assembles with Detail::Full");
        for e in files {
            materialize(into, e)?;
            count += 1;
        }
    }
    for (path, mode, content) in boot_files {
        materialize(into, &Entry::file(path.as_str(), *mode, content.clone()))?;
        count += 1;
    }
    let Secrets::Entries(secrets) = &n.secrets else {
        unreachable!("unpack assembles with Detail::Full")
    };
    for e in secrets {
        materialize(into, e)?;
        count += 1;
    }
    Ok(count)
}

/// For messages: whether a path exists below `into`.
pub fn exists(into: &Path, path: &str) -> io::Result<bool> {
    Ok(into.join(path.trim_start_matches('/')).exists())
}
