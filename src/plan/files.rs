//! What lands on a node, as data: every file with its path, mode, owner, where its content comes from
//! and what carries it to the node (a layer, the user-data, or a download at boot). The build fills in
//! the content the plan leaves to it (PKI material, release files, what names the layers by digest);
//! `kimage plan` prints the list and docs/node-files.md is generated from it.
//!
//! Every entry is declared as data beside the files it names: the rendered files in
//! `image-layers/*/layer.yaml`, the PKI files in `image-layers/pki/files.yaml`, kimage's own boot files
//! in `image-layers/boot/files.yaml` (see `declared`), the release programs in the release catalog.

use serde::Serialize;

use crate::declared::{self, BootSource, CarrierName, Generated};
use crate::layers::Blob;
use crate::model::{Cluster, NodeModel};
use crate::pki::spec::{self, PkiSource};
use crate::profile::BinarySource;
use crate::release;
use crate::render::{self, Renderer, Scope, StartAction, StartStep};

/// What brings a file to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Carrier {
    /// The layer of release programs (shared by nodes that run the same set).
    Binaries,
    /// The role's configuration layer (shared by the nodes of a role with the same content).
    Config,
    /// The node's own layer.
    Node,
    /// The secrets tar inside the node's user-data (private material only travels there).
    Secrets,
    /// Written by the user-data itself (the apply script and its settings).
    UserData,
    /// Downloaded by the node at first boot from the locked URL, digest checked
    /// (`binaries.source: fetch-at-boot`).
    FetchedAtBoot,
}

impl Carrier {
    pub fn as_str(&self) -> &'static str {
        match self {
            Carrier::Binaries => "layer binaries",
            Carrier::Config => "layer config",
            Carrier::Node => "layer node",
            Carrier::Secrets => "user-data secrets",
            Carrier::UserData => "user-data",
            Carrier::FetchedAtBoot => "fetched at boot",
        }
    }
}

/// Where a file's content comes from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// Rendered while planning from `image-layers/<layer>/<file>` (so every template error is found
    /// before anything is written).
    Template { template: String, content: Blob },
    /// PKI material from the state.
    Pki(PkiSource),
    /// A program out of a release artifact (`*` members: every executable file of an archive
    /// directory); the build takes the verified bytes from the cache.
    Release {
        binary: String,
        artifact: String,
        member: Option<String>,
    },
    /// One of kimage's own files, the same on every node.
    Static {
        what: &'static str,
        bytes: &'static [u8],
    },
    /// Made for this node while planning.
    Generated { what: &'static str, bytes: Vec<u8> },
    /// The node's download manifest (locked URLs and digests), made from kimage.lock by the build.
    FetchManifest,
    /// A worker pool's settings, with the CA hash from the state, made by the build.
    PoolEnv,
    /// The apply script's settings: they name each layer by digest, so the output stage makes them.
    BootEnv,
}

impl FileSource {
    /// How `kimage plan` names it: `template:image-layers/worker/kubelet.service.hbs`, `pki:ca.crt`,
    /// `kubeconfig:admin@cp-1`, `release:kubelet v1.35.0 (amd64)`, `kimage:report script`, ...
    pub fn describe(&self) -> String {
        match self {
            FileSource::Template { template, .. } => format!("template:{template}"),
            FileSource::Pki(p) => pki_source(p),
            FileSource::Release {
                artifact, member, ..
            } => match member {
                Some(m) => format!("release:{artifact} {m}"),
                None => format!("release:{artifact}"),
            },
            FileSource::Static { what, .. } => format!("kimage:{what}"),
            FileSource::Generated { what, .. } => format!("kimage:{what}"),
            FileSource::FetchManifest => "kimage:fetch manifest (kimage.lock)".into(),
            FileSource::PoolEnv => "kimage:pool settings (CA hash from the state)".into(),
            FileSource::BootEnv => "kimage:apply settings (layer digests)".into(),
        }
    }

    /// Private material: only ever in the user-data's secrets, mode 0600.
    pub fn is_secret(&self) -> bool {
        matches!(self, FileSource::Pki(p) if p.is_secret())
    }
}

/// How `kimage plan` has always named PKI sources.
pub fn pki_source(p: &PkiSource) -> String {
    match p {
        PkiSource::Cert(id) => format!("pki:{id}.crt"),
        PkiSource::Key(id) => format!("pki:{id}.key"),
        PkiSource::SaKey => "pki:sa.key".to_string(),
        PkiSource::SaPub => "pki:sa.pub".to_string(),
        PkiSource::Kubeconfig(id) => format!("kubeconfig:{id}"),
        PkiSource::BootstrapKubeconfig(pool) => format!("bootstrap-token:{pool}"),
        PkiSource::BootstrapTokenSecret(pool) => format!("bootstrap-token-secret:{pool}"),
        PkiSource::ClusterInfo => "cluster-info".to_string(),
        PkiSource::EncryptionConfig => "encryption-config".to_string(),
    }
}

/// One file a node gets.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Absolute path on the node (a directory ending in `/*` for every program of an archive
    /// directory).
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub carrier: Carrier,
    pub source: FileSource,
}

impl FileSpec {
    fn new(path: impl Into<String>, mode: u32, carrier: Carrier, source: FileSource) -> FileSpec {
        FileSpec {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
            carrier,
            source,
        }
    }
}

/// The layer a PKI file travels in: secrets only in the user-data; the CAs and sa.pub are the same on
/// every node (the role's layer); per-node certificates in the node's own layer.
fn pki_carrier(source: &PkiSource) -> Carrier {
    match source {
        s if s.is_secret() => Carrier::Secrets,
        PkiSource::Cert(id) if id.is_shared() => Carrier::Config,
        PkiSource::SaPub => Carrier::Config,
        _ => Carrier::Node,
    }
}

/// Shell-quoted `KEY='value'` lines for files the node's scripts source.
pub fn env_line(key: &str, value: &str) -> String {
    format!("{key}='{}'\n", value.replace('\'', "'\\''"))
}

/// The units a node starts, in order: the role's (`layer.yaml` `start:` entries), then the console
/// report once cloud-init has finished.
pub fn start_plan(r: &Renderer, n: &NodeModel) -> Result<Vec<StartStep>, render::RenderError> {
    let mut start = r.start_plan(n)?;
    start.push(StartStep {
        unit: "kimage-report.service".into(),
        action: StartAction::EnableNow,
    });
    Ok(start)
}

/// Who the node is, for its scripts and the console report: its name, role, address, cluster and the
/// units it starts.
fn node_env(c: &Cluster, n: &NodeModel, start: &[StartStep]) -> String {
    let units: Vec<&str> = start
        .iter()
        .filter(|s| s.action == StartAction::EnableNow)
        .map(|s| s.unit.as_str())
        .collect();
    env_line("KIMAGE_NODE", n.name.as_str())
        + &env_line("KIMAGE_ROLE", n.role.as_str())
        + &env_line("KIMAGE_ADDRESS", &n.address.to_string())
        + &env_line("KIMAGE_CLUSTER", &c.name)
        + &env_line("KIMAGE_UNITS", &units.join(" "))
}

/// Every file a node (or a worker pool's machines: `n.pool` set) gets, in the order the build puts
/// them into its layers: rendered files, PKI files, release programs, kimage's boot files, then the
/// user-data's own.
pub fn node_files(
    c: &Cluster,
    r: &Renderer,
    n: &NodeModel,
    start: &[StartStep],
) -> Result<Vec<FileSpec>, render::RenderError> {
    let mut out = Vec::new();
    for rf in r.node(n)? {
        out.push(FileSpec {
            path: rf.path,
            mode: rf.mode,
            uid: rf.uid,
            gid: rf.gid,
            carrier: match rf.scope {
                Scope::Shared => Carrier::Config,
                Scope::Node => Carrier::Node,
            },
            source: FileSource::Template {
                template: format!("image-layers/{}", rf.source),
                content: rf.content,
            },
        });
    }
    for p in spec::pki_files(c, n) {
        out.push(FileSpec::new(
            p.path,
            p.mode,
            pki_carrier(&p.source),
            FileSource::Pki(p.source),
        ));
    }
    let fetch = c.binaries.source == BinarySource::FetchAtBoot;
    for (artifact, members) in release::need::node_needs(c, n) {
        for m in members {
            let path = match m.glob_dir() {
                Some(_) => format!("{}*", m.install),
                None => m.install.clone(),
            };
            out.push(FileSpec::new(
                path,
                m.mode,
                if fetch {
                    Carrier::FetchedAtBoot
                } else {
                    Carrier::Binaries
                },
                FileSource::Release {
                    binary: m.binary.clone(),
                    artifact: artifact.to_string(),
                    member: m.path.clone(),
                },
            ));
        }
    }
    let ctx = declared::Context {
        cluster: c,
        node: n,
    };
    for f in declared::boot_files().iter().filter(|f| f.applies(&ctx)) {
        let what = f.what.as_deref().unwrap_or_default();
        let source = match f.source {
            BootSource::File(name) => FileSource::Static {
                what,
                bytes: declared::boot_file(name).as_bytes(),
            },
            BootSource::Generated(Generated::NodeEnv) => FileSource::Generated {
                what,
                bytes: node_env(c, n, start).into_bytes(),
            },
            BootSource::Generated(Generated::PoolEnv) => FileSource::PoolEnv,
            BootSource::Generated(Generated::BootEnv) => FileSource::BootEnv,
            BootSource::Generated(Generated::FetchManifest) => FileSource::FetchManifest,
        };
        let carrier = match f.carrier.expect("boot files name their carrier") {
            CarrierName::Config => Carrier::Config,
            CarrierName::Node => Carrier::Node,
            CarrierName::UserData => Carrier::UserData,
        };
        out.push(FileSpec::new(f.dest.clone(), f.mode, carrier, source));
    }
    Ok(out)
}
