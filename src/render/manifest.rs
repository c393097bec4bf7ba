//! The `layer.yaml` beside each group of templates in `image-layers/`: which nodes get the group,
//! every file's destination, mode, owner and scope, and the units the group starts. Conditions are
//! a tiny language evaluated against the render context (see `Condition`).

use serde::Deserialize;

pub use crate::declared::Condition;

/// One `image-layers/<layer>/layer.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerManifest {
    /// What the layer is for (documentation only).
    pub description: String,
    /// Nodes get the layer when every condition holds.
    #[serde(default)]
    pub when: Vec<String>,
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub start: Vec<StartEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// File name inside the layer directory; `.hbs` files are handlebars templates, others are copied.
    pub src: String,
    /// Absolute destination on the node.
    pub dest: String,
    /// Octal, as a string ("0644"): YAML 1.2 would read a bare 0644 as decimal.
    pub mode: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    pub scope: ScopeName,
    #[serde(default)]
    pub when: Vec<String>,
}

fn root() -> String {
    "root".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeName {
    Shared,
    Node,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartEntry {
    pub unit: String,
    pub action: ActionName,
    /// Position in the node's start sequence (lower first; ties keep manifest order).
    pub order: u32,
    #[serde(default)]
    pub when: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionName {
    Restart,
    TryRestart,
    EnableNow,
}
