//! The plan: what each node will get (role, certificates, files, binaries, layers), computed from the
//! model before anything is written. `kimage plan` prints it; `build` follows it.

pub mod files;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Cluster, NodeModel};
use crate::pki::spec;
use crate::render::{RenderError, Renderer};

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub endpoint: String,
    pub bootstrap_node: Option<String>,
    pub nodes: Vec<NodePlan>,
    /// etcd members that join the running cluster when they boot (added after it formed).
    pub etcd_joining: Vec<String>,
    /// The PKI state compared with, if one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Certificates the next build (re-)issues, with the reason (`apiserver@cp-1: ip_addresses +10.0.0.100`).
    pub pending: Vec<String>,
    /// What the next `kimage build` writes besides out/ (the state, kimage.lock, cluster.json), and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<String>,
    /// Worker pools: what every machine of each gets (address `dhcp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<NodePlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    pub name: String,
    pub role: String,
    pub address: String,
    pub etcd_member: bool,
    pub bootstrap: bool,
    /// Certificate and kubeconfig ids this node receives.
    pub certs: Vec<String>,
    /// Release programs kimage delivers to the node.
    pub binaries: Vec<String>,
    /// Programs the node runs that the image must already have (`binaries.exclude`).
    pub excluded: Vec<String>,
    /// Container images the node gets (`images`, nodes that run pods), by reference, and how.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// `embed` or `mirror`, when the node gets images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_delivery: Option<crate::profile::ImageDelivery>,
    /// What the user-data does with kimage's units, in order (`enable-now:etcd.service`).
    pub start: Vec<String>,
    /// Every file the node gets, sorted by path.
    pub files: Vec<PlannedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PlannedFile {
    pub path: String,
    pub mode: String,
    /// `uid:gid`.
    pub owner: String,
    /// Where the content comes from: `template:image-layers/…`, `pki:<id>.crt`, `kubeconfig:<id>`,
    /// `release:<artifact>`, `kimage:<what>`.
    pub source: String,
    /// What brings it to the node: a layer, the user-data (its secrets), a download at boot.
    pub carrier: files::Carrier,
    /// Private material travels in user-data only.
    pub secret: bool,
}

impl PlannedFile {
    pub fn from_spec(f: &files::FileSpec) -> PlannedFile {
        PlannedFile {
            path: f.path.clone(),
            mode: format!("{:04o}", f.mode),
            owner: format!("{}:{}", f.uid, f.gid),
            source: f.source.describe(),
            carrier: f.carrier,
            secret: f.source.is_secret(),
        }
    }
}

/// What one node gets, from the same file list the build assembles.
pub fn node_plan(c: &Cluster, r: &Renderer, n: &NodeModel) -> Result<NodePlan, RenderError> {
    let start = files::start_plan(r, n)?;
    let mut planned: Vec<PlannedFile> = files::node_files(c, r, n, &start)?
        .iter()
        .map(PlannedFile::from_spec)
        .collect();
    planned.sort();
    Ok(NodePlan {
        name: n.name.to_string(),
        role: n.role.as_str().to_string(),
        address: n.address.to_string(),
        etcd_member: n.etcd_member,
        bootstrap: n.is_bootstrap,
        certs: spec::node_cert_ids(c, n)
            .iter()
            .map(|id| id.to_string())
            .collect(),
        binaries: n.binaries.iter().map(|b| b.name().to_string()).collect(),
        excluded: n.excluded.iter().map(|b| b.name().to_string()).collect(),
        images: c
            .images
            .iter()
            .filter(|_| n.runs_kubelet)
            .flat_map(|i| i.needed.keys().cloned())
            .collect(),
        image_delivery: c
            .images
            .as_ref()
            .filter(|_| n.runs_kubelet)
            .map(|i| i.delivery),
        start: crate::assemble::start_spec(&start)
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        files: planned,
    })
}

/// The plan of every node and worker pool. Renders every template (so a template error is found here).
pub fn plan(c: &Cluster) -> Result<Plan, RenderError> {
    let r = Renderer::new(c)?;
    Ok(Plan {
        cluster: c.name.clone(),
        endpoint: c.endpoint_url.clone(),
        bootstrap_node: c.bootstrap_node.as_ref().map(|n| n.to_string()),
        nodes: c
            .nodes
            .iter()
            .map(|n| node_plan(c, &r, n))
            .collect::<Result<_, _>>()?,
        etcd_joining: c.etcd.joining.iter().map(|n| n.to_string()).collect(),
        state: None,
        pending: Vec::new(),
        writes: Vec::new(),
        pools: c
            .pools
            .iter()
            .map(|p| {
                Ok(NodePlan {
                    role: "worker pool".to_string(),
                    address: "dhcp".to_string(),
                    ..node_plan(c, &r, &p.node)?
                })
            })
            .collect::<Result<_, RenderError>>()?,
    })
}

impl Plan {
    /// The human report `kimage plan` prints: one block per node.
    pub fn render_text(&self) -> String {
        let mut out = format!("cluster {}  endpoint {}", self.cluster, self.endpoint);
        if let Some(b) = &self.bootstrap_node {
            out.push_str(&format!("  bootstrap node {b}"));
        }
        out.push('\n');
        for n in self.nodes.iter().chain(&self.pools) {
            let mut role = n.role.clone();
            if n.etcd_member && n.role != "etcd" {
                role.push_str(" + etcd member");
            }
            out.push_str(&format!(
                "\n{}  {}  {}{}\n",
                n.name,
                role,
                n.address,
                if n.bootstrap { "  (bootstrap)" } else { "" }
            ));
            // The kind is what a reader compares across nodes (ids name the node too).
            let kinds: Vec<spec::CertId> = n.certs.iter().map(|c| spec::CertId::parse(c)).collect();
            let certs: Vec<&str> = kinds.iter().map(|c| c.kind()).collect();
            let list = |v: &[&str]| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(" ")
                }
            };
            out.push_str(&format!("  certs     {}\n", list(&certs)));
            let bins: Vec<&str> = n.binaries.iter().map(String::as_str).collect();
            out.push_str(&format!("  binaries  {}\n", list(&bins)));
            if !n.excluded.is_empty() {
                let ex: Vec<&str> = n.excluded.iter().map(String::as_str).collect();
                out.push_str(&format!(
                    "  excluded  {} (binaries.exclude: the image must provide them)\n",
                    list(&ex)
                ));
            }
            if let Some(d) = n.image_delivery {
                let how = match d {
                    crate::profile::ImageDelivery::Embed => {
                        "in its images layer, pinned in kimage.lock"
                    }
                    crate::profile::ImageDelivery::Mirror => "pulled through images.mirror",
                };
                let imgs: Vec<&str> = n.images.iter().map(String::as_str).collect();
                out.push_str(&format!("  images    {} ({how})\n", list(&imgs)));
            }
            let units: Vec<&str> = n
                .start
                .iter()
                .map(|s| s.rsplit(':').next().unwrap_or(s))
                .collect();
            out.push_str(&format!("  starts    {}\n", list(&units)));
            let mut by: BTreeMap<files::Carrier, usize> = BTreeMap::new();
            for f in &n.files {
                *by.entry(f.carrier).or_default() += 1;
            }
            let carriers: Vec<String> = by
                .iter()
                .map(|(c, k)| format!("{k} {}", c.as_str()))
                .collect();
            out.push_str(&format!(
                "  files     {} ({})\n",
                n.files.len(),
                carriers.join(", ")
            ));
        }
        if !self.etcd_joining.is_empty() {
            out.push_str(&format!(
                "\netcd: {} join the running cluster when they boot (learner, then promoted)\n",
                self.etcd_joining.join(", ")
            ));
        }
        if let Some(state) = &self.state {
            out.push_str(&self.render_pending(state));
        }
        if !self.writes.is_empty() {
            out.push_str("\nthe next build also writes:\n");
            for w in &self.writes {
                out.push_str(&format!("  {w}\n"));
            }
        }
        out
    }

    /// Which certificates the next build (re-)issues and which running nodes that means replacing.
    fn render_pending(&self, state: &str) -> String {
        if self.pending.is_empty() {
            return format!(
                "\ncertificates: {state} matches the profile; no node needs new ones\n"
            );
        }
        let mut out = format!("\ncertificates the next build (re-)issues (state {state}):\n");
        for p in &self.pending {
            out.push_str(&format!("  {p}\n"));
        }
        // Lines are `ID: reasons`; pool ids have a colon of their own (`kube-proxy@pool:gpu`).
        let ids: Vec<spec::CertId> = self
            .pending
            .iter()
            .filter_map(|p| p.split_once(": ").map(|(id, _)| spec::CertId::parse(id)))
            .collect();
        let mut nodes: Vec<String> = Vec::new();
        for id in &ids {
            match id.owner() {
                spec::CertOwner::Node(n) => nodes.push(n.to_string()),
                spec::CertOwner::Pool(p) => nodes.push(format!("the machines of pool {p}")),
                spec::CertOwner::Cluster => {}
            }
        }
        nodes.sort();
        nodes.dedup();
        if ids.iter().any(|id| id.is_shared()) {
            out.push_str("replace: every node that carries the changed CA or key\n");
        } else if !nodes.is_empty() {
            out.push_str(&format!(
                "replace: {} (their certificates change)\n",
                nodes.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(pending: &[&str]) -> Plan {
        Plan {
            cluster: "c".into(),
            endpoint: "https://10.0.0.10:6443".into(),
            bootstrap_node: None,
            nodes: vec![],
            etcd_joining: vec![],
            state: Some("kimage-state".into()),
            pending: pending.iter().map(|s| s.to_string()).collect(),
            writes: vec![],
            pools: vec![],
        }
    }

    #[test]
    fn a_pool_certificate_was_read_as_a_cluster_wide_change() {
        // Regression: pending lines were cut at the first ':', so `kube-proxy@pool:gpu: new` read
        // as a certificate without a node, i.e. "every node" must be replaced.
        let text = plan_with(&[
            "kube-proxy@pool:gpu: new",
            "apiserver@cp-1: ip_addresses +10.0.0.9",
        ])
        .render_text();
        assert!(
            text.contains("replace: cp-1, the machines of pool gpu (their certificates change)"),
            "{text}"
        );
        let text = plan_with(&["ca: replacement requested"]).render_text();
        assert!(text.contains("replace: every node that carries the changed CA or key"));
    }
}
