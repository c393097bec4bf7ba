//! `kimage diff OLD_OUT NEW_OUT`: per node, which artifacts changed and which files in them, so an
//! immutable rollout knows what to replace. Secrets are compared by digest and named, never shown.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use base64::Engine;
use serde::Serialize;

use super::OutputError as Error;
use super::{MANIFEST, Manifest, NodeEntry};

/// A file as a node gets it: mode and content digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileState {
    mode: u32,
    sha256: String,
    /// It travels in the user-data's secrets (private material), not merely with a private mode.
    secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Same artifacts.
    Unchanged,
    /// Only files that do not change how the node works (its /etc/hosts list of other nodes).
    Optional,
    /// The node must be replaced (rebooted from the new artifacts) to get the change.
    Replace,
    Added,
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeDiff {
    pub node: String,
    pub verdict: Verdict,
    /// Files added, removed or changed on the node (paths; secrets marked).
    pub files: Vec<String>,
    /// Other differences (network-config, meta-data).
    pub other: Vec<String>,
}

fn read_manifest(out: &Path) -> Result<Manifest, Error> {
    let p = out.join(MANIFEST);
    let text = std::fs::read_to_string(&p).map_err(Error::io(&p))?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: p.clone(),
        reason: format!("not a kimage manifest: {e}"),
    })
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// The entries of a tar stream: path → state (files and symlinks; directories are implied).
fn tar_files(
    r: impl Read,
    out: &mut BTreeMap<String, FileState>,
    origin: &Path,
    secret: bool,
) -> Result<(), Error> {
    let bad = |e: std::io::Error| Error::Io {
        path: origin.to_path_buf(),
        source: e,
    };
    let mut ar = tar::Archive::new(r);
    for entry in ar.entries().map_err(bad)? {
        let mut e = entry.map_err(bad)?;
        let path = format!("/{}", e.path().map_err(bad)?.display());
        let mode = e.header().mode().map_err(bad)?;
        let kind = e.header().entry_type();
        let digest = if kind.is_symlink() {
            format!(
                "symlink:{}",
                e.link_name()
                    .map_err(bad)?
                    .map(|l| l.display().to_string())
                    .unwrap_or_default()
            )
        } else if kind.is_file() {
            crate::release::digest::hash_reader(crate::release::digest::Algorithm::Sha256, &mut e)
                .map_err(bad)?
                .0
        } else {
            continue;
        };
        out.insert(
            path,
            FileState {
                mode,
                sha256: digest,
                secret,
            },
        );
    }
    Ok(())
}

/// Every file a node gets from its layers.
fn layer_files(out: &Path, node: &NodeEntry) -> Result<BTreeMap<String, FileState>, Error> {
    let mut files = BTreeMap::new();
    for l in &node.layers {
        let p = out.join(&l.path);
        let f = std::fs::File::open(&p).map_err(Error::io(&p))?;
        tar_files(
            flate2::read::GzDecoder::new(std::io::BufReader::new(f)),
            &mut files,
            &p,
            false,
        )?;
    }
    Ok(files)
}

/// The files the user-data writes, with the inline secrets tar opened: path → state.
fn user_data_files(out: &Path, node: &NodeEntry) -> Result<BTreeMap<String, FileState>, Error> {
    let p = out.join(&node.user_data.path);
    let text = std::fs::read_to_string(&p).map_err(Error::io(&p))?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?;
    let mut files = BTreeMap::new();
    for f in doc
        .get("write_files")
        .and_then(|w| w.as_sequence())
        .into_iter()
        .flatten()
    {
        let path = f
            .get("path")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let content = f
            .get("content")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let bytes = match f.get("encoding").and_then(|v| v.as_str()) {
            Some("gz+b64") => {
                let gz = base64::engine::general_purpose::STANDARD
                    .decode(content.trim())
                    .map_err(|e| Error::Usage(format!("{}: {path}: {e}", p.display())))?;
                let mut raw = Vec::new();
                flate2::read::GzDecoder::new(gz.as_slice())
                    .read_to_end(&mut raw)
                    .map_err(Error::io(&p))?;
                raw
            }
            _ => content.as_bytes().to_vec(),
        };
        if path == crate::userdata::SECRETS_PATH {
            tar_files(bytes.as_slice(), &mut files, &p, true)?;
        } else {
            let mode = f
                .get("permissions")
                .and_then(|v| v.as_str())
                .and_then(|m| u32::from_str_radix(m, 8).ok());
            files.insert(
                path,
                FileState {
                    mode: mode.unwrap_or(0o644),
                    sha256: sha256(&bytes),
                    secret: false,
                },
            );
        }
    }
    Ok(files)
}

/// What changes for one node between two builds.
fn node_diff(
    old_out: &Path,
    old: &NodeEntry,
    new_out: &Path,
    new: &NodeEntry,
    name: &str,
) -> Result<NodeDiff, Error> {
    let mut other = Vec::new();
    if old.network_config.sha256 != new.network_config.sha256 {
        other.push("network-config".to_string());
    }
    if old.address != new.address {
        other.push(format!("address {} → {}", old.address, new.address));
    }
    let same_layers = old
        .layers
        .iter()
        .map(|l| &l.sha256)
        .eq(new.layers.iter().map(|l| &l.sha256));
    if same_layers && old.user_data.sha256 == new.user_data.sha256 && other.is_empty() {
        return Ok(NodeDiff {
            node: name.to_string(),
            verdict: Verdict::Unchanged,
            files: vec![],
            other,
        });
    }
    let mut before = layer_files(old_out, old)?;
    before.extend(user_data_files(old_out, old)?);
    let mut after = layer_files(new_out, new)?;
    after.extend(user_data_files(new_out, new)?);
    // The settings file names the layers by digest: it changes whenever a layer does.
    for m in [&mut before, &mut after] {
        m.remove(crate::userdata::boot_env_path());
    }
    let secret = |p: &str| {
        // What the secrets carry, not every file with a private mode (units are 0600 too).
        let is = |m: &BTreeMap<String, FileState>| m.get(p).is_some_and(|f| f.secret);
        if is(&before) || is(&after) {
            " (secret)"
        } else {
            ""
        }
    };
    let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut files = Vec::new();
    for p in paths {
        let tag = match (before.get(p), after.get(p)) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(a), Some(b)) if a != b => "changed",
            _ => continue,
        };
        files.push(format!("{tag} {p}{}", secret(p)));
    }
    let only_hosts =
        !files.is_empty() && files.iter().all(|f| f.ends_with(" /etc/hosts")) && other.is_empty();
    let verdict = if files.is_empty() && other.is_empty() {
        Verdict::Unchanged
    } else if only_hosts {
        Verdict::Optional
    } else {
        Verdict::Replace
    };
    Ok(NodeDiff {
        node: name.to_string(),
        verdict,
        files,
        other,
    })
}

/// Compares two output directories node by node.
pub fn diff(old_out: &Path, new_out: &Path) -> Result<Vec<NodeDiff>, Error> {
    let old = read_manifest(old_out)?;
    let new = read_manifest(new_out)?;
    let names: BTreeSet<&String> = old.nodes.keys().chain(new.nodes.keys()).collect();
    names
        .into_iter()
        .map(|n| match (old.nodes.get(n), new.nodes.get(n)) {
            (None, Some(_)) => Ok(NodeDiff {
                node: n.clone(),
                verdict: Verdict::Added,
                files: vec![],
                other: vec![],
            }),
            (Some(_), None) => Ok(NodeDiff {
                node: n.clone(),
                verdict: Verdict::Removed,
                files: vec![],
                other: vec![],
            }),
            (Some(a), Some(b)) => node_diff(old_out, a, new_out, b, n),
            (None, None) => unreachable!("names come from the manifests"),
        })
        .collect()
}

pub fn render_text(diffs: &[NodeDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let what = match d.verdict {
            Verdict::Unchanged => "unchanged",
            Verdict::Optional => "optional: replace when convenient (only /etc/hosts differs)",
            Verdict::Replace => "replace: boot it from the new artifacts",
            Verdict::Added => "added: boot it from the new artifacts",
            Verdict::Removed => "removed: retire it (for an etcd member: kimage etcd remove NAME)",
        };
        out.push_str(&format!("{}: {what}\n", d.node));
        for o in &d.other {
            out.push_str(&format!("    changed {o}\n"));
        }
        for f in &d.files {
            out.push_str(&format!("    {f}\n"));
        }
    }
    out
}
