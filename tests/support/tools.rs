//! What a test needs from the machine: temp dirs, the programs it runs (a missing one fails the test,
//! naming the Debian package, or the ci script, that provides it: CI installs everything, and a test
//! that skips would prove nothing), root. Every support root (`support/mod.rs`, `support/pki.rs`,
//! `render_support`, `bootstrap_support`, `netns_support`, `examples_support`) includes this file as its
//! `tools` module; the other shared files reach it as `super::tools`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian package (or the ci script's install) that provides each program the tests run, by file
/// name. ci/deps.sh installs all of them.
const PACKAGES: &[(&str, &str)] = &[
    ("bash", "the Debian package `bash`"),
    ("cc", "the Debian package `gcc`"),
    ("cfssl", "the Debian package `golang-cfssl`"),
    ("cfssljson", "the Debian package `golang-cfssl`"),
    ("cloud-init", "the Debian package `cloud-init`"),
    ("containerd", "the Debian package `containerd`"),
    ("ctr", "the Debian package `containerd`"),
    ("curl", "the Debian package `curl`"),
    ("docker-registry", "the Debian package `docker-registry`"),
    ("etcd", "the Debian package `etcd-server`"),
    ("haproxy", "the Debian package `haproxy`"),
    ("ip", "the Debian package `iproute2`"),
    ("keepalived", "the Debian package `keepalived`"),
    ("kill", "the Debian package `procps`"),
    (
        "kubernetes-validate",
        "`pip install kubernetes-validate` (it bundles the Kubernetes JSON schemas)",
    ),
    ("nft", "the Debian package `nftables`"),
    ("nginx", "the Debian package `nginx`"),
    (
        "ngx_stream_module.so",
        "the Debian package `libnginx-mod-stream`",
    ),
    ("nsenter", "the Debian package `util-linux`"),
    ("openssl", "the Debian package `openssl`"),
    ("prlimit", "the Debian package `util-linux`"),
    ("python3", "the Debian package `python3`"),
    ("setpriv", "the Debian package `util-linux`"),
    ("sha256sum", "the Debian package `coreutils`"),
    ("sha512sum", "the Debian package `coreutils`"),
    ("shellcheck", "the Debian package `shellcheck`"),
    ("systemd-analyze", "the Debian package `systemd`"),
    ("systemd-sysusers", "the Debian package `systemd`"),
    ("systemd-tmpfiles", "the Debian package `systemd`"),
    ("tar", "the Debian package `tar`"),
    ("timeout", "the Debian package `coreutils`"),
    ("unshare", "the Debian package `util-linux`"),
    ("virt-install", "the Debian package `virtinst`"),
];

/// How to get `tool`: its Debian package (or pip install), by file name.
pub fn install_hint(tool: &str) -> &'static str {
    let name = Path::new(tool)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    PACKAGES
        .iter()
        .find(|(t, _)| *t == name)
        .map(|(_, how)| *how)
        .unwrap_or_else(|| {
            panic!("tests/support/tools.rs does not say which package provides `{tool}`: add it to PACKAGES")
        })
}

/// The program (a name looked up on PATH, or an absolute path, which must exist) a test needs; a
/// missing one fails the test with the package that provides it. Returns its path.
pub fn require(tool: &str) -> PathBuf {
    let how = install_hint(tool);
    let found = if tool.contains('/') {
        Path::new(tool).exists().then(|| PathBuf::from(tool))
    } else {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    found.unwrap_or_else(|| {
        panic!(
            "this test needs `{tool}`{}: install {how} (ci/deps.sh installs it; CI runs it)",
            if tool.contains('/') { "" } else { " on PATH" }
        )
    })
}

/// Every program of `tools` (see [`require`]).
pub fn require_tools(tools: &[&str]) {
    for t in tools {
        require(t);
    }
}

/// Network and mount namespaces need root (CI runs the tests as root).
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "this test creates network and mount namespaces: run it as root (CI does)"
    );
}

/// A temp dir for this test binary (named after it) under cargo's target tmp dir, not /tmp:
/// keepalived's script security rejects world-writable parents.
pub fn tempdir() -> tempfile::TempDir {
    tempdir_in(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        concat!(env!("CARGO_CRATE_NAME"), "-"),
    )
}

/// A temp dir `<prefix>XXXXXX` in `base`; both readable by every user (0755), so that programs a
/// test runs under another user can reach what it writes there.
pub fn tempdir_in(base: &Path, prefix: &str) -> tempfile::TempDir {
    std::fs::create_dir_all(base).unwrap();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .unwrap_or_else(|e| panic!("temp dir in {}: {e}", base.display()));
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A free loopback port (bound and released; the program that uses it binds right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped when dropped (servers a test starts).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
