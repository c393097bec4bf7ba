//! A YAML tree that remembers where each value is, so that any problem found later (by the schema walk
//! or by whole-cluster validation) can name its line and column.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column of a value in the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub enum Value {
    /// A scalar and whether it was quoted (quoted scalars are always strings).
    Scalar {
        text: String,
        quoted: bool,
    },
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub loc: Location,
}

impl Node {
    /// `None` for `~`, `null`, empty plain scalars.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Short human description of the value for error messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Scalar { text, .. } => text.clone(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Seq(_) => "a list".to_string(),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a list",
        }
    }
}

/// A problem in the YAML text itself.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub loc: Location,
}

fn loc(m: Marker) -> Location {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

enum Frame {
    Map {
        loc: Location,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        anchor: usize,
    },
    Seq {
        loc: Location,
        items: Vec<Node>,
        anchor: usize,
    },
}

/// At most this many values once aliases are expanded: a 10,000-node profile has about 100,000, and a
/// kilobyte of nested aliases ("billion laughs") would otherwise expand until memory runs out.
pub const MAX_VALUES: usize = 2_000_000;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    /// Each anchored node with its size in values.
    anchors: BTreeMap<usize, (Node, usize)>,
    /// Values made so far, aliases counted at their expanded size.
    values: usize,
    error: Option<SyntaxError>,
}

fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar { .. } => 0,
        Value::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
        Value::Seq(items) => items.iter().map(size).sum(),
    }
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if self.error.is_some() {
            return;
        }
        if anchor > 0 {
            let n = size(&node);
            self.anchors.insert(anchor, (node.clone(), n));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let here = loc(mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.values += 1;
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_value(
                    Node {
                        value: Value::Scalar { text, quoted },
                        loc: here,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.values += 1;
                self.stack.push(Frame::Seq {
                    loc: here,
                    items: Vec::new(),
                    anchor,
                })
            }
            Event::MappingStart(anchor, _) => {
                self.values += 1;
                self.stack.push(Frame::Map {
                    loc: here,
                    entries: Vec::new(),
                    key: None,
                    anchor,
                })
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { loc, items, anchor }) = self.stack.pop() {
                    self.push_value(
                        Node {
                            value: Value::Seq(items),
                            loc,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    loc,
                    entries,
                    anchor,
                    ..
                }) = self.stack.pop()
                {
                    // The parser marks a block mapping after its first key; point at that key instead.
                    let loc = entries.first().map(|(k, _)| k.loc.min(loc)).unwrap_or(loc);
                    self.push_value(
                        Node {
                            value: Value::Map(entries),
                            loc,
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((_, n)) if self.values + n > MAX_VALUES => {
                    self.error.get_or_insert(SyntaxError {
                        message: format!(
                            "aliases expand the profile to more than {MAX_VALUES} values; write the values out instead of nesting aliases"
                        ),
                        loc: here,
                    });
                }
                Some((node, n)) => {
                    self.values += n;
                    let mut node = node.clone();
                    node.loc = here;
                    self.push_value(node, 0);
                }
                None if self.error.is_none() => {
                    self.error = Some(SyntaxError {
                        message: "alias to an unknown anchor".into(),
                        loc: here,
                    })
                }
                None => {}
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        return Err(SyntaxError {
            message: e.info().to_string(),
            loc: loc(*e.marker()),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    match b.docs.len() {
        0 => Err(SyntaxError {
            message: "the profile is empty".into(),
            loc: Location { line: 1, column: 1 },
        }),
        1 => Ok(b.docs.pop().expect("one document")),
        _ => Err(SyntaxError {
            message: "the profile holds more than one YAML document; keep one cluster per file"
                .into(),
            loc: b.docs[1].loc,
        }),
    }
}

/// The `name` of item `index` of the top-level list `list` (`nodes`, `workerPools`), when written as a
/// plain value.
pub fn item_name(root: &Node, list: &str, index: usize) -> Option<String> {
    let Value::Map(top) = &root.value else {
        return None;
    };
    let (_, items) = top.iter().find(|(k, _)| k.describe() == list)?;
    let Value::Seq(items) = &items.value else {
        return None;
    };
    let Value::Map(fields) = &items.get(index)?.value else {
        return None;
    };
    let (_, name) = fields.iter().find(|(k, _)| k.describe() == "name")?;
    match &name.value {
        Value::Scalar { text, .. } if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// Every value's location by its field path (`nodes[2].address`), keys' locations under `path#key`.
pub fn index(root: &Node) -> BTreeMap<String, Location> {
    fn walk(node: &Node, path: &str, out: &mut BTreeMap<String, Location>) {
        out.insert(path.to_string(), node.loc);
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let key = k.describe();
                    let p = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    out.insert(format!("{p}#key"), k.loc);
                    walk(v, &p, out);
                }
            }
            Value::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            Value::Scalar { .. } => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based() {
        let root = parse("a: 1\nb:\n  - x: 2\n    y: 'q'\n").unwrap();
        let idx = index(&root);
        assert_eq!(idx["a"], Location { line: 1, column: 4 });
        assert_eq!(idx["b[0].y"], Location { line: 4, column: 8 });
        assert_eq!(idx["b[0].y#key"], Location { line: 4, column: 5 });
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.loc.line >= 1);
    }
}
