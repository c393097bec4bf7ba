//! Renders the files that land on a node from the templates in `image-layers/` (compiled in).
//!
//! Each layer directory holds a `layer.yaml` (which nodes get it, every file's destination, mode,
//! owner and scope, and the units it starts) beside its templates. Templates are handlebars in
//! strict mode without HTML escaping; their context is the resolved model serialized:
//!
//! - `cluster`: `model::Cluster`;
//! - `node`: `model::NodeModel` (only for `scope: node` files, so a `shared` file cannot depend on
//!   the node and renders to the same bytes on every node of its layer);
//! - `pki`: the on-node path of every PKI file the node gets, from `pki::spec::pki_files`, keyed
//!   `<kind>_crt`, `<kind>_key`, `<kind>_kubeconfig`, `sa_key`, `sa_pub` (e.g. `apiserver_crt`,
//!   `etcd_server_key`, `controller_manager_kubeconfig`). The paths depend on the role only.
//!
//! Templates only format; every derived value comes from the model. No rendered file holds private
//! material: keys and kubeconfigs reach the node through the user-data.

mod embedded;
mod manifest;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use handlebars::{Context, Handlebars};
use serde::Serialize;
use serde_json::{Value, json};

use crate::model::{Cluster, NodeModel};
use crate::pki::spec::{self, PkiSource};

pub use embedded::LAYERS;
use manifest::{ActionName, Condition, LayerManifest, ScopeName};

/// Whether a file is the same for every node of its layer (and can go into a layer shared between
/// nodes) or belongs to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Shared,
    Node,
}

/// One file for a node's filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    /// Absolute path on the node.
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
    /// Shared files are rendered once and handed to every node that has them, not copied.
    #[serde(skip)]
    pub content: crate::layers::Blob,
    /// The `image-layers/` group it comes from (`common`, `etcd`, `control-plane`, `worker`,
    /// `load-balancer`).
    pub layer: String,
    pub scope: Scope,
    /// `image-layers/<layer>/<file>` it was made from.
    pub source: String,
}

/// What the user-data does with a unit, in `start_plan` order, after `systemctl daemon-reload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartAction {
    /// `systemctl restart`: boot-time units that ran before the layers were unpacked
    /// (systemd-modules-load, systemd-sysctl).
    Restart,
    /// `systemctl try-restart`: re-read settings if the service runs at all (chrony or timesyncd).
    TryRestart,
    /// `systemctl enable --now`: kimage's services (enabled, so they also start on every later boot).
    EnableNow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartStep {
    pub unit: String,
    pub action: StartAction,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("reading image-layers/{file}: {message}")]
    Manifest { file: String, message: String },
    #[error("rendering image-layers/{template} for node {node}: {message}")]
    Template {
        template: String,
        node: String,
        message: String,
    },
    #[error(
        "rendering for node {node}: the value of {field} contains a line break or control character, which would inject lines into configuration files; remove it from the profile"
    )]
    UnsafeValue { node: String, field: String },
    #[error(
        "rendering for node {node}: {path} comes from both image-layers/{first} and image-layers/{second}"
    )]
    Conflict {
        node: String,
        path: String,
        first: String,
        second: String,
    },
}

/// A parsed layer with its conditions checked.
struct Layer {
    name: &'static str,
    when: Vec<Condition>,
    files: Vec<File>,
    start: Vec<Start>,
}

struct File {
    src: String,
    template: bool,
    dest: String,
    mode: u32,
    owner: String,
    group: String,
    uid: u32,
    gid: u32,
    scope: Scope,
    when: Vec<Condition>,
}

struct Start {
    unit: String,
    action: StartAction,
    order: u32,
    when: Vec<Condition>,
}

struct Catalog {
    layers: Vec<Layer>,
    registry: Handlebars<'static>,
}

/// Parsed once; a broken manifest or template is a defect of this kimage build, reported on use.
static CATALOG: LazyLock<Result<Catalog, (String, String)>> = LazyLock::new(|| {
    load_catalog().map_err(|e| match e {
        RenderError::Manifest { file, message } => (file, message),
        other => ("*".to_string(), other.to_string()),
    })
});

fn catalog() -> Result<&'static Catalog, RenderError> {
    CATALOG
        .as_ref()
        .map_err(|(file, message)| RenderError::Manifest {
            file: file.clone(),
            message: message.clone(),
        })
}

/// Users and groups rendered files may belong to. Only root so far: the etcd user is created on the
/// node (sysusers.d) with an id kimage cannot know, so nothing kimage ships is owned by it.
fn account_id(name: &str) -> Option<u32> {
    match name {
        "root" => Some(0),
        _ => None,
    }
}

fn conditions(file: &str, list: &[String], shared: bool) -> Result<Vec<Condition>, RenderError> {
    list.iter()
        .map(|s| {
            let c = Condition::parse(s).map_err(|message| RenderError::Manifest {
                file: file.to_string(),
                message: format!("condition `{s}`: {message}"),
            })?;
            let root = c.path().split('.').next().unwrap_or_default();
            let allowed: &[&str] = if shared { &["cluster", "pki"] } else { &["cluster", "node", "pki"] };
            if !allowed.contains(&root) {
                return Err(RenderError::Manifest {
                    file: file.to_string(),
                    message: format!(
                        "condition `{s}` reads `{root}`, which a {} file cannot depend on (use one of: {})",
                        if shared { "shared" } else { "node" },
                        allowed.join(", ")
                    ),
                });
            }
            Ok(c)
        })
        .collect()
}

fn load_catalog() -> Result<Catalog, RenderError> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(handlebars::no_escape);
    let mut layers = Vec::new();
    for name in LAYERS {
        let file = format!("{name}/layer.yaml");
        let bad = |message: String| RenderError::Manifest {
            file: file.clone(),
            message,
        };
        let text = embedded::get(&file).ok_or_else(|| bad("is missing".to_string()))?;
        let m: LayerManifest = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
        if m.description.trim().is_empty() {
            return Err(bad("needs a description".to_string()));
        }
        let mut files = Vec::new();
        for f in &m.files {
            let src_path = format!("{name}/{}", f.src);
            let body = embedded::get(&src_path).ok_or_else(|| {
                bad(format!(
                    "lists {}, which is not in image-layers/{name}/ (or not in the embedded list)",
                    f.src
                ))
            })?;
            if !f.dest.starts_with('/') || f.dest.contains("..") || f.dest.ends_with('/') {
                return Err(bad(format!(
                    "dest `{}` of {} is not an absolute file path",
                    f.dest, f.src
                )));
            }
            let mode = u32::from_str_radix(&f.mode, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    bad(format!(
                        "mode `{}` of {} is not an octal mode like \"0644\"",
                        f.mode, f.src
                    ))
                })?;
            let uid = account_id(&f.owner).ok_or_else(|| {
                bad(format!(
                    "owner `{}` of {} is not one kimage can ship (root)",
                    f.owner, f.src
                ))
            })?;
            let gid = account_id(&f.group).ok_or_else(|| {
                bad(format!(
                    "group `{}` of {} is not one kimage can ship (root)",
                    f.group, f.src
                ))
            })?;
            let template = f.src.ends_with(".hbs");
            if template {
                registry
                    .register_template_string(&src_path, body)
                    .map_err(|e| bad(format!("template {}: {e}", f.src)))?;
            }
            let scope = match f.scope {
                ScopeName::Shared => Scope::Shared,
                ScopeName::Node => Scope::Node,
            };
            files.push(File {
                src: f.src.clone(),
                template,
                dest: f.dest.clone(),
                mode,
                owner: f.owner.clone(),
                group: f.group.clone(),
                uid,
                gid,
                scope,
                when: conditions(&file, &f.when, scope == Scope::Shared)?,
            });
        }
        let start = m
            .start
            .iter()
            .map(|s| {
                Ok(Start {
                    unit: s.unit.clone(),
                    action: match s.action {
                        ActionName::Restart => StartAction::Restart,
                        ActionName::TryRestart => StartAction::TryRestart,
                        ActionName::EnableNow => StartAction::EnableNow,
                    },
                    order: s.order,
                    when: conditions(&file, &s.when, false)?,
                })
            })
            .collect::<Result<Vec<_>, RenderError>>()?;
        layers.push(Layer {
            name,
            when: conditions(&file, &m.when, false)?,
            files,
            start,
        });
    }
    Ok(Catalog { layers, registry })
}

/// The template key of a PKI file (`apiserver_crt`, `etcd_ca_crt`, `kubelet_kubeconfig`, `sa_key`).
fn pki_key(source: &PkiSource) -> String {
    let kind = |id: &spec::CertId| id.kind().replace('-', "_");
    match source {
        PkiSource::Cert(id) => format!("{}_crt", kind(id)),
        PkiSource::Key(id) => format!("{}_key", kind(id)),
        PkiSource::Kubeconfig(id) => format!("{}_kubeconfig", kind(id)),
        PkiSource::SaKey => "sa_key".to_string(),
        PkiSource::SaPub => "sa_pub".to_string(),
        PkiSource::BootstrapKubeconfig(_) => "bootstrap_kubelet_kubeconfig".to_string(),
        PkiSource::BootstrapTokenSecret(pool) => {
            format!("bootstrap_token_{}", pool.replace(['-', '.'], "_"))
        }
        PkiSource::ClusterInfo => "cluster_info".to_string(),
        PkiSource::EncryptionConfig => "encryption_config".to_string(),
    }
}

/// The on-node paths of the node's PKI files, keyed as templates use them.
pub fn pki_paths(cluster: &Cluster, node: &NodeModel) -> BTreeMap<String, String> {
    spec::pki_files(cluster, node)
        .into_iter()
        .map(|f| (pki_key(&f.source), f.path))
        .collect()
}

fn cluster_json(cluster: &Cluster) -> Value {
    serde_json::to_value(cluster).expect("the model serializes")
}

fn layers_for<'a>(cat: &'a Catalog, full: &Value) -> impl Iterator<Item = &'a Layer> {
    cat.layers
        .iter()
        .filter(move |l| l.when.iter().all(|c| c.holds(full)))
}

type SharedCache = BTreeMap<(usize, String), std::sync::Arc<Vec<RenderedFile>>>;

/// Renders the nodes of one cluster. Shared files depend on the cluster and the role's PKI paths only
/// (the manifest checker enforces it), so each is rendered once per distinct PKI map and reused; node
/// files see the cluster without its node and hosts lists (which only shared files such as /etc/hosts
/// need), so a node's context stays small however large the cluster is.
pub struct Renderer<'c> {
    cluster: &'c Cluster,
    cat: &'static Catalog,
    /// The cluster without its node and hosts lists. The whole cluster is serialized again for each
    /// shared-file render (a few per role) rather than kept: at 10,000 nodes it is 30 MB.
    slim: Value,
    /// Shared files by (layer index, PKI map): rendered once.
    shared: std::sync::Mutex<SharedCache>,
}

impl<'c> Renderer<'c> {
    pub fn new(cluster: &'c Cluster) -> Result<Renderer<'c>, RenderError> {
        let cat = catalog()?;
        let full = cluster_json(cluster);
        // Every value a template can see is in the serialized cluster; one scan covers all nodes.
        if let Some(field) = unsafe_value(&full, "") {
            let field = field.trim_start_matches('.').to_string();
            let node = field
                .strip_prefix("nodes[")
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| cluster.nodes.get(i))
                .map(|n| n.name.to_string())
                .unwrap_or_else(|| "(all)".to_string());
            return Err(RenderError::UnsafeValue {
                node,
                field: format!("cluster.{field}"),
            });
        }
        let mut slim = full;
        if let Some(o) = slim.as_object_mut() {
            o.remove("nodes");
            o.remove("hosts");
        }
        Ok(Renderer {
            cluster,
            cat,
            slim,
            shared: Default::default(),
        })
    }

    /// The node context: `cluster` (without the node and hosts lists), `node`, `pki`.
    fn node_context(&self, node: &NodeModel) -> (Value, String) {
        let pki = pki_paths(self.cluster, node);
        let pki_key = serde_json::to_string(&pki).expect("paths serialize");
        let ctx = json!({
            "cluster": self.slim,
            "node": serde_json::to_value(node).expect("the model serializes"),
            "pki": pki,
        });
        (ctx, pki_key)
    }

    fn render_file(
        &self,
        layer: &Layer,
        f: &File,
        ctx: &Context,
        node: &NodeModel,
    ) -> Result<RenderedFile, RenderError> {
        let source = format!("{}/{}", layer.name, f.src);
        let content = if f.template {
            self.cat
                .registry
                .render_with_context(&source, ctx)
                .map_err(|e| RenderError::Template {
                    template: source.clone(),
                    node: node.name.to_string(),
                    message: e.to_string(),
                })?
        } else {
            embedded::get(&source).unwrap_or_default().to_string()
        };
        Ok(RenderedFile {
            path: f.dest.clone(),
            mode: f.mode,
            owner: f.owner.clone(),
            group: f.group.clone(),
            uid: f.uid,
            gid: f.gid,
            content: crate::layers::Blob::new(content.into_bytes()),
            layer: layer.name.to_string(),
            scope: f.scope,
            source,
        })
    }

    /// The shared files of layer `li` for nodes with this PKI map, rendered once.
    fn shared_files(
        &self,
        li: usize,
        pki_key: &str,
        node_ctx: &Value,
        node: &NodeModel,
    ) -> Result<std::sync::Arc<Vec<RenderedFile>>, RenderError> {
        let key = (li, pki_key.to_string());
        if let Some(hit) = self.shared.lock().expect("not poisoned").get(&key) {
            return Ok(hit.clone());
        }
        let layer = &self.cat.layers[li];
        let ctx =
            Context::from(json!({ "cluster": cluster_json(self.cluster), "pki": node_ctx["pki"] }));
        let mut files = Vec::new();
        for f in layer.files.iter().filter(|f| f.scope == Scope::Shared) {
            if f.when.iter().all(|c| c.holds(ctx.data())) {
                files.push(self.render_file(layer, f, &ctx, node)?);
            }
        }
        let files = std::sync::Arc::new(files);
        self.shared
            .lock()
            .expect("not poisoned")
            .insert(key, files.clone());
        Ok(files)
    }

    /// Every file kimage renders for `node`, sorted by path.
    pub fn node(&self, node: &NodeModel) -> Result<Vec<RenderedFile>, RenderError> {
        let (ctx_value, pki_key) = self.node_context(node);
        let mut out: BTreeMap<String, RenderedFile> = BTreeMap::new();
        let mut add = |file: RenderedFile| -> Result<(), RenderError> {
            let dest = file.path.clone();
            let source = file.source.clone();
            if let Some(prev) = out.insert(dest.clone(), file) {
                return Err(RenderError::Conflict {
                    node: node.name.to_string(),
                    path: dest,
                    first: prev.source,
                    second: source,
                });
            }
            Ok(())
        };
        let layers: Vec<usize> = (0..self.cat.layers.len())
            .filter(|&i| self.cat.layers[i].when.iter().all(|c| c.holds(&ctx_value)))
            .collect();
        let node_ctx = Context::from(ctx_value);
        for li in layers {
            let layer = &self.cat.layers[li];
            for f in self
                .shared_files(li, &pki_key, node_ctx.data(), node)?
                .iter()
            {
                add(f.clone())?;
            }
            for f in layer.files.iter().filter(|f| f.scope == Scope::Node) {
                if f.when.iter().all(|c| c.holds(node_ctx.data())) {
                    add(self.render_file(layer, f, &node_ctx, node)?)?;
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// What the user-data runs for `node`, in order, once its layers are unpacked and systemd reloaded.
    pub fn start_plan(&self, node: &NodeModel) -> Result<Vec<StartStep>, RenderError> {
        let (ctx, _) = self.node_context(node);
        let mut steps: Vec<(u32, usize, StartStep)> = Vec::new();
        for layer in layers_for(self.cat, &ctx) {
            for s in &layer.start {
                if s.when.iter().all(|c| c.holds(&ctx)) {
                    let step = StartStep {
                        unit: s.unit.clone(),
                        action: s.action,
                    };
                    steps.push((s.order, steps.len(), step));
                }
            }
        }
        steps.sort_by_key(|(order, i, _)| (*order, *i));
        Ok(steps.into_iter().map(|(_, _, s)| s).collect())
    }
}

/// Every file kimage renders for `node`, sorted by path.
pub fn render_node(cluster: &Cluster, node: &NodeModel) -> Result<Vec<RenderedFile>, RenderError> {
    Renderer::new(cluster)?.node(node)
}

/// The files of every node, by node name.
pub fn render_cluster(
    cluster: &Cluster,
) -> Result<BTreeMap<String, Vec<RenderedFile>>, RenderError> {
    let r = Renderer::new(cluster)?;
    cluster
        .nodes
        .iter()
        .map(|n| Ok((n.name.to_string(), r.node(n)?)))
        .collect()
}

/// The dotted path of the first string in `v` holding a control character (templates write values
/// into line-based formats: unit files, sysctl.d, EnvironmentFiles).
fn unsafe_value(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) => s.chars().any(char::is_control).then(|| path.to_string()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, e)| unsafe_value(e, &format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().find_map(|(k, e)| {
            if k.chars().any(char::is_control) {
                return Some(format!("{path}.{}", k.escape_debug()));
            }
            unsafe_value(e, &format!("{path}.{k}"))
        }),
        _ => None,
    }
}

/// What the user-data runs, in order, once the node's layers are unpacked and systemd reloaded.
pub fn start_plan(cluster: &Cluster, node: &NodeModel) -> Result<Vec<StartStep>, RenderError> {
    Renderer::new(cluster)?.start_plan(node)
}

/// kimage's units the node enables and starts, in order (the `EnableNow` steps of `start_plan`).
pub fn units_to_start(cluster: &Cluster, node: &NodeModel) -> Result<Vec<String>, RenderError> {
    Ok(start_plan(cluster, node)?
        .into_iter()
        .filter(|s| s.action == StartAction::EnableNow)
        .map(|s| s.unit)
        .collect())
}

/// `(path below image-layers/, content)` of every embedded file, for tests and `kimage docs`.
pub fn embedded_files() -> &'static [(&'static str, &'static str)] {
    embedded::FILES
}
