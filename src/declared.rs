//! What lands on a node besides the role's rendered files, declared as data beside the files it
//! names: `image-layers/boot/files.yaml` (kimage's own boot files) and `image-layers/pki/files.yaml`
//! (the PKI material), each entry with its path, mode, owner, source, carrier and conditions, as
//! `layer.yaml` declares the rendered files. Parsed and checked once; `plan::files` turns the entries
//! into each node's file list and `pki::spec` into its PKI files.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Cluster, NodeModel};

/// `image-layers/boot/`'s files: `(name, content)`.
const BOOT_DIR: &[(&str, &str)] = &[
    (
        "files.yaml",
        include_str!("../image-layers/boot/files.yaml"),
    ),
    (
        "kimage-apply.sh",
        include_str!("../image-layers/boot/kimage-apply.sh"),
    ),
    (
        "kimage-fetch",
        include_str!("../image-layers/boot/kimage-fetch"),
    ),
    (
        "kimage-report.service",
        include_str!("../image-layers/boot/kimage-report.service"),
    ),
    (
        "kimage-report.sh",
        include_str!("../image-layers/boot/kimage-report.sh"),
    ),
];
const PKI_FILES: &str = include_str!("../image-layers/pki/files.yaml");

/// `path`, `!path`, `path == value` or `path != value`; `path` is dotted (`cluster.os.swap_off`).
/// A path is true unless it is missing, null, false, 0, "" or an empty list or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Truthy(String),
    Falsy(String),
    Eq(String, String),
    Ne(String, String),
}

impl Condition {
    pub fn parse(s: &str) -> Result<Condition, String> {
        let s = s.trim();
        let path_ok = |p: &str| {
            !p.is_empty()
                && p.split('.').all(|seg| {
                    !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
        };
        let checked = |p: &str| -> Result<String, String> {
            if path_ok(p) {
                Ok(p.to_string())
            } else {
                Err(format!("`{p}` is not a dotted path"))
            }
        };
        if let Some((l, r)) = s.split_once("==") {
            return Ok(Condition::Eq(checked(l.trim())?, r.trim().to_string()));
        }
        if let Some((l, r)) = s.split_once("!=") {
            return Ok(Condition::Ne(checked(l.trim())?, r.trim().to_string()));
        }
        if let Some(p) = s.strip_prefix('!') {
            return Ok(Condition::Falsy(checked(p.trim())?));
        }
        Ok(Condition::Truthy(checked(s)?))
    }

    pub fn path(&self) -> &str {
        match self {
            Condition::Truthy(p)
            | Condition::Falsy(p)
            | Condition::Eq(p, _)
            | Condition::Ne(p, _) => p,
        }
    }

    pub fn holds(&self, ctx: &Value) -> bool {
        self.holds_for(lookup(ctx, self.path()))
    }

    /// Whether the condition holds for `v`, the value at its path.
    fn holds_for(&self, v: Option<&Value>) -> bool {
        match self {
            Condition::Truthy(_) => truthy(v),
            Condition::Falsy(_) => !truthy(v),
            Condition::Eq(_, want) => v.is_some_and(|v| scalar(v) == *want),
            Condition::Ne(_, want) => v.is_none_or(|v| scalar(v) != *want),
        }
    }
}

fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |v, seg| v.get(seg))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the conditions of these files may ask: `plan::files` and `pki::spec` build the context with
/// exactly these paths, so a condition on anything else is refused when the files are loaded rather
/// than silently false.
pub const CONTEXT_PATHS: &[&str] = &[
    "node.role",
    "node.runs_kubelet",
    "node.etcd_member",
    "node.is_bootstrap",
    "node.pool",
    "node.binaries",
    "cluster.binaries.source",
    "cluster.pki.etcd_ca_key_on_control_plane",
    "cluster.pki.front_proxy_ca_key_on_control_plane",
    "cluster.pki.encryption_at_rest",
    "cluster.pools",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesYaml {
    description: String,
    files: Vec<EntryYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryYaml {
    dest: String,
    source: String,
    /// Octal, as a string ("0644"): YAML 1.2 would read a bare 0644 as decimal.
    mode: String,
    #[serde(default)]
    carrier: Option<CarrierName>,
    #[serde(default)]
    what: Option<String>,
    #[serde(default)]
    when: Vec<String>,
    #[serde(default)]
    each: Option<Each>,
}

/// What brings a declared file to the node (PKI files: decided by what they hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CarrierName {
    Config,
    Node,
    UserData,
}

/// Repeat an entry for each item of a cluster list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Each {
    /// Every worker pool: `{pool}` is its name.
    Pool,
}

/// Where a boot file's content comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootSource {
    /// A file of `image-layers/boot/`, copied.
    File(&'static str),
    /// Made by kimage for the node.
    Generated(Generated),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    NodeEnv,
    PoolEnv,
    BootEnv,
    FetchManifest,
}

/// What a PKI file holds, with `{node}` / `{pool}` still in the ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiSourceDecl {
    Cert(String),
    Key(String),
    Kubeconfig(String),
    SaKey,
    SaPub,
    BootstrapKubeconfig,
    BootstrapTokenSecret,
    ClusterInfo,
    EncryptionConfig,
}

/// One declared file.
#[derive(Debug, Clone)]
pub struct Declared<S> {
    pub dest: String,
    pub mode: u32,
    pub source: S,
    pub carrier: Option<CarrierName>,
    pub what: Option<String>,
    pub when: Vec<Condition>,
    pub each: Option<Each>,
}

impl<S> Declared<S> {
    /// Whether every condition holds for the node (evaluated on the values themselves: no JSON
    /// context is built, since this runs several times per node of a 10,000-node build).
    pub fn applies(&self, ctx: &Context) -> bool {
        self.when
            .iter()
            .all(|c| c.holds_for(ctx.get(c.path()).as_ref()))
    }
}

/// What the conditions of declared files see: exactly `CONTEXT_PATHS` of the node and its cluster.
pub struct Context<'a> {
    pub cluster: &'a Cluster,
    pub node: &'a NodeModel,
}

impl Context<'_> {
    pub fn get(&self, path: &str) -> Option<Value> {
        let (c, n) = (self.cluster, self.node);
        Some(match path {
            "node.role" => Value::from(n.role.as_str()),
            "node.runs_kubelet" => Value::from(n.runs_kubelet),
            "node.etcd_member" => Value::from(n.etcd_member),
            "node.is_bootstrap" => Value::from(n.is_bootstrap),
            "node.pool" => n
                .pool
                .as_ref()
                .map_or(Value::Null, |p| Value::from(p.as_str())),
            "node.binaries" => Value::from(!n.binaries.is_empty()),
            "cluster.binaries.source" => {
                serde_json::to_value(c.binaries.source).expect("an enum serializes")
            }
            "cluster.pki.etcd_ca_key_on_control_plane" => {
                Value::from(c.pki.etcd_ca_key_on_control_plane)
            }
            "cluster.pki.front_proxy_ca_key_on_control_plane" => {
                Value::from(c.pki.front_proxy_ca_key_on_control_plane)
            }
            "cluster.pki.encryption_at_rest" => Value::from(c.pki.encryption_at_rest.enabled()),
            "cluster.pools" => {
                Value::from(c.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
            }
            _ => return None,
        })
    }
}

/// `{node}` and `{pool}` replaced.
pub fn fill(template: &str, node: &str, pool: &str) -> String {
    template.replace("{node}", node).replace("{pool}", pool)
}

fn load<S>(
    file: &str,
    text: &str,
    source: impl Fn(&str) -> Result<S, String>,
) -> Result<Vec<Declared<S>>, String> {
    let bad = |m: String| format!("image-layers/{file}: {m}");
    let y: FilesYaml = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    if y.description.trim().is_empty() {
        return Err(bad("needs a description".into()));
    }
    y.files
        .into_iter()
        .map(|e| {
            let dest = &e.dest;
            if !dest.starts_with('/') || dest.contains("..") || dest.ends_with('/') {
                return Err(bad(format!("dest `{dest}` is not an absolute file path")));
            }
            let mode = u32::from_str_radix(&e.mode, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| bad(format!("mode `{}` of {dest} is not octal", e.mode)))?;
            let when = e
                .when
                .iter()
                .map(|c| {
                    let c = Condition::parse(c).map_err(|m| bad(format!("{dest}: {m}")))?;
                    if CONTEXT_PATHS.contains(&c.path()) {
                        Ok(c)
                    } else {
                        Err(bad(format!(
                            "{dest}: condition on `{}`, which these files cannot see (declared::CONTEXT_PATHS)",
                            c.path()
                        )))
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(Declared {
                source: source(&e.source).map_err(|m| bad(format!("{dest}: {m}")))?,
                dest: e.dest,
                mode,
                carrier: e.carrier,
                what: e.what,
                when,
                each: e.each,
            })
        })
        .collect()
}

fn boot_source(s: &str) -> Result<BootSource, String> {
    match s.split_once(' ') {
        Some(("file", name)) => BOOT_DIR
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, _)| BootSource::File(n))
            .ok_or_else(|| format!("`{name}` is not a file of image-layers/boot/")),
        Some(("generated", what)) => Ok(BootSource::Generated(match what {
            "node-env" => Generated::NodeEnv,
            "pool-env" => Generated::PoolEnv,
            "boot-env" => Generated::BootEnv,
            "fetch-manifest" => Generated::FetchManifest,
            other => return Err(format!("kimage generates no `{other}`")),
        })),
        _ => Err(format!(
            "source `{s}` is not `file NAME` or `generated WHAT`"
        )),
    }
}

fn pki_source(s: &str) -> Result<PkiSourceDecl, String> {
    Ok(match s.split_once(' ') {
        Some(("cert", id)) => PkiSourceDecl::Cert(id.to_string()),
        Some(("key", id)) => PkiSourceDecl::Key(id.to_string()),
        Some(("kubeconfig", id)) => PkiSourceDecl::Kubeconfig(id.to_string()),
        None if s == "sa-key" => PkiSourceDecl::SaKey,
        None if s == "sa-pub" => PkiSourceDecl::SaPub,
        None if s == "bootstrap-kubeconfig" => PkiSourceDecl::BootstrapKubeconfig,
        None if s == "bootstrap-token-secret" => PkiSourceDecl::BootstrapTokenSecret,
        None if s == "cluster-info" => PkiSourceDecl::ClusterInfo,
        None if s == "encryption-config" => PkiSourceDecl::EncryptionConfig,
        _ => return Err(format!("source `{s}` is not one the PKI state provides")),
    })
}

/// Every entry of `image-layers/boot/files.yaml`, in file order.
pub fn boot_files() -> &'static [Declared<BootSource>] {
    static FILES: OnceLock<Vec<Declared<BootSource>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let text = boot_file("files.yaml");
        let files = load("boot/files.yaml", text, boot_source)
            .unwrap_or_else(|e| panic!("{e} (checked by declared's tests)"));
        for f in &files {
            assert!(
                f.carrier.is_some(),
                "boot file {} names its carrier",
                f.dest
            );
        }
        files
    })
}

/// Every entry of `image-layers/pki/files.yaml`, in file order.
pub fn pki_files() -> &'static [Declared<PkiSourceDecl>] {
    static FILES: OnceLock<Vec<Declared<PkiSourceDecl>>> = OnceLock::new();
    FILES.get_or_init(|| {
        load("pki/files.yaml", PKI_FILES, pki_source)
            .unwrap_or_else(|e| panic!("{e} (checked by declared's tests)"))
    })
}

/// The content of a file of `image-layers/boot/`.
pub fn boot_file(name: &str) -> &'static str {
    BOOT_DIR
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("image-layers/boot/{name} is embedded"))
}

/// Where the node gets a generated boot file.
pub fn generated_path(what: Generated) -> &'static str {
    boot_files()
        .iter()
        .find(|f| f.source == BootSource::Generated(what))
        .map(|f| f.dest.as_str())
        .unwrap_or_else(|| panic!("image-layers/boot/files.yaml declares {what:?}"))
}

/// Where the node gets a copied boot file.
pub fn file_path(name: &str) -> &'static str {
    boot_files()
        .iter()
        .find(|f| matches!(f.source, BootSource::File(n) if n == name))
        .map(|f| f.dest.as_str())
        .unwrap_or_else(|| panic!("image-layers/boot/files.yaml declares {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declared_files_load() {
        assert!(boot_files().len() >= 8);
        assert!(pki_files().len() >= 30);
        assert_eq!(generated_path(Generated::BootEnv), "/run/kimage/boot.env");
        assert_eq!(file_path("kimage-apply.sh"), "/usr/local/sbin/kimage-apply");
    }

    #[test]
    fn bad_declarations_are_refused() {
        let load_pki = |t: &str| load("pki/files.yaml", t, pki_source).map(|_| ());
        let head = "description: x\nfiles:\n";
        assert!(
            load_pki(&format!(
                "{head}  - {{dest: /a, source: cert ca, mode: \"0644\"}}\n"
            ))
            .is_ok()
        );
        for (entry, want) in [
            (
                "{dest: a, source: cert ca, mode: \"0644\"}",
                "not an absolute file path",
            ),
            ("{dest: /a, source: cert ca, mode: \"9\"}", "is not octal"),
            (
                "{dest: /a, source: pem ca, mode: \"0644\"}",
                "not one the PKI state provides",
            ),
            (
                "{dest: /a, source: cert ca, mode: \"0644\", when: [node.address]}",
                "cannot see",
            ),
            (
                "{dest: /a, source: cert ca, mode: \"0644\", size: 1}",
                "unknown field",
            ),
        ] {
            let e = load_pki(&format!("{head}  - {entry}\n")).unwrap_err();
            assert!(e.contains(want), "{entry}: {e}");
        }
        assert!(
            load(
                "boot/files.yaml",
                &format!("{head}  - {{dest: /a, source: file nope, mode: \"0644\"}}\n"),
                boot_source
            )
            .unwrap_err()
            .contains("not a file of image-layers/boot/")
        );
    }

    #[test]
    fn every_file_of_image_layers_boot_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("image-layers/boot");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = BOOT_DIR.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, embedded);
        for (name, content) in BOOT_DIR {
            assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), *content);
        }
    }

    /// Every path a condition may name is in the context, so no declared condition is silently false.
    #[test]
    fn the_context_has_every_path_conditions_may_name() {
        for (name, text) in crate::profile::templates::TEMPLATES {
            let loaded = crate::profile::load_str(text, name).unwrap();
            let c = Cluster::resolve(&loaded.profile);
            let nodes = c.nodes.iter().chain(c.pools.iter().map(|p| &p.node));
            for n in nodes {
                let ctx = Context {
                    cluster: &c,
                    node: n,
                };
                for path in CONTEXT_PATHS {
                    assert!(ctx.get(path).is_some(), "{name} {}: {path}", n.name);
                }
                // The values are the model's own, as templates see them.
                let node = serde_json::to_value(n).unwrap();
                for path in CONTEXT_PATHS.iter().filter(|p| p.starts_with("node.")) {
                    let field = &path["node.".len()..];
                    if field != "binaries" {
                        assert_eq!(
                            ctx.get(path).unwrap(),
                            node[field],
                            "{name} {}: {path}",
                            n.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn conditions() {
        let ctx = json!({"cluster": {"lb": {"kind": "haproxy", "vip": null}, "mods": [], "on": true, "n": 0}});
        let holds = |s: &str| Condition::parse(s).unwrap().holds(&ctx);
        assert!(holds("cluster.lb.kind == haproxy"));
        assert!(!holds("cluster.lb.kind == nginx"));
        assert!(holds("cluster.lb.kind != nginx"));
        assert!(!holds("cluster.lb.vip"));
        assert!(holds("!cluster.lb.vip"));
        assert!(!holds("cluster.mods"));
        assert!(holds("cluster.on"));
        assert!(!holds("cluster.n"));
        assert!(!holds("cluster.missing.deeper"));
        assert!(holds("cluster.on == true"));
        assert!(Condition::parse("cluster..x").is_err());
        assert!(Condition::parse("a b").is_err());
    }
}
