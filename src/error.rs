//! The errors a command can end with, and the exit status each maps to (documented in README.md).

use std::path::PathBuf;

use crate::diag::Diagnostics;
use crate::profile::LoadError;

/// Exit statuses. 0 is success.
pub mod exit {
    /// A failure while working: I/O, network, an external program.
    pub const FAILURE: u8 = 1;
    /// Invalid input: the profile, an argument or a flag. Nothing was written.
    pub const INVALID: u8 = 2;
    /// Prerequisite state is missing or stale: run the command the message names (kimage lock, fetch, pki).
    pub const STATE: u8 = 3;
    /// Verification failed: a digest mismatch or corrupt state. Nothing unverified was used.
    pub const VERIFY: u8 = 4;
}

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
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`kimage {0}` is not available in this build yet")]
    NotYet(&'static str),
    #[error(transparent)]
    Release(#[from] crate::release::command::CommandError),
    #[error(transparent)]
    Docs(#[from] crate::docs::DocsError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Etcd(#[from] crate::etcd::EtcdError),
    #[error(transparent)]
    Build(Box<crate::output::build::BuildError>),
}

impl From<crate::output::build::BuildError> for Error {
    fn from(e: crate::output::build::BuildError) -> Self {
        Error::Build(Box::new(e))
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
            Error::Io { .. } | Error::NotYet(_) | Error::Docs(_) => exit::FAILURE,
            Error::Pki(e) => e.exit_code(),
            Error::Etcd(
                crate::etcd::EtcdError::NoSuchMember { .. } | crate::etcd::EtcdError::Quorum { .. },
            ) => exit::INVALID,
            Error::Etcd(_) => exit::FAILURE,
            Error::Build(e) => {
                use crate::output::build::BuildError as B;
                match e.as_ref() {
                    B::Pki(p) => p.exit_code(),
                    B::Install(_) | B::Stale(_) => exit::STATE,
                    B::Render(crate::render::RenderError::UnsafeValue { .. }) => exit::INVALID,
                    B::Render(_) | B::Layer { .. } | B::Seed { .. } | B::Io { .. } => exit::FAILURE,
                }
            }
            Error::Release(e) => {
                use crate::release::command::CommandError as C;
                match e {
                    C::Profile(_) | C::BadMirror(_) | C::NoLock => exit::INVALID,
                    C::LockFile(_) | C::Stale(_) => exit::STATE,
                    C::Fetch(f)
                        if f.errors.iter().any(|e| {
                            matches!(e, crate::release::fetch::FetchError::Mismatch { .. })
                        }) =>
                    {
                        exit::VERIFY
                    }
                    C::Resolve(_) | C::Fetch(_) | C::Cache(_) => exit::FAILURE,
                }
            }
        }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
