//! The whole release path the build stage relies on: `kimage lock` (through a mirror) → `kimage fetch`
//! → `install_files`, which yields for every node (install path, mode, file with verified bytes). Checks the
//! bytes against the fixture programs, the per-role file sets, self-healing of extracted members, and
//! the errors when the cache lacks or holds a corrupt artifact.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use kimage::model::Cluster;
use kimage::profile;
use kimage::release::cache::Cache;
use kimage::release::command::{FetchArgs, LockArgs, NetArgs};
use kimage::release::digest::Algorithm;
use kimage::release::fetch::Outcome;
use kimage::release::install::{InstallError, install_files};
use kimage::release::lock::Lock;
use support::fixtures::{digest_file, sha256};
use support::http::TestServer;
use support::releases::{FakeUpstream, Versions, fetch, lock, profile_yaml};

fn fetch_args(cache: &Path, mirror: Option<String>) -> FetchArgs {
    FetchArgs {
        image_mirror: None,
        mirror,
        lock: None,
        cache: Some(cache.to_path_buf()),
        jobs: 3,
        net: NetArgs {
            retries: 2,
            ..NetArgs::default()
        },
        plain: false,
        quiet: true,
    }
}

fn installs(files: &[kimage::release::InstallFile]) -> BTreeSet<String> {
    files.iter().map(|f| f.install.clone()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn lock_fetch_and_node_files_end_to_end() {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "amd64");
    let srv = TestServer::start();
    up.serve(&srv, "/m");
    let text = profile_yaml(
        &v,
        "amd64",
        &format!("  mirror: {}/m\n  cfssl: v{}", srv.url(), v.cfssl),
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cluster.yaml");
    std::fs::write(&p, &text).unwrap();
    lock(
        &p,
        &LockArgs {
            image_mirror: None,
            mirror_checksums: false,
            offline: false,
            mirror: None,
            refresh: false,
            net: NetArgs::default(),
        },
    )
    .unwrap();

    let cache_dir = tempfile::tempdir().unwrap();
    let fetched = fetch(&p, &fetch_args(cache_dir.path(), None)).unwrap();
    let lock = Lock::read(&dir.path().join("kimage.lock")).unwrap();
    assert_eq!(fetched.len(), lock.artifacts.len());
    assert!(
        fetched
            .iter()
            .all(|f| matches!(f.outcome, Outcome::Downloaded { .. }))
    );
    assert!(
        fetched
            .iter()
            .all(|f| f.url.starts_with(&format!("{}/m/", srv.url()))),
        "downloads go to the profile's mirror"
    );

    let cluster = Cluster::resolve(&profile::load_str(&text, "t").unwrap().profile);
    let cache = Cache::new(cache_dir.path());
    let files = install_files(&cluster, &lock, &cache).unwrap();
    let bin = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("/usr/local/bin/{n}"))
            .collect::<Vec<_>>()
    };
    let kube_node = [
        "kubelet",
        "kube-proxy",
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "runc",
        "crictl",
    ];
    let cni = [
        "/opt/cni/bin/bridge",
        "/opt/cni/bin/host-local",
        "/opt/cni/bin/loopback",
        "/opt/cni/bin/portmap",
    ];
    let etcd = ["etcd", "etcdctl", "etcdutl"];
    let control = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "cfssl",
        "cfssljson",
    ];

    let mut want_master: BTreeSet<String> = bin(&kube_node)
        .into_iter()
        .chain(bin(&etcd))
        .chain(bin(&control))
        .collect();
    want_master.extend(set(&cni));
    assert_eq!(installs(&files["master-1"]), want_master);
    assert_eq!(installs(&files["master-2"]), want_master);
    let mut want_worker: BTreeSet<String> = bin(&kube_node).into_iter().collect();
    want_worker.extend(set(&cni));
    assert_eq!(installs(&files["node-1"]), want_worker);
    assert_eq!(installs(&files["etcd-1"]), bin(&etcd).into_iter().collect());
    assert!(files["lb-1"].is_empty());

    // Every file holds exactly the upstream program (sha256sum judges), mode 0755, inside the cache.
    for f in files.values().flatten() {
        let program = f.install.rsplit('/').next().unwrap();
        assert_eq!(
            digest_file("sha256sum", &f.source),
            sha256(up.program(program)),
            "{}",
            f.install
        );
        assert_eq!(f.mode, 0o755);
        assert!(f.source.starts_with(cache.root()), "{}", f.source.display());
    }
    let crictl = files["node-1"]
        .iter()
        .find(|f| f.install.ends_with("/crictl"))
        .unwrap()
        .source
        .clone();
    assert!(
        crictl.starts_with(cache.root().join("extracted")),
        "tarball members are extracted once into the cache"
    );

    // Reuse gives the same answer; a tampered extracted member is noticed and extracted again.
    assert_eq!(install_files(&cluster, &lock, &cache).unwrap(), files);
    std::fs::write(&crictl, b"tampered").unwrap();
    assert_eq!(install_files(&cluster, &lock, &cache).unwrap(), files);
    assert_eq!(std::fs::read(&crictl).unwrap(), up.program("crictl"));

    // A corrupt blob: named, quarantined, and the fix is `kimage fetch`.
    let kubelet = lock.artifacts.iter().find(|a| a.name == "kubelet").unwrap();
    let blob = cache.blob(Algorithm::Sha256, &kubelet.digest);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let err = install_files(&cluster, &lock, &cache).unwrap_err();
    assert!(matches!(err, InstallError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("kubelet v1.35.99 (amd64)")
            && msg.contains(&kubelet.digest)
            && msg.contains("run `kimage fetch`"),
        "{msg}"
    );
    assert!(
        !blob.exists(),
        "the corrupt entry no longer sits where the cache serves from"
    );
    let again = fetch(&p, &fetch_args(cache_dir.path(), None)).unwrap();
    assert_eq!(
        again
            .iter()
            .filter(|f| f.outcome != Outcome::Cached)
            .count(),
        1
    );
    install_files(&cluster, &lock, &cache).unwrap();

    // A missing artifact (blob and extraction gone).
    let etcd_a = lock.artifacts.iter().find(|a| a.kind == "etcd").unwrap();
    std::fs::remove_file(cache.blob(Algorithm::Sha256, &etcd_a.digest)).unwrap();
    std::fs::remove_dir_all(cache.extracted_dir(Algorithm::Sha256, &etcd_a.digest)).unwrap();
    let msg = install_files(&cluster, &lock, &cache)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("lacks etcd-v3.6.99-linux-amd64.tar.gz v3.6.99 (amd64)")
            && msg.contains("run `kimage fetch`"),
        "{msg}"
    );
}

#[test]
fn tarball_mode_installs_from_the_server_and_node_tarballs_via_a_file_mirror() {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "amd64");
    let mirror = tempfile::tempdir().unwrap();
    up.write_to(mirror.path());
    let mirror_url = format!("file://{}", mirror.path().display());
    let text = profile_yaml(&v, "amd64", "  kubernetesFrom: tarballs");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cluster.yaml");
    std::fs::write(&p, &text).unwrap();
    lock(
        &p,
        &LockArgs {
            image_mirror: None,
            mirror_checksums: false,
            offline: false,
            mirror: Some(mirror_url.clone()),
            refresh: false,
            net: NetArgs::default(),
        },
    )
    .unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    fetch(&p, &fetch_args(cache_dir.path(), Some(mirror_url))).unwrap();

    let lock = Lock::read(&dir.path().join("kimage.lock")).unwrap();
    let cluster = Cluster::resolve(&profile::load_str(&text, "t").unwrap().profile);
    let files = install_files(&cluster, &lock, &Cache::new(cache_dir.path())).unwrap();
    let from = |node: &str, install: &str| {
        let f = files[node]
            .iter()
            .find(|f| f.install == install)
            .unwrap_or_else(|| panic!("{node} lacks {install}"));
        (f.artifact.clone(), std::fs::read(&f.source).unwrap())
    };
    let (art, bytes) = from("master-1", "/usr/local/bin/kubelet");
    assert!(
        art.starts_with("kubernetes-server-linux-amd64.tar.gz"),
        "{art}"
    );
    assert_eq!(bytes, up.program("kubelet"));
    let (art, bytes) = from("node-1", "/usr/local/bin/kubelet");
    assert!(
        art.starts_with("kubernetes-node-linux-amd64.tar.gz"),
        "{art}"
    );
    assert_eq!(bytes, up.program("kubelet"));
    assert_eq!(
        from("master-1", "/usr/local/bin/kube-apiserver").1,
        up.program("kube-apiserver")
    );
    assert!(
        !files["master-1"]
            .iter()
            .any(|f| f.install.ends_with("kubeadm")),
        "only members some node needs"
    );
}
