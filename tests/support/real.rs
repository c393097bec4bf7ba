//! Where the real programs built by `ci/real/build.sh` (from their Go modules) are: kube-apiserver and
//! the other Kubernetes programs, etcd 3.6, kube-bench. `ci/test.sh` exports each set's directory
//! (KIMAGE_REAL_KUBERNETES, KIMAGE_REAL_ETCD, KIMAGE_REAL_KUBE_BENCH); without them the build script's
//! cache at kimage's default versions is used. A missing set fails the test with the command that
//! builds it: these tests are the product's proof and must not pass by skipping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A set of programs: `dir/bin/<program>` (and for kube-bench `dir/cfg/`).
fn set(env: &str, name: &str, version: &str) -> PathBuf {
    let dir = match std::env::var_os(env) {
        Some(d) => PathBuf::from(d),
        None => {
            let cache = std::env::var_os("KIMAGE_REAL_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/cache/kimage-real"));
            cache.join(format!("{name}-{version}"))
        }
    };
    assert!(
        dir.join(".complete").is_file(),
        "the real {name} programs are not built ({} has no .complete): run `ci/real/build.sh {name}` \
         (ci/test.sh does, and exports {env})",
        dir.display()
    );
    dir
}

/// kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl.
pub fn kubernetes() -> PathBuf {
    set(
        "KIMAGE_REAL_KUBERNETES",
        "kubernetes",
        &kimage::profile::defaults::kubernetes_version().to_string(),
    )
}

/// etcd, etcdctl, etcdutl at kimage's pinned etcd version.
pub fn etcd() -> PathBuf {
    set(
        "KIMAGE_REAL_ETCD",
        "etcd",
        &kimage::profile::defaults::etcd_version().to_string(),
    )
}

/// kube-bench (`bin/kube-bench`) and its checks (`cfg/`); its version is ci/real/build.sh's.
pub fn kube_bench() -> PathBuf {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/real/build.sh"))
            .unwrap();
    let version = script
        .split("KIMAGE_REAL_KUBE_BENCH_VERSION:-")
        .nth(1)
        .and_then(|s| s.split('}').next())
        .expect("ci/real/build.sh names kube-bench's version");
    set("KIMAGE_REAL_KUBE_BENCH", "kube-bench", version)
}

/// One program of a set.
pub fn program(set: &Path, name: &str) -> String {
    let p = set.join("bin").join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p.display().to_string()
}
