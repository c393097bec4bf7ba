//! `kimage lock`: the built-in catalog against the reference facts, offline and byte-stable locks for
//! every profile, stale-lock detection, and resolution of versions outside the catalog from fixture
//! checksum files (sha256 sidecars, SHA256SUMS, runc.sha256sum, cfssl checksums.txt, the CHANGELOG
//! table) through http:// and file:// mirrors. Lock files are also parsed by Python's tomllib.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use kimage::model::Cluster;
use kimage::profile;
use kimage::release::catalog::CATALOG;
use kimage::release::command::{CommandError, FetchArgs, LockArgs, NetArgs};
use kimage::release::lock::{Lock, check_lock};
use serde_yaml_ng::Value;
use support::fixtures::{sha256, sha512};
use support::http::TestServer;
use support::releases::{FakeUpstream, Versions, fetch, lock, profile_yaml};
use support::tools::require;

fn reference() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/release-checksums.yaml"),
    )
    .expect("tests/reference/release-checksums.yaml");
    serde_yaml_ng::from_str(&text).unwrap()
}

/// The catalog kind of a reference entry, from its upstream file name.
fn kind_of(name: &str) -> &str {
    for (prefix, kind) in [
        ("kubernetes-server", "kubernetes-server"),
        ("kubernetes-node", "kubernetes-node"),
        ("etcd-", "etcd"),
        ("containerd-static-", "containerd-static"),
        ("containerd-", "containerd"),
        ("runc.", "runc"),
        ("crictl-", "crictl"),
        ("cni-plugins", "cni-plugins"),
        ("cfssljson", "cfssljson"),
        ("cfssl", "cfssl"),
    ] {
        if name.starts_with(prefix) {
            return kind;
        }
    }
    name
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(str::to_string)
}

#[test]
fn the_catalog_holds_exactly_the_reference_digests_with_their_sources() {
    let r = reference();
    let mut entries: Vec<&Value> = r["artifacts"].as_sequence().unwrap().iter().collect();
    for group in r["alternates"].as_mapping().unwrap().values() {
        entries.extend(group.as_sequence().unwrap());
    }
    let mut matched = 0;
    for e in entries {
        let name = s(e, "name").unwrap();
        let version: profile::Version = s(e, "version").unwrap().parse().unwrap();
        let arch: profile::Arch = serde_yaml_ng::from_value(e["arch"].clone()).unwrap();
        let kind = CATALOG
            .kind(kind_of(&name))
            .unwrap_or_else(|| panic!("no catalog kind for {name}"));
        let release = CATALOG.release(kind_of(&name), &version, arch);
        let Some(digest) = s(e, "digest") else {
            assert!(
                release.is_none(),
                "{name} {version}: the reference has no digest, the catalog must not invent one"
            );
            continue;
        };
        let release = release.unwrap_or_else(|| panic!("catalog lacks {name} {version} {arch:?}"));
        let (algorithm, d) = release.digest();
        assert_eq!(d, digest, "{name} {version} {arch:?}");
        assert_eq!(algorithm.as_str(), s(e, "algorithm").unwrap());
        assert_eq!(
            release.source,
            s(e, "source").unwrap(),
            "{name}: the catalog keeps the source of each digest"
        );
        assert_eq!(release.cross_checked, s(e, "cross_checked"), "{name}");
        if let Some(url) = s(e, "url") {
            assert_eq!(kind.url_for(&version, arch), url, "{name}: URL pattern");
        }
        if let Some(url) = s(e, "checksum_url") {
            assert_eq!(
                kind.checksum_url_for(&version, arch),
                url,
                "{name}: checksum URL pattern"
            );
        }
        matched += 1;
    }
    assert_eq!(
        matched,
        CATALOG.releases.len(),
        "every catalog release comes from the reference"
    );
}

/// A profile written into a fresh directory; returns (dir guard, profile path).
fn profile_in_tempdir(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cluster.yaml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

fn lock_args() -> LockArgs {
    LockArgs {
        image_mirror: None,
        mirror_checksums: false,
        offline: true,
        mirror: None,
        refresh: false,
        net: NetArgs::default(),
    }
}

/// Python's tomllib (an independent TOML parser) reads the lock; returns (artifacts, [(name, version, arch, digest)]).
fn python_reads(lock: &Path) -> Vec<(String, String, String, String, String)> {
    require("python3");
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, tomllib\nd = tomllib.load(open(sys.argv[1], 'rb'))\nassert d['version'] == 1\n\
             for a in d['artifact']:\n    assert a['member'], a\n    print(a['name'], a['version'], a['arch'], a['algorithm'], a['digest'])",
        )
        .arg(lock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tomllib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let w: Vec<String> = l.split(' ').map(str::to_string).collect();
            (
                w[0].clone(),
                w[1].clone(),
                w[2].clone(),
                w[3].clone(),
                w[4].clone(),
            )
        })
        .collect()
}

fn our_profiles() -> Vec<(String, String)> {
    let v = Versions::catalogued();
    let mut out = vec![
        ("design-example".to_string(), profile_yaml(&v, "amd64", "")),
        ("arm64-tarballs".to_string(), profile_yaml(&v, "arm64", "  kubernetesFrom: tarballs")),
        (
            "single-node".to_string(),
            "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: one\nnodes:\n  - {name: solo, role: control-plane, address: 10.0.0.5}\n"
                .to_string(),
        ),
        (
            "external-etcd".to_string(),
            "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: ext\netcd: {topology: external}\nbinaries: {arch: arm64}\nnodes:\n  \
             - {name: cp, role: control-plane, address: 10.0.0.5}\n  - {name: e1, role: etcd, address: 10.0.0.6}\n  \
             - {name: w1, role: worker, address: 10.0.0.7, etcdMember: true}\n"
                .to_string(),
        ),
    ];
    // The project's own profiles, once they exist on this branch.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        for p in paths {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn lock_works_offline_and_is_byte_stable_for_every_profile() {
    let r = reference();
    let reference_digest = |name: &str, version: &str, arch: &str| -> Option<String> {
        r["artifacts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| {
                s(e, "name").as_deref() == Some(name)
                    && s(e, "version").as_deref() == Some(version)
                    && s(e, "arch").as_deref() == Some(arch)
            })
            .and_then(|e| s(e, "digest"))
    };
    for (name, text) in our_profiles() {
        let (_dir, p) = profile_in_tempdir(&text);
        let loaded = profile::load_str(&text, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        if loaded.profile.binaries.cfssl.is_some() {
            // cfssl has no catalog digest: offline locking must say so, and name nothing else.
            let err = lock(&p, &lock_args()).unwrap_err().to_string();
            assert!(
                err.contains("cfssl") && !err.contains("kubelet"),
                "{name}: {err}"
            );
            continue;
        }
        let first = lock(&p, &lock_args()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(first.written);
        let bytes = std::fs::read(&first.path).unwrap();
        let second = lock(&p, &lock_args()).unwrap();
        assert!(
            !second.written,
            "{name}: a second run finds the lock up to date"
        );
        assert_eq!(std::fs::read(&first.path).unwrap(), bytes, "{name}");
        std::fs::remove_file(&first.path).unwrap();
        lock(&p, &lock_args()).unwrap();
        assert_eq!(
            std::fs::read(&first.path).unwrap(),
            bytes,
            "{name}: same bytes without a previous lock"
        );
        let parsed = Lock::read(&first.path).unwrap();
        assert_eq!(
            parsed.to_toml().as_bytes(),
            &bytes[..],
            "{name}: parse + write round-trips"
        );
        check_lock(&Cluster::resolve(&loaded.profile), &parsed).unwrap();
        // Every digest in the lock is the one the independent reference file lists.
        let rows = python_reads(&first.path);
        assert_eq!(rows.len(), parsed.artifacts.len());
        for (file, version, arch, algorithm, digest) in rows {
            let want = reference_digest(&file, &version, &arch)
                .unwrap_or_else(|| panic!("{name}: {file} {version} not in reference"));
            assert_eq!(digest, want, "{name}: {file} {version} {arch}");
            assert_eq!(algorithm.len(), 6);
        }
    }
}

#[test]
fn the_design_example_lock_pins_what_its_nodes_run() {
    let (_dir, p) = profile_in_tempdir(&profile_yaml(&Versions::catalogued(), "amd64", ""));
    let lock = lock(&p, &lock_args()).unwrap().lock;
    let names: Vec<&str> = lock.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cni-plugins-linux-amd64-v1.9.1.tgz",
            "containerd-2.2.4-linux-amd64.tar.gz",
            "crictl-v1.35.0-linux-amd64.tar.gz",
            "etcd-v3.6.12-linux-amd64.tar.gz",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-proxy",
            "kube-scheduler",
            "kubectl",
            "kubelet",
            "runc.amd64",
        ]
    );
    let kubelet = lock.artifacts.iter().find(|a| a.name == "kubelet").unwrap();
    assert_eq!(
        kubelet.url,
        "https://dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet"
    );
    assert_eq!(
        kubelet.digest,
        "2f4ed7778681649b81244426c29c5d98df60ccabf83d561d69e61c1cbb943ddf"
    );
    assert_eq!(
        kubelet.source,
        "kimage catalog: kubespray (kubelet_checksums.amd64.\"1.35.0\")"
    );
    let kubectl = lock.artifacts.iter().find(|a| a.name == "kubectl").unwrap();
    assert_eq!(
        kubectl.source,
        "kimage catalog: kubespray (kubectl_checksums.amd64.\"1.35.0\"); cross-checked: kubeair (kubectl_linux_amd64); envtest toolchain-matrix doc"
    );
    let ctd = lock
        .artifacts
        .iter()
        .find(|a| a.name.starts_with("containerd"))
        .unwrap();
    let installs: Vec<&str> = ctd.members.iter().map(|m| m.install.as_str()).collect();
    assert_eq!(
        installs,
        [
            "/usr/local/bin/containerd",
            "/usr/local/bin/containerd-shim-runc-v2",
            "/usr/local/bin/ctr"
        ]
    );
    let cni = lock
        .artifacts
        .iter()
        .find(|a| a.name.starts_with("cni"))
        .unwrap();
    assert_eq!(
        (
            cni.members[0].path.as_deref(),
            cni.members[0].install.as_str()
        ),
        (Some("*"), "/opt/cni/bin/")
    );
    let text = std::fs::read_to_string(p.parent().unwrap().join("kimage.lock")).unwrap();
    assert!(text.contains("[[artifact.member]]\nbinary = \"etcdutl\"\npath = \"etcd-v3.6.12-linux-amd64/etcdutl\"\ninstall = \"/usr/local/bin/etcdutl\"\nmode = \"0755\""), "{text}");
}

#[test]
fn a_profile_changed_without_relocking_is_detected() {
    let v = Versions::catalogued();
    let base = profile_yaml(&v, "amd64", "");
    let (_dir, p) = profile_in_tempdir(&base);
    let lock = lock(&p, &lock_args()).unwrap().lock;
    let cluster_of = |text: &str| Cluster::resolve(&profile::load_str(text, "t").unwrap().profile);
    let stale = |text: &str| {
        check_lock(&cluster_of(text), &lock)
            .unwrap_err()
            .to_string()
    };

    let msg = stale(&base.replace("version: v1.35.0", "version: v1.35.4"));
    assert!(
        msg.contains("kubelet v1.35.4")
            && msg.contains("pins v1.35.0")
            && msg.contains("run `kimage lock`"),
        "{msg}"
    );
    let msg = stale(&base.replace("arch: amd64", "arch: arm64"));
    assert!(
        msg.contains("for arm64") && msg.contains("run `kimage lock`"),
        "{msg}"
    );
    let msg = stale(&base.replace("etcd:\n  version: v3.6.12", "etcd:\n  version: v3.6.10"));
    assert!(msg.contains("etcd v3.6.10"), "{msg}");
    let msg = stale(&base.replace("  arch: amd64", "  arch: amd64\n  cfssl: v1.6.5"));
    assert!(msg.contains("no cfssl v1.6.5 (amd64)"), "{msg}");
    let msg = stale(&base.replace("  arch: amd64", "  arch: amd64\n  kubernetesFrom: tarballs"));
    assert!(
        msg.contains("kubernetes-server") && msg.contains("which no node needs"),
        "{msg}"
    );
    // Binary set shrinks: without workers and control planes nothing runs kubelet.
    let etcd_only = "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: prod\nnodes:\n  - {name: e1, role: etcd, address: 10.0.0.1}\n";
    assert!(stale(etcd_only).contains("kubelet v1.35.0 (amd64), which no node needs"));

    // Not stale: another worker (same binary set), a different mirror.
    let more = base.replace(
        "  - {name: etcd-1",
        "  - {name: node-2,   role: worker,        address: 192.168.31.74}\n  - {name: etcd-1",
    );
    check_lock(&cluster_of(&more), &lock).unwrap();
    check_lock(
        &cluster_of(&base.replace(
            "  arch: amd64",
            "  arch: amd64\n  mirror: http://10.1.1.1/m",
        )),
        &lock,
    )
    .unwrap();

    // A hand-edited lock (fingerprint) is caught too.
    let mut edited = lock.clone();
    edited.resolved_for.fingerprint = format!("sha256:{}", "0".repeat(64));
    assert!(
        check_lock(&cluster_of(&base), &edited)
            .unwrap_err()
            .to_string()
            .contains("fingerprint")
    );

    // `kimage fetch` refuses a stale lock before downloading anything.
    std::fs::write(&p, base.replace("version: v1.35.0", "version: v1.35.4")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = fetch(
        &p,
        &FetchArgs {
            image_mirror: None,
            mirror: None,
            lock: None,
            cache: Some(cache.path().to_path_buf()),
            jobs: 1,
            net: NetArgs {
                retries: 1,
                ..NetArgs::default()
            },
            plain: false,
            quiet: true,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, CommandError::Stale(_)) && err.to_string().contains("run `kimage lock`"),
        "{err}"
    );
}

#[test]
fn uncatalogued_versions_resolve_from_checksum_files_through_an_http_mirror() {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "amd64");
    let srv = TestServer::start();
    up.serve(&srv, "/mirror");
    let mirror = format!("{}/mirror", srv.url());
    let text = profile_yaml(
        &v,
        "amd64",
        &format!("  mirror: {mirror}\n  cfssl: v{}", v.cfssl),
    );
    let (_dir, p) = profile_in_tempdir(&text);

    // Offline, nothing outside the catalog resolves; every problem is listed with its checksum URL.
    let err = lock(&p, &lock_args()).unwrap_err().to_string();
    for part in [
        "kubelet v1.35.99 (amd64): not in the built-in catalog",
        "https://dl.k8s.io/release/v1.35.99/bin/linux/amd64/kubelet.sha256",
        "https://github.com/etcd-io/etcd/releases/download/v3.6.99/SHA256SUMS",
        "cfssljson v1.6.5 (amd64)",
        "run `kimage lock` without --offline",
    ] {
        assert!(err.contains(part), "lacks {part:?}: {err}");
    }

    let out = lock(
        &p,
        &LockArgs {
            image_mirror: None,
            mirror_checksums: false,
            offline: false,
            ..lock_args()
        },
    )
    .unwrap();
    let by_name = |n: &str| {
        out.lock
            .artifacts
            .iter()
            .find(|a| a.name == n)
            .unwrap_or_else(|| panic!("no {n}"))
    };
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
    ] {
        let a = by_name(name);
        assert_eq!(a.digest, sha256(up.program(name)), "{name}");
        assert_eq!(
            a.source,
            format!(
                "https://dl.k8s.io/release/v1.35.99/bin/linux/amd64/{name}.sha256 (read through mirror {mirror})"
            )
        );
        assert_eq!(
            a.url,
            format!("https://dl.k8s.io/release/v1.35.99/bin/linux/amd64/{name}"),
            "the lock keeps upstream URLs"
        );
    }
    let file_digest = |path: &str| sha256(&up.files[path]);
    let etcd = by_name("etcd-v3.6.99-linux-amd64.tar.gz");
    assert_eq!(
        etcd.digest,
        file_digest("/etcd-io/etcd/releases/download/v3.6.99/etcd-v3.6.99-linux-amd64.tar.gz")
    );
    assert!(
        etcd.source
            .starts_with("https://github.com/etcd-io/etcd/releases/download/v3.6.99/SHA256SUMS")
    );
    assert_eq!(
        by_name("runc.amd64").digest,
        sha256(up.program("runc")),
        "runc.sha256sum (PGP armored) line"
    );
    assert_eq!(
        by_name("cfssl_1.6.5_linux_amd64").digest,
        sha256(up.program("cfssl"))
    );
    assert_eq!(
        by_name("cfssljson_1.6.5_linux_amd64").digest,
        sha256(up.program("cfssljson"))
    );
    assert_eq!(
        by_name("containerd-2.2.99-linux-amd64.tar.gz").digest,
        file_digest(
            "/containerd/containerd/releases/download/v2.2.99/containerd-2.2.99-linux-amd64.tar.gz"
        )
    );
    assert_eq!(
        by_name("crictl-v1.35.99-linux-amd64.tar.gz").digest,
        file_digest(
            "/kubernetes-sigs/cri-tools/releases/download/v1.35.99/crictl-v1.35.99-linux-amd64.tar.gz"
        )
    );
    assert_eq!(
        by_name("cni-plugins-linux-amd64-v1.9.99.tgz").digest,
        file_digest(
            "/containernetworking/plugins/releases/download/v1.9.99/cni-plugins-linux-amd64-v1.9.99.tgz"
        )
    );
    // Shared checksum files are read once.
    assert_eq!(
        srv.requests_for(
            "/mirror/cloudflare/cfssl/releases/download/v1.6.5/cfssl_1.6.5_checksums.txt"
        )
        .len(),
        1
    );
    assert!(
        srv.requests().iter().all(|r| r.path.ends_with(".sha256")
            || r.path.ends_with("SUMS")
            || r.path.ends_with(".sha256sum")
            || r.path.ends_with(".txt")),
        "only checksum files are read"
    );
    let bytes = std::fs::read(&out.path).unwrap();
    python_reads(&out.path);

    // Locking again offline reuses what the previous lock resolved: same bytes, no request.
    let before = srv.requests().len();
    let again = lock(&p, &lock_args()).unwrap();
    assert!(!again.written);
    assert_eq!(std::fs::read(&out.path).unwrap(), bytes);
    assert_eq!(srv.requests().len(), before);
    // --refresh forgets them, so offline it fails again.
    assert!(
        lock(
            &p,
            &LockArgs {
                image_mirror: None,
                mirror_checksums: false,
                refresh: true,
                ..lock_args()
            }
        )
        .is_err()
    );

    // A mirror that lacks a checksum file: the error names the artifact and the URL tried.
    let empty = TestServer::start();
    let err = lock(
        &p,
        &LockArgs {
            image_mirror: None,
            mirror_checksums: false,
            offline: false,
            refresh: true,
            mirror: Some(empty.url()),
            ..lock_args()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("kubelet v1.35.99 (amd64)")
            && err.contains("HTTP 404")
            && err.contains(&empty.url()),
        "{err}"
    );
}

#[test]
fn kubernetes_tarballs_resolve_from_the_changelog_through_a_file_mirror() {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "arm64");
    let mirror_dir = tempfile::tempdir().unwrap();
    up.write_to(mirror_dir.path());
    let text = profile_yaml(&v, "arm64", "  kubernetesFrom: tarballs");
    let (_dir, p) = profile_in_tempdir(&text);
    let mirror = format!("file://{}", mirror_dir.path().display());
    let out = lock(
        &p,
        &LockArgs {
            image_mirror: None,
            mirror_checksums: false,
            offline: false,
            mirror: Some(mirror.clone()),
            ..lock_args()
        },
    )
    .unwrap();
    let server = out
        .lock
        .artifacts
        .iter()
        .find(|a| a.kind == "kubernetes-server")
        .unwrap();
    let node = out
        .lock
        .artifacts
        .iter()
        .find(|a| a.kind == "kubernetes-node")
        .unwrap();
    assert_eq!(server.algorithm.as_str(), "sha512");
    assert_eq!(
        server.digest,
        sha512(&up.files["/v1.35.99/kubernetes-server-linux-arm64.tar.gz"])
    );
    assert_eq!(
        node.digest,
        sha512(&up.files["/v1.35.99/kubernetes-node-linux-arm64.tar.gz"])
    );
    assert_eq!(
        server.source,
        format!(
            "https://raw.githubusercontent.com/kubernetes/kubernetes/master/CHANGELOG/CHANGELOG-1.35.md (read through mirror {mirror})"
        )
    );
    // Control planes take everything from the server tarball; the worker's kubelet comes from the node one.
    let server_bins: Vec<&str> = server.members.iter().map(|m| m.binary.as_str()).collect();
    assert_eq!(
        server_bins,
        [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-proxy",
            "kube-scheduler",
            "kubectl",
            "kubelet"
        ]
    );
    let node_bins: Vec<&str> = node.members.iter().map(|m| m.binary.as_str()).collect();
    assert_eq!(node_bins, ["kube-proxy", "kubelet"]);
    assert!(
        out.lock
            .artifacts
            .iter()
            .all(|a| a.arch == profile::Arch::Arm64)
    );
}

/// A profile of uncatalogued versions whose checksum files come from `srv` under /mirror, with the
/// kubelet's sha256 sidecar misbehaving as `fault`; returns (dir guard, profile path, sidecar URL).
fn hostile_checksum_file(
    srv: &TestServer,
    fault: support::http::Fault,
) -> (tempfile::TempDir, PathBuf, String) {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "amd64");
    up.serve(srv, "/mirror");
    let sidecar = "/mirror/release/v1.35.99/bin/linux/amd64/kubelet.sha256";
    srv.fault_always(sidecar, fault);
    let text = profile_yaml(&v, "amd64", "");
    let (dir, p) = profile_in_tempdir(&text);
    (dir, p, format!("{}{sidecar}", srv.url()))
}

/// `kimage lock --mirror URL --refresh --retries 2 --idle-timeout 1`.
fn hostile_lock_args(srv: &TestServer) -> LockArgs {
    LockArgs {
        image_mirror: None,
        mirror_checksums: false,
        offline: false,
        mirror: Some(format!("{}/mirror", srv.url())),
        refresh: true,
        net: NetArgs {
            retries: 2,
            idle_timeout: 1,
            ..NetArgs::default()
        },
    }
}

#[test]
fn a_huge_checksum_file_is_refused_without_reading_it_all() {
    let srv = TestServer::start();
    let (_dir, p, url) = hostile_checksum_file(
        &srv,
        support::http::Fault::Oversize {
            bytes: 300 * 1024 * 1024,
            announce: false,
        },
    );
    let started = std::time::Instant::now();
    let err = lock(&p, &hostile_lock_args(&srv)).unwrap_err().to_string();
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "took {took:?}: {err}"
    );
    for part in [
        "kubelet v1.35.99 (amd64)",
        url.as_str(),
        "more than the 1048576 bytes a checksum file may be",
    ] {
        assert!(err.contains(part), "lacks {part:?}: {err}");
    }
    assert_eq!(
        srv.requests_for(&url[srv.url().len()..]).len(),
        1,
        "not retried"
    );
}

#[test]
fn a_checksum_server_that_never_answers_times_out() {
    let srv = TestServer::start();
    let (_dir, p, url) = hostile_checksum_file(&srv, support::http::Fault::NoHeaders);
    let started = std::time::Instant::now();
    let err = lock(&p, &hostile_lock_args(&srv)).unwrap_err().to_string();
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "took {took:?}: {err}"
    );
    for part in [
        "kubelet v1.35.99 (amd64)",
        url.as_str(),
        "no response headers within 1s",
        "--idle-timeout",
    ] {
        assert!(err.contains(part), "lacks {part:?}: {err}");
    }
    assert_eq!(
        srv.requests_for(&url[srv.url().len()..]).len(),
        2,
        "two tries"
    );
}

#[test]
fn an_edited_lock_was_shipped() {
    // One digest digit or a URL host changed by hand: build took it and shipped it to the nodes.
    let (_dir, p) = profile_in_tempdir(&our_profiles()[0].1);
    let out = lock(&p, &lock_args()).unwrap();
    let text = std::fs::read_to_string(&out.path).unwrap();
    assert!(Lock::read(&out.path).is_ok(), "a lock as written reads");
    let first_digest = text.find("digest = \"").unwrap() + "digest = \"".len();
    let line = text[..first_digest].matches('\n').count() + 1;
    for (what, edited) in [
        (
            "digest digit",
            format!(
                "{}{}{}",
                &text[..first_digest],
                if &text[first_digest..=first_digest] == "0" {
                    "1"
                } else {
                    "0"
                },
                &text[first_digest + 1..]
            ),
        ),
        (
            "url host",
            text.replacen("https://github.com/", "https://github.example/", 1),
        ),
    ] {
        std::fs::write(&out.path, &edited).unwrap();
        let e = Lock::read(&out.path).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, kimage::release::LockFileError::Edited { .. }),
            "{what}: {msg}"
        );
        // The message names the lines of the edited entry.
        let (from, to) = msg
            .split("lines ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
            .unwrap_or_else(|| panic!("{what}: {msg}"));
        if what == "digest digit" {
            assert!(
                (from..=to).contains(&line),
                "{what}: line {line} not in {msg}"
            );
        }
        assert_eq!(
            kimage::release::command::CommandError::from(e).exit_code(),
            4,
            "{what}"
        );
    }
    // `kimage lock` rewrites it deliberately.
    std::fs::write(&out.path, &text).unwrap();
    assert!(Lock::read(&out.path).is_ok());
}

#[test]
fn a_mirror_of_own_builds_is_pinned_by_its_checksums_with_mirror_checksums() {
    // The catalog's versions, but the mirror serves other bytes (a site's own builds of them): by
    // default the lock pins upstream's published digests (which those bytes fail), with
    // --mirror-checksums it pins what the mirror's checksum files say, and fetch verifies against that.
    let v = Versions::catalogued();
    let up = FakeUpstream::new(&v, "amd64");
    let srv = TestServer::start();
    up.serve(&srv, "/mirror");
    let mirror = format!("{}/mirror", srv.url());
    let (dir, p) = profile_in_tempdir(&profile_yaml(&v, "amd64", &format!("  mirror: {mirror}")));
    let kubelet = |out: &kimage::release::command::LockOutcome| {
        out.lock
            .artifacts
            .iter()
            .find(|a| a.name == "kubelet")
            .unwrap()
            .clone()
    };
    let online = LockArgs {
        offline: false,
        ..lock_args()
    };
    let pinned = kubelet(&lock(&p, &online).unwrap());
    assert_ne!(pinned.digest, sha256(up.program("kubelet")));
    assert!(
        pinned.source.starts_with("kimage catalog"),
        "{}",
        pinned.source
    );

    let own = lock(
        &p,
        &LockArgs {
            mirror_checksums: true,
            refresh: true,
            ..online.clone()
        },
    )
    .unwrap();
    let k = kubelet(&own);
    assert_eq!(k.digest, sha256(up.program("kubelet")));
    assert!(
        k.source
            .contains(&format!("(read through mirror {mirror})")),
        "{}",
        k.source
    );
    assert!(
        own.lock
            .artifacts
            .iter()
            .all(|a| a.source.contains("read through mirror"))
    );
    let cache = dir.path().join("cache");
    let fetched = fetch(
        &p,
        &kimage::release::command::FetchArgs {
            image_mirror: None,
            mirror: None,
            lock: None,
            cache: Some(cache),
            jobs: 2,
            net: NetArgs::default(),
            plain: false,
            quiet: true,
        },
    )
    .unwrap();
    assert_eq!(fetched.len(), own.lock.artifacts.len());

    // Without a mirror there is nothing to read: refused as bad input.
    let (_d2, bare) = profile_in_tempdir(&profile_yaml(&v, "amd64", ""));
    let err = lock(
        &bare,
        &LockArgs {
            mirror_checksums: true,
            ..online
        },
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(
        err.to_string()
            .contains("--mirror-checksums: there is no mirror"),
        "{err}"
    );
}
