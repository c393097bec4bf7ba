//! The cluster PKI: what it must contain (`spec`), generating it (`ensure`), and keeping it in the
//! state directory (`state`) across runs.
//!
//! ```no_run
//! # use kimage::{model::Cluster, pki};
//! # fn f(cluster: &Cluster) -> Result<(), pki::PkiError> {
//! let (material, report) = pki::ensure(cluster, "kimage-state".as_ref(), time::OffsetDateTime::now_utc())?;
//! print!("{}", report.render_text());
//! let admin_conf = material.kubeconfig("admin@master-1");
//! # Ok(()) }
//! ```

pub mod command;
mod der;
mod ensure;
mod error;
pub mod import;
mod issue;
pub mod keys;
mod kubeconfig;
mod material;
pub mod spec;
pub mod state;
pub mod status;
pub mod token;

pub use ensure::{
    Action, BACKDATE, Change, EXPIRY_WARNING_DAYS, EnsureOptions, EnsureReport, PendingState,
    Requests, SA_ID, compute, ensure, ensure_with, load, spec_diff,
};
pub use error::PkiError;
pub use kubeconfig::render_kubeconfig;
pub use material::{CertMaterial, NodeFile, PkiMaterial};
pub use state::{LockMode, StateDir, TokenRecord};

/// The state directory's default place: `<profile dir>/kimage-state`.
pub fn default_state_dir(profile_dir: &std::path::Path) -> std::path::PathBuf {
    profile_dir.join("kimage-state")
}
