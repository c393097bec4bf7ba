//! docs/node-files.md: what lands on a node, per role, as the plan says (`plan::plan` of the shipped
//! profiles), plus the files every node's user-data writes and the user-data size limits.

use std::collections::BTreeMap;

use super::{DocsError, MARKER, cell};
use crate::model::{Cluster, NodeModel};
use crate::plan::{self, NodePlan, PlannedFile};
use crate::profile::templates::TEMPLATES;
use crate::profile::{self, Role};
use crate::userdata;

const ROLES: [Role; 4] = [
    Role::ControlPlane,
    Role::Worker,
    Role::Etcd,
    Role::LoadBalancer,
];

/// What a node gets, with the node's own name replaced by `<node>` so nodes can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    files: Vec<PlannedFile>,
    binaries: Vec<String>,
    certs: Vec<String>,
    start: Vec<String>,
}

fn generic(s: &str, node: &str) -> String {
    s.replace(&format!("@{node}"), "@<node>")
}

fn content(p: &NodePlan) -> Content {
    let mut files: Vec<PlannedFile> = p
        .files
        .iter()
        .map(|f| PlannedFile {
            path: generic(&f.path, &p.name),
            source: generic(&f.source, &p.name),
            ..f.clone()
        })
        .collect();
    files.sort();
    Content {
        files,
        binaries: p.binaries.clone(),
        certs: p.certs.iter().map(|c| generic(c, &p.name)).collect(),
        start: p.start.clone(),
    }
}

/// The properties of a node (besides its role) that can change what it gets.
fn attributes(c: &Cluster, n: &NodeModel) -> BTreeMap<&'static str, String> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut a = BTreeMap::new();
    if n.role != Role::Etcd {
        a.insert("etcd member", yes_no(n.etcd_member));
    }
    if n.role == Role::ControlPlane {
        a.insert("bootstrap node", yes_no(n.is_bootstrap));
    }
    if n.role == Role::LoadBalancer
        && let Some(lb) = &c.load_balancer
    {
        a.insert("loadBalancer.kind", lb.kind.as_str().to_string());
        a.insert("keepalived VIP", yes_no(lb.vip.is_some()));
    }
    a
}

struct Group {
    content: Content,
    /// Attribute sets of every node that gets this content.
    variants: Vec<BTreeMap<&'static str, String>>,
    /// The first node seen with this content: (template, node).
    example: (String, String),
}

/// The attributes all of a group's nodes share, limited to those that tell the role's groups apart.
fn distinguishing(groups: &[Group], g: &Group) -> Vec<String> {
    let shared = |g: &Group| -> BTreeMap<&'static str, String> {
        let mut s = g.variants[0].clone();
        s.retain(|k, v| g.variants.iter().all(|x| x.get(k) == Some(v)));
        s
    };
    let mine = shared(g);
    mine.iter()
        .filter(|(k, v)| groups.iter().any(|o| shared(o).get(*k) != Some(*v)))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect()
}

fn userdata_files() -> Result<Vec<(String, String, String)>, DocsError> {
    // Any valid cluster shows the user-data's shape; the shape is the same for every role.
    let (name, text) = TEMPLATES[0];
    let loaded = profile::load_str(text, name)
        .map_err(|e| DocsError::Generate(format!("shipped profile {name}: {e}")))?;
    let c = Cluster::resolve(&loaded.profile);
    let n = &c.nodes[0];
    let ud = userdata::user_data(
        &c,
        n,
        &userdata::BootInputs {
            layers: &[],
            secrets_gz: &userdata::gzip(b"secrets"),
            start: "",
        },
    );
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&ud)
        .map_err(|e| DocsError::Generate(format!("user-data does not parse: {e}")))?;
    let mut out = Vec::new();
    for f in doc
        .get("write_files")
        .and_then(|w| w.as_sequence())
        .into_iter()
        .flatten()
    {
        let s = |k: &str| {
            f.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let path = s("path");
        let what = match path.as_str() {
            p if p == userdata::boot_env_path() => {
                "settings kimage-apply reads: node name, layer list with digests, where layers come from, units to start"
            }
            p if p == userdata::apply_path() => {
                "kimage-apply, run once per instance by `runcmd`: verifies and extracts the layers, installs the secrets, starts the units"
            }
            userdata::SECRETS_PATH => {
                "tar of the node's private files (the secret rows below); kimage-apply installs them and deletes it"
            }
            _ => "written by cloud-init",
        };
        out.push((path, s("permissions"), what.to_string()));
    }
    if out.is_empty() {
        return Err(DocsError::Generate("user-data writes no files".into()));
    }
    Ok(out)
}

/// Renders docs/node-files.md.
pub fn render() -> Result<String, DocsError> {
    let mut by_role: BTreeMap<Role, Vec<Group>> = BTreeMap::new();
    for (template, text) in TEMPLATES {
        let loaded = profile::load_str(text, template)
            .map_err(|e| DocsError::Generate(format!("shipped profile {template}: {e}")))?;
        let c = Cluster::resolve(&loaded.profile);
        let p = plan::plan(&c)
            .map_err(|e| DocsError::Generate(format!("shipped profile {template}: {e}")))?;
        for (n, np) in c.nodes.iter().zip(&p.nodes) {
            let ct = content(np);
            let attrs = attributes(&c, n);
            let groups = by_role.entry(n.role).or_default();
            match groups.iter_mut().find(|g| g.content == ct) {
                Some(g) => {
                    if !g.variants.contains(&attrs) {
                        g.variants.push(attrs);
                    }
                }
                None => groups.push(Group {
                    content: ct,
                    variants: vec![attrs],
                    example: (template.to_string(), n.name.to_string()),
                }),
            }
        }
    }

    let mut out = String::new();
    out.push_str(&format!(
        "<!-- {MARKER} from the plan (src/plan/) of the shipped profiles; do not edit. -->\n\
         # What lands on a node\n\n\
         Every file kimage puts on a node, per role, as `kimage plan` computes it for the shipped \
         profiles ({}). Nodes of one role that get the same files share a section; where nodes of a \
         role differ, each section names what sets them apart. Per-node certificates carry the node \
         name: `@<node>` stands for it. `kimage plan --output json` gives the same list for your own \
         profile, and `kimage unpack --role NODE --into DIR` writes the files themselves.\n\n\
         Secret files (private keys, kubeconfigs with client keys) travel only inside the node's \
         user-data, mode 0600, and only to nodes whose role needs them; everything else is in the \
         node's layers (binaries, the role's configuration, the node's own), written by the \
         user-data itself, or downloaded at boot (`binaries.source: fetch-at-boot`). Owners are \
         numeric, `uid:gid`, as the layers record them.\n\n",
        TEMPLATES
            .iter()
            .map(|(n, _)| format!("`profiles/{n}.yaml`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    out.push_str(
        "## Every node: written by the user-data\n\n| Path | Mode | What |\n|---|---|---|\n",
    );
    for (path, mode, what) in userdata_files()? {
        out.push_str(&format!("| `{path}` | {mode} | {} |\n", cell(&what)));
    }
    out.push_str(
        "\nThe user-data's `runcmd` runs kimage-apply once; its log is /var/log/kimage-apply.log and \
         the serial console (lines starting `KIMAGE <node>:`).\n\n",
    );

    out.push_str("### User-data size limits\n\nThe user-data carries the node's secrets, so its size matters where providers limit it (the `bytes` of `user_data` in out/manifest.json):\n\n| Where | Limit |\n|---|---|\n");
    for (where_, limit) in userdata::LIMITS {
        out.push_str(&format!(
            "| {where_} | {limit} bytes ({} KiB) |\n",
            limit / 1024
        ));
    }
    out.push('\n');

    for role in ROLES {
        let Some(groups) = by_role.get(&role) else {
            continue;
        };
        for g in groups {
            let dist = distinguishing(groups, g);
            let title = if dist.is_empty() {
                role.as_str().to_string()
            } else {
                format!("{} ({})", role.as_str(), dist.join(", "))
            };
            out.push_str(&format!("## {title}\n\n"));
            out.push_str(&format!(
                "Example: node `{}` of `profiles/{}.yaml`.\n\n",
                g.example.1, g.example.0
            ));
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            out.push_str(&format!(
                "- Release programs: {}\n",
                list(&g.content.binaries)
            ));
            out.push_str(&format!(
                "- Certificates and kubeconfigs: {}\n",
                list(&g.content.certs)
            ));
            out.push_str(&format!(
                "- Started by the user-data, in order: {}\n\n",
                list(&g.content.start)
            ));
            if g.content.files.is_empty() {
                out.push_str("No files from the plan yet.\n\n");
                continue;
            }
            out.push_str(
                "| Path | Mode | Owner | Source | Delivered in |\n|---|---|---|---|---|\n",
            );
            for f in &g.content.files {
                out.push_str(&format!(
                    "| `{}` | {} | {} | `{}` | {} |\n",
                    f.path,
                    f.mode,
                    f.owner,
                    f.source,
                    f.carrier.as_str()
                ));
            }
            out.push('\n');
        }
    }
    Ok(out)
}
