//! The real kubectl binaries of this machine. Included by the support roots as `kubectl`, next to
//! `real` (support/real.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::real;

/// Where the Cloud SDK's Debian package (google-cloud-cli-kubectl) puts its versioned kubectls.
const CLOUD_SDK: &str = "/usr/lib/google-cloud-sdk/bin";

/// The real kubectl at kimage's Kubernetes version (ci/real/build.sh).
pub fn kubectl() -> PathBuf {
    PathBuf::from(real::program(&real::kubernetes(), "kubectl"))
}

/// Every kubectl of this machine, each a client the output must satisfy: Debian's /usr/bin/kubectl,
/// every versioned one of the Cloud SDK (kubectl.1.27 … kubectl.1.33, oldest first; 1.33 must be
/// there), then the one at kimage's Kubernetes version. A missing one fails the test.
pub fn kubectls() -> Vec<PathBuf> {
    let hint = "install kubectl (Debian packages kubectl / google-cloud-cli-kubectl; CI's .ci/run installs them)";
    let mut out = Vec::new();
    for p in [
        "/usr/bin/kubectl",
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
    ] {
        assert!(Path::new(p).exists(), "{p} is missing: {hint}");
    }
    out.push(PathBuf::from("/usr/bin/kubectl"));
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(CLOUD_SDK)
        .unwrap_or_else(|e| panic!("{CLOUD_SDK}: {e}: {hint}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let version = name.strip_prefix("kubectl.")?;
            let v: Option<Vec<u32>> = version.split('.').map(|n| n.parse().ok()).collect();
            Some((v?, p))
        })
        .collect();
    // By version, not by name: kubectl.1.9 is older than kubectl.1.10.
    versioned.sort();
    out.extend(versioned.into_iter().map(|(_, p)| p));
    out.push(kubectl());
    out
}
