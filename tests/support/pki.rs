//! Shared helpers for the pki_* integration tests: profiles, writing PEMs out for real tools, and
//! running openssl / kubectl. Included with `#[path = "support/pki.rs"] mod support;`.
#![allow(dead_code)]

#[path = "real.rs"]
mod real;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use kimage::model::Cluster;
use kimage::pki::{self, EnsureReport, PkiMaterial};
use time::OffsetDateTime;

pub const SEED_003: &str = include_str!("../../profiles/003-stacked-ha-ipvs.yaml");

/// The repository root (tests read reference files and profiles from there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn cluster(yaml: &str) -> Cluster {
    let loaded = kimage::profile::load_str(yaml, "test.yaml")
        .unwrap_or_else(|e| panic!("profile does not load: {e:?}"));
    Cluster::resolve(&loaded.profile)
}

/// Inserts `pki:` settings into a profile that has none.
pub fn with_pki(yaml: &str, pki_block: &str) -> String {
    assert!(
        !yaml.contains("\npki:"),
        "profile already has a pki section"
    );
    yaml.replacen("\nnodes:", &format!("\npki:\n{pki_block}\nnodes:"), 1)
}

/// Seed 003 (3 stacked control planes, 3 workers, nginx LB) with the given key algorithm.
pub fn seed003(algorithm: &str) -> Cluster {
    cluster(&with_pki(SEED_003, &format!("  algorithm: {algorithm}")))
}

/// One control plane with stacked etcd and one worker: small enough for slow RSA sizes.
pub fn small(algorithm: &str) -> Cluster {
    cluster(&format!(
        "apiVersion: kimage/v1alpha1
kind: Cluster
name: small
pki:
  algorithm: {algorithm}
nodes:
  - {{name: cp-1, role: control-plane, address: 10.0.0.11}}
  - {{name: w-1, role: worker, address: 10.0.0.21}}
"
    ))
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn ensure(c: &Cluster, dir: &Path) -> (PkiMaterial, EnsureReport) {
    pki::ensure(c, dir, now()).unwrap_or_else(|e| panic!("ensure failed: {e}"))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kimage-pki-test-")
        .tempdir()
        .expect("temp dir")
}

/// Writes a string to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    p
}

/// Writes a certificate's PEM (and key, and its CA's PEM) under `dir` as `<id>.crt`, `<id>.key`.
pub fn write_pair(m: &PkiMaterial, id: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let cert = write(
        dir,
        &format!("{id}.crt"),
        m.cert_pem(id).unwrap_or_else(|| panic!("no cert {id}")),
    );
    let key = write(dir, &format!("{id}.key"), m.key_pem(id).unwrap());
    (cert, key)
}

/// Writes every file of a node under `root` (absolute node paths become relative to `root`).
pub fn write_node(m: &PkiMaterial, c: &Cluster, node: &str, root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for f in m.node_bundle(c, node).unwrap() {
        let p = root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
    }
}

/// A Debian tool the test needs; a clear failure (not a silent pass) when it is missing.
pub fn require(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap();
    if !out.status.success() {
        panic!(
            "this test needs `{tool}` (Debian package providing it must be installed; CI installs it)"
        );
    }
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub fn openssl(args: &[&str]) -> Output {
    require("openssl");
    Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl")
}

pub fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every kubectl on the machine: the one on PATH and the versioned ones of the Cloud SDK package, then
/// the real one at kimage's Kubernetes version (ci/real/build.sh).
pub fn kubectls() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/usr/lib/google-cloud-sdk/bin") {
        let mut v: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("kubectl.1.")
            })
            .collect();
        v.sort();
        out.extend(v);
    }
    let path = Command::new("sh")
        .arg("-c")
        .arg("command -v kubectl")
        .output()
        .unwrap();
    if path.status.success() {
        out.push(PathBuf::from(String::from_utf8_lossy(&path.stdout).trim()));
    }
    out.push(PathBuf::from(real::kubectl()));
    out
}

/// The real kubectl at kimage's Kubernetes version.
pub fn kubectl() -> PathBuf {
    PathBuf::from(real::kubectl())
}

/// A free loopback port (bound and released; the tool that uses it binds right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `openssl s_server -www` (killed on drop), requiring a client certificate from `client_ca`.
pub struct Server {
    pub port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn s_server(cert: &Path, key: &Path, client_ca: &Path) -> Server {
    require("openssl");
    let port = free_port();
    let mut child = Command::new("openssl")
        .args(["s_server", "-www", "-verify_return_error", "-Verify", "1"])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-CAfile")
        .arg(client_ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting openssl s_server");
    // s_server prints ACCEPT once it listens.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("ACCEPT") => break,
            Some(Ok(_)) => continue,
            _ => panic!("openssl s_server did not start on port {port}"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server { port, child }
}

/// Connects with `openssl s_client`, presenting `cert`/`key` and verifying the server against `ca`
/// and `verify` (`-verify_ip X` / `-verify_hostname X`). Returns whether an HTTP answer came back
/// over a verified TLS connection, and the combined output.
pub fn s_client(port: u16, cert: &Path, key: &Path, ca: &Path, verify: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-ign_eof", "-verify_return_error", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-CAfile")
        .arg(ca)
        .args(verify)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = text.contains("HTTP/1.0 200 ok") && text.contains("Verify return code: 0 (ok)");
    (ok, text)
}

/// Parses the one certificate of a PEM with x509-parser, owning the DER.
pub fn der_of(pem: &str) -> Vec<u8> {
    let start = pem
        .find("-----BEGIN CERTIFICATE-----")
        .expect("certificate PEM");
    let body: String = pem[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

/// The state file's bytes.
pub fn state_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("pki/state.json")).unwrap()
}
