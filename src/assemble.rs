//! Assembling each node's artifacts in memory: layers (binaries, configuration per role, per node),
//! the inline secrets, user-data, meta-data and network-config (large binaries stay on disk as paths).
//! `prepare` runs every stage before it (lock, release files, PKI, rendering) and writes nothing; the
//! output stage (`output::write`) compresses and writes what this assembled, and `output::unpack`
//! materializes one node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::layers::{Content, Entry, EntryKind, LayerBuilder};
use crate::model::{Cluster, NodeModel, PoolModel};
use crate::pki::PkiMaterial;
use crate::pki::spec::PkiSource;
use crate::plan::files::{self, Carrier, FileSource, FileSpec, env_line};
use crate::profile::{BinarySource, LayersFrom};
use crate::release;
use crate::render::{self, StartAction};
use crate::userdata::{self, BootInputs, LayerRef};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Install(Box<release::install::InstallError>),
    #[error(transparent)]
    Stale(#[from] release::StaleLock),
    /// kimage.lock or the download cache.
    #[error(transparent)]
    Release(Box<release::command::CommandError>),
    /// The images layer (blobs missing from or corrupt in the cache).
    #[error(transparent)]
    Images(Box<crate::images::ImageError>),
    #[error("building layer {name}: {source}")]
    Layer {
        name: String,
        source: crate::layers::LayerError,
    },
    #[error("writing seed for node {node}: {source}")]
    Seed {
        node: String,
        source: crate::seed::SeedError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<release::install::InstallError> for BuildError {
    fn from(e: release::install::InstallError) -> Self {
        BuildError::Install(Box::new(e))
    }
}

impl From<release::command::CommandError> for BuildError {
    fn from(e: release::command::CommandError) -> Self {
        BuildError::Release(Box::new(e))
    }
}

impl BuildError {
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            BuildError::Pki(p) => p.exit_code(),
            BuildError::Release(r) => r.exit_code(),
            BuildError::Install(i) => match i.as_ref() {
                release::install::InstallError::Corrupt { .. } => exit::VERIFY,
                release::install::InstallError::Io { .. } => exit::FAILURE,
                _ => exit::STATE,
            },
            BuildError::Stale(_) => exit::STATE,
            BuildError::Images(i) => i.exit_code(),
            BuildError::Render(render::RenderError::UnsafeValue { .. }) => exit::INVALID,
            BuildError::Render(_)
            | BuildError::Layer { .. }
            | BuildError::Seed { .. }
            | BuildError::Io { .. } => exit::FAILURE,
        }
    }
}

/// What a layer is for; decides its name and where it is extracted in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    Binaries,
    /// Container images (`images.delivery: embed`), one OCI layout for every node that runs pods.
    Images,
    Config,
    Node,
}

/// One layer's content: its files, or already compressed.
#[derive(Debug, Clone)]
pub enum LayerBody {
    Entries(Vec<Entry>),
    /// A node's own layer as its tar.gz (a few KiB): a build of every node keeps this instead of the
    /// node's files, so 10,000 nodes do not hold 10,000 sets of files until the layers are written.
    Compressed {
        gz: Vec<u8>,
        info: crate::layers::LayerInfo,
    },
}

/// One layer of the build.
#[derive(Debug, Clone)]
pub struct PlannedLayer {
    pub kind: LayerKind,
    /// `binaries-<roles>`, `config-<role>`, `node-<name>`.
    pub name: String,
    pub body: LayerBody,
}

impl PlannedLayer {
    fn entries(kind: LayerKind, name: String, entries: Vec<Entry>) -> PlannedLayer {
        PlannedLayer {
            kind,
            name,
            body: LayerBody::Entries(entries),
        }
    }

    /// The files, when the layer was assembled with them (see [`Detail`]).
    pub fn files(&self) -> Option<&[Entry]> {
        match &self.body {
            LayerBody::Entries(e) => Some(e),
            LayerBody::Compressed { .. } => None,
        }
    }

    /// The layer as tar.gz bytes in memory, and its digest.
    pub(crate) fn compressed(
        &self,
        mtime: u64,
    ) -> Result<(std::borrow::Cow<'_, [u8]>, crate::layers::LayerInfo), BuildError> {
        match &self.body {
            LayerBody::Compressed { gz, info } => Ok((gz.as_slice().into(), info.clone())),
            LayerBody::Entries(entries) => {
                let mut bytes = Vec::new();
                let info = builder(entries, mtime)
                    .build_to(&mut bytes)
                    .map_err(|source| BuildError::Layer {
                        name: self.name.clone(),
                        source,
                    })?;
                Ok((bytes.into(), info))
            }
        }
    }

    /// Its digest and size (compressing it when it is not compressed yet).
    pub fn info(&self, mtime: u64) -> Result<crate::layers::LayerInfo, BuildError> {
        match &self.body {
            LayerBody::Compressed { info, .. } => Ok(info.clone()),
            LayerBody::Entries(entries) => {
                builder(entries, mtime)
                    .digest()
                    .map_err(|source| BuildError::Layer {
                        name: self.name.clone(),
                        source,
                    })
            }
        }
    }

    /// A key for "same content": paths, modes, owners and the bytes (by digest), or the file they
    /// stream from (whose content the release cache verified); 32 bytes to keep per layer.
    fn content_key(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut key = sha2::Sha256::new();
        let entries = match &self.body {
            LayerBody::Compressed { info, .. } => {
                key.update(b"tar.gz\0");
                key.update(info.sha256.as_bytes());
                return key.finalize().into();
            }
            LayerBody::Entries(e) => e,
        };
        for e in entries {
            key.update(e.path.as_bytes());
            key.update(format!("\0{:o}\0{}\0{}\0", e.mode, e.uid, e.gid).as_bytes());
            match &e.kind {
                // By digest: a shared file is hashed once, not once per node that has it.
                EntryKind::File(Content::Bytes(b)) => {
                    key.update(b"bytes\0");
                    key.update(sha2::Sha256::digest(b))
                }
                EntryKind::File(Content::Shared(b)) => {
                    key.update(b"bytes\0");
                    key.update(b.sha256())
                }
                EntryKind::File(Content::Path(p)) => {
                    key.update(b"path\0");
                    key.update(p.as_os_str().as_encoded_bytes())
                }
                EntryKind::Directory => key.update(b"dir"),
                EntryKind::Symlink(t) => key.update(t.as_bytes()),
            }
            key.update(b"\n");
        }
        key.finalize().into()
    }
}

pub(crate) fn builder(entries: &[Entry], mtime: u64) -> LayerBuilder {
    let mut b = LayerBuilder::new(mtime);
    for e in entries {
        b.entry(e.clone());
    }
    b
}

/// How much of each node an assembly keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every file of every layer and every secret (`kimage unpack` materializes them).
    Full,
    /// Node layers and secrets compressed as each node is assembled: what `kimage build` writes.
    Compact,
}

/// A node's private files (keys, kubeconfigs), delivered inline in the user-data as one tar.
#[derive(Debug, Clone)]
pub enum Secrets {
    Entries(Vec<Entry>),
    /// The tar, gzip-compressed as the user-data carries it (empty when there are none).
    Gzip(Vec<u8>),
}

/// Everything one node gets.
#[derive(Debug, Clone)]
pub struct NodeArtifacts {
    /// Position in `Cluster::nodes`.
    pub index: usize,
    pub name: String,
    pub role: String,
    pub address: String,
    /// Indices into `Assembly::layers`, in extraction order.
    pub layers: Vec<usize>,
    pub secrets: Secrets,
    pub start: Vec<render::StartStep>,
    /// Binaries the image must provide (`binaries.exclude`).
    pub excluded: Vec<String>,
}

/// The whole build, in memory.
#[derive(Debug, Clone)]
pub struct Assembly {
    pub mtime: u64,
    /// Unique layers (shared between nodes with the same content).
    pub layers: Vec<PlannedLayer>,
    pub nodes: Vec<NodeArtifacts>,
    /// Worker pools (`name` is the pool's, `address` is `dhcp`), sharing layers with the nodes.
    pub pools: Vec<NodeArtifacts>,
    /// What each pool's machines join with, by pool name.
    pub pool_join: BTreeMap<String, PoolJoin>,
}

/// How a worker pool's machines join: the token (its Secret) and the CA they pin.
#[derive(Clone)]
pub struct PoolJoin {
    /// The token's public part.
    pub token_id: String,
    /// RFC 3339.
    pub expires: String,
    /// The token Secret manifest (secret).
    pub secret_yaml: String,
    /// `sha256:<hex>` of the CA's public key.
    pub ca_cert_hash: String,
}

impl std::fmt::Debug for PoolJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolJoin")
            .field("token_id", &self.token_id)
            .field("expires", &self.expires)
            .field("secret_yaml", &"[secret elided]")
            .field("ca_cert_hash", &self.ca_cert_hash)
            .finish()
    }
}

/// The files of one node, split by layer kind.
struct NodeFiles {
    binaries: Vec<Entry>,
    config: Vec<Entry>,
    node: Vec<Entry>,
    secrets: Vec<Entry>,
}

pub(crate) fn start_spec(steps: &[render::StartStep]) -> String {
    steps
        .iter()
        .map(|s| {
            let a = match s.action {
                StartAction::Restart => "restart",
                StartAction::TryRestart => "try-restart",
                StartAction::EnableNow => "enable-now",
            };
            format!("{a}:{}", s.unit)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the build adds to the plan's file list: the content it left open.
struct Fill<'a> {
    pki: &'a PkiMaterial,
    installs: Option<&'a Vec<release::InstallFile>>,
    boot: Option<&'a release::BootManifest>,
    pool_env: Option<String>,
}

/// The plan's files of one node with their content, by what carries them. The user-data's own files
/// are written by the user-data, programs fetched at boot by the node; the release programs come from
/// the cache (one entry per file of a `*` member).
fn with_content(specs: Vec<FileSpec>, fill: &Fill) -> Result<NodeFiles, BuildError> {
    let mut f = NodeFiles {
        binaries: Vec::new(),
        config: Vec::new(),
        node: Vec::new(),
        secrets: Vec::new(),
    };
    for spec in specs {
        let into = match spec.carrier {
            Carrier::Config => &mut f.config,
            Carrier::Node => &mut f.node,
            Carrier::Secrets => &mut f.secrets,
            Carrier::Binaries | Carrier::UserData | Carrier::FetchedAtBoot => continue,
        };
        let content: Content = match spec.source {
            FileSource::Template { content, .. } => content.into(),
            FileSource::Pki(source) => fill.pki.bytes(&source)?.into(),
            FileSource::Static { bytes, .. } => bytes.into(),
            FileSource::Generated { bytes, .. } => bytes.into(),
            FileSource::FetchManifest => fill
                .boot
                .expect("a node that fetches at boot has a manifest")
                .to_json()
                .into(),
            FileSource::PoolEnv => fill
                .pool_env
                .clone()
                .expect("a pool machine has its settings")
                .into(),
            FileSource::Release { .. } | FileSource::BootEnv => {
                unreachable!("{} travels in no layer", spec.path)
            }
        };
        into.push(
            Entry::file(spec.path, spec.mode, content)
                .owner(u64::from(spec.uid), u64::from(spec.gid)),
        );
    }
    if let Some(files) = fill.installs {
        for i in files {
            f.binaries.push(Entry::file(
                i.install.as_str(),
                i.mode,
                Content::Path(i.source.clone()),
            ));
        }
    }
    Ok(f)
}

/// Where the nodes' binaries come from: release files to embed (by node name or `PoolModel::key`),
/// or the manifests the nodes fetch by at boot. Neither when no node needs binaries.
#[derive(Debug, Default)]
pub enum NodeBinaries {
    #[default]
    None,
    Embed(BTreeMap<String, Vec<release::InstallFile>>),
    FetchAtBoot(release::BootManifests),
}

/// What one node or pool machine gets, before its layers are shared with the others'.
struct AssembledNode {
    layers: Vec<([u8; 32], PlannedLayer)>,
    secrets: Secrets,
    start: Vec<render::StartStep>,
}

/// Assembles nodes and pools from the model, the PKI and the release files: one renderer for all of
/// them, nodes in parallel.
pub struct Assembler<'c> {
    cluster: &'c Cluster,
    pki: &'c PkiMaterial,
    binaries: &'c NodeBinaries,
    /// The images layer's entries, when layers carry the images.
    images: Option<&'c Vec<Entry>>,
    renderer: render::Renderer<'c>,
    mtime: u64,
    detail: Detail,
}

impl<'c> Assembler<'c> {
    pub fn new(
        cluster: &'c Cluster,
        pki: &'c PkiMaterial,
        binaries: &'c NodeBinaries,
        images: Option<&'c Vec<Entry>>,
        mtime: u64,
        detail: Detail,
    ) -> Result<Assembler<'c>, BuildError> {
        Ok(Assembler {
            cluster,
            pki,
            binaries,
            images,
            renderer: render::Renderer::new(cluster)?,
            mtime,
            detail,
        })
    }

    /// One node's (or pool machine's) layers, secrets and start plan, from its planned files.
    /// `key` finds its release files; its own layer is named `own_layer`; a pool machine gets the
    /// pool's settings.
    fn node(
        &self,
        n: &NodeModel,
        key: &str,
        own_layer: String,
        pool: Option<(&PoolModel, String)>,
    ) -> Result<AssembledNode, BuildError> {
        let start = files::start_plan(&self.renderer, n)?;
        let specs = files::node_files(self.cluster, &self.renderer, n, &start)?;
        let boot = match self.binaries {
            NodeBinaries::FetchAtBoot(m) if !n.binaries.is_empty() => Some(m.for_node(n)),
            _ => None,
        };
        let installs = match self.binaries {
            NodeBinaries::Embed(files) => files.get(key),
            _ => None,
        };
        let f = with_content(
            specs,
            &Fill {
                pki: self.pki,
                installs,
                boot: boot.as_ref(),
                pool_env: pool.map(|(_, env)| env),
            },
        )?;
        let mut planned = Vec::new();
        if !f.binaries.is_empty() {
            planned.push(PlannedLayer::entries(
                LayerKind::Binaries,
                binaries_label(n),
                f.binaries,
            ));
        }
        if let Some(images) = self.images.filter(|_| n.runs_kubelet) {
            planned.push(PlannedLayer::entries(
                LayerKind::Images,
                "images".to_string(),
                images.clone(),
            ));
        }
        planned.push(PlannedLayer::entries(
            LayerKind::Config,
            format!("config-{}", n.role.as_str()),
            f.config,
        ));
        let mut own = PlannedLayer::entries(LayerKind::Node, own_layer, f.node);
        let mut secrets = Secrets::Entries(f.secrets);
        if self.detail == Detail::Compact {
            // Exact-size copies: the compressors' buffers have room to spare, kept for every node.
            let (gz, info) = own.compressed(self.mtime)?;
            own.body = LayerBody::Compressed {
                gz: gz.to_vec(),
                info,
            };
            secrets = Secrets::Gzip(secrets_gz(self.mtime, n.name.as_str(), &secrets)?.to_vec());
        }
        planned.push(own);
        Ok(AssembledNode {
            layers: planned.into_iter().map(|l| (l.content_key(), l)).collect(),
            secrets,
            start,
        })
    }

    /// Every selected node's artifacts, layers shared between nodes with the same content.
    pub fn nodes(&self, selected: &[&NodeModel]) -> Result<Assembly, BuildError> {
        use rayon::prelude::*;
        let mut a = Assembly {
            mtime: self.mtime,
            layers: Vec::new(),
            nodes: Vec::with_capacity(selected.len()),
            pools: Vec::new(),
            pool_join: BTreeMap::new(),
        };
        let mut by_key = BTreeMap::new();
        // In chunks: each node's copy of a shared layer lives only until it is found to be shared.
        for chunk in selected.chunks(256) {
            let done: Vec<AssembledNode> = chunk
                .par_iter()
                .map(|n| {
                    let name = n.name.as_str();
                    self.node(n, name, format!("node-{name}"), None)
                })
                .collect::<Result<_, _>>()?;
            for (n, an) in chunk.iter().zip(done) {
                a.nodes.push(NodeArtifacts {
                    index: n.index,
                    name: n.name.as_str().to_string(),
                    role: n.role.as_str().to_string(),
                    address: n.address.to_string(),
                    layers: share(&mut a.layers, &mut by_key, an.layers),
                    secrets: an.secrets,
                    start: an.start,
                    excluded: n.excluded.iter().map(|b| b.name().to_string()).collect(),
                });
            }
        }
        Ok(a)
    }

    /// Adds the worker pools' artifacts to an assembly. A pool machine gets what a static worker
    /// gets, so its binaries and config layers are the static workers' when the profile has any (same
    /// content, same layer); its own layer holds the kubelet settings for TLS bootstrapping and the
    /// pool's settings.
    pub fn pools(&self, a: &mut Assembly, pools: &[&PoolModel]) -> Result<(), BuildError> {
        if pools.is_empty() {
            return Ok(());
        }
        let mut by_key: BTreeMap<[u8; 32], usize> = a
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.content_key(), i))
            .collect();
        let ca_hash = self.pki.ca_cert_hash()?;
        for p in pools {
            let n = &p.node;
            let env = env_line("KIMAGE_POOL", p.name.as_str())
                + &env_line("KIMAGE_CA_CERT_HASH", &ca_hash);
            let an = self.node(n, &p.key(), format!("pool-{}", p.name), Some((p, env)))?;
            let rec = self.pki.bootstrap_token(p.name.as_str()).ok_or_else(|| {
                crate::pki::PkiError::Missing {
                    what: format!("bootstrap token of worker pool {}", p.name),
                }
            })?;
            a.pool_join.insert(
                p.name.to_string(),
                PoolJoin {
                    token_id: rec.id.clone(),
                    expires: rec
                        .expires_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .expect("formats"),
                    secret_yaml: String::from_utf8(
                        self.pki
                            .bytes(&PkiSource::BootstrapTokenSecret(p.name.to_string()))?,
                    )
                    .expect("the token Secret is UTF-8"),
                    ca_cert_hash: ca_hash.clone(),
                },
            );
            a.pools.push(NodeArtifacts {
                // Pools are not in `Cluster::nodes`; `pool_docs` finds their model by name.
                index: usize::MAX,
                name: p.name.to_string(),
                role: n.role.as_str().to_string(),
                address: "dhcp".to_string(),
                layers: share(&mut a.layers, &mut by_key, an.layers),
                secrets: an.secrets,
                start: an.start,
                excluded: n.excluded.iter().map(|b| b.name().to_string()).collect(),
            });
        }
        Ok(())
    }
}

/// Adds a node's layers to the build's unique layers (those with a content key already seen are
/// dropped) and returns their indices, in extraction order.
fn share(
    layers: &mut Vec<PlannedLayer>,
    by_key: &mut BTreeMap<[u8; 32], usize>,
    node: Vec<([u8; 32], PlannedLayer)>,
) -> Vec<usize> {
    node.into_iter()
        .map(|(key, l)| {
            *by_key.entry(key).or_insert_with(|| {
                layers.push(l);
                layers.len() - 1
            })
        })
        .collect()
}

/// The binaries layer's name for a node or pool machine.
fn binaries_label(n: &NodeModel) -> String {
    let names: BTreeSet<&str> = n.binaries.iter().map(|b| b.name()).collect();
    let label = if n.binaries.contains(&crate::model::Binary::KubeApiserver) {
        "control-plane"
    } else if n.binaries.contains(&crate::model::Binary::Kubelet) {
        "node"
    } else if names.contains("etcd") {
        "etcd"
    } else {
        "other"
    };
    let etcd = if n.etcd_member && label != "etcd" {
        "-etcd"
    } else {
        ""
    };
    format!("binaries-{label}{etcd}")
}

/// The three NoCloud documents of a worker pool: one user-data for every machine (token, CA pin,
/// layers), meta-data with only an instance-id, DHCP network-config.
pub fn pool_docs(
    c: &Cluster,
    a: &Assembly,
    p: &NodeArtifacts,
    built: &[BuiltLayer],
) -> Result<NodeDocs, BuildError> {
    let model = &c
        .pool(&p.name)
        .expect("assembled pools come from the model")
        .node;
    docs_for(c, a, model, p, built)
}

/// A layer after compression.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltLayer {
    pub kind: LayerKind,
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    #[serde(skip)]
    pub path: PathBuf,
}

/// The secrets of one node as the user-data carries them: a tar, gzip-compressed (empty when there
/// are none).
fn secrets_gz<'s>(
    mtime: u64,
    node: &str,
    secrets: &'s Secrets,
) -> Result<std::borrow::Cow<'s, [u8]>, BuildError> {
    let entries = match secrets {
        Secrets::Gzip(gz) => return Ok(gz.as_slice().into()),
        Secrets::Entries(e) if e.is_empty() => return Ok(Vec::new().into()),
        Secrets::Entries(e) => e,
    };
    let mut tar = Vec::new();
    builder(entries, mtime)
        .write_tar(&mut tar)
        .map_err(|source| BuildError::Layer {
            name: format!("secrets-{node}"),
            source,
        })?;
    Ok(userdata::gzip(&tar).into())
}

/// The three NoCloud documents of one node.
#[derive(Debug, Clone)]
pub struct NodeDocs {
    pub user_data: String,
    pub meta_data: String,
    pub network_config: String,
}

pub fn node_docs(
    c: &Cluster,
    a: &Assembly,
    n: &NodeArtifacts,
    built: &[BuiltLayer],
) -> Result<NodeDocs, BuildError> {
    docs_for(c, a, &c.nodes[n.index], n, built)
}

fn docs_for(
    c: &Cluster,
    a: &Assembly,
    model: &NodeModel,
    n: &NodeArtifacts,
    built: &[BuiltLayer],
) -> Result<NodeDocs, BuildError> {
    let refs: Vec<LayerRef> = n
        .layers
        .iter()
        .map(|&i| LayerRef {
            name: built[i].name.clone(),
            sha256: built[i].sha256.clone(),
            bytes: built[i].bytes,
        })
        .collect();
    let secrets = secrets_gz(a.mtime, &n.name, &n.secrets)?;
    let start = start_spec(&n.start);
    let user_data = userdata::user_data(
        c,
        model,
        &BootInputs {
            layers: &refs,
            secrets_gz: &secrets,
            start: &start,
        },
    );
    let ud_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(user_data.as_bytes()));
    let mut digests: Vec<&str> = vec![ud_sha.as_str()];
    digests.extend(refs.iter().map(|r| r.sha256.as_str()));
    let id = userdata::instance_id(model, &digests);
    Ok(NodeDocs {
        user_data,
        meta_data: userdata::meta_data(model, &id),
        network_config: userdata::network_config(c, model),
    })
}

/// Whether the seed carries the node's layers (it always carries the three documents).
pub fn seed_carries_layers(c: &Cluster) -> bool {
    c.layers.from == LayersFrom::Seed
}

/// What a build needs besides the model.
pub struct Inputs<'a> {
    pub cluster: &'a Cluster,
    /// The profile file (kimage.lock lives beside it).
    pub profile: &'a Path,
    pub state_dir: PathBuf,
    /// The nodes to build, in profile order.
    pub selected: Vec<&'a NodeModel>,
    /// The worker pools to build, in profile order.
    pub pools: Vec<&'a PoolModel>,
    /// The clock, the download cache and SOURCE_DATE_EPOCH, resolved at the command line's edge.
    pub settings: &'a crate::settings::Settings,
    pub detail: Detail,
    pub state: StateUse,
}

/// How a preparation uses the PKI state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateUse {
    /// Issue what the profile needs, in memory; the output stage commits it (`kimage build`).
    Issue,
    /// The stored state as it is: anything missing or out of date is an error that names `kimage pki`
    /// (`kimage unpack` shows what a build made, and writes nothing else).
    Existing,
}

/// The prepared build: everything in memory, nothing written yet.
pub struct Prepared {
    pub assembly: Assembly,
    /// The PKI state the build needs, to be committed by the output stage (`StateUse::Issue`).
    pub pki: Option<crate::pki::PendingState>,
    /// kimage.lock resolved for this build because none existed: to be written by the output stage.
    pub new_lock: Option<(PathBuf, release::Lock)>,
}

/// The lock for the cluster: read and checked when it exists, resolved in memory (to be written like
/// Cargo.lock) when it does not. A lock that no longer fits the profile is an error that says to run
/// `kimage lock`.
fn ensure_lock(inp: &Inputs) -> Result<(release::Lock, Option<PathBuf>), BuildError> {
    let path = release::command::lock_path(inp.profile);
    if path.exists() {
        let lock = release::Lock::read(&path).map_err(release::command::CommandError::from)?;
        release::check_lock(inp.cluster, &lock).map_err(release::command::CommandError::from)?;
        return Ok((lock, None));
    }
    let opts = release::ResolveOptions {
        offline: false,
        mirror: inp.cluster.binaries.mirror.as_ref().map(|m| m.to_string()),
        previous: None,
        refresh: false,
        retry: release::net::RetryPolicy::default(),
        image_mirror: None,
        mirror_checksums: false,
    };
    let lock =
        release::resolve_lock(inp.cluster, &opts).map_err(release::command::CommandError::from)?;
    Ok((lock, Some(path)))
}

/// Runs every stage up to the in-memory assembly: lock, release files or boot manifests, PKI, rendering.
/// Writes nothing: the state and the lock it computed are committed by the output stage.
pub fn prepare(inp: &Inputs) -> Result<Prepared, BuildError> {
    let c = inp.cluster;
    let needs_binaries = inp.selected.iter().any(|n| !n.binaries.is_empty())
        || inp.pools.iter().any(|p| !p.node.binaries.is_empty());
    let needs_images = c.images.as_ref().is_some_and(|i| i.embedded)
        && (inp.selected.iter().any(|n| n.runs_kubelet) || !inp.pools.is_empty());
    let mut binaries = NodeBinaries::None;
    let mut images = None;
    let mut new_lock = None;
    if needs_binaries || needs_images {
        let (lock, new_path) = ensure_lock(inp)?;
        if needs_images {
            let root = release::cache_dir(inp.settings.cache_dir.as_deref())
                .map_err(release::command::CommandError::from)?;
            images = Some(
                crate::images::layout::entries(&lock.images, &release::Cache::new(root))
                    .map_err(|e| BuildError::Images(Box::new(e)))?,
            );
        }
        match c.binaries.source {
            _ if !needs_binaries => {}
            BinarySource::Embed => {
                let root = release::cache_dir(inp.settings.cache_dir.as_deref())
                    .map_err(release::command::CommandError::from)?;
                binaries = NodeBinaries::Embed(
                    release::install_files(c, &lock, &release::Cache::new(root))
                        .map_err(BuildError::from)?,
                );
            }
            BinarySource::FetchAtBoot => {
                binaries = NodeBinaries::FetchAtBoot(
                    release::BootManifests::new(c, &lock)
                        .map_err(release::command::CommandError::from)?,
                );
            }
        }
        new_lock = new_path.map(|p| (p, lock));
    }
    let (pki, pending) = match inp.state {
        StateUse::Issue => {
            let (m, p) = crate::pki::compute(
                c,
                &inp.state_dir,
                inp.settings.now,
                &crate::pki::Requests::default(),
            )?;
            (m, Some(p))
        }
        StateUse::Existing => (crate::pki::load(c, &inp.state_dir, inp.settings.now)?, None),
    };
    // Layer timestamps come from the state (the cluster CA's NotBefore), so rebuilding later gives
    // the same bytes; SOURCE_DATE_EPOCH overrides.
    let fallback = pki
        .cert(crate::pki::spec::CA)
        .map(|ca| ca.not_before.unix_timestamp().max(0) as u64)
        .unwrap_or(0);
    let mtime = inp.settings.source_date_epoch.unwrap_or(fallback);
    let assembler = Assembler::new(c, &pki, &binaries, images.as_ref(), mtime, inp.detail)?;
    let mut assembly = assembler.nodes(&inp.selected)?;
    assembler.pools(&mut assembly, &inp.pools)?;
    Ok(Prepared {
        assembly,
        pki: pending,
        new_lock,
    })
}

/// What the node's user-data writes besides the secrets: its settings file and the apply script, as
/// (path, mode, content), so `kimage unpack` shows them too.
pub fn boot_files(
    c: &Cluster,
    a: &Assembly,
    n: &NodeArtifacts,
) -> Result<Vec<(String, u32, Vec<u8>)>, BuildError> {
    let model = c
        .node(&n.name)
        .expect("assembled nodes come from the model");
    // The settings name each layer by digest, as the real user-data does (this compresses them once).
    let refs: Vec<LayerRef> = n
        .layers
        .iter()
        .map(|&i| {
            let info = a.layers[i].info(a.mtime)?;
            Ok(LayerRef {
                name: a.layers[i].name.clone(),
                sha256: info.sha256,
                bytes: info.bytes,
            })
        })
        .collect::<Result<_, BuildError>>()?;
    let start = start_spec(&n.start);
    let env = userdata::boot_env(
        c,
        model,
        &BootInputs {
            layers: &refs,
            secrets_gz: &[],
            start: &start,
        },
    );
    Ok(vec![
        (
            userdata::boot_env_path().to_string(),
            0o644,
            env.into_bytes(),
        ),
        (
            userdata::apply_path().to_string(),
            0o755,
            userdata::apply_script().as_bytes().to_vec(),
        ),
    ])
}
