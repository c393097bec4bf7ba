//! What a run did to each certificate, key and token, as the user reads it.

use serde::Serialize;

/// What happened to one certificate (or the service-account key pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Issued,
    Reissued,
    Kept,
    Removed,
    Imported,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Issued => "issued",
            Action::Reissued => "reissued",
            Action::Kept => "kept",
            Action::Removed => "removed",
            Action::Imported => "imported",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub id: String,
    pub action: Action,
    /// Why it was (re-)issued: `new`, a spec difference such as `ip_addresses +10.21.22.101`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What `ensure` (or `renew`, `import`) did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnsureReport {
    pub state_file: std::path::PathBuf,
    /// Whether the state file was replaced (false on a rerun that changed nothing).
    pub written: bool,
    /// Every CA, leaf and `sa`, CAs first, then in profile order; removed ids last.
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    /// Temporary files of an interrupted run that were removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_temp_files: Vec<std::path::PathBuf>,
}

impl EnsureReport {
    pub fn ids(&self, action: Action) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| c.id.as_str())
            .collect()
    }

    /// Changed entries one per line, then a summary and the warnings.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let width = self
            .changes
            .iter()
            .filter(|c| c.action != Action::Kept)
            .map(|c| c.id.len())
            .max()
            .unwrap_or(0);
        for c in self.changes.iter().filter(|c| c.action != Action::Kept) {
            out.push_str(&format!(
                "{:<9} {:<width$}  {}\n",
                c.action.as_str(),
                c.id,
                c.reasons.join("; ")
            ));
        }
        let count = |a| self.changes.iter().filter(|c| c.action == a).count();
        out.push_str(&format!(
            "{}: {} issued, {} reissued, {} kept, {} removed{}\n",
            self.state_file.display(),
            count(Action::Issued) + count(Action::Imported),
            count(Action::Reissued),
            count(Action::Kept),
            count(Action::Removed),
            if self.written {
                ""
            } else {
                " (unchanged, nothing written)"
            }
        ));
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}
