//! Writing a build: layers compressed into out/layers, each node's documents and seed, the pools'
//! files and manifest.json; files whose bytes did not change are left alone.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, guard, replace_file, write_atomic};
use crate::assemble::{
    self as build, Assembly, BuildError, BuiltLayer, LayerKind, NodeDocs, PlannedLayer, builder,
};

pub const MANIFEST: &str = "manifest.json";

/// One file of the output directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Relative to the output directory.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEntry {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// What the layer holds (`binaries-control-plane`, `config-worker`, `node-master-1`).
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub role: String,
    pub address: String,
    pub user_data: ArtifactRef,
    pub meta_data: ArtifactRef,
    pub network_config: ArtifactRef,
    /// The NoCloud seed: written when `layers.from` is `seed` (it carries the layers) or with `--seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<ArtifactRef>,
    /// In extraction order.
    pub layers: Vec<LayerEntry>,
    /// Programs the image must already have (`binaries.exclude`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_binaries: Vec<String>,
}

/// One worker pool: the documents every machine of the pool boots from, and what joins it to the
/// cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    pub role: String,
    /// User-data with the bootstrap token (secret: 0600).
    pub user_data: ArtifactRef,
    /// Only an instance-id: machines keep their platform's hostname.
    pub meta_data: ArtifactRef,
    /// DHCP on the profile's interface.
    pub network_config: ArtifactRef,
    /// NoCloud seed with the three documents (and the layers when layers come from the seed), the
    /// same for every machine of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<ArtifactRef>,
    /// In extraction order.
    pub layers: Vec<LayerEntry>,
    /// The token's public part: the cluster holds it as Secret kube-system/bootstrap-token-<id>.
    pub bootstrap_token_id: String,
    /// RFC 3339; machines that first boot later cannot join.
    pub bootstrap_token_expires: String,
    /// The token Secret (secret: 0600), for `kubectl apply --server-side -f` after a renewal; the
    /// bootstrap node applies the same Secret from its own user-data.
    pub bootstrap_token_secret: ArtifactRef,
    /// `sha256:<hex>` of the cluster CA's public key, which the pool's machines check.
    pub ca_cert_hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_binaries: Vec<String>,
}

/// out/manifest.json: every artifact with its path, sha256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub kimage: String,
    pub cluster: String,
    /// How nodes obtain their layers: `seed`, `url` or `image`.
    pub layers_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_base_url: Option<String>,
    pub nodes: BTreeMap<String, NodeEntry>,
    /// Worker pools (out/pools/<name>/).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, PoolEntry>,
}

impl Manifest {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serializes");
        s.push('\n');
        s
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// Per-node summary of a build, for the report `kimage build` prints.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub role: String,
    pub user_data_bytes: u64,
    /// The smallest common user-data limit it exceeds, if any.
    pub user_data_over: Option<String>,
    pub layers: usize,
    pub seed_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub out: PathBuf,
    pub layers_built: usize,
    pub layer_bytes: u64,
    pub nodes: Vec<NodeReport>,
    pub removed_layers: usize,
}

/// Writes `bytes` at `path` unless the file already holds exactly them (with `mode`): a rebuild that
/// changes little rewrites little. New content goes to a temporary file and is renamed into place.
fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, Error> {
    // Not synced one by one: the build syncs the filesystem once, before the manifest names the files.
    // symlink_metadata: a link in out/ is replaced by a file, never compared or written through.
    match fs::symlink_metadata(path) {
        Ok(meta)
            if meta.is_file()
                && meta.len() == bytes.len() as u64
                && meta.permissions().mode() & 0o7777 == mode
                && fs::read(path).is_ok_and(|old| old == bytes) =>
        {
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A new file, which no manifest can name yet: written in place, without the temp file and
            // rename that keep an existing file whole (half the directory updates of a first build).
            // Created with at most `mode` (the umask only removes bits), then given exactly `mode`.
            let dir = path.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir).map_err(Error::io(dir))?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
                .map_err(Error::io(path))?;
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(Error::io(path))?;
            f.write_all(bytes).map_err(Error::io(path))?;
            Ok(true)
        }
        _ => replace_file(path, bytes, mode, false).map(|()| true),
    }
}

/// Writes every pool's files below `<out>/pools/<name>/` (each only when it changed) and returns their
/// manifest entries.
fn write_pools(
    c: &crate::model::Cluster,
    a: &Assembly,
    built: &[BuiltLayer],
    out_dir: &Path,
    with_layers: bool,
    write_seeds: bool,
    previous: Option<&Manifest>,
) -> Result<BTreeMap<String, PoolEntry>, Error> {
    let mut out = BTreeMap::new();
    for p in &a.pools {
        let d = build::pool_docs(c, a, p, built)?;
        let dir = out_dir.join("pools").join(&p.name);
        guard::real_dir(out_dir, &dir)?;
        guard::clean_temp(&dir, ".kimage-")?;
        let write = |file: &str, bytes: &[u8], mode: u32| -> Result<ArtifactRef, Error> {
            write_if_changed(&dir.join(file), bytes, mode)?;
            Ok(ArtifactRef {
                path: format!("pools/{}/{file}", p.name),
                sha256: sha256_hex(bytes),
                bytes: bytes.len() as u64,
            })
        };
        // The user-data and the Secret carry the bootstrap token.
        let user_data = write("user-data", d.user_data.as_bytes(), 0o600)?;
        let meta_data = write("meta-data", d.meta_data.as_bytes(), 0o644)?;
        let network_config = write("network-config", d.network_config.as_bytes(), 0o644)?;
        let join = a
            .pool_join
            .get(&p.name)
            .expect("assemble_pools records every pool's token");
        let bootstrap_token_secret =
            write("bootstrap-token.yaml", join.secret_yaml.as_bytes(), 0o600)?;
        let layers = layer_entries(&p.layers, built);
        let seed_path = dir.join("seed.img");
        let seed = if write_seeds {
            // As for nodes: the same documents and layers make the same image, which is kept as it is.
            let reuse = previous
                .and_then(|m| m.pools.get(&p.name))
                .filter(|old| {
                    old.user_data == user_data
                        && old.meta_data == meta_data
                        && old.network_config == network_config
                        && (!with_layers || old.layers == layers)
                        && old
                            .seed
                            .as_ref()
                            .is_some_and(|s| guard::holds(&seed_path, &s.sha256))
                })
                .and_then(|old| old.seed.clone());
            match reuse {
                Some(seed) => Some(seed),
                None => {
                    let files = seed_files(&d, &p.layers, built, with_layers);
                    let info =
                        crate::seed::write_seed(&seed_path, &files, a.mtime).map_err(|source| {
                            build::BuildError::Seed {
                                node: format!("pool {}", p.name),
                                source,
                            }
                        })?;
                    Some(ArtifactRef {
                        path: format!("pools/{}/seed.img", p.name),
                        sha256: info.sha256,
                        bytes: info.bytes,
                    })
                }
            }
        } else {
            let _ = fs::remove_file(dir.join("seed.img"));
            None
        };
        out.insert(
            p.name.clone(),
            PoolEntry {
                role: p.role.clone(),
                user_data,
                meta_data,
                network_config,
                seed,
                layers,
                bootstrap_token_id: join.token_id.clone(),
                bootstrap_token_expires: join.expires.clone(),
                bootstrap_token_secret,
                ca_cert_hash: join.ca_cert_hash.clone(),
                excluded_binaries: p.excluded.clone(),
            },
        );
    }
    Ok(out)
}

/// Writes the assembled artifacts into `out`. Layers are content-addressed (an existing file of the
/// same name is kept), node files are rewritten only when they change, everything is made durable with
/// one filesystem sync, and `manifest.json` is replaced last, atomically. With `complete` (every node of
/// the cluster built), layers and node directories nothing uses any more are removed.
///
/// Holding out/'s lock is required (`_lock`): temporary files of killed runs are removed, and a
/// reused seed or layer is kept only when its bytes still have the digest the manifest recorded.
pub fn write_build(
    c: &crate::model::Cluster,
    a: &Assembly,
    out: &Path,
    complete: bool,
    force_seed: bool,
    _lock: &guard::OutLock,
) -> Result<(Manifest, BuildReport), Error> {
    fs::create_dir_all(out).map_err(Error::io(out))?;
    for sub in ["layers", "nodes", "pools"] {
        guard::refuse_symlink(&out.join(sub))?;
    }
    guard::refuse_symlink(&out.join(MANIFEST))?;
    guard::clean_temp(out, ".kimage-")?;
    guard::clean_temp(&out.join("layers"), ".layer-")?;
    let previous: Option<Manifest> = fs::read_to_string(out.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let built: Vec<BuiltLayer> = build_layers(a, &out.join("layers"))?;
    let with_layers = build::seed_carries_layers(c);
    let write_seeds = with_layers || force_seed;
    let pool_entries = write_pools(
        c,
        a,
        &built,
        out,
        with_layers,
        write_seeds,
        previous.as_ref(),
    )?;
    let mut entries = BTreeMap::new();
    let mut reports = Vec::new();
    // Documents are made in parallel, a chunk of nodes at a time, and dropped once written: at 10,000
    // nodes they would otherwise all be in memory at once.
    for chunk in a.nodes.chunks(256) {
        let docs: Vec<NodeDocs> = {
            use rayon::prelude::*;
            chunk
                .par_iter()
                .map(|n| build::node_docs(c, a, n, &built))
                .collect::<Result<_, _>>()?
        };
        // Directories and documents one node after the other (two threads creating out/nodes would
        // race); then the seeds, tens of KB each to stream and hash, on every core.
        let mut written: Vec<NodeFiles> = Vec::with_capacity(chunk.len());
        for (n, d) in chunk.iter().zip(&docs) {
            let dir = out.join("nodes").join(&n.name);
            guard::real_dir(out, &dir)?;
            guard::clean_temp(&dir, ".kimage-")?;
            let doc_ref = |file: &str, text: &str| -> Result<ArtifactRef, Error> {
                // user-data carries private keys.
                let mode = if file == "user-data" { 0o600 } else { 0o644 };
                write_if_changed(&dir.join(file), text.as_bytes(), mode)?;
                Ok(ArtifactRef {
                    path: format!("nodes/{}/{file}", n.name),
                    sha256: sha256_hex(text.as_bytes()),
                    bytes: text.len() as u64,
                })
            };
            let user_data = doc_ref("user-data", &d.user_data)?;
            let meta_data = doc_ref("meta-data", &d.meta_data)?;
            let network_config = doc_ref("network-config", &d.network_config)?;
            let layers = layer_entries(&n.layers, &built);
            written.push(NodeFiles {
                dir,
                user_data,
                meta_data,
                network_config,
                layers,
            });
        }
        let seed_of = |n: &build::NodeArtifacts,
                       d: &NodeDocs,
                       f: &NodeFiles|
         -> Result<Option<ArtifactRef>, Error> {
            let seed_path = f.dir.join("seed.img");
            if !write_seeds {
                if seed_path.exists() {
                    // A seed from an earlier build that no longer matches this one.
                    fs::remove_file(&seed_path).map_err(Error::io(&seed_path))?;
                }
                return Ok(None);
            }
            // The seed is a function of the three documents and the layers: unchanged inputs, same image.
            let reuse = previous
                .as_ref()
                .and_then(|p| p.nodes.get(&n.name))
                .filter(|old| {
                    old.user_data == f.user_data
                        && old.meta_data == f.meta_data
                        && old.network_config == f.network_config
                        && (!with_layers || old.layers == f.layers)
                        && old
                            .seed
                            .as_ref()
                            .is_some_and(|s| guard::holds(&seed_path, &s.sha256))
                });
            if let Some(old) = reuse {
                return Ok(old.seed.clone());
            }
            let files = seed_files(d, &n.layers, &built, with_layers);
            let tmp = tempfile::Builder::new()
                .prefix(".kimage-")
                .tempfile_in(&f.dir)
                .map_err(Error::io(&f.dir))?;
            // It carries the user-data, and so the node's private keys.
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(Error::io(tmp.path()))?;
            // Sparse: the digest is of the logical bytes, holes read back as zeros.
            let info =
                crate::seed::write_seed_file(tmp.as_file(), &files, a.mtime).map_err(|source| {
                    build::BuildError::Seed {
                        node: n.name.clone(),
                        source,
                    }
                })?;
            tmp.persist(&seed_path).map_err(|e| Error::Io {
                path: seed_path.clone(),
                source: e.error,
            })?;
            Ok(Some(ArtifactRef {
                path: format!("nodes/{}/seed.img", n.name),
                sha256: info.sha256,
                bytes: info.bytes,
            }))
        };
        let seeds: Vec<Result<Option<ArtifactRef>, Error>> = {
            use rayon::prelude::*;
            chunk
                .par_iter()
                .zip(&docs)
                .zip(&written)
                .map(|((n, d), f)| seed_of(n, d, f))
                .collect()
        };
        // In node order: the error reported is the first node's, whatever thread met it first.
        for (((n, d), f), seed) in chunk.iter().zip(&docs).zip(written).zip(seeds) {
            let seed = seed?;
            let over = crate::userdata::LIMITS
                .iter()
                .find(|(_, limit)| d.user_data.len() > *limit)
                .map(|(name, limit)| format!("{name} ({} KiB)", limit / 1024));
            reports.push(NodeReport {
                name: n.name.clone(),
                role: n.role.clone(),
                user_data_bytes: f.user_data.bytes,
                user_data_over: over,
                layers: n.layers.len(),
                seed_bytes: seed.as_ref().map(|s| s.bytes),
            });
            entries.insert(
                n.name.clone(),
                NodeEntry {
                    role: n.role.clone(),
                    address: n.address.clone(),
                    user_data: f.user_data,
                    meta_data: f.meta_data,
                    network_config: f.network_config,
                    seed,
                    layers: f.layers,
                    excluded_binaries: n.excluded.clone(),
                },
            );
        }
    }
    // One filesystem sync makes every file above durable before the manifest names them.
    let dir = fs::File::open(out).map_err(Error::io(out))?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::Io {
        path: out.to_path_buf(),
        source: e.into(),
    })?;
    let mut manifest = Manifest {
        kimage: env!("CARGO_PKG_VERSION").to_string(),
        cluster: c.name.clone(),
        layers_from: match c.layers.from {
            crate::profile::LayersFrom::Seed => "seed",
            crate::profile::LayersFrom::Url => "url",
            crate::profile::LayersFrom::Image => "image",
        }
        .to_string(),
        layers_base_url: c.layers.base_url.as_ref().map(|u| u.to_string()),
        nodes: BTreeMap::new(),
        pools: BTreeMap::new(),
    };
    // A partial build (--role) keeps the other nodes of an earlier build of the same cluster.
    if !complete
        && let Some(old) = previous
        && old.cluster == manifest.cluster
    {
        manifest.nodes = old
            .nodes
            .into_iter()
            .filter(|(k, _)| c.node(k).is_some())
            .collect();
        manifest.pools = old
            .pools
            .into_iter()
            .filter(|(k, _)| c.pool(k).is_some())
            .collect();
    }
    manifest.nodes.extend(entries);
    manifest.pools.extend(pool_entries);
    write_atomic(&out.join(MANIFEST), manifest.to_json().as_bytes(), 0o644)?;
    let mut removed = 0;
    if complete {
        let used: std::collections::BTreeSet<String> = manifest
            .nodes
            .values()
            .flat_map(|n| n.layers.iter().map(|l| l.path.clone()))
            .chain(
                manifest
                    .pools
                    .values()
                    .flat_map(|p| p.layers.iter().map(|l| l.path.clone())),
            )
            .collect();
        if let Ok(rd) = fs::read_dir(out.join("layers")) {
            for e in rd.flatten() {
                let rel = format!("layers/{}", e.file_name().to_string_lossy());
                // Also temporary files of a build that was killed.
                let stale_tmp = rel.starts_with("layers/.layer-");
                if (rel.ends_with(".tar.gz") && !used.contains(&rel)) || stale_tmp {
                    fs::remove_file(e.path()).map_err(Error::io(e.path()))?;
                    removed += 1;
                }
            }
        }
        for (sub, keep) in [
            ("nodes", manifest.nodes.keys().collect::<Vec<_>>()),
            ("pools", manifest.pools.keys().collect()),
        ] {
            if let Ok(rd) = fs::read_dir(out.join(sub)) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if keep.iter().any(|k| **k == name) {
                        continue;
                    }
                    // A directory is removed with what it holds; anything else (a stray file, a
                    // link) as itself, never what a link points to.
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    if is_dir {
                        fs::remove_dir_all(e.path()).map_err(Error::io(e.path()))?;
                    } else {
                        fs::remove_file(e.path()).map_err(Error::io(e.path()))?;
                    }
                }
            }
        }
    }
    let report = BuildReport {
        out: out.to_path_buf(),
        layers_built: built.len(),
        layer_bytes: built.iter().map(|l| l.bytes).sum(),
        nodes: reports,
        removed_layers: removed,
    };
    Ok((manifest, report))
}

/// A node's directory and documents as written, waiting for its seed.
struct NodeFiles {
    dir: PathBuf,
    user_data: ArtifactRef,
    meta_data: ArtifactRef,
    network_config: ArtifactRef,
    layers: Vec<LayerEntry>,
}

/// The files of a node's NoCloud seed: its three documents and, when the layers come from the seed,
/// its layers.
/// The manifest's entries for a node's or pool's layers (indices into `built`), in extraction order.
fn layer_entries(layers: &[usize], built: &[BuiltLayer]) -> Vec<LayerEntry> {
    layers
        .iter()
        .map(|&i| LayerEntry {
            path: format!("layers/{}.tar.gz", built[i].sha256),
            sha256: built[i].sha256.clone(),
            bytes: built[i].bytes,
            name: built[i].name.clone(),
        })
        .collect()
}

fn seed_files(
    d: &build::NodeDocs,
    layers: &[usize],
    built: &[build::BuiltLayer],
    with_layers: bool,
) -> Vec<(String, crate::seed::Source)> {
    let seed_layers: Vec<(String, PathBuf)> = if with_layers {
        layers
            .iter()
            .map(|&i| (built[i].sha256.clone(), built[i].path.clone()))
            .collect()
    } else {
        Vec::new()
    };
    crate::seed::nocloud_files(
        d.user_data.clone(),
        d.meta_data.clone(),
        d.network_config.clone(),
        &seed_layers,
    )
}

/// Writes every unique layer into `dir` as `<sha256>.tar.gz` (an existing file of that name already
/// holds these bytes and is kept). Small layers are compressed in memory, in parallel; binary layers
/// stream to a temporary file, one at a time (each compresses on every core). No fsync here: the
/// caller syncs the filesystem once.
pub fn build_layers(a: &Assembly, dir: &Path) -> Result<Vec<BuiltLayer>, BuildError> {
    use rayon::prelude::*;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let done = |l: &PlannedLayer, info: crate::layers::LayerInfo| BuiltLayer {
        kind: l.kind,
        name: l.name.clone(),
        path: dir.join(info.file_name()),
        sha256: info.sha256,
        bytes: info.bytes,
    };
    let small = |l: &PlannedLayer| -> Result<BuiltLayer, BuildError> {
        let (bytes, info) = l.compressed(a.mtime)?;
        let b = done(l, info);
        if !guard::holds(&b.path, &b.sha256) {
            let mut tmp = tempfile::Builder::new()
                .prefix(".layer-")
                .tempfile_in(dir)
                .map_err(io(dir))?;
            // Named after the layer file it becomes, not its temporary name.
            std::io::Write::write_all(tmp.as_file_mut(), &bytes).map_err(io(&b.path))?;
            tmp.persist(&b.path).map_err(|e| BuildError::Io {
                path: b.path.clone(),
                source: e.error,
            })?;
        }
        Ok(b)
    };
    let big = |l: &PlannedLayer| -> Result<BuiltLayer, BuildError> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".layer-")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        let entries = l.files().expect("binary layers keep their files");
        let info = builder(entries, a.mtime)
            .build_to(&mut w)
            .map_err(|source| BuildError::Layer {
                name: l.name.clone(),
                source,
            })?;
        std::io::Write::flush(&mut w).map_err(io(dir))?;
        drop(w);
        let b = done(l, info);
        if !guard::holds(&b.path, &b.sha256) {
            tmp.persist(&b.path).map_err(|e| BuildError::Io {
                path: b.path.clone(),
                source: e.error,
            })?;
        }
        Ok(b)
    };
    let mut out: Vec<Option<BuiltLayer>> = vec![None; a.layers.len()];
    for (i, l) in a
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == LayerKind::Binaries)
    {
        out[i] = Some(big(l)?);
    }
    let rest: Vec<(usize, BuiltLayer)> = a
        .layers
        .par_iter()
        .enumerate()
        .filter(|(_, l)| l.kind != LayerKind::Binaries)
        .map(|(i, l)| small(l).map(|b| (i, b)))
        .collect::<Result<_, _>>()?;
    for (i, b) in rest {
        out[i] = Some(b);
    }
    Ok(out
        .into_iter()
        .map(|b| b.expect("every layer built"))
        .collect())
}
