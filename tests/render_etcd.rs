//! The rendered etcd settings start a real 3-member cluster: the pinned etcd (3.6, built from its Go
//! module by ci/real/build.sh) runs with exactly the
//! unit's EnvironmentFile, Environment= lines and ExecStart flags (systemd's part emulated: the
//! credentials directory %d and LoadCredential copies), on 127.77.0.11-13 (loopback only; the profile's
//! 10.77.0.x addresses are mapped onto them, since kimage refuses loopback node addresses), with
//! certificates this test makes with openssl. Then etcdctl checks health over TLS, that the
//! apiserver's client certificate works, and that clients without an etcd-CA certificate are refused.
//!
//! Absolute node paths (/etc/kubernetes/pki, the data dir) are rewritten into one temp root per member.

mod render_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use render_support::openssl::{CA_EXT, CLIENT_EXT, OPENSSL, openssl_ca, openssl_leaf};
use render_support::*;

fn etcd() -> String {
    real::program(&real::etcd(), "etcd")
}

fn etcdctl_bin() -> String {
    real::program(&real::etcd(), "etcdctl")
}

const PROFILE: &str = r#"
apiVersion: kimage/v1alpha1
kind: Cluster
name: etcd-test
etcd:
  topology: external
  dataDir: /var/lib/etcd
nodes:
  - {name: master-1, role: control-plane, address: 10.77.0.20}
  - {name: etcd-a, role: etcd, address: 10.77.0.11}
  - {name: etcd-b, role: etcd, address: 10.77.0.12}
  - {name: etcd-c, role: etcd, address: 10.77.0.13}
"#;

/// A key and a certificate signed by `ca` (cert, key), or a self-signed CA when `ca` is `None`
/// (`ext` is then [`CA_EXT`]). Returns (cert, key).
fn cert(
    dir: &Path,
    base: &str,
    cn: &str,
    ca: Option<(&Path, &Path)>,
    ext: &str,
) -> (PathBuf, PathBuf) {
    let (key, crt) = match ca {
        None => {
            assert_eq!(ext, CA_EXT, "a self-signed certificate here is a CA");
            openssl_ca(dir, base, cn)
        }
        Some((ca_crt, ca_key)) => {
            let key = dir.join(format!("{base}.key"));
            let crt = openssl_leaf(dir, base, &format!("/CN={cn}"), &key, (ca_key, ca_crt), ext);
            (key, crt)
        }
    };
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (crt, key)
}

fn member_ext(name: &str, ip: &str) -> String {
    format!(
        "[v3]\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{name},DNS:localhost,IP:{ip},IP:127.0.0.1\n"
    )
}

struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        // Only the etcd process this test started, by its id.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The profile's node addresses as this test serves them: on loopback, where no network is touched.
fn to_loopback(v: &str) -> String {
    v.replace("10.77.0.", "127.77.0.")
}

/// Starts etcd the way systemd would start the rendered etcd.service on this node.
fn start_member(root: &Path, unit_text: &str, env_text: &str, log: &Path) -> Member {
    let rewrite = |v: &str| {
        to_loopback(v)
            .replace(
                "/etc/kubernetes/",
                &format!("{}/etc/kubernetes/", root.display()),
            )
            .replace("/var/lib/etcd", &format!("{}/var/lib/etcd", root.display()))
    };
    let unit = parse_unit(unit_text);
    let svc = |k: &str| unit_values(&unit, "Service", k);
    assert_eq!(svc("User"), ["etcd"]);

    // systemd-tmpfiles: the data directory, 0700.
    let data_dir = root.join("var/lib/etcd");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // LoadCredential=: systemd copies each source into the service's credentials directory (%d).
    let creds = root.join("run/credentials/etcd.service");
    std::fs::create_dir_all(&creds).unwrap();
    for lc in svc("LoadCredential") {
        let (name, source) = lc.split_once(':').unwrap();
        std::fs::copy(rewrite(source), creds.join(name)).unwrap();
        std::fs::set_permissions(creds.join(name), std::fs::Permissions::from_mode(0o400)).unwrap();
    }

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    assert_eq!(svc("EnvironmentFile"), ["/etc/etcd/etcd.conf"]);
    for (k, v) in env_file(env_text) {
        env.insert(k, rewrite(&v));
    }
    for e in svc("Environment") {
        let (k, v) = e.split_once('=').unwrap();
        env.insert(k.to_string(), v.replace("%d", creds.to_str().unwrap()));
    }
    let args = exec_args(&unit);
    assert_eq!(args[0], "/usr/local/bin/etcd");
    let flags: Vec<String> = args[1..].iter().map(|a| rewrite(a)).collect();

    let logf = std::fs::File::create(log).unwrap();
    let child = Command::new(etcd())
        .args(&flags)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(&env)
        .stdout(Stdio::from(logf.try_clone().unwrap()))
        .stderr(Stdio::from(logf))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", etcd()));
    Member(child)
}

fn etcdctl(endpoints: &str, tls: &[(&str, &Path)], args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env_clear()
        .arg(format!("--endpoints={endpoints}"))
        .arg("--dial-timeout=3s");
    cmd.arg("--command-timeout=5s");
    for (flag, path) in tls {
        cmd.arg(format!("--{flag}={}", path.display()));
    }
    run(cmd.args(args))
}

#[test]
fn rendered_etcd_settings_form_a_tls_cluster() {
    require(OPENSSL);
    let c = cluster_from_str(PROFILE);
    let tmp = tempdir();
    let ca_dir = tmp.path().join("ca");
    let (ca_crt, ca_key) = cert(&ca_dir, "ca", "etcd-ca", None, CA_EXT);
    let ca = Some((ca_crt.as_path(), ca_key.as_path()));

    let mut members = Vec::new();
    // Dropped at the end of the test, also when it fails: kills the members it started.
    let mut running: Vec<Member> = Vec::new();
    for n in c.nodes.iter().filter(|n| n.etcd_member) {
        let root = tmp.path().join(n.name.as_str());
        let pki = root.join("etc/kubernetes/pki/etcd");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::copy(&ca_crt, pki.join("ca.crt")).unwrap();
        let ip = to_loopback(&n.address.to_string());
        cert(
            &pki,
            "server",
            n.name.as_str(),
            ca,
            &member_ext(n.name.as_str(), &ip),
        );
        cert(
            &pki,
            "peer",
            n.name.as_str(),
            ca,
            &member_ext(n.name.as_str(), &ip),
        );
        let files = render(&c, n);
        let log = tmp.path().join(format!("{}.log", n.name));
        members.push((n.name.to_string(), log.clone()));
        running.push(start_member(
            &root,
            &text(&files, "/etc/systemd/system/etcd.service"),
            &text(&files, "/etc/etcd/etcd.conf"),
            &log,
        ));
    }

    // The clients: the health-check client and kube-apiserver's etcd client, both from the etcd CA.
    let clients = tmp.path().join("clients");
    let (hc_crt, hc_key) = cert(
        &clients,
        "healthcheck-client",
        "kube-etcd-healthcheck-client",
        ca,
        CLIENT_EXT,
    );
    let (api_crt, api_key) = cert(
        &clients,
        "apiserver-etcd-client",
        "kube-apiserver-etcd-client",
        ca,
        CLIENT_EXT,
    );
    let endpoints = to_loopback(&c.etcd.client_endpoints);
    let hc = [
        ("cacert", ca_crt.as_path()),
        ("cert", hc_crt.as_path()),
        ("key", hc_key.as_path()),
    ];

    // Members need each other before they report healthy; poll (no timing is asserted).
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut ok, mut out) = (false, String::new());
    while Instant::now() < deadline {
        (ok, out) = etcdctl(&endpoints, &hc, &["endpoint", "health"]);
        if ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs = || {
        members
            .iter()
            .map(|(n, l)| {
                format!(
                    "--- {n}\n{}",
                    std::fs::read_to_string(l).unwrap_or_default()
                )
            })
            .collect::<String>()
    };
    assert!(ok, "etcdctl endpoint health:\n{out}\n{}", logs());
    assert_eq!(out.matches("is healthy").count(), 3, "{out}");

    let (ok, out) = etcdctl(&endpoints, &hc, &["member", "list"]);
    assert!(ok, "{out}");
    for name in ["etcd-a", "etcd-b", "etcd-c"] {
        assert!(
            out.contains(name),
            "{name} missing from member list:\n{out}"
        );
    }
    assert_eq!(
        out.matches("https://127.77.0.1").count(),
        6,
        "peer and client URLs are https:\n{out}"
    );

    // kube-apiserver's client identity writes and reads through every member.
    let api = [
        ("cacert", ca_crt.as_path()),
        ("cert", api_crt.as_path()),
        ("key", api_key.as_path()),
    ];
    let (ok, out) = etcdctl(&endpoints, &api, &["put", "/registry/kimage-test", "ok"]);
    assert!(ok, "{out}");
    for ep in endpoints.split(',') {
        let (ok, out) = etcdctl(
            ep,
            &api,
            &[
                "get",
                "/registry/kimage-test",
                "--print-value-only",
                "--consistency=s",
            ],
        );
        assert!(ok && out.trim() == "ok", "{ep}: {out}");
    }

    // client-cert-auth: no client certificate, or one from another CA, is refused.
    let (ok, out) = etcdctl(
        &endpoints,
        &[("cacert", ca_crt.as_path())],
        &["get", "/registry/kimage-test"],
    );
    assert!(!ok, "a client without a certificate was served:\n{out}");
    let other = tmp.path().join("other");
    let (o_crt, o_key) = cert(&other, "ca", "other-ca", None, CA_EXT);
    let (x_crt, x_key) = cert(
        &other,
        "client",
        "intruder",
        Some((&o_crt, &o_key)),
        CLIENT_EXT,
    );
    let (ok, out) = etcdctl(
        &endpoints,
        &[
            ("cacert", ca_crt.as_path()),
            ("cert", &x_crt),
            ("key", &x_key),
        ],
        &["get", "x"],
    );
    assert!(
        !ok,
        "a client certificate from another CA was accepted:\n{out}"
    );

    // The zap logger (set explicitly: 3.4 members default to capnslog) logs JSON; and the data directory stayed 0700.
    let log = std::fs::read_to_string(&members[0].1).unwrap();
    assert!(
        log.lines().any(|l| l.starts_with("{\"level\":")),
        "etcd did not log with zap:\n{log}"
    );
    let mode = std::fs::metadata(tmp.path().join("etcd-a/var/lib/etcd"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    drop(running);
}
