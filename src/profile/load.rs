//! Reading a profile: YAML syntax, then the structural walk against the schema, then typed
//! deserialization. Problems are collected, never reported one at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use super::schema::Walker;
pub use super::yaml::Location;
use super::{Profile, yaml};
use crate::diag::{Diagnostic, Diagnostics};

/// The JSON schema of `Profile`, derived from the typed structs once.
pub static SCHEMA: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::to_value(schemars::schema_for!(Profile)).expect("schema serializes")
});

/// Where each field of the profile was written, for diagnostics found after loading.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    /// How the file is named in messages (as the user gave it).
    pub file: String,
    index: BTreeMap<String, Location>,
}

impl SourceMap {
    /// The location of `path` (e.g. `nodes[2].address`), or of its nearest parent that was written
    /// (the whole profile's start when nothing on the path was).
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut p = path.to_string();
        loop {
            if let Some(l) = self.index.get(&p) {
                return Some(*l);
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p.truncate(cut),
                None => return self.index.get("").copied(),
            }
        }
    }

    /// Whether the user wrote `path` (as opposed to it taking its default).
    pub fn written(&self, path: &str) -> bool {
        self.index.contains_key(path)
    }
}

/// A profile that parsed and passed the structural checks.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    pub profile: Profile,
    pub source: SourceMap,
    /// The profile file, when loaded from disk.
    pub path: Option<PathBuf>,
}

impl LoadedProfile {
    /// The directory the profile lives in (state, out and kimage.lock default to it).
    pub fn dir(&self) -> PathBuf {
        match self.path.as_deref().and_then(Path::parent) {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("profile {file} is invalid")]
    Invalid {
        file: String,
        diagnostics: Diagnostics,
    },
}

/// Loads a profile from disk.
pub fn load_file(path: &Path) -> Result<LoadedProfile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut loaded = load_str(&text, &path.display().to_string())?;
    loaded.path = Some(path.to_path_buf());
    Ok(loaded)
}

/// Profiles larger than this are refused before parsing (a 10,000-node profile is about 1 MiB).
pub const MAX_BYTES: usize = 16 << 20;

/// Where `byte` sits in `text`, 1-based.
fn location_of(text: &str, byte: usize) -> Location {
    let before = &text[..byte];
    Location {
        line: before.matches('\n').count() + 1,
        column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
    }
}

/// Loads a profile from text; `file` names it in messages.
pub fn load_str(text: &str, file: &str) -> Result<LoadedProfile, LoadError> {
    let invalid = |diags: Vec<Diagnostic>| {
        let mut diagnostics = Diagnostics(diags);
        diagnostics.sort();
        LoadError::Invalid {
            file: file.to_string(),
            diagnostics,
        }
    };
    let whole = |message: String, fix: &str, loc: Location| {
        invalid(vec![Diagnostic::error("", message, fix).at(Some(loc))])
    };
    if text.len() > MAX_BYTES {
        return Err(whole(
            format!(
                "is {} bytes; kimage reads profiles of at most {MAX_BYTES} bytes",
                text.len()
            ),
            "split the cluster or remove what is not a cluster setting",
            Location { line: 1, column: 1 },
        ));
    }
    // Editors on Windows start UTF-8 files with a byte-order mark; YAML allows one there.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(at) = text.find('\0') {
        return Err(whole(
            "contains a NUL byte; a profile is UTF-8 text".into(),
            "save the file as plain UTF-8 text",
            location_of(text, at),
        ));
    }
    let root = yaml::parse(text).map_err(|e| {
        invalid(vec![
            Diagnostic::error(
                "",
                format!("is not valid YAML: {}", e.message),
                "fix the YAML syntax at this position",
            )
            .at(Some(e.loc)),
        ])
    })?;
    let mut walker = Walker::new(&SCHEMA);
    walker.walk(&SCHEMA, &root, "");
    if !walker.diags.is_empty() {
        let mut d = Diagnostics(walker.diags);
        d.name_subjects(|list, i| yaml::item_name(&root, list, i));
        return Err(invalid(d.0));
    }
    let profile: Profile = serde_yaml_ng::from_str(text).map_err(|e| {
        // The walk should have caught everything; this keeps any gap honest instead of panicking.
        let loc = e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        invalid(vec![
            Diagnostic::error("", e.to_string(), "fix the value at this position").at(loc),
        ])
    })?;
    Ok(LoadedProfile {
        profile,
        source: SourceMap {
            file: file.to_string(),
            index: yaml::index(&root),
        },
        path: None,
    })
}
