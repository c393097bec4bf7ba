//! `kimage pki import`: adopting the CAs of a running cluster (kubeadm layout, and the cfssl layout of
//! the seeds' tutorials, produced here by the real cfssl workflow in ci/bench/cfssl-seed-pki.sh), so
//! the certificates kimage issues chain to them under openssl and Go (kubectl).

#[path = "support/pki.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use kimage::pki::{self, Action, LockMode, PkiError, PkiMaterial, import};
use support::*;

fn import(
    c: &kimage::model::Cluster,
    state: &Path,
    from: &Path,
    replace: bool,
) -> Result<(PkiMaterial, pki::EnsureReport), PkiError> {
    import::import(c, state, from, replace, now(), LockMode::Fail)
}

fn verify(dir: &Path, ca_file: &Path, m: &PkiMaterial, id: &str) {
    let (crt, _) = write_pair(m, id, dir);
    let out = openssl(&[
        "verify",
        "-CAfile",
        ca_file.to_str().unwrap(),
        crt.to_str().unwrap(),
    ]);
    assert!(out.contains(": OK"), "{id}: {out}");
}

/// The PEM body of a file, normalised (for comparing kimage's stored copy with the original).
fn der(path: &Path) -> Vec<u8> {
    der_of(&std::fs::read_to_string(path).unwrap())
}

#[test]
fn kubeadm_layout_is_adopted() {
    let tmp = tempdir();
    // A "running cluster": its bootstrap node's /etc/kubernetes/pki, with every CA key there.
    let yaml = with_pki(
        SEED_003,
        "  etcdCaKeyOnControlPlane: true\n  frontProxyCaKeyOnControlPlane: true",
    );
    let c = cluster(&yaml);
    let (old, _) = ensure(&c, &tmp.path().join("old-state"));
    let node_root = tmp.path().join("node");
    write_node(&old, &c, "k8s-master-1", &node_root);
    let pki_dir = node_root.join("etc/kubernetes/pki");

    let state = tmp.path().join("state");
    let (m, r) = import(&c, &state, &pki_dir, false).unwrap();
    assert_eq!(
        r.ids(Action::Imported),
        ["ca", "etcd-ca", "front-proxy-ca", "sa"]
    );
    let issued = r.ids(Action::Issued);
    assert_eq!(
        issued.iter().filter(|id| id.contains('@')).count(),
        49,
        "every leaf issued in the same commit"
    );
    // And the Secrets encryption key (pki.encryptionAtRest is on by default).
    assert_eq!(issued.len(), 50, "{issued:?}");
    assert!(issued.contains(&"encryption-key"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    for ca in ["ca", "etcd-ca", "front-proxy-ca"] {
        assert_eq!(m.cert_pem(ca), old.cert_pem(ca));
        assert_eq!(m.key_pem(ca), old.key_pem(ca));
    }
    assert_eq!(m.sa_key_pem(), old.sa_key_pem());
    assert_eq!(m.sa_pub_pem(), old.sa_pub_pem());
    let v = tmp.path().join("v");
    verify(&v, &pki_dir.join("ca.crt"), &m, "apiserver@k8s-master-2");
    verify(
        &v,
        &pki_dir.join("etcd/ca.crt"),
        &m,
        "etcd-peer@k8s-master-3",
    );
    verify(
        &v,
        &pki_dir.join("front-proxy-ca.crt"),
        &m,
        "front-proxy-client@k8s-master-2",
    );
    // New leaves, same CAs.
    assert_ne!(
        m.cert_pem("apiserver@k8s-master-1"),
        old.cert_pem("apiserver@k8s-master-1")
    );
    let s = pki::status::status(&c, &state, now()).unwrap();
    assert!(s.rows.iter().find(|r| r.id == "ca").unwrap().imported);

    // Importing the same again changes nothing.
    let (_, again) = import(&c, &state, &pki_dir, false).unwrap();
    assert!(!again.written);
    assert!(again.ids(Action::Imported).is_empty());
    // A later `kimage pki` keeps everything: imported CAs are not "outdated".
    let (_, r) = ensure(&c, &state);
    assert!(!r.written && r.warnings.is_empty(), "{:?}", r.warnings);

    // Another cluster's CAs are refused unless --replace, which re-issues what they signed.
    let (other, _) = ensure(&c, &tmp.path().join("other-state"));
    let other_root = tmp.path().join("other-node");
    write_node(&other, &c, "k8s-master-1", &other_root);
    let e = import(&c, &state, &other_root.join("etc/kubernetes/pki"), false).unwrap_err();
    assert!(
        matches!(e, PkiError::ImportConflict { .. }) && e.to_string().contains("--replace"),
        "{e}"
    );
    let (m2, r) = import(&c, &state, &other_root.join("etc/kubernetes/pki"), true).unwrap();
    assert_eq!(r.ids(Action::Reissued).len(), 49);
    assert_eq!(m2.cert_pem("ca"), other.cert_pem("ca"));
    verify(
        &v,
        &other_root.join("etc/kubernetes/pki/ca.crt"),
        &m2,
        "kubelet@k8s-node-1",
    );
}

fn run_cfssl(out: &Path, algo: &str, size: &str) {
    require("cfssl");
    require("cfssljson");
    kubectl();
    let script = repo().join("ci/bench/cfssl-seed-pki.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(out)
        .arg(algo)
        .arg(size)
        .env(
            "PATH",
            format!(
                "{}:{}",
                kubectl().parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{} failed", script.display());
}

fn cfssl_case(algo: &str, size: &str, alg: &str) {
    let tmp = tempdir();
    let out = tmp.path().join("cfssl");
    run_cfssl(&out, algo, size);
    let c = seed003(alg);
    let state = tmp.path().join("state");
    let (m, r) = import(&c, &state, &out, false).unwrap();
    assert_eq!(
        r.ids(Action::Imported),
        ["ca", "etcd-ca", "front-proxy-ca", "sa"]
    );
    assert_eq!(der_of(m.cert_pem("ca").unwrap()), der(&out.join("ca.pem")));
    assert_eq!(
        der_of(m.cert_pem("etcd-ca").unwrap()),
        der(&out.join("etcd/ca.pem"))
    );
    assert_eq!(
        der_of(m.cert_pem("front-proxy-ca").unwrap()),
        der(&out.join("front-proxy-ca.pem"))
    );
    let v = tmp.path().join("v");
    verify(&v, &out.join("ca.pem"), &m, "apiserver@k8s-master-1");
    verify(&v, &out.join("ca.pem"), &m, "kubelet@k8s-node-3");
    verify(&v, &out.join("etcd/ca.pem"), &m, "etcd-server@k8s-master-2");
    verify(
        &v,
        &out.join("front-proxy-ca.pem"),
        &m,
        "front-proxy-client@k8s-master-1",
    );
    // The service-account key is the tutorial's own (RSA) and sa.pub its public key.
    let derived = openssl(&[
        "rsa",
        "-in",
        out.join("sa/sa.key").to_str().unwrap(),
        "-pubout",
    ]);
    assert_eq!(m.sa_pub_pem().unwrap(), derived);
    // A cfssl-made certificate (the tutorial's admin) and a kimage-made apiserver certificate
    // handshake, verified by Go: the issuer name kimage writes matches the cfssl CA byte for byte.
    let srv_dir = tmp.path().join("srv");
    let (crt, key) = write_pair(&m, "apiserver@k8s-master-1", &srv_dir);
    let srv = s_server(&crt, &key, &out.join("ca.pem"));
    let kc = write(
        tmp.path(),
        "kimage-admin.conf",
        &m.kubeconfig("admin@k8s-master-1").unwrap(),
    );
    for conf in [kc.as_path(), out.join("admin.conf").as_path()] {
        let o = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(conf)
            .arg(format!("--server=https://127.0.0.1:{}", srv.port))
            .args([
                "--tls-server-name=k8s-master-lb",
                "get",
                "--raw",
                "/",
                "--request-timeout=20s",
            ])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() && text.contains("s_server"),
            "kubectl with {}: {text}",
            conf.display()
        );
    }
}

#[test]
fn cfssl_layout_ecdsa_is_adopted() {
    cfssl_case("ecdsa", "256", "ecdsa-p256");
}

#[test]
fn cfssl_layout_rsa_is_adopted() {
    cfssl_case("rsa", "2048", "rsa-2048");
}

#[test]
fn bad_import_directories_are_explained() {
    let tmp = tempdir();
    let c = small("ecdsa-p256");
    let state = tmp.path().join("state");
    let e = import(&c, &state, tmp.path(), false).unwrap_err();
    assert!(
        e.to_string()
            .contains("no CA found: expected ca.crt and ca.key"),
        "{e}"
    );

    // A CA made by openssl with a PKCS#8 key is accepted (converted to SEC1) ...
    let d = tmp.path().join("pki");
    std::fs::create_dir_all(&d).unwrap();
    let crt = d.join("ca.crt");
    let key = d.join("ca.key");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/O=Acme Corp/CN=acme-root",
        "-days",
        "30",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let (m, r) = import(&c, &state, &d, false).unwrap();
    assert!(
        m.key_pem("ca")
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("has no etcd-ca")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("has no sa.key")),
        "{:?}",
        r.warnings
    );
    // ... and a 30-day CA caps the leaves it signs, with a warning.
    assert!(
        r.warnings.iter().any(|w| w.contains("when its CA expires")),
        "{:?}",
        r.warnings
    );
    let v = tmp.path().join("v");
    verify(&v, &crt, &m, "apiserver@cp-1");

    // Key of another certificate.
    let d2 = tmp.path().join("pki2");
    std::fs::create_dir_all(&d2).unwrap();
    std::fs::copy(&crt, d2.join("ca.crt")).unwrap();
    write(&d2, "ca.key", m.key_pem("apiserver@cp-1").unwrap());
    let e = import(&c, &tmp.path().join("s2"), &d2, false).unwrap_err();
    assert!(e.to_string().contains("is not the key of"), "{e}");
    // A leaf is not a CA.
    write(&d2, "ca.crt", m.cert_pem("apiserver@cp-1").unwrap());
    let e = import(&c, &tmp.path().join("s3"), &d2, false).unwrap_err();
    assert!(e.to_string().contains("not a CA certificate"), "{e}");
    // No key at all.
    std::fs::remove_file(d2.join("ca.key")).unwrap();
    let e = import(&c, &tmp.path().join("s4"), &d2, false).unwrap_err();
    assert!(e.to_string().contains("needs the CA key"), "{e}");
}
