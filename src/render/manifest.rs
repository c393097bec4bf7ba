//! The `layer.yaml` beside each group of templates in `image-layers/`: which nodes get the group,
//! every file's destination, mode, owner and scope, and the units the group starts. Conditions are
//! a tiny language evaluated against the render context (see `Condition`).

use serde::Deserialize;
use serde_json::Value;

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
        let v = lookup(ctx, self.path());
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
