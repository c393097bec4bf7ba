//! Real TLS handshakes on loopback between every server certificate and the clients that talk to it:
//! openssl s_server (requiring a client certificate from the right CA) and openssl s_client or
//! kubectl (Go's TLS stack, the one Kubernetes components use).

#[path = "support/pki.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use kimage::pki::PkiMaterial;
use support::*;

/// Handshake between `server_id` (trusting `client_ca` for client certificates) and `client_id`
/// (trusting `server_ca`), with the server name checks in `verify`.
fn handshake(
    dir: &Path,
    server: (&PkiMaterial, &str, &str),
    client: (&PkiMaterial, &str, &str),
    verify: &[&str],
) -> (bool, String) {
    let (sm, server_id, client_ca) = server;
    let (cm, client_id, server_ca) = client;
    let sdir = dir.join("server");
    let cdir = dir.join("client");
    let (scert, skey) = write_pair(sm, server_id, &sdir);
    let sca = write(&sdir, "client-ca.crt", sm.cert_pem(client_ca).unwrap());
    let (ccert, ckey) = write_pair(cm, client_id, &cdir);
    let cca = write(&cdir, "server-ca.crt", cm.cert_pem(server_ca).unwrap());
    let srv = s_server(&scert, &skey, &sca);
    s_client(srv.port, &ccert, &ckey, &cca, verify)
}

fn ok(r: (bool, String), what: &str) {
    assert!(r.0, "{what}: handshake failed:\n{}", r.1);
}

fn refused(r: (bool, String), what: &str) {
    assert!(!r.0, "{what}: handshake succeeded but must not:\n{}", r.1);
}

#[test]
fn apiserver_accepts_admin_and_refuses_others() {
    let tmp = tempdir();
    let c = seed003("ecdsa-p256");
    let (m, _) = ensure(&c, &tmp.path().join("state"));
    let (other, _) = ensure(&c, &tmp.path().join("other-state"));
    let d = |n: &str| tmp.path().join(n);
    let api = (&m, "apiserver@k8s-master-1", "ca");
    // The endpoint name, the node's address, the kubernetes Service address and name.
    for verify in [
        ["-verify_hostname", "k8s-master-lb"],
        ["-verify_ip", "192.168.1.26"],
        ["-verify_ip", "10.96.0.1"],
        ["-verify_hostname", "kubernetes.default.svc.cluster.local"],
    ] {
        ok(
            handshake(&d("a"), api, (&m, "admin@k8s-master-1", "ca"), &verify),
            &format!("admin, {verify:?}"),
        );
    }
    ok(
        handshake(&d("b"), api, (&m, "kubelet@k8s-node-2", "ca"), &[]),
        "kubelet client",
    );
    ok(
        handshake(
            &d("c"),
            api,
            (&m, "controller-manager@k8s-master-3", "ca"),
            &[],
        ),
        "controller-manager",
    );
    // A name the certificate does not carry.
    refused(
        handshake(
            &d("d"),
            api,
            (&m, "admin@k8s-master-1", "ca"),
            &["-verify_ip", "192.168.1.99"],
        ),
        "wrong IP",
    );
    // A client certificate from another cluster's CA, from the etcd CA, and a serving-only certificate.
    refused(
        handshake(&d("e"), api, (&other, "admin@k8s-master-1", "ca"), &[]),
        "admin of another CA",
    );
    refused(
        handshake(
            &d("f"),
            api,
            (&m, "apiserver-etcd-client@k8s-master-1", "ca"),
            &[],
        ),
        "etcd client cert",
    );
    refused(
        handshake(&d("g"), api, (&m, "kubelet-serving@k8s-node-1", "ca"), &[]),
        "serverAuth-only cert as client",
    );
}

#[test]
fn etcd_server_and_peers() {
    let tmp = tempdir();
    let c = seed003("ecdsa-p256");
    let (m, _) = ensure(&c, &tmp.path().join("state"));
    let d = |n: &str| tmp.path().join(n);
    let server = (&m, "etcd-server@k8s-master-1", "etcd-ca");
    for verify in [
        ["-verify_ip", "192.168.1.26"],
        ["-verify_ip", "127.0.0.1"],
        ["-verify_hostname", "localhost"],
    ] {
        ok(
            handshake(
                &d("a"),
                server,
                (&m, "apiserver-etcd-client@k8s-master-2", "etcd-ca"),
                &verify,
            ),
            &format!("apiserver -> etcd {verify:?}"),
        );
    }
    ok(
        handshake(
            &d("b"),
            server,
            (&m, "etcd-healthcheck-client@k8s-master-1", "etcd-ca"),
            &[],
        ),
        "healthcheck",
    );
    // Peers: each member's peer certificate is both server and client.
    for (s, cl, ip) in [
        ("k8s-master-1", "k8s-master-2", "192.168.1.26"),
        ("k8s-master-3", "k8s-master-1", "192.168.1.29"),
    ] {
        ok(
            handshake(
                &d("c"),
                (&m, &format!("etcd-peer@{s}"), "etcd-ca"),
                (&m, &format!("etcd-peer@{cl}"), "etcd-ca"),
                &["-verify_ip", ip],
            ),
            &format!("peer {cl} -> {s}"),
        );
    }
    // The server certificate also works as a client (etcd's gateway/grpc-proxy use it so).
    ok(
        handshake(
            &d("d"),
            server,
            (&m, "etcd-server@k8s-master-2", "etcd-ca"),
            &[],
        ),
        "server cert as client",
    );
    refused(
        handshake(&d("e"), server, (&m, "admin@k8s-master-1", "ca"), &[]),
        "kubernetes CA client to etcd",
    );
    refused(
        handshake(
            &d("f"),
            (&m, "etcd-peer@k8s-master-1", "etcd-ca"),
            (&m, "etcd-peer@k8s-master-2", "etcd-ca"),
            &["-verify_ip", "192.168.1.28"],
        ),
        "peer certificate of member 1 does not name member 2's address",
    );
}

#[test]
fn kubelet_and_front_proxy() {
    let tmp = tempdir();
    let c = seed003("rsa-2048");
    let (m, _) = ensure(&c, &tmp.path().join("state"));
    let d = |n: &str| tmp.path().join(n);
    // kube-apiserver -> kubelet (logs, exec): kubelet serving certificate, apiserver-kubelet-client.
    for verify in [
        ["-verify_hostname", "k8s-node-1"],
        ["-verify_ip", "192.168.1.32"],
    ] {
        ok(
            handshake(
                &d("a"),
                (&m, "kubelet-serving@k8s-node-1", "ca"),
                (&m, "apiserver-kubelet-client@k8s-master-1", "ca"),
                &verify,
            ),
            &format!("apiserver -> kubelet {verify:?}"),
        );
    }
    // Aggregated API servers trust front-proxy-client through the front-proxy CA only.
    ok(
        handshake(
            &d("b"),
            (&m, "apiserver@k8s-master-1", "front-proxy-ca"),
            (&m, "front-proxy-client@k8s-master-1", "ca"),
            &[],
        ),
        "front-proxy-client",
    );
    refused(
        handshake(
            &d("c"),
            (&m, "apiserver@k8s-master-1", "front-proxy-ca"),
            (&m, "admin@k8s-master-1", "ca"),
            &[],
        ),
        "admin against the front-proxy CA",
    );
}

const SEED_004_BEFORE: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: seed-004
nodes:
  - {name: ubuntu-73, role: control-plane, address: 10.21.22.73}
  - {name: ubuntu-70, role: control-plane, address: 10.21.22.70}
  - {name: ubuntu-72, role: control-plane, address: 10.21.22.72}
  - {name: ubuntu-74, role: worker,        address: 10.21.22.74}
";

#[test]
fn seed004_endpoint_change_reissues_apiserver_and_the_new_address_verifies() {
    let tmp = tempdir();
    let state = tmp.path().join("state");
    let d = |n: &str| tmp.path().join(n);
    let before = cluster(SEED_004_BEFORE);
    let (m1, _) = ensure(&before, &state);
    // The tutorial's failure: "certificate is valid for 10.96.0.1, 10.21.22.73, not 10.21.22.101".
    refused(
        handshake(
            &d("a"),
            (&m1, "apiserver@ubuntu-73", "ca"),
            (&m1, "admin@ubuntu-73", "ca"),
            &["-verify_ip", "10.21.22.101"],
        ),
        "before: 10.21.22.101 is nobody's address yet",
    );
    let after_yaml = SEED_004_BEFORE.replace(
        "name: seed-004\n",
        "name: seed-004\ncontrolPlane:\n  endpoint: 10.21.22.101:6443\nloadBalancer:\n  kind: haproxy\n",
    ) + "  - {name: haproxy,   role: load-balancer, address: 10.21.22.101}\n";
    let after = cluster(&after_yaml);
    let (m2, report) = ensure(&after, &state);
    assert_eq!(
        report.ids(kimage::pki::Action::Reissued),
        [
            "apiserver@ubuntu-73",
            "apiserver@ubuntu-70",
            "apiserver@ubuntu-72"
        ]
    );
    assert!(report.ids(kimage::pki::Action::Issued).is_empty());
    for n in ["ubuntu-73", "ubuntu-70", "ubuntu-72"] {
        ok(
            handshake(
                &d("b"),
                (&m2, &format!("apiserver@{n}"), "ca"),
                (&m2, "admin@ubuntu-73", "ca"),
                &["-verify_ip", "10.21.22.101"],
            ),
            &format!("after: apiserver@{n} serves 10.21.22.101"),
        );
    }
    // Clients kept their certificates: the old admin certificate still authenticates.
    assert_eq!(
        m1.cert_pem("admin@ubuntu-73"),
        m2.cert_pem("admin@ubuntu-73")
    );
}

/// kubectl (Go TLS) dials an openssl s_server holding the apiserver certificate, using admin.conf:
/// Go verifies the server against the kubeconfig's CA data and presents the embedded client cert.
#[test]
fn kubectl_handshakes_with_apiserver_certificate() {
    let tmp = tempdir();
    let c = seed003("ecdsa-p256");
    let (m, _) = ensure(&c, &tmp.path().join("state"));
    let (other, _) = ensure(&c, &tmp.path().join("other"));
    let kubectl = kubectl();
    let run = |mat: &PkiMaterial, server_name: &str| {
        let (cert, key) = write_pair(&m, "apiserver@k8s-master-2", &tmp.path().join("srv"));
        let ca = write(&tmp.path().join("srv"), "ca.crt", m.cert_pem("ca").unwrap());
        let srv = s_server(&cert, &key, &ca);
        let kc = write(
            tmp.path(),
            "admin.conf",
            &mat.kubeconfig("admin@k8s-master-1").unwrap(),
        );
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kc)
            .arg(format!("--server=https://127.0.0.1:{}", srv.port))
            .arg(format!("--tls-server-name={server_name}"))
            .args(["get", "--raw", "/", "--request-timeout=20s"])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // The endpoint's name (k8s-master-lb) and the node's own address both verify under Go.
    for name in ["k8s-master-lb", "192.168.1.28", "kubernetes.default.svc"] {
        let (success, out) = run(&m, name);
        assert!(
            success && out.contains("s_server"),
            "kubectl as {name}: {out}"
        );
    }
    let (success, out) = run(&m, "k8s-master-9");
    assert!(
        !success && out.contains("x509"),
        "unknown name must fail: {out}"
    );
    let (success, out) = run(&other, "k8s-master-lb");
    assert!(
        !success && out.contains("x509"),
        "another cluster's CA must fail: {out}"
    );
}
