//! A small YAML emitter for what kimage hands to cloud-init. cloud-init parses with PyYAML (YAML 1.1),
//! where plain `yes`, `on`, `0644` or `1:20` change type; so every single-line string is double-quoted and
//! multi-line strings are literal blocks. Key order is the order of insertion, fixed by the caller.

/// A YAML value in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Y {
    Map(Vec<(String, Y)>),
    Seq(Vec<Y>),
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Y {
    pub fn str(s: impl Into<String>) -> Y {
        Y::Str(s.into())
    }
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Y)>) -> Y {
        Y::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    pub fn strs<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Y {
        Y::Seq(items.into_iter().map(|s| Y::Str(s.into())).collect())
    }
}

fn quote(s: &str) -> String {
    // JSON string syntax is valid YAML double-quoted syntax.
    serde_json::to_string(s).expect("strings serialize")
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

fn scalar(v: &Y, indent: usize, out: &mut String) {
    match v {
        Y::Str(s) if s.contains('\n') => {
            // A literal block keeps the text readable; the indentation indicator makes leading spaces safe.
            let keep = if s.ends_with('\n') { "" } else { "-" };
            let ind = if s.starts_with(' ') { "2" } else { "" };
            out.push_str(&format!("|{ind}{keep}\n"));
            for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(&" ".repeat(indent + 2));
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        Y::Str(s) => {
            out.push_str(&quote(s));
            out.push('\n');
        }
        Y::Int(i) => out.push_str(&format!("{i}\n")),
        Y::Bool(b) => out.push_str(if *b { "true\n" } else { "false\n" }),
        Y::Map(m) if m.is_empty() => out.push_str("{}\n"),
        Y::Seq(s) if s.is_empty() => out.push_str("[]\n"),
        _ => unreachable!("containers are emitted by emit"),
    }
}

fn is_container(v: &Y) -> bool {
    matches!(v, Y::Map(m) if !m.is_empty()) || matches!(v, Y::Seq(s) if !s.is_empty())
}

fn emit(v: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Y::Map(entries) if !entries.is_empty() => {
            for (k, val) in entries {
                out.push_str(&pad);
                out.push_str(&key(k));
                out.push(':');
                if is_container(val) {
                    out.push('\n');
                    let child = if matches!(val, Y::Seq(_)) {
                        indent
                    } else {
                        indent + 2
                    };
                    emit(val, child, out);
                } else {
                    out.push(' ');
                    scalar(val, indent, out);
                }
            }
        }
        Y::Seq(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                match item {
                    Y::Map(entries) if !entries.is_empty() => {
                        // First entry on the dash line, the rest aligned under it.
                        let mut first = String::new();
                        emit(&Y::Map(entries.clone()), indent + 2, &mut first);
                        out.push_str(first.trim_start());
                    }
                    Y::Seq(_) if is_container(item) => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push_str(inner.trim_start());
                    }
                    _ => scalar(item, indent + 2, out),
                }
            }
        }
        other => scalar(other, indent, out),
    }
}

/// Renders a document (without a leading `---`).
pub fn to_string(v: &Y) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_yaml11_traps_and_keeps_blocks() {
        let doc = Y::map([
            ("a", Y::str("yes")),
            ("mode", Y::str("0644")),
            ("n", Y::Int(3)),
            ("text", Y::str("line 1\n  indented\n")),
            (
                "list",
                Y::Seq(vec![
                    Y::map([("path", Y::str("/x")), ("b", Y::Bool(true))]),
                    Y::strs(["a", "b"]),
                ]),
            ),
            ("empty", Y::Seq(vec![])),
        ]);
        let s = to_string(&doc);
        assert_eq!(
            s,
            "a: \"yes\"\nmode: \"0644\"\nn: 3\ntext: |\n  line 1\n    indented\nlist:\n- path: \"/x\"\n  b: true\n- - \"a\"\n  - \"b\"\nempty: []\n"
        );
        let back: serde_json::Value = serde_yaml_ng::from_str(&s).unwrap();
        assert_eq!(back["a"], "yes");
        assert_eq!(back["text"], "line 1\n  indented\n");
        assert_eq!(back["list"][1][1], "b");
    }
}
