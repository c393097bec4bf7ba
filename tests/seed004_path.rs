//! Seed 004's path, done with kimage: a running one-control-plane cluster made by kubeadm (its
//! /etc/kubernetes/pki is simulated here with openssl) grows into three control planes behind haproxy.
//! kimage adopts the existing CAs (`kimage pki import`), and the endpoint's address is in every
//! apiserver certificate — the tutorial's "certificate is valid for 10.96.0.1, 10.21.22.73, not
//! 10.21.22.101" cannot happen. `kimage diff` says what to replace. Documented in docs/growth.md.

mod support;

use std::path::Path;
use std::process::Command;

use support::openssl::openssl_in;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn kimage(dir: &Path, args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_kimage"))
        .args(args)
        .current_dir(dir))
}

/// A kubeadm-like /etc/kubernetes/pki: the three CAs and the service-account key pair.
fn kubeadm_pki(dir: &Path) {
    std::fs::create_dir_all(dir.join("etcd")).unwrap();
    for (base, cn) in [
        ("ca", "kubernetes"),
        ("front-proxy-ca", "front-proxy-ca"),
        ("etcd/ca", "etcd-ca"),
    ] {
        openssl_in(
            dir,
            &[
                "genrsa",
                "-traditional",
                "-out",
                &format!("{base}.key"),
                "2048",
            ],
        );
        openssl_in(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{base}.key"),
                "-out",
                &format!("{base}.crt"),
                "-days",
                "3650",
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
            ],
        );
    }
    openssl_in(dir, &["genrsa", "-traditional", "-out", "sa.key", "2048"]);
    openssl_in(dir, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

const BEFORE: &str = "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: seed-004\npki: {algorithm: rsa-2048}\n\
binaries: {source: fetch-at-boot}\nnodes:\n\
  - {name: ubuntu-73, role: control-plane, address: 10.21.22.73}\n\
  - {name: ubuntu-74, role: worker, address: 10.21.22.74}\n\
  - {name: ubuntu-75, role: worker, address: 10.21.22.75}\n";

#[test]
fn one_control_plane_behind_an_existing_ca_grows_into_ha_behind_haproxy() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = d.join("kubeadm-pki");
    kubeadm_pki(&pki);

    // The cluster as it runs: one control plane, its CA adopted from kubeadm's directory.
    std::fs::write(d.join("cluster.yaml"), BEFORE).unwrap();
    kimage(d, &["pki", "import", "--from", pki.to_str().unwrap()]);
    kimage(d, &["build", "--all", "--out", "before"]);
    kimage(
        d,
        &["unpack", "--role", "ubuntu-73", "--into", "n73-before"],
    );
    let cert = d.join("n73-before/etc/kubernetes/pki/apiserver.crt");
    let text = openssl_in(
        d,
        &[
            "x509",
            "-in",
            cert.to_str().unwrap(),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(!text.contains("10.21.22.101"), "{text}");

    // The shipped HA profile (same nodes, two more control planes, a haproxy node at 10.21.22.101).
    let ha = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/004-ha-haproxy.yaml"),
    )
    .unwrap()
    .replace(
        "name: seed-004\n",
        "name: seed-004\npki: {algorithm: rsa-2048}\nbinaries: {source: fetch-at-boot}\n",
    );
    std::fs::write(d.join("cluster.yaml"), ha).unwrap();
    kimage(d, &["build", "--all", "--out", "after"]);
    for node in ["ubuntu-73", "ubuntu-70", "ubuntu-72"] {
        let into = format!("n-{node}");
        kimage(d, &["unpack", "--role", node, "--into", &into]);
        let cert = d.join(&into).join("etc/kubernetes/pki/apiserver.crt");
        let sans = openssl_in(
            d,
            &[
                "x509",
                "-in",
                cert.to_str().unwrap(),
                "-noout",
                "-ext",
                "subjectAltName",
            ],
        );
        assert!(sans.contains("IP Address:10.21.22.101"), "{node}: {sans}");
        // Signed by the CA the cluster already trusts (kubeadm's ca.crt), for the endpoint's address.
        let ca = pki.join("ca.crt");
        openssl_in(
            d,
            &[
                "verify",
                "-CAfile",
                ca.to_str().unwrap(),
                "-purpose",
                "sslserver",
                "-verify_ip",
                "10.21.22.101",
                cert.to_str().unwrap(),
            ],
        );
    }
    let diff = kimage(d, &["diff", "before", "after"]);
    assert!(diff.contains("ubuntu-73: replace"), "{diff}");
    assert!(
        diff.contains("changed /etc/kubernetes/pki/apiserver.crt"),
        "{diff}"
    );
    for added in ["ubuntu-70", "ubuntu-72", "haproxy"] {
        assert!(diff.contains(&format!("{added}: added")), "{diff}");
    }
}
