//! The error a command ends with: one variant per stage, each stage's error saying which exit status it
//! ends with (`exit_code()`, constants in `crate::exit`); this only delegates.

use std::path::PathBuf;

use crate::diag::Diagnostics;
use crate::exit;
use crate::profile::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading profile {path}: {source}")]
    ReadProfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("profile {file} is invalid")]
    Invalid {
        file: String,
        diagnostics: Diagnostics,
    },
    /// A command-line argument that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Writing the command's own report (stdout).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    ClusterState(#[from] crate::cluster_state::StateError),
    #[error(transparent)]
    Release(#[from] crate::release::command::CommandError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Build(Box<crate::assemble::BuildError>),
    #[error(transparent)]
    Output(Box<crate::output::OutputError>),
    #[error(transparent)]
    Etcd(#[from] crate::etcd::EtcdError),
    #[error(transparent)]
    Docs(#[from] crate::docs::DocsError),
}

impl From<crate::assemble::BuildError> for Error {
    fn from(e: crate::assemble::BuildError) -> Self {
        Error::Build(Box::new(e))
    }
}

impl From<crate::output::OutputError> for Error {
    fn from(e: crate::output::OutputError) -> Self {
        Error::Output(Box::new(e))
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Read { path, source } => Error::ReadProfile { path, source },
            LoadError::Invalid { file, diagnostics } => Error::Invalid { file, diagnostics },
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ReadProfile { .. } | Error::Invalid { .. } | Error::Usage(_) => exit::INVALID,
            Error::Io { .. } => exit::FAILURE,
            Error::Settings(_) => exit::INVALID,
            Error::ClusterState(e) => e.exit_code(),
            Error::Release(e) => e.exit_code(),
            Error::Pki(e) => e.exit_code(),
            Error::Build(e) => e.exit_code(),
            Error::Output(e) => e.exit_code(),
            Error::Etcd(e) => e.exit_code(),
            Error::Docs(e) => e.exit_code(),
        }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
