//! Diagnostics: every problem found in a profile, with its field path, location, bad value and fix.
//! All stages that judge user input report through this type so the output looks the same everywhere.

use std::fmt;

use serde::Serialize;

pub use crate::profile::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Field path in the profile, e.g. `nodes[2].address`; empty for the whole file.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The offending value as written, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The name of the node or worker pool the path is under (`nodes[7]` is `etcd-9`), so that a
    /// message about a node names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub message: String,
    pub fix: String,
}

/// A value as messages show it: whole when short, else its start and its length (a 50 MB value is not
/// echoed to the terminal).
pub fn cut(value: &str) -> String {
    const KEEP: usize = 60;
    if value.chars().count() <= KEEP + 20 {
        return value.to_string();
    }
    let start: String = value.chars().take(KEEP).collect();
    format!("{start}… ({} bytes in all)", value.len())
}

impl Diagnostic {
    pub fn error(
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            path: path.into(),
            location: None,
            value: None,
            subject: None,
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn warning(
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, message, fix)
        }
    }

    pub fn with_value(mut self, value: impl fmt::Display) -> Self {
        self.value = Some(cut(&value.to_string()));
        self
    }

    pub fn at(mut self, loc: Option<Location>) -> Self {
        self.location = loc;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The path with the node's name after its index: `nodes[7] (etcd-9).address`.
    pub fn display_path(&self) -> String {
        match (&self.subject, indexed_prefix(&self.path)) {
            (Some(name), Some((list, i))) => {
                let prefix = format!("{list}[{i}]");
                format!("{prefix} ({name}){}", &self.path[prefix.len()..])
            }
            _ => self.path.clone(),
        }
    }

    /// Renders one diagnostic as text: `FILE:LINE:COL: error: PATH: `VALUE` MESSAGE` plus a fix line.
    pub fn render(&self, file: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut head = String::new();
        head.push_str(file);
        if let Some(l) = self.location {
            head.push_str(&format!(":{}:{}", l.line, l.column));
        }
        head.push_str(&format!(": {sev}: "));
        if !self.path.is_empty() {
            head.push_str(&self.display_path());
            head.push_str(": ");
        }
        if let Some(v) = &self.value {
            head.push_str(&format!("`{v}` "));
        }
        head.push_str(&self.message);
        let mut out = head;
        for (i, line) in self.fix.lines().enumerate() {
            out.push_str(if i == 0 { "\n  = fix: " } else { "\n         " });
            out.push_str(line);
        }
        out
    }
}

/// A list of diagnostics, ordered by location then path so output is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (
                a.location.is_none(),
                a.location,
                &a.path,
                a.severity,
                &a.message,
            )
                .cmp(&(
                    b.location.is_none(),
                    b.location,
                    &b.path,
                    b.severity,
                    &b.message,
                ))
        });
        self.0.dedup();
    }

    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        for d in &self.0 {
            out.push_str(&d.render(file));
            out.push('\n');
        }
        let (e, w) = (self.errors().count(), self.warnings().count());
        if e > 0 {
            out.push_str(&format!(
                "{file}: {e} error{}{}; nothing was written\n",
                if e == 1 { "" } else { "s" },
                if w > 0 {
                    format!(", {w} warning{}", if w == 1 { "" } else { "s" })
                } else {
                    String::new()
                }
            ));
        }
        out
    }
}

/// `("nodes", 7)` for `nodes[7].address`: the lists whose items have names.
fn indexed_prefix(path: &str) -> Option<(&str, usize)> {
    let (list, rest) = path.split_once('[')?;
    if !matches!(list, "nodes" | "workerPools") {
        return None;
    }
    let (index, _) = rest.split_once(']')?;
    Some((list, index.parse().ok()?))
}

impl Diagnostics {
    /// Names the node or worker pool each diagnostic's path is under (`name_of(list, index)`).
    pub fn name_subjects(&mut self, name_of: impl Fn(&str, usize) -> Option<String>) {
        for d in &mut self.0 {
            if let Some((list, i)) = indexed_prefix(&d.path) {
                d.subject = name_of(list, i);
            }
        }
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.0.extend(iter)
    }
}
