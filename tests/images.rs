//! Container images as pinned artifacts, judged by real programs: Debian's `docker-registry` (the
//! reference OCI distribution server) serves images the test builds and pushes through the registry
//! API; `kimage lock` pins them, `kimage fetch` copies every blob into the cache, `kimage build` lays them
//! out in the images layer, and the node's import script loads that layer into a real containerd and
//! checks each digest. The companions break one thing each: a tampered blob in the registry's storage,
//! a manifest the registry does not have, a registry that never answers, a flipped byte on the node, a
//! wrong digest on the node.

mod support;

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::fixtures::{sha256, tar_gz};
use support::tools::{KillOnDrop, free_port, require, require_root, tempdir};

/// A real registry on 127.0.0.1, its storage in a temp dir; stopped on drop.
struct Registry {
    _child: KillOnDrop,
    port: u16,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let bin = require("docker-registry");
        let dir = tempdir();
        let port = free_port();
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reg = Registry {
            _child: KillOnDrop(child),
            port,
            storage,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(20);
        while reqwest::blocking::get(format!("{}/v2/", reg.url())).is_err() {
            assert!(Instant::now() < until, "docker-registry did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        reg
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Monolithic blob upload (POST, then PUT with the digest), as the distribution spec gives it.
    fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", sha256(bytes));
        let c = reqwest::blocking::Client::new();
        let r = c
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.url()))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "starting an upload");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("{}{loc}", self.url())
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = c
            .put(format!("{loc}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "finishing an upload");
        digest
    }

    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let r = reqwest::blocking::Client::new()
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.url()))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "pushing {repo}:{reference}: {:?}",
            r.text()
        );
        format!("sha256:{}", sha256(body))
    }

    /// Pushes a one-layer image for `arch` (its only file says which image it is) and returns the
    /// manifest's digest and size.
    fn push_image(&self, repo: &str, tag: Option<&str>, arch: &str) -> (String, usize) {
        let file = format!("{repo} for {arch}\n").into_bytes();
        let gz = tar_gz(&[("hello.txt", file, 0o644)], false);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar)
            .unwrap();
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "config": {"Entrypoint": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256(&tar))]},
        }))
        .unwrap();
        let layer = self.put_blob(repo, &gz);
        let cfg = self.put_blob(repo, &config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": gz.len()}],
        }))
        .unwrap();
        let reference = tag.map_or(format!("sha256:{}", sha256(&manifest)), str::to_string);
        let d = self.put_manifest(
            repo,
            &reference,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        );
        (d, manifest.len())
    }

    /// A multi-arch image: amd64 and arm64 manifests under one index tagged `tag`. Returns the index
    /// digest and the amd64 manifest digest.
    fn push_index(&self, repo: &str, tag: &str) -> (String, String) {
        let (amd, amd_size) = self.push_image(repo, None, "amd64");
        let (arm, arm_size) = self.push_image(repo, None, "arm64");
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": arm_size,
                 "platform": {"architecture": "arm64", "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": amd_size,
                 "platform": {"architecture": "amd64", "os": "linux"}},
            ],
        }))
        .unwrap();
        let d = self.put_manifest(repo, tag, "application/vnd.oci.image.index.v1+json", &index);
        (d, amd)
    }

    /// The registry's stored file of a blob (its filesystem driver's layout).
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// The images kimage's own manifests name, plus an extra one; pushed under their upstream repository
/// paths, as a mirror serves them.
fn push_cluster_images(reg: &Registry) -> (String, String) {
    let pause = reg.push_index("pause", "3.10.1");
    reg.push_image("coredns/coredns", Some("v1.13.1"), "amd64");
    reg.push_image("flannel-io/flannel", Some("v0.27.4"), "amd64");
    reg.push_image(
        "flannel-io/flannel-cni-plugin",
        Some("v1.8.0-flannel1"),
        "amd64",
    );
    reg.push_image("kimage-test/echo", Some("v1"), "amd64");
    pause
}

fn profile(mirror: &str, extra: &str) -> String {
    format!(
        "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: imgtest\n\
         # Only the images are under test: no release binary is delivered.\n\
         binaries:\n  exclude: [kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, etcd, etcdctl, etcdutl, containerd, runc, crictl, cni-plugins]\n\
         images:\n  mirror: {mirror}\n  extra: [{extra}]\n\
         nodes:\n  - {{name: cp-1, role: control-plane, address: 10.0.0.10}}\n  - {{name: worker-1, role: worker, address: 10.0.0.21}}\n"
    )
}

fn run(dir: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kimage"))
        .args(args)
        .current_dir(dir)
        .env("KIMAGE_CACHE", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

fn ok(dir: &Path, cache: &Path, args: &[&str]) -> String {
    let out = run(dir, cache, args);
    assert!(
        out.status.success(),
        "kimage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "expected a failure");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Files under `dir`, recursively, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The images layer of a build, unpacked for `node` into `root` (`kimage unpack`).
fn unpack(dir: &Path, cache: &Path, node: &str, root: &Path) {
    ok(
        dir,
        cache,
        &[
            "unpack",
            "--profile",
            "cluster.yaml",
            "--node",
            node,
            "--into",
            root.to_str().unwrap(),
        ],
    );
}

#[test]
fn images_are_locked_fetched_and_laid_out_from_a_real_registry() {
    let reg = Registry::start();
    let (pause_index, pause_amd64) = push_cluster_images(&reg);
    let work = tempdir();
    let (dir, cache) = (work.path(), work.path().join("cache"));
    fs::write(
        dir.join("cluster.yaml"),
        profile(&reg.url(), "kimage-test.invalid/kimage-test/echo:v1"),
    )
    .unwrap();
    ok(dir, &cache, &["lock", "--profile", "cluster.yaml"]);
    let lock = fs::read_to_string(dir.join("kimage.lock")).unwrap();
    // The multi-arch image is pinned to its amd64 manifest, and the index it came from is recorded.
    assert!(
        lock.contains(&format!(
            "reference = \"registry.k8s.io/pause:3.10.1\"\narch = \"amd64\"\ndigest = \"{pause_amd64}\""
        )),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("index = \"{pause_index}\"")),
        "{lock}"
    );
    assert_eq!(lock.matches("[[image]]").count(), 5, "{lock}");

    let out = ok(
        dir,
        &cache,
        &["fetch", "--profile", "cluster.yaml", "--quiet"],
    );
    assert!(
        out.contains("fetched 5 images (15 blobs: 15 downloaded"),
        "{out}"
    );
    let again = ok(
        dir,
        &cache,
        &["fetch", "--profile", "cluster.yaml", "--quiet"],
    );
    assert!(again.contains("0 downloaded"), "{again}");

    ok(
        dir,
        &cache,
        &["build", "--profile", "cluster.yaml", "--all"],
    );
    let first = files_under(&dir.join("out"))
        .into_iter()
        .filter(|f| f.starts_with("layers/"))
        .map(|f| (f.clone(), fs::read(dir.join("out").join(&f)).unwrap()))
        .collect::<Vec<_>>();
    for node in ["worker-1", "cp-1"] {
        let root = work.path().join(format!("root-{node}"));
        unpack(dir, &cache, node, &root);
        let images = root.join("var/lib/kimage/images");
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(images.join("index.json")).unwrap()).unwrap();
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                m["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1",
                "ghcr.io/flannel-io/flannel:v0.27.4",
                "kimage-test.invalid/kimage-test/echo:v1",
                "registry.k8s.io/coredns/coredns:v1.13.1",
                "registry.k8s.io/pause:3.10.1",
            ],
            "{node}"
        );
        // Every blob is what the registry holds under that digest.
        for f in files_under(&images.join("blobs/sha256")) {
            let bytes = fs::read(images.join("blobs/sha256").join(&f)).unwrap();
            assert_eq!(sha256(&bytes), f, "{node}: blob {f}");
            assert_eq!(
                bytes,
                fs::read(reg.blob_file(&format!("sha256:{f}"))).unwrap()
            );
        }
        assert!(
            root.join("etc/systemd/system/kimage-images.service")
                .exists()
        );
        assert!(root.join("usr/local/bin/kimage-images-import").exists());
    }
    // Same profile, same state, same cache: the same layer bytes.
    fs::remove_dir_all(dir.join("out")).unwrap();
    ok(
        dir,
        &cache,
        &["build", "--profile", "cluster.yaml", "--all"],
    );
    for (f, bytes) in first {
        assert_eq!(fs::read(dir.join("out").join(&f)).unwrap(), bytes, "{f}");
    }
}

#[test]
fn a_tampered_blob_is_refused_with_exit_4_and_nothing_kept() {
    let reg = Registry::start();
    push_cluster_images(&reg);
    let work = tempdir();
    let (dir, cache) = (work.path(), work.path().join("cache"));
    fs::write(
        dir.join("cluster.yaml"),
        profile(&reg.url(), "kimage-test.invalid/kimage-test/echo:v1"),
    )
    .unwrap();
    ok(dir, &cache, &["lock", "--profile", "cluster.yaml"]);
    // The echo image's layer, changed in the registry's storage after the lock pinned it.
    let lock = fs::read_to_string(dir.join("kimage.lock")).unwrap();
    let echo = lock
        .split("[[image]]")
        .skip(1)
        .find(|b| b.contains("kimage-test/echo"))
        .unwrap();
    let manifest_digest = echo
        .lines()
        .find_map(|l| l.strip_prefix("digest = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(reg.blob_file(&manifest_digest)).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = reg.blob_file(&layer);
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, bytes).unwrap();

    let (code, err) = failed(&run(
        dir,
        &cache,
        &["fetch", "--profile", "cluster.yaml", "--quiet"],
    ));
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("image kimage-test.invalid/kimage-test/echo:v1 (amd64): digest mismatch for")
            && err.contains(&format!("expected {layer}, got sha256:"))
            && err.contains("nothing was kept"),
        "{err}"
    );
    let hex = layer.trim_start_matches("sha256:");
    let cached = files_under(&cache);
    assert!(!cached.iter().any(|f| f.contains(hex)), "{cached:?}");
    assert!(!cached.iter().any(|f| f.starts_with("tmp/")), "{cached:?}");
    // The other images were fetched and verified.
    assert!(
        cached
            .iter()
            .filter(|f| f.starts_with("blobs/sha256/"))
            .count()
            >= 12,
        "{cached:?}"
    );
    // And the build refuses to lay out an image it does not have.
    let (code, err) = failed(&run(
        dir,
        &cache,
        &["build", "--profile", "cluster.yaml", "--all"],
    ));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("is not in the cache") && err.contains("run `kimage fetch`"),
        "{err}"
    );
    assert!(!dir.join("out").exists() || files_under(&dir.join("out")).is_empty());
}

#[test]
fn a_manifest_the_registry_lacks_is_named_and_no_lock_is_written() {
    let reg = Registry::start();
    push_cluster_images(&reg);
    let work = tempdir();
    let (dir, cache) = (work.path(), work.path().join("cache"));
    fs::write(
        dir.join("cluster.yaml"),
        profile(&reg.url(), "kimage-test.invalid/kimage-test/echo:v2"),
    )
    .unwrap();
    let (code, err) = failed(&run(dir, &cache, &["lock", "--profile", "cluster.yaml"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("image kimage-test.invalid/kimage-test/echo:v2: HTTP 404 from")
            && err.contains("/v2/kimage-test/echo/manifests/v2"),
        "{err}"
    );
    assert!(!dir.join("kimage.lock").exists());
}

#[test]
fn a_pinned_digest_the_registry_contradicts_is_refused() {
    let reg = Registry::start();
    push_cluster_images(&reg);
    let work = tempdir();
    let (dir, cache) = (work.path(), work.path().join("cache"));
    let wrong = format!("sha256:{}", "0".repeat(64));
    // A tag and a digest: the registry's answer for the tag must have that digest.
    fs::write(
        dir.join("cluster.yaml"),
        profile(
            &reg.url(),
            &format!("kimage-test.invalid/kimage-test/echo:v1@{wrong}"),
        ),
    )
    .unwrap();
    let (code, err) = failed(&run(dir, &cache, &["lock", "--profile", "cluster.yaml"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("expected {wrong}, got sha256:")),
        "{err}"
    );
    assert!(!dir.join("kimage.lock").exists());
}

#[test]
fn a_registry_that_never_answers_fails_within_the_idle_timeout() {
    // Accepts connections (the kernel's backlog) and never answers a request.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let work = tempdir();
    let (dir, cache) = (work.path(), work.path().join("cache"));
    fs::write(
        dir.join("cluster.yaml"),
        profile(&url, "kimage-test.invalid/kimage-test/echo:v1"),
    )
    .unwrap();
    let started = Instant::now();
    let (code, err) = failed(&run(
        dir,
        &cache,
        &[
            "lock",
            "--profile",
            "cluster.yaml",
            "--idle-timeout",
            "1",
            "--retries",
            "2",
        ],
    ));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("idle timeout"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(!dir.join("kimage.lock").exists());
    drop(silent);
}

/// A real containerd on a private socket, state and root in a temp dir: Debian's, or the pinned 2.x
/// build when ci/real/build.sh's runtime set is there.
struct Containerd {
    _child: KillOnDrop,
    sock: PathBuf,
    ctr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let (containerd, ctr) = match std::env::var_os("KIMAGE_REAL_RUNTIME") {
            Some(d) => (
                Path::new(&d).join("bin/containerd"),
                Path::new(&d).join("bin/ctr"),
            ),
            None => (require("containerd"), require("ctr")),
        };
        // Under /var/tmp: the overlayfs snapshotter wants a real filesystem, not tmpfs or overlay.
        let dir = support::tools::tempdir_in(Path::new("/var/tmp"), "kimage-ctrd-");
        let sock = dir.path().join("c.sock");
        let config = dir.path().join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = '{0}/root'\nstate = '{0}/state'\n[grpc]\n  address = '{1}'\n[plugins.'io.containerd.grpc.v1.cri']\n  disable_tcp_service = true\n",
                dir.path().display(),
                sock.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new(&containerd)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while !sock.exists() {
            assert!(Instant::now() < until, "containerd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Containerd {
            _child: KillOnDrop(child),
            sock,
            ctr,
            _dir: dir,
        }
    }

    /// `CTR` for the import script.
    fn ctr_command(&self) -> String {
        format!("{} --address {}", self.ctr.display(), self.sock.display())
    }

    fn images(&self) -> String {
        let out = Command::new(&self.ctr)
            .args([
                "--address",
                self.sock.to_str().unwrap(),
                "-n",
                "k8s.io",
                "images",
                "ls",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn import(root: &Path, c: &Containerd) -> Output {
    Command::new("sh")
        .arg(root.join("usr/local/bin/kimage-images-import"))
        .env("KIMAGE_IMAGES_DIR", root.join("var/lib/kimage/images"))
        .env("CTR", c.ctr_command())
        .output()
        .unwrap()
}

#[test]
fn the_node_imports_its_images_into_real_containerd_and_checks_each_digest() {
    require_root();
    let reg = Registry::start();
    push_cluster_images(&reg);
    let work = tempdir();
    let (dir, cache) = (work.path(), work.path().join("cache"));
    fs::write(
        dir.join("cluster.yaml"),
        profile(&reg.url(), "kimage-test.invalid/kimage-test/echo:v1"),
    )
    .unwrap();
    ok(dir, &cache, &["lock", "--profile", "cluster.yaml"]);
    ok(
        dir,
        &cache,
        &["fetch", "--profile", "cluster.yaml", "--quiet"],
    );
    ok(
        dir,
        &cache,
        &["build", "--profile", "cluster.yaml", "--all"],
    );
    let lock = fs::read_to_string(dir.join("kimage.lock")).unwrap();

    // Good: every image lands in k8s.io at the digest the lock pins.
    let root = work.path().join("root");
    unpack(dir, &cache, "worker-1", &root);
    let c = Containerd::start();
    let out = import(&root, &c);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 images imported"),
        "{out:?}"
    );
    let listed = c.images();
    for block in lock.split("[[image]]").skip(1) {
        let field = |k: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = ")))
                .unwrap()
                .trim_matches('"')
                .to_string()
        };
        let r: kimage::profile::ImageRef = field("reference").parse().unwrap();
        let line = listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(r.name().as_str()))
            .unwrap_or_else(|| panic!("{} not in containerd:\n{listed}", r.name()));
        assert_eq!(
            line.split_whitespace().nth(2),
            Some(field("digest").as_str()),
            "{line}"
        );
    }

    // A flipped byte in one blob: refused by name before containerd sees anything.
    let fresh = Containerd::start();
    let bad_root = work.path().join("root-bad");
    unpack(dir, &cache, "worker-1", &bad_root);
    let blobs = bad_root.join("var/lib/kimage/images/blobs/sha256");
    let victim = files_under(&blobs).into_iter().next().unwrap();
    let path = blobs.join(&victim);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 1;
    let mut perm = fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    fs::set_permissions(&path, perm).unwrap();
    fs::write(&path, bytes).unwrap();
    let out = import(&bad_root, &fresh);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("blob sha256:{victim} has sha256:")),
        "{err}"
    );
    assert!(
        fresh.images().lines().count() <= 1,
        "nothing may be imported: {}",
        fresh.images()
    );

    // A list that pins another digest than the one imported: the check after the import fails.
    let wrong_root = work.path().join("root-wrong");
    unpack(dir, &cache, "worker-1", &wrong_root);
    let list = wrong_root.join("var/lib/kimage/images/images.list");
    let text = fs::read_to_string(&list).unwrap();
    let first = text.lines().next().unwrap();
    let name = first.split(' ').next().unwrap();
    let edited = text.replacen(first, &format!("{name} sha256:{}", "1".repeat(64)), 1);
    fs::write(&list, edited).unwrap();
    let out = import(&wrong_root, &Containerd::start());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("image {name}: containerd has sha256:"))
            && err.contains(&format!("kimage.lock pins sha256:{}", "1".repeat(64))),
        "{err}"
    );
}
