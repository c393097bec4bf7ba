//! Walks the YAML tree against the JSON schema derived from the typed profile structs and reports every
//! structural problem at once: unknown fields (with a "did you mean"), missing fields, wrong kinds of
//! value, values outside an enum, and values that fail their newtype's check. Deserialization into the
//! typed structs only runs once this walk found nothing, so the user never fixes one error per run.

use serde_json::{Map, Value as J};

use super::types::check_format;
use super::yaml::{Node, Value};
use crate::diag::Diagnostic;

/// Words people write from habit (the seeds, kubeadm, other tools) and what kimage calls them.
const SYNONYMS: &[(&str, &str)] = &[
    ("master", "control-plane"),
    ("controlplane", "control-plane"),
    ("control_plane", "control-plane"),
    ("node", "worker"),
    ("lb", "load-balancer"),
    ("loadbalancer", "load-balancer"),
    ("ecdsa", "ecdsa-p256"),
    ("rsa", "rsa-2048"),
    ("x86_64", "amd64"),
    ("aarch64", "arm64"),
];

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        if c.to_ascii_lowercase() == lower
            || c.replace(['-', '_'], "") == lower.replace(['-', '_'], "")
        {
            return Some(c);
        }
        if let Some((_, to)) = SYNONYMS
            .iter()
            .find(|(from, to)| *from == lower && *to == c)
        {
            return Some(to);
        }
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

pub struct Walker<'s> {
    root: &'s J,
    pub diags: Vec<Diagnostic>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'s> Walker<'s> {
    pub fn new(root: &'s J) -> Self {
        Walker {
            root,
            diags: Vec::new(),
        }
    }

    fn resolve(&self, schema: &'s J) -> &'s J {
        let mut s = schema;
        while let Some(r) = s.get("$ref").and_then(J::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(t) => s = t,
                None => break,
            }
        }
        s
    }

    fn push(&mut self, node: &Node, path: &str, message: String, fix: String, value: bool) {
        let mut d = Diagnostic::error(path, message, fix).at(Some(node.loc));
        if value {
            d = d.with_value(node.describe());
        }
        self.diags.push(d);
    }

    pub fn walk(&mut self, schema: &'s J, node: &Node, path: &str) {
        let schema = self.resolve(schema);
        if let Some(alts) = schema.get("anyOf").and_then(J::as_array) {
            let non_null: Vec<&J> = alts
                .iter()
                .filter(|a| a.get("type").and_then(J::as_str) != Some("null"))
                .collect();
            if node.is_null() && non_null.len() < alts.len() {
                return;
            }
            if let Some(first) = non_null.first() {
                return self.walk(first, node, path);
            }
            return;
        }
        let (ty, nullable) = match schema.get("type") {
            Some(J::String(t)) => (t.as_str(), false),
            Some(J::Array(ts)) => {
                let nullable = ts.iter().any(|t| t == "null");
                (
                    ts.iter()
                        .filter_map(J::as_str)
                        .find(|t| *t != "null")
                        .unwrap_or("null"),
                    nullable,
                )
            }
            _ => return,
        };
        if node.is_null() {
            if !nullable {
                let what = expected_name(ty);
                self.push(
                    node,
                    path,
                    format!("is empty; expected {what}"),
                    "give a value or remove the field".into(),
                    false,
                );
            }
            return;
        }
        match ty {
            "object" => self.walk_object(schema, node, path),
            "array" => match &node.value {
                Value::Seq(items) => {
                    if let Some(item_schema) = schema.get("items") {
                        for (i, item) in items.iter().enumerate() {
                            self.walk(item_schema, item, &format!("{path}[{i}]"));
                        }
                    }
                }
                _ => self.wrong_kind(node, path, "a list"),
            },
            "string" => match &node.value {
                Value::Scalar { text, .. } => self.check_string(schema, node, text, path),
                _ => self.wrong_kind(node, path, "a string"),
            },
            "integer" => match &node.value {
                Value::Scalar {
                    text,
                    quoted: false,
                } => match text.parse::<i128>() {
                    Ok(n) => {
                        // schemars gives the type's bounds as minimum/maximum only for small types;
                        // the format names the type.
                        let type_max = match schema.get("format").and_then(J::as_str) {
                            Some("uint8") => Some(u8::MAX as i128),
                            Some("uint16") => Some(u16::MAX as i128),
                            Some("uint32") => Some(u32::MAX as i128),
                            Some("uint64") => Some(u64::MAX as i128),
                            Some("int32") => Some(i32::MAX as i128),
                            Some("int64") => Some(i64::MAX as i128),
                            _ => None,
                        };
                        let bound = |k: &str| {
                            let v = schema.get(k)?;
                            v.as_i64()
                                .map(i128::from)
                                .or_else(|| v.as_u64().map(i128::from))
                        };
                        let min = bound("minimum");
                        let max = bound("maximum").or(type_max);
                        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                            let range = format!(
                                "{}..={}",
                                min.unwrap_or(i128::MIN),
                                max.unwrap_or(i128::MAX)
                            );
                            self.push(
                                node,
                                path,
                                format!("is out of range {range}"),
                                format!("use a number in {range}"),
                                true,
                            );
                        }
                    }
                    Err(_) => self.push(
                        node,
                        path,
                        "is not a whole number".into(),
                        "write a number such as 100".into(),
                        true,
                    ),
                },
                _ => self.wrong_kind(node, path, "a whole number"),
            },
            "boolean" => match &node.value {
                Value::Scalar {
                    text,
                    quoted: false,
                } if matches!(
                    text.as_str(),
                    "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
                ) => {}
                Value::Scalar { .. } => self.push(
                    node,
                    path,
                    "is not a boolean".into(),
                    "write `true` or `false`".into(),
                    true,
                ),
                _ => self.wrong_kind(node, path, "`true` or `false`"),
            },
            _ => {}
        }
    }

    fn wrong_kind(&mut self, node: &Node, path: &str, expected: &str) {
        let found = node.kind_name();
        self.push(
            node,
            path,
            format!("expected {expected}, found {found}"),
            format!("write {expected} here"),
            false,
        );
    }

    fn check_string(&mut self, schema: &J, node: &Node, text: &str, path: &str) {
        // Every string ends up in a configuration file or a command line on the node: a line break
        // would add lines to it (found by the renderer before, which could not say where).
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            self.push(
                node,
                path,
                format!(
                    "{:?} contains a line break or control character (U+{:04X}), which would \
                     inject lines into the files kimage writes",
                    crate::diag::cut(text),
                    c as u32
                ),
                "remove it".into(),
                false,
            );
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(J::as_array) {
            let names: Vec<&str> = allowed.iter().filter_map(J::as_str).collect();
            if !names.contains(&text) {
                let field = path.rsplit(['.', ']']).next().unwrap_or(path);
                let list = names.join(", ");
                let fix = match suggest(text, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? ({field} is one of: {list})"),
                    None => format!("use one of: {list}"),
                };
                self.push(node, path, format!("is not a known {field}"), fix, true);
            }
            return;
        }
        if let Some(format) = schema.get("format").and_then(J::as_str)
            && let Some(problem) = check_format(format, text)
        {
            self.push(node, path, problem.message, problem.fix, true);
        }
    }

    fn walk_object(&mut self, schema: &'s J, node: &Node, path: &str) {
        let Value::Map(entries) = &node.value else {
            return self.wrong_kind(node, path, "a mapping");
        };
        static EMPTY: std::sync::LazyLock<Map<String, J>> = std::sync::LazyLock::new(Map::new);
        let props: &'s Map<String, J> = schema
            .get("properties")
            .and_then(J::as_object)
            .unwrap_or(&EMPTY);
        let additional = schema.get("additionalProperties");
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (k, v) in entries {
            let key = match &k.value {
                Value::Scalar { text, .. } => text.as_str(),
                _ => {
                    self.push(
                        k,
                        path,
                        "has a key that is not a plain name".into(),
                        "use plain field names as keys".into(),
                        false,
                    );
                    continue;
                }
            };
            let child = join(path, key);
            if !seen.insert(key) {
                self.push(
                    k,
                    &child,
                    "is given twice".into(),
                    "keep one of the two entries".into(),
                    false,
                );
                continue;
            }
            if let Some(s) = props.get(key) {
                self.walk(s, v, &child);
            } else if let Some(extra) = additional.filter(|a| a.is_object()) {
                self.walk(extra, v, &child);
            } else if !props.is_empty() || additional == Some(&J::Bool(false)) {
                let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
                names.sort();
                let fix = match suggest(key, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("remove it; known fields here: {}", names.join(", ")),
                };
                let where_ = if path.is_empty() {
                    "the profile".to_string()
                } else {
                    format!("`{path}`")
                };
                self.push(
                    k,
                    &child,
                    format!("unknown field `{key}` in {where_}"),
                    fix,
                    false,
                );
            }
        }
        if let Some(req) = schema.get("required").and_then(J::as_array) {
            for r in req.iter().filter_map(J::as_str) {
                if !seen.contains(r) {
                    let what = props
                        .get(r)
                        .and_then(|p| p.get("description"))
                        .and_then(J::as_str)
                        .map(|d| {
                            d.lines()
                                .next()
                                .unwrap_or(d)
                                .trim_end_matches('.')
                                .to_string()
                        })
                        .unwrap_or_default();
                    let fix = if what.is_empty() {
                        format!("add `{r}:`")
                    } else {
                        format!("add `{r}:` ({what})")
                    };
                    self.push(
                        node,
                        &join(path, r),
                        format!("missing required field `{r}`"),
                        fix,
                        false,
                    );
                }
            }
        }
    }
}

fn expected_name(ty: &str) -> &'static str {
    match ty {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "boolean" => "`true` or `false`",
        _ => "a value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("adress", ["address", "name", "role"]),
            Some("address")
        );
        assert_eq!(
            suggest("master", ["control-plane", "worker"]),
            Some("control-plane")
        );
        assert_eq!(
            suggest("serviceCidr", ["serviceCIDR", "podCIDR"]),
            Some("serviceCIDR")
        );
        assert_eq!(suggest("zzz", ["address", "name"]), None);
    }
}
