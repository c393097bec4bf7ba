//! Clusters from profile YAML, as kimage loads and resolves them. Included by the support roots as
//! `profiles`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kimage::diag::Severity;
use kimage::model::Cluster;
use kimage::profile::{self, LoadedProfile};

/// The repository root (tests read reference files and profiles from there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A profile that must load; resolved, not validated (tests of what the model or the PKI does with a
/// profile `kimage validate` would refuse use this).
pub fn resolve(yaml: &str) -> Cluster {
    Cluster::resolve(&load(yaml, "test.yaml").profile)
}

/// A profile that must load and pass `kimage validate` without errors, resolved.
pub fn cluster(yaml: &str) -> Cluster {
    checked(load(yaml, "test.yaml"), "profile")
}

/// A profile file that must load and pass `kimage validate` without errors, resolved.
pub fn cluster_file(path: &Path) -> Cluster {
    let loaded = profile::load_file(path)
        .unwrap_or_else(|e| panic!("{} does not load: {e:?}", path.display()));
    checked(loaded, &path.display().to_string())
}

/// A profile file that must load; resolved, not validated.
pub fn resolve_file(path: &Path) -> Cluster {
    let loaded = profile::load_file(path)
        .unwrap_or_else(|e| panic!("{} does not load: {e:?}", path.display()));
    Cluster::resolve(&loaded.profile)
}

fn load(yaml: &str, name: &str) -> LoadedProfile {
    profile::load_str(yaml, name).unwrap_or_else(|e| panic!("profile does not load: {e:?}"))
}

fn checked(loaded: LoadedProfile, what: &str) -> Cluster {
    let c = Cluster::resolve(&loaded.profile);
    let errors: Vec<_> = kimage::validate::check(&loaded, &c)
        .0
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{what} is invalid: {errors:#?}");
    c
}
