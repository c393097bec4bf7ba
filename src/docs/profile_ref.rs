//! docs/profile.md: every profile field with its type, default and meaning, walked from
//! `profile::SCHEMA` (which schemars derives from the typed structs and their doc comments).

use std::collections::BTreeMap;

use serde_json::Value as J;

use super::{DocsError, MARKER, cell};
use crate::profile::{self, SCHEMA};

/// The value formats of the profile's newtypes and what each accepts. Every `format` the schema uses
/// must be here (generation fails otherwise), so a new newtype cannot go undocumented.
fn newtype_formats() -> BTreeMap<String, String> {
    use schemars::schema_for;
    let schemas = [
        schema_for!(profile::NodeName),
        schema_for!(profile::ClusterName),
        schema_for!(profile::Address),
        schema_for!(profile::Cidr),
        schema_for!(profile::Version),
        schema_for!(profile::Endpoint),
        schema_for!(profile::San),
        schema_for!(profile::DnsDomain),
        schema_for!(profile::Duration),
        schema_for!(profile::Url),
        schema_for!(profile::PortRange),
        schema_for!(profile::MacAddr),
        schema_for!(profile::ImageRef),
    ];
    schemas
        .iter()
        .filter_map(|s| {
            let format = s.get("format")?.as_str()?.to_string();
            let desc = s.get("description")?.as_str()?.to_string();
            Some((format, desc))
        })
        .collect()
}

/// Integer formats schemars derives from Rust integer types; the range says all there is to say.
fn is_integer_format(f: &str) -> bool {
    matches!(
        f,
        "uint8" | "uint16" | "uint32" | "uint64" | "int8" | "int16" | "int32" | "int64"
    )
}

struct Row {
    name: String,
    ty: String,
    default: String,
    description: String,
}

struct Section {
    path: String,
    description: String,
    rows: Vec<Row>,
}

struct Walker<'a> {
    root: &'a J,
    sections: Vec<Section>,
    formats_used: BTreeMap<String, ()>,
}

/// The anchor of a section: `nodes[].taints[]` → `nodes-taints`.
fn anchor(path: &str) -> String {
    if path.is_empty() {
        return "top-level".into();
    }
    path.replace("[]", "")
        .replace('.', "-")
        .to_ascii_lowercase()
}

fn code(s: &str) -> String {
    format!("`{s}`")
}

impl<'a> Walker<'a> {
    /// Follows `$ref`s into `$defs`.
    fn resolve(&self, mut s: &'a J) -> Result<&'a J, DocsError> {
        while let Some(r) = s.get("$ref").and_then(J::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            s = self
                .root
                .get("$defs")
                .and_then(|d| d.get(name))
                .ok_or_else(|| DocsError::Generate(format!("schema reference {r} not found")))?;
        }
        Ok(s)
    }

    /// The schema without a nullable wrapper: `anyOf: [X, null]` → X, `type: [T, null]` → T.
    fn non_null(&self, s: &'a J) -> Result<&'a J, DocsError> {
        if let Some(alts) = s.get("anyOf").and_then(J::as_array) {
            let mut non_null = alts
                .iter()
                .filter(|a| a.get("type").and_then(J::as_str) != Some("null"));
            if let Some(first) = non_null.next() {
                return self.resolve(first);
            }
        }
        self.resolve(s)
    }

    fn type_name(s: &J) -> Option<&str> {
        match s.get("type")? {
            J::String(t) => Some(t),
            J::Array(ts) => ts.iter().filter_map(J::as_str).find(|t| *t != "null"),
            _ => None,
        }
    }

    /// How a value of schema `s` at `path` is written, recursing into object sections.
    fn describe(&mut self, s: &'a J, path: &str, doc: &str) -> Result<String, DocsError> {
        let s = self.non_null(s)?;
        if let Some(values) = s.get("enum").and_then(J::as_array) {
            let list: Vec<String> = values
                .iter()
                .map(|v| code(v.as_str().map_or(&v.to_string(), |x| x)))
                .collect();
            return Ok(match list.as_slice() {
                [only] => only.clone(),
                _ => format!("one of {}", list.join(", ")),
            });
        }
        let ty = Self::type_name(s).unwrap_or("any");
        Ok(match ty {
            "string" => match s.get("format").and_then(J::as_str) {
                Some(f) => {
                    self.formats_used.insert(f.to_string(), ());
                    format!("string ([{f}](#format-{f}))")
                }
                None => "string".into(),
            },
            "integer" => {
                let min = s.get("minimum").and_then(J::as_i64);
                let max = s.get("maximum").and_then(J::as_u64);
                match (min, max) {
                    (Some(a), Some(b)) => format!("integer {a}–{b}"),
                    (Some(a), None) => format!("integer ≥ {a}"),
                    _ => "integer".into(),
                }
            }
            "boolean" => "boolean".into(),
            "array" => {
                let items = s.get("items").ok_or_else(|| {
                    DocsError::Generate(format!("list `{path}` has no item schema"))
                })?;
                format!(
                    "list of {}",
                    self.describe(items, &format!("{path}[]"), doc)?
                )
            }
            "object" => {
                if s.get("properties").is_some() {
                    self.object(s, path, doc)?;
                    format!("[mapping](#{})", anchor(path))
                } else if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object())
                {
                    format!(
                        "mapping of string to {}",
                        self.describe(extra, &format!("{path}.*"), doc)?
                    )
                } else {
                    "mapping".into()
                }
            }
            other => other.to_string(),
        })
    }

    fn default_of(prop: &J, required: bool, nested: bool) -> String {
        if required {
            return "**required**".into();
        }
        match prop.get("default") {
            None => "—".into(),
            Some(J::Null) => "none".into(),
            // The nested section gives each field's own default.
            Some(J::Object(m)) if nested && !m.is_empty() => "see its fields".into(),
            Some(J::String(s)) => code(s),
            Some(v) => code(&v.to_string()),
        }
    }

    /// Adds the section for the object schema `s` at `path` (and, depth first, its nested objects).
    fn object(&mut self, s: &'a J, path: &str, doc: &str) -> Result<(), DocsError> {
        let index = self.sections.len();
        let description = s
            .get("description")
            .and_then(J::as_str)
            .unwrap_or(doc)
            .to_string();
        self.sections.push(Section {
            path: path.to_string(),
            description,
            rows: Vec::new(),
        });
        let required: Vec<&str> = s
            .get("required")
            .and_then(J::as_array)
            .map(|r| r.iter().filter_map(J::as_str).collect())
            .unwrap_or_default();
        let Some(props) = s.get("properties").and_then(J::as_object) else {
            return Ok(());
        };
        // Required fields first, then the rest; each group alphabetical (the schema's order).
        let mut names: Vec<&String> = props.keys().collect();
        names.sort_by_key(|n| (!required.contains(&n.as_str()), n.as_str()));
        let mut rows = Vec::new();
        for name in names {
            let prop = &props[name];
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let doc = prop
                .get("description")
                .and_then(J::as_str)
                .unwrap_or("")
                .to_string();
            let ty = self.describe(prop, &child, &doc)?;
            let nested = ty.starts_with("[mapping]");
            rows.push(Row {
                name: name.clone(),
                default: Self::default_of(prop, required.contains(&name.as_str()), nested),
                ty,
                description: doc,
            });
        }
        self.sections[index].rows = rows;
        Ok(())
    }
}

/// Renders docs/profile.md.
pub fn render() -> Result<String, DocsError> {
    let root: &J = &SCHEMA;
    let mut w = Walker {
        root,
        sections: Vec::new(),
        formats_used: BTreeMap::new(),
    };
    w.object(root, "", "")?;
    let known = newtype_formats();

    let mut out = String::new();
    out.push_str(&format!(
        "<!-- {MARKER} from the profile types (src/profile/); do not edit. -->\n\
         # Profile reference\n\n\
         A profile is one YAML file (`apiVersion: {}`, `kind: Cluster`) describing the whole cluster. \
         This page lists every field with its type, default and meaning; it is generated from the same \
         types kimage reads the profile with, so it cannot disagree with them.\n\n\
         Unknown fields are errors. Every problem in a profile is reported at once, each with its field \
         path and line, and the exit status is 2 (see [cli.md](cli.md#exit-statuses)). A field left out \
         takes its default; `none` means the field is unset unless the description says what is derived \
         instead.\n\n",
        profile::API_VERSION
    ));
    out.push_str("## Sections\n\n");
    for s in &w.sections {
        let title = if s.path.is_empty() {
            "top level".to_string()
        } else {
            code(&s.path)
        };
        out.push_str(&format!("- [{title}](#{})\n", anchor(&s.path)));
    }
    out.push_str("- [value formats](#value-formats)\n\n");
    for s in &w.sections {
        let title = if s.path.is_empty() {
            "Top level".to_string()
        } else {
            code(&s.path)
        };
        out.push_str(&format!(
            "<a id=\"{}\"></a>\n\n## {title}\n\n",
            anchor(&s.path)
        ));
        if !s.description.is_empty() {
            out.push_str(&cell(&s.description));
            out.push_str("\n\n");
        }
        out.push_str("| Field | Type | Default | Description |\n|---|---|---|---|\n");
        for r in &s.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                code(&r.name),
                cell(&r.ty),
                cell(&r.default),
                cell(&r.description)
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "<a id=\"value-formats\"></a>\n\n## Value formats\n\n\
         Strings with a format are checked when the profile is loaded; a bad value is reported with \
         its field path, line and a suggested fix.\n\n| Format | Accepts |\n|---|---|\n",
    );
    for f in w.formats_used.keys() {
        if is_integer_format(f) {
            continue;
        }
        let desc = known.get(f).ok_or_else(|| {
            DocsError::Generate(format!(
                "the profile schema uses format `{f}` but no newtype for it is listed in \
                 src/docs/profile_ref.rs (newtype_formats); add its type there"
            ))
        })?;
        out.push_str(&format!(
            "| <a id=\"format-{f}\"></a>`{f}` | {} |\n",
            cell(desc)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_newtype_format_passes_its_own_check_on_the_example_in_its_description() {
        // Descriptions that give an example ("e.g. X") must give one the newtype accepts.
        for (format, desc) in newtype_formats() {
            if let Some(rest) = desc.split("e.g. ").nth(1) {
                let example = rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches(['.', ',']);
                assert!(
                    profile::types::check_format(&format, example).is_none(),
                    "format {format}: example `{example}` is rejected"
                );
            }
        }
    }

    #[test]
    fn anchors() {
        assert_eq!(anchor("nodes[].taints[]"), "nodes-taints");
        assert_eq!(anchor("os.limits"), "os-limits");
        assert_eq!(anchor(""), "top-level");
    }
}
