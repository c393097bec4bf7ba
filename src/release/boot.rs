//! `binaries.source: fetch-at-boot`: instead of carrying the binaries in its layers, a node downloads each
//! locked artifact at first boot (from the locked URL or the mirror), checks the locked digest and only
//! then installs it. kimage writes the manifest and the script; the node needs only python3.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::catalog::{Format, Member};
use super::digest::Algorithm;
use super::lock::{Lock, StaleLock, check_lock};
use super::need::node_needs;
use super::net::via_mirror;
use crate::model::{Binary, Cluster, NodeModel};

/// The script the node runs (python3: urllib, hashlib, tarfile; `python3 kimage-fetch MANIFEST [--root
/// DIR]`) and the manifest it reads are declared in image-layers/boot/files.yaml.
pub fn fetch_script() -> &'static str {
    crate::declared::boot_file("kimage-fetch")
}
/// Manifest format version the script understands.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootManifest {
    pub version: u32,
    pub node: String,
    pub artifacts: Vec<BootArtifact>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootArtifact {
    /// `name version (arch)`, for messages on the node.
    pub label: String,
    /// What the node downloads (the mirror's URL when the profile names one).
    pub url: String,
    pub upstream_url: String,
    pub algorithm: Algorithm,
    pub digest: String,
    pub format: Format,
    pub members: Vec<BootMember>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootMember {
    /// Path inside a tarball (`*` / `DIR/*`: every executable file there); absent for single files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub install: String,
    #[serde(with = "super::catalog::octal_mode")]
    pub mode: u32,
}

impl BootManifest {
    /// Pretty JSON with a final newline; fields and artifacts in a fixed order.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serializes");
        s.push('\n');
        s
    }
}

/// The manifest of one node, for a lock already checked against the cluster.
fn manifest_unchecked(cluster: &Cluster, lock: &Lock, node: &NodeModel) -> BootManifest {
    let mirror = cluster.binaries.mirror.as_ref().map(|m| m.as_str());
    let artifacts = node_needs(cluster, node)
        .into_iter()
        .map(|(key, members)| {
            let a = lock.artifact(&key).expect("check_lock saw every artifact");
            let mut members: Vec<Member> = members.into_iter().collect();
            members.sort_by(|x, y| x.install.cmp(&y.install));
            BootArtifact {
                label: a.label(),
                url: via_mirror(&a.url, mirror),
                upstream_url: a.url.clone(),
                algorithm: a.algorithm,
                digest: a.digest.clone(),
                format: a.format,
                members: members
                    .into_iter()
                    .map(|m| BootMember {
                        path: m.path,
                        install: m.install,
                        mode: m.mode,
                    })
                    .collect(),
            }
        })
        .collect();
    BootManifest {
        version: MANIFEST_VERSION,
        node: node.name.as_str().to_string(),
        artifacts,
    }
}

/// The manifests of a cluster's nodes and pools, one per distinct binary set (a cluster has few,
/// however many nodes): the lock is checked once, and a node's manifest is its set's with its name.
#[derive(Debug, Clone)]
pub struct BootManifests {
    by_set: BTreeMap<BTreeSet<Binary>, BootManifest>,
}

impl BootManifests {
    pub fn new(cluster: &Cluster, lock: &Lock) -> Result<BootManifests, StaleLock> {
        check_lock(cluster, lock)?;
        let mut by_set = BTreeMap::new();
        for n in cluster
            .nodes
            .iter()
            .chain(cluster.pools.iter().map(|p| &p.node))
        {
            by_set
                .entry(n.binaries.clone())
                .or_insert_with(|| manifest_unchecked(cluster, lock, n));
        }
        Ok(BootManifests { by_set })
    }

    /// The manifest of one node (or pool machine) of the cluster this was made for.
    pub fn for_node(&self, n: &NodeModel) -> BootManifest {
        let mut m = self
            .by_set
            .get(&n.binaries)
            .expect("every node's binary set was seen")
            .clone();
        m.node = n.name.as_str().to_string();
        m
    }
}

/// Every node's manifest, by node name.
pub fn boot_manifests(
    cluster: &Cluster,
    lock: &Lock,
) -> Result<BTreeMap<String, BootManifest>, StaleLock> {
    let all = BootManifests::new(cluster, lock)?;
    Ok(cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str().to_string(), all.for_node(n)))
        .collect())
}
