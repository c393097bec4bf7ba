//! `kimage fetch`'s engine against an in-process HTTP server serving fixture releases in the upstream
//! layout: success, wrong digest, truncated bodies, 5xx then success, a dropped connection resumed with
//! Range, http:// and file:// mirrors, and a corrupt cache entry caught on reuse. After every failure
//! the cache must hold no unverified file where it would serve it. Digests are computed by sha256sum.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kimage::profile::{Arch, KubernetesFrom};
use kimage::release::cache::Cache;
use kimage::release::catalog::{Format, Member};
use kimage::release::command::{FetchArgs, NetArgs, run_fetch};
use kimage::release::digest::Algorithm;
use kimage::release::fetch::{FetchError, FetchOptions, Outcome, fetch_lock};
use kimage::release::lock::{Lock, LockedArtifact, ResolvedFor};
use kimage::release::net::RetryPolicy;
use kimage::release::progress::ProgressMode;
use support::fixtures::{digest_file, fake_binary, sha256, tar_gz};
use support::http::{Fault, TestServer};

const KUBELET: &str = "/release/v9.9.9/bin/linux/amd64/kubelet";
const ETCD: &str = "/etcd-io/etcd/releases/download/v9.9.9/etcd-v9.9.9-linux-amd64.tar.gz";

fn opts(mirror: Option<String>) -> FetchOptions {
    FetchOptions {
        mirror,
        jobs: 2,
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        progress: ProgressMode::Quiet,
    }
}

fn artifact(name: &str, url: String, digest: String, format: Format) -> LockedArtifact {
    LockedArtifact {
        name: name.into(),
        kind: name.into(),
        version: "v9.9.9".parse().unwrap(),
        arch: Arch::Amd64,
        url,
        algorithm: Algorithm::Sha256,
        digest,
        source: "test fixture".into(),
        format,
        members: vec![Member {
            binary: name.into(),
            path: None,
            install: format!("/usr/local/bin/{name}"),
            mode: 0o755,
        }],
    }
}

fn lock_of(artifacts: Vec<LockedArtifact>) -> Lock {
    Lock {
        images: Vec::new(),
        version: 1,
        resolved_for: ResolvedFor {
            images: Vec::new(),
            arch: Arch::Amd64,
            kubernetes_from: KubernetesFrom::Files,
            binaries: vec![],
            fingerprint: String::new(),
            versions: BTreeMap::new(),
        },
        artifacts,
    }
}

/// Every regular file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(
                files_under(&p)
                    .into_iter()
                    .map(|q| Path::new(&e.file_name()).join(q)),
            );
        } else {
            out.push(PathBuf::from(e.file_name()));
        }
    }
    out.sort();
    out
}

/// The cache serves only blobs/: each must be named by its own sha256 as sha256sum computes it.
fn assert_blobs_verified(cache: &Cache) {
    let dir = cache.root().join("blobs/sha256");
    for f in files_under(&dir) {
        let name = f.to_string_lossy().to_string();
        assert_eq!(
            digest_file("sha256sum", &dir.join(&f)),
            name,
            "blob {name} does not hold its digest"
        );
    }
}

struct Fixture {
    srv: TestServer,
    kubelet: Vec<u8>,
    etcd: Vec<u8>,
}

fn fixture() -> Fixture {
    let srv = TestServer::start();
    let kubelet = fake_binary("kubelet", 3 * 1024 * 1024 + 17);
    let etcd = tar_gz(
        &[
            (
                "etcd-v9.9.9-linux-amd64/etcd",
                fake_binary("etcd", 700_000),
                0o755,
            ),
            (
                "etcd-v9.9.9-linux-amd64/etcdctl",
                fake_binary("etcdctl", 300_000),
                0o755,
            ),
        ],
        false,
    );
    srv.put(KUBELET, kubelet.clone());
    srv.put(ETCD, etcd.clone());
    Fixture { srv, kubelet, etcd }
}

impl Fixture {
    fn kubelet_artifact(&self) -> LockedArtifact {
        artifact(
            "kubelet",
            format!("{}{KUBELET}", self.srv.url()),
            sha256(&self.kubelet),
            Format::File,
        )
    }
    fn etcd_artifact(&self) -> LockedArtifact {
        artifact(
            "etcd",
            format!("{}{ETCD}", self.srv.url()),
            sha256(&self.etcd),
            Format::TarGz,
        )
    }
}

#[test]
fn downloads_into_the_content_addressed_cache_and_reuses_it() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let lock = lock_of(vec![fx.kubelet_artifact(), fx.etcd_artifact()]);
    let got = fetch_lock(&lock, &cache, &opts(None)).expect("fetch succeeds");
    assert_eq!(got.len(), 2);
    for f in &got {
        assert!(
            matches!(
                f.outcome,
                Outcome::Downloaded {
                    resumed: false,
                    tries: 1
                }
            ),
            "{f:?}"
        );
    }
    let kubelet_blob = cache.root().join("blobs/sha256").join(sha256(&fx.kubelet));
    assert_eq!(std::fs::read(&kubelet_blob).unwrap(), fx.kubelet);
    assert_blobs_verified(&cache);
    assert_eq!(
        files_under(&cache.root().join("tmp")),
        Vec::<PathBuf>::new(),
        "no partial file left behind"
    );

    // Second run: both re-verified from the cache, no request reaches the server.
    let before = fx.srv.requests().len();
    let again = fetch_lock(&lock, &cache, &opts(None)).unwrap();
    assert!(
        again.iter().all(|f| f.outcome == Outcome::Cached),
        "{again:?}"
    );
    assert_eq!(fx.srv.requests().len(), before);
}

#[test]
fn wrong_digest_fails_names_everything_and_caches_nothing() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let mut a = fx.kubelet_artifact();
    let expected = sha256(b"some other kubelet");
    a.digest = expected.clone();
    let err = fetch_lock(
        &lock_of(vec![a.clone(), fx.etcd_artifact()]),
        &cache,
        &opts(None),
    )
    .unwrap_err();
    assert_eq!(
        err.errors.len(),
        1,
        "the good artifact still succeeds: {err}"
    );
    let msg = err.to_string();
    let actual = sha256(&fx.kubelet);
    for part in [
        "kubelet v9.9.9 (amd64)",
        &a.url,
        &expected,
        &actual,
        "digest mismatch",
    ] {
        assert!(msg.contains(part), "message lacks {part:?}: {msg}");
    }
    let FetchError::Mismatch { quarantined, .. } = &err.errors[0] else {
        panic!("{err}")
    };
    assert_eq!(
        digest_file("sha256sum", quarantined),
        actual,
        "the quarantined file is what was downloaded"
    );
    assert!(!cache.blob(Algorithm::Sha256, &expected).exists());
    assert!(
        !cache.blob(Algorithm::Sha256, &actual).exists(),
        "a file is only stored under the digest it was fetched for"
    );
    assert_eq!(
        files_under(&cache.root().join("tmp")),
        Vec::<PathBuf>::new()
    );
    assert_blobs_verified(&cache);
}

#[test]
fn a_body_cut_short_every_time_fails_after_retries() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    fx.srv.fault_always(KUBELET, Fault::CutAfter(100_000));
    let a = fx.kubelet_artifact();
    let err = fetch_lock(&lock_of(vec![a.clone()]), &cache, &opts(None)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("kubelet v9.9.9 (amd64)") && msg.contains(&a.url),
        "{msg}"
    );
    assert!(msg.contains("gave up after 4 tries"), "{msg}");
    assert!(
        msg.contains(&format!("of {} bytes", fx.kubelet.len())),
        "{msg}"
    );
    assert!(!cache.blob(Algorithm::Sha256, &a.digest).exists());
    assert_eq!(
        files_under(&cache.root().join("blobs")),
        Vec::<PathBuf>::new()
    );
    // Each retry asked only for the rest: the partial download stays in tmp/ (never served) for a later run.
    let ranges: Vec<_> = fx
        .srv
        .requests_for(KUBELET)
        .into_iter()
        .map(|l| l.range)
        .collect();
    assert_eq!(ranges[0], None);
    assert_eq!(ranges[1].as_deref(), Some("bytes=100000-"));
}

#[test]
fn a_short_file_served_as_complete_is_a_digest_mismatch() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let truncated = fx.kubelet[..1_000_000].to_vec();
    fx.srv.fault_always(KUBELET, Fault::Body(truncated.clone()));
    let a = fx.kubelet_artifact();
    let err = fetch_lock(&lock_of(vec![a.clone()]), &cache, &opts(None)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&a.digest) && msg.contains(&sha256(&truncated)),
        "{msg}"
    );
    assert_eq!(
        files_under(&cache.root().join("blobs")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_under(&cache.root().join("tmp")),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn http_500_is_retried_with_backoff_until_success() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    fx.srv.fault_once(KUBELET, Fault::Status(500));
    fx.srv.fault_once(KUBELET, Fault::Status(503));
    let got = fetch_lock(&lock_of(vec![fx.kubelet_artifact()]), &cache, &opts(None)).unwrap();
    assert_eq!(
        got[0].outcome,
        Outcome::Downloaded {
            resumed: false,
            tries: 3
        }
    );
    let statuses: Vec<u16> = fx
        .srv
        .requests_for(KUBELET)
        .iter()
        .map(|l| l.status)
        .collect();
    assert_eq!(statuses, vec![500, 503, 200]);
    assert_blobs_verified(&cache);
}

#[test]
fn http_404_is_not_retried() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let mut a = fx.kubelet_artifact();
    a.url = format!("{}/release/v9.9.9/bin/linux/amd64/nothing", fx.srv.url());
    let err = fetch_lock(&lock_of(vec![a]), &cache, &opts(None)).unwrap_err();
    assert!(
        err.to_string().contains("HTTP 404") && err.to_string().contains("gave up after 1 try"),
        "{err}"
    );
    assert_eq!(
        files_under(cache.root()),
        Vec::<PathBuf>::new(),
        "nothing at all is left: {:?}",
        files_under(cache.root())
    );
}

#[test]
fn a_dropped_connection_resumes_with_range() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let half = fx.kubelet.len() / 2;
    fx.srv.fault_once(KUBELET, Fault::CutAfter(half));
    let got = fetch_lock(&lock_of(vec![fx.kubelet_artifact()]), &cache, &opts(None)).unwrap();
    assert_eq!(
        got[0].outcome,
        Outcome::Downloaded {
            resumed: true,
            tries: 2
        }
    );
    let log = fx.srv.requests_for(KUBELET);
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[1].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
    assert_eq!(log[1].status, 206);
    assert_eq!(std::fs::read(&got[0].path).unwrap(), fx.kubelet);
    assert_blobs_verified(&cache);
}

#[test]
fn a_server_ignoring_range_restarts_the_download_cleanly() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    fx.srv.fault_once(KUBELET, Fault::CutAfter(500_000));
    fx.srv.fault_once(KUBELET, Fault::IgnoreRange);
    let got = fetch_lock(&lock_of(vec![fx.kubelet_artifact()]), &cache, &opts(None)).unwrap();
    assert_eq!(
        got[0].outcome,
        Outcome::Downloaded {
            resumed: false,
            tries: 2
        }
    );
    assert_eq!(std::fs::read(&got[0].path).unwrap(), fx.kubelet);
}

#[test]
fn a_partial_download_from_an_earlier_run_is_resumed() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let a = fx.kubelet_artifact();
    let partial = cache.partial(Algorithm::Sha256, &a.digest);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &fx.kubelet[..1_234_567]).unwrap();
    let got = fetch_lock(&lock_of(vec![a.clone()]), &cache, &opts(None)).unwrap();
    assert_eq!(
        got[0].outcome,
        Outcome::Downloaded {
            resumed: true,
            tries: 1
        }
    );
    assert_eq!(
        fx.srv.requests_for(KUBELET)[0].range.as_deref(),
        Some("bytes=1234567-")
    );
    assert_blobs_verified(&cache);

    // A garbage partial: the resumed result does not verify, so it is downloaded again from the start.
    let dir2 = tempfile::tempdir().unwrap();
    let cache2 = Cache::new(dir2.path());
    let partial = cache2.partial(Algorithm::Sha256, &a.digest);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![0u8; 1000]).unwrap();
    let got = fetch_lock(&lock_of(vec![a]), &cache2, &opts(None)).unwrap();
    assert_eq!(std::fs::read(&got[0].path).unwrap(), fx.kubelet);
    let last = fx.srv.requests_for(KUBELET).pop().unwrap();
    assert_eq!(last.range, None);
}

#[test]
fn an_http_mirror_keeps_the_upstream_paths() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let mut a = fx.kubelet_artifact();
    a.url = format!("https://dl.k8s.io{KUBELET}");
    fx.srv.put(&format!("/mirror{KUBELET}"), fx.kubelet.clone());
    let got = fetch_lock(
        &lock_of(vec![a]),
        &cache,
        &opts(Some(format!("{}/mirror/", fx.srv.url()))),
    )
    .unwrap();
    assert_eq!(got[0].url, format!("{}/mirror{KUBELET}", fx.srv.url()));
    assert_eq!(fx.srv.requests_for(&format!("/mirror{KUBELET}")).len(), 1);
    assert_blobs_verified(&cache);
}

#[test]
fn a_file_mirror_is_copied_and_verified() {
    let fx = fixture();
    let mirror = tempfile::tempdir().unwrap();
    let local = mirror.path().join(ETCD.trim_start_matches('/'));
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::write(&local, &fx.etcd).unwrap();
    let mut a = fx.etcd_artifact();
    a.url = format!("https://github.com{ETCD}");
    let mirror_url = format!("file://{}", mirror.path().display());

    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let got = fetch_lock(
        &lock_of(vec![a.clone()]),
        &cache,
        &opts(Some(mirror_url.clone())),
    )
    .unwrap();
    assert_eq!(got[0].bytes, fx.etcd.len() as u64);
    assert!(fx.srv.requests().is_empty(), "nothing went to the network");
    assert_blobs_verified(&cache);

    // A corrupted copy on the mirror is refused like a bad download.
    std::fs::write(&local, b"tampered").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let err = fetch_lock(
        &lock_of(vec![a.clone()]),
        &cache,
        &opts(Some(mirror_url.clone())),
    )
    .unwrap_err();
    assert!(err.to_string().contains(&sha256(b"tampered")), "{err}");
    assert_eq!(
        files_under(&cache.root().join("blobs")),
        Vec::<PathBuf>::new()
    );

    // A mirror lacking the file names the path it looked at.
    std::fs::remove_file(&local).unwrap();
    let err = fetch_lock(&lock_of(vec![a]), &cache, &opts(Some(mirror_url))).unwrap_err();
    assert!(
        err.to_string().contains(&local.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_corrupt_cache_entry_is_detected_on_reuse_and_replaced() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let lock = lock_of(vec![fx.kubelet_artifact()]);
    let got = fetch_lock(&lock, &cache, &opts(None)).unwrap();
    let blob = got[0].path.clone();
    // Same size, one flipped byte: only a full re-hash notices.
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[2_000_000] ^= 0x01;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&blob, &bytes).unwrap();
    assert_ne!(digest_file("sha256sum", &blob), lock.artifacts[0].digest);

    let again = fetch_lock(&lock, &cache, &opts(None)).unwrap();
    assert_eq!(
        again[0].outcome,
        Outcome::Replaced {
            resumed: false,
            tries: 1
        }
    );
    assert_blobs_verified(&cache);
    let q = cache.quarantine_path(Algorithm::Sha256, &lock.artifacts[0].digest);
    assert_eq!(
        std::fs::read(q).unwrap(),
        bytes,
        "the corrupt entry is kept aside for inspection"
    );
    assert_eq!(fx.srv.requests_for(KUBELET).len(), 2);
}

// Hostile servers: each must fail within a bounded time, naming the URL and what went wrong, and leave
// no blob behind. The deadlines are the options `kimage fetch --retries/--connect-timeout/
// --idle-timeout/--download-timeout` set; the time bounds are loose (these are not benchmarks).

/// What `kimage fetch --retries 2 --idle-timeout 1 --download-timeout 4` passes down.
fn short_net_args() -> NetArgs {
    NetArgs {
        retries: 2,
        idle_timeout: 1,
        download_timeout: Some(4),
        ..NetArgs::default()
    }
}

/// Two tries, an idle timeout of 1 s, a whole-download deadline of 4 s.
fn short_deadlines() -> FetchOptions {
    FetchOptions {
        retry: short_net_args().policy(),
        ..opts(None)
    }
}

fn assert_nothing_cached(cache: &Cache) {
    assert_eq!(
        files_under(&cache.root().join("blobs")),
        Vec::<PathBuf>::new()
    );
    assert_blobs_verified(cache);
}

#[test]
fn a_server_trickling_bytes_times_out() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    // One byte every 200 ms: never idle for a second, never done either.
    fx.srv
        .fault_always(KUBELET, Fault::Trickle(Duration::from_millis(200)));
    let a = fx.kubelet_artifact();
    let started = std::time::Instant::now();
    let err = fetch_lock(&lock_of(vec![a.clone()]), &cache, &short_deadlines()).unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(took < Duration::from_secs(20), "took {took:?}: {msg}");
    for part in [&a.url, "download deadline of 4s", "--download-timeout"] {
        assert!(msg.contains(part), "message lacks {part:?}: {msg}");
    }
    assert_nothing_cached(&cache);
}

#[test]
fn a_server_that_never_sends_headers_fails_after_the_idle_timeout_per_try() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    fx.srv.fault_always(KUBELET, Fault::NoHeaders);
    let a = fx.kubelet_artifact();
    let started = std::time::Instant::now();
    let err = fetch_lock(&lock_of(vec![a.clone()]), &cache, &short_deadlines()).unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(took < Duration::from_secs(20), "took {took:?}: {msg}");
    for part in [
        &a.url,
        "no response headers within 1s",
        "--idle-timeout",
        "gave up after 2 tries",
    ] {
        assert!(msg.contains(part), "message lacks {part:?}: {msg}");
    }
    assert_eq!(fx.srv.requests_for(KUBELET).len(), 2, "each try asked once");
    assert_nothing_cached(&cache);
}

#[test]
fn a_server_stalling_mid_body_fails_after_the_idle_timeout_per_try() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    // Headers and one byte, then silence far longer than the idle timeout.
    fx.srv
        .fault_always(KUBELET, Fault::Trickle(Duration::from_secs(60)));
    let a = fx.kubelet_artifact();
    let started = std::time::Instant::now();
    let err = fetch_lock(&lock_of(vec![a.clone()]), &cache, &short_deadlines()).unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(took < Duration::from_secs(20), "took {took:?}: {msg}");
    for part in [&a.url, "no data for 1s", "--idle-timeout"] {
        assert!(msg.contains(part), "message lacks {part:?}: {msg}");
    }
    assert_nothing_cached(&cache);
}

/// A 3 MB artifact of a kind whose size cap is small (runc), served as a 300 MB body.
fn oversized(announce: bool) {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let mut a = fx.kubelet_artifact();
    a.kind = "runc".into();
    fx.srv.fault_always(
        KUBELET,
        Fault::Oversize {
            bytes: 300 * 1024 * 1024,
            announce,
        },
    );
    // A generous whole-download deadline: this is about the size cap, and a loaded machine (CI with
    // builds running beside) once took more than 4 s to receive 64 MiB from loopback.
    let opts = FetchOptions {
        retry: NetArgs {
            download_timeout: Some(60),
            ..short_net_args()
        }
        .policy(),
        ..opts(None)
    };
    let started = std::time::Instant::now();
    let err = fetch_lock(&lock_of(vec![a.clone()]), &cache, &opts).unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(took < Duration::from_secs(60), "took {took:?}: {msg}");
    let received = if announce {
        "the server announced 314572800 bytes"
    } else {
        "bytes received so far"
    };
    for part in [
        a.url.as_str(),
        "more than the 67108864 bytes a runc artifact may be",
        received,
        "nothing was kept",
    ] {
        assert!(msg.contains(part), "message lacks {part:?}: {msg}");
    }
    assert_eq!(
        fx.srv.requests_for(KUBELET).len(),
        1,
        "a body too large is not retried"
    );
    assert_nothing_cached(&cache);
    assert_eq!(
        files_under(&cache.root().join("tmp")),
        Vec::<PathBuf>::new(),
        "no partial file left behind"
    );
}

#[test]
fn an_oversized_body_is_cut_off_at_the_size_cap() {
    oversized(false);
}

#[test]
fn an_oversized_content_length_is_refused_before_reading() {
    oversized(true);
}

/// `kimage fetch --lock FILE --retries 2 --idle-timeout 1 --download-timeout 4`, as the CLI runs it.
fn fetch_command(a: LockedArtifact) -> (kimage::release::command::CommandError, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let lock_file = dir.path().join("kimage.lock");
    lock_of(vec![a]).write(&lock_file).unwrap();
    let args = FetchArgs {
        image_mirror: None,
        mirror: None,
        lock: Some(lock_file),
        cache: Some(dir.path().join("cache")),
        jobs: 1,
        net: short_net_args(),
        plain: false,
        quiet: true,
    };
    let started = std::time::Instant::now();
    let err = run_fetch(None, &args, None).unwrap_err();
    (err, started.elapsed())
}

#[test]
fn the_fetch_command_passes_its_deadlines_down_and_a_body_too_large_exits_as_unverified() {
    let fx = fixture();
    fx.srv.fault_always(KUBELET, Fault::NoHeaders);
    let (err, took) = fetch_command(fx.kubelet_artifact());
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
    assert!(
        err.to_string().contains("no response headers within 1s"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1, "a timeout is a failure: {err}");

    let mut a = fx.kubelet_artifact();
    a.kind = "runc".into();
    fx.srv.fault_always(
        KUBELET,
        Fault::Oversize {
            bytes: 300 * 1024 * 1024,
            announce: true,
        },
    );
    let (err, _) = fetch_command(a);
    assert!(
        err.to_string().contains("more than the 67108864 bytes"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 4, "as for a digest mismatch: {err}");
}

#[test]
fn an_unresolvable_host_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let a = artifact(
        "kubelet",
        "http://kimage-test.invalid/kubelet".into(),
        sha256(b"kubelet"),
        Format::File,
    );
    let mut o = opts(None);
    o.retry.attempts = 5;
    o.retry.base_delay = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let err = fetch_lock(&lock_of(vec![a]), &cache, &o).unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(msg.contains("gave up after 1 try"), "{msg}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {msg}");
}
