//! Release binaries: every program a node runs comes from an upstream release, pinned by version and
//! digest, and is never used unless its digest matches.
//!
//! - [`catalog`]: the built-in catalog (embedded `catalog.yaml`): artifact kinds (URL, checksum file,
//!   members and install paths) and the published digests of known releases.
//! - [`need`]: which artifacts and members each node needs, from `model::NodeModel::binaries`.
//! - [`lock`]: `kimage.lock` — resolving (catalog, previous lock, upstream checksum files through the
//!   mirror), reading/writing, and [`check_lock`].
//! - [`fetch`] / [`cache`]: `kimage fetch` into the content-addressed cache.
//! - [`install`]: for the build stage, each node's files as paths to verified bytes.
//! - [`boot`]: `binaries.source: fetch-at-boot` manifests and the node-side script.
//! - [`command`]: clap arguments and handlers of `kimage lock` and `kimage fetch`.

pub mod boot;
pub mod cache;
pub mod catalog;
pub mod checksums;
pub mod command;
pub mod digest;
pub mod fetch;
pub mod install;
pub mod lock;
pub mod need;
pub mod net;
pub mod progress;

pub use boot::{BootManifest, BootManifests, boot_manifests};
pub use cache::{Cache, cache_dir};
pub use fetch::{FetchOptions, fetch_lock};
pub use install::{InstallFile, install_files};
pub use lock::{
    LOCK_FILE, Lock, LockFileError, ResolveOptions, StaleLock, check_lock, resolve_lock,
};
