//! Errors of the PKI stage. Messages say what was being done and, where the user can act, how.

use std::path::PathBuf;

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "another kimage run holds the pki state lock {path}; wait for it to finish (nothing was changed)"
    )]
    Locked { path: PathBuf },

    #[error(
        "pki state {path} is unreadable: {reason}; restore it from a backup (kimage never regenerates a CA on its own)"
    )]
    CorruptState { path: PathBuf, reason: String },

    #[error(
        "pki state {path} was written by a newer kimage (format {found}, this kimage reads format {supported}); use that kimage"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "{id} in pki state {path} is unusable: {reason}; restore the state from a backup, or replace it with `kimage pki renew {id} --replace-ca` (everything it signed is re-issued)"
    )]
    CaUnusable {
        id: String,
        path: PathBuf,
        reason: String,
    },

    #[error("pki state {path} is missing or out of date:\n{}\nrun `kimage pki` to create or refresh it", .problems.join("\n"))]
    Stale {
        path: PathBuf,
        problems: Vec<String>,
    },

    #[error("the pki material has no {what}; run `kimage pki` with the same profile")]
    Missing { what: String },

    #[error("{context}: {message}")]
    Crypto { context: String, message: String },

    #[error("importing {path}: {reason}")]
    Import { path: PathBuf, reason: String },

    #[error(
        "pki state already holds a different {id} (serial {existing}); importing {path} would re-issue every certificate it signed: add --replace to do that"
    )]
    ImportConflict {
        id: String,
        existing: String,
        path: PathBuf,
    },

    #[error("unknown certificate id `{id}`; ids of this profile: {known}")]
    UnknownId { id: String, known: String },

    #[error(
        "`{id}` is a CA: renewing it replaces the CA and re-issues every certificate it signed, so nodes already running must get new files; add --replace-ca to do that"
    )]
    CaNeedsReplace { id: String },

    #[error(
        "{count} of the certificates and tokens expire within {within} (listed above); re-issue the leaves with `kimage pki renew --expiring {within}` and rebuild the nodes that carry them"
    )]
    ExpiringSoon { count: usize, within: String },

    #[error(
        "pki state {path} changed while this run prepared its build (another kimage run?); nothing was written: run the command again"
    )]
    ChangedMeanwhile { path: PathBuf },

    #[error("{0}")]
    Usage(String),
}

impl PkiError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> PkiError {
        let path = path.into();
        move |source| PkiError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn crypto(context: impl Into<String>) -> impl FnOnce(String) -> PkiError {
        let context = context.into();
        move |message| PkiError::Crypto { context, message }
    }

    /// The process exit status for this error (see crate::error::exit).
    pub fn exit_code(&self) -> u8 {
        match self {
            PkiError::Io { .. } | PkiError::Locked { .. } | PkiError::Crypto { .. } => {
                exit::FAILURE
            }
            PkiError::Usage(_)
            | PkiError::UnknownId { .. }
            | PkiError::CaNeedsReplace { .. }
            | PkiError::ImportConflict { .. }
            | PkiError::Import { .. } => exit::INVALID,
            PkiError::Stale { .. }
            | PkiError::Missing { .. }
            | PkiError::NewerFormat { .. }
            | PkiError::ChangedMeanwhile { .. }
            | PkiError::ExpiringSoon { .. } => exit::STATE,
            PkiError::CorruptState { .. } | PkiError::CaUnusable { .. } => exit::VERIFY,
        }
    }
}
