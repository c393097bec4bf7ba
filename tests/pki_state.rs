//! The state directory across runs: reruns change nothing, a changed spec re-issues exactly what it
//! touches, CAs are never replaced implicitly, renew/replace, permissions, the lock, corruption,
//! validity dates, and read-only loading.

#[path = "support/pki.rs"]
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kimage::pki::{self, Action, EnsureOptions, LockMode, PkiError, Requests, StateDir};
use support::*;
use time::Duration;

const LB: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: lb
loadBalancer:
  kind: haproxy
nodes:
  - {name: cp-1, role: control-plane, address: 10.0.0.11}
  - {name: cp-2, role: control-plane, address: 10.0.0.12}
  - {name: w-1,  role: worker,        address: 10.0.0.21}
  - {name: lb-1, role: load-balancer, address: 10.0.0.31}
  - {name: lb-2, role: load-balancer, address: 10.0.0.32}
";

fn with_vip(yaml: &str, vip: &str) -> String {
    yaml.replace(
        "  kind: haproxy\n",
        &format!("  kind: haproxy\n  vip: {vip}\n"),
    )
}

fn renew(
    c: &kimage::model::Cluster,
    dir: &std::path::Path,
    req: Requests,
) -> Result<pki::EnsureReport, PkiError> {
    pki::ensure_with(
        c,
        dir,
        &EnsureOptions {
            now: now(),
            lock: LockMode::Fail,
        },
        &req,
    )
    .map(|(_, r)| r)
}

#[test]
fn rerun_is_byte_identical_and_writes_nothing() {
    let tmp = tempdir();
    let c = seed003("ecdsa-p256");
    let (m1, r1) = ensure(&c, tmp.path());
    assert!(r1.written);
    let file = tmp.path().join("pki/state.json");
    let before = std::fs::metadata(&file).unwrap();
    let bytes = state_bytes(tmp.path());
    // Later runs (also a day later) keep every certificate and do not touch the file.
    let (m2, r2) = pki::ensure(&c, tmp.path(), now() + Duration::days(1)).unwrap();
    assert!(!r2.written);
    // 53 certificates and the service-account key, and the Secrets encryption key.
    assert_eq!(r2.ids(Action::Kept).len(), 54);
    assert!(r2.changes.iter().all(|c| c.action == Action::Kept));
    let after = std::fs::metadata(&file).unwrap();
    assert_eq!(state_bytes(tmp.path()), bytes);
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec())
    );
    for n in &c.nodes {
        let a = m1.node_bundle(&c, n.name.as_str()).unwrap();
        let b = m2.node_bundle(&c, n.name.as_str()).unwrap();
        assert_eq!(a, b, "{} gets the same bytes", n.name.as_str());
    }
}

#[test]
fn adding_a_vip_reissues_only_apiserver_certificates() {
    let tmp = tempdir();
    let (m1, _) = ensure(&cluster(LB), tmp.path());
    let c2 = cluster(&with_vip(LB, "10.0.0.100"));
    let (m2, r) = ensure(&c2, tmp.path());
    assert_eq!(
        r.ids(Action::Reissued),
        ["apiserver@cp-1", "apiserver@cp-2"]
    );
    assert!(r.ids(Action::Issued).is_empty() && r.ids(Action::Removed).is_empty());
    let change = r.changes.iter().find(|c| c.id == "apiserver@cp-1").unwrap();
    // Only the IP SANs change: the VIP comes in (and the load-balancer nodes' own addresses, which
    // the model names while there is no VIP, go).
    assert_eq!(change.reasons.len(), 1, "{:?}", change.reasons);
    assert!(
        change.reasons[0].starts_with("ip_addresses +10.0.0.100"),
        "{:?}",
        change.reasons
    );
    for id in m1.cert_ids() {
        if id.starts_with("apiserver@") {
            assert_ne!(m1.cert_pem(id), m2.cert_pem(id));
            // The key is kept (as kubeadm certs renew does); the certificate names the VIP.
            assert_eq!(m1.key_pem(id), m2.key_pem(id));
            let dir = tmp.path().join("check");
            let ca = write(&dir, "ca.crt", m2.cert_pem("ca").unwrap());
            let (crt, _) = write_pair(&m2, id, &dir);
            openssl(&[
                "verify",
                "-CAfile",
                ca.to_str().unwrap(),
                "-verify_ip",
                "10.0.0.100",
                crt.to_str().unwrap(),
            ]);
        } else {
            assert_eq!(m1.cert_pem(id), m2.cert_pem(id), "{id} unchanged");
        }
    }
    assert_eq!(m1.sa_key_pem(), m2.sa_key_pem());
    // The kubeconfigs follow the endpoint (now the VIP) without any certificate change.
    assert!(
        m2.kubeconfig("kubelet@w-1")
            .unwrap()
            .contains("server: https://10.0.0.100:6443\n")
    );
}

#[test]
fn removed_node_is_dropped_and_new_node_issued() {
    let tmp = tempdir();
    ensure(&seed003("ecdsa-p256"), tmp.path());
    let yaml = with_pki(SEED_003, "  algorithm: ecdsa-p256").replace(
        "  - {name: k8s-node-3,    role: worker,        address: 192.168.1.31}\n",
        "  - {name: k8s-node-4, role: worker, address: 192.168.1.40}\n",
    );
    let (_, r) = ensure(&cluster(&yaml), tmp.path());
    assert_eq!(
        r.ids(Action::Removed),
        [
            "kube-proxy@k8s-node-3",
            "kubelet-serving@k8s-node-3",
            "kubelet@k8s-node-3"
        ]
    );
    assert_eq!(
        r.ids(Action::Issued),
        [
            "kubelet@k8s-node-4",
            "kubelet-serving@k8s-node-4",
            "kube-proxy@k8s-node-4"
        ]
    );
    assert!(r.ids(Action::Reissued).is_empty());
}

#[test]
fn ca_spec_change_keeps_the_ca_and_names_the_command() {
    let tmp = tempdir();
    let (m1, _) = ensure(&seed003("ecdsa-p256"), tmp.path());
    let c2 = seed003("rsa-2048");
    let (m2, r) = ensure(&c2, tmp.path());
    for ca in ["ca", "etcd-ca", "front-proxy-ca"] {
        assert_eq!(m1.cert_pem(ca), m2.cert_pem(ca), "{ca} kept");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains(&format!("`kimage pki renew {ca} --replace-ca`"))),
            "warning names the command for {ca}: {:?}",
            r.warnings
        );
    }
    assert_eq!(m1.sa_key_pem(), m2.sa_key_pem(), "sa kept");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("`kimage pki renew sa --replace-ca`"))
    );
    // Leaves follow the new algorithm, signed by the kept CAs.
    assert_eq!(r.ids(Action::Reissued).len(), 49);
    assert!(
        m2.key_pem("admin@k8s-master-1")
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let dir = tmp.path().join("v");
    let ca = write(&dir, "ca.crt", m2.cert_pem("ca").unwrap());
    let (crt, _) = write_pair(&m2, "admin@k8s-master-1", &dir);
    openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        crt.to_str().unwrap(),
    ]);
    // The warning repeats on every run until the CA is replaced, and nothing else changes.
    let (_, again) = ensure(&c2, tmp.path());
    assert!(!again.written && !again.warnings.is_empty());
    // Status shows it.
    let s = pki::status::status(&c2, tmp.path(), now()).unwrap();
    let row = s.rows.iter().find(|r| r.id == "ca").unwrap();
    assert_eq!(row.state, pki::status::CertState::Outdated);
}

#[test]
fn renew_and_replace() {
    let tmp = tempdir();
    let c = cluster(LB);
    let (m1, _) = ensure(&c, tmp.path());
    // One leaf: new serial, same key, same CA, nothing else.
    let r = renew(
        &c,
        tmp.path(),
        Requests {
            renew: [kimage::pki::spec::CertId::parse("admin@cp-2")].into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.ids(Action::Reissued), ["admin@cp-2"]);
    let (m2, _) = ensure(&c, tmp.path());
    assert_ne!(
        m1.cert("admin@cp-2").unwrap().serial,
        m2.cert("admin@cp-2").unwrap().serial
    );
    assert_eq!(m1.key_pem("admin@cp-2"), m2.key_pem("admin@cp-2"));
    // The command layer refuses a CA without --replace-ca and names the flag.
    let args = |ids: &[&str], all, replace_ca| pki::command::RenewArgs {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        all,
        replace_ca,
        expiring: None,
    };
    let e = pki::command::renew_requests(&c, &args(&["ca"], false, false)).unwrap_err();
    assert!(e.to_string().contains("--replace-ca"), "{e}");
    assert!(matches!(
        pki::command::renew_requests(&c, &args(&["nope"], false, false)),
        Err(PkiError::UnknownId { .. })
    ));
    assert!(matches!(
        pki::command::renew_requests(&c, &args(&[], false, false)),
        Err(PkiError::Usage(_))
    ));
    // --all: every leaf, no CA.
    let r = renew(
        &c,
        tmp.path(),
        pki::command::renew_requests(&c, &args(&[], true, false)).unwrap(),
    )
    .unwrap();
    assert_eq!(r.ids(Action::Reissued).len(), r.changes.len() - 5);
    assert_eq!(
        r.ids(Action::Kept),
        ["ca", "etcd-ca", "front-proxy-ca", "sa", "encryption-key"]
    );
    // Replacing the etcd CA re-issues exactly what it signed.
    let (m3, _) = ensure(&c, tmp.path());
    let r = renew(
        &c,
        tmp.path(),
        pki::command::renew_requests(&c, &args(&["etcd-ca"], false, true)).unwrap(),
    )
    .unwrap();
    let mut expect = vec!["etcd-ca".to_string()];
    for n in ["cp-1", "cp-2"] {
        for k in [
            "apiserver-etcd-client",
            "etcd-server",
            "etcd-peer",
            "etcd-healthcheck-client",
        ] {
            expect.push(format!("{k}@{n}"));
        }
    }
    let mut got: Vec<String> = r
        .ids(Action::Reissued)
        .into_iter()
        .map(String::from)
        .collect();
    got.sort();
    expect.sort();
    assert_eq!(got, expect);
    let (m4, _) = ensure(&c, tmp.path());
    assert_ne!(m3.cert_pem("etcd-ca"), m4.cert_pem("etcd-ca"));
    assert_ne!(m3.key_pem("etcd-ca"), m4.key_pem("etcd-ca"));
    assert_eq!(m3.cert_pem("ca"), m4.cert_pem("ca"));
    let dir = tmp.path().join("v");
    let ca = write(&dir, "etcd-ca.crt", m4.cert_pem("etcd-ca").unwrap());
    let (crt, _) = write_pair(&m4, "etcd-peer@cp-2", &dir);
    openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        crt.to_str().unwrap(),
    ]);
    // sa replacement.
    let r = renew(
        &c,
        tmp.path(),
        pki::command::renew_requests(&c, &args(&["sa"], false, true)).unwrap(),
    )
    .unwrap();
    assert_eq!(r.ids(Action::Reissued), ["sa"]);
}

#[test]
fn permissions_are_private() {
    let tmp = tempdir();
    let root = tmp.path().join("kimage-state");
    ensure(&cluster(LB), &root);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("pki")), 0o700);
    assert_eq!(mode(&root.join("pki/state.json")), 0o600);
    assert_eq!(mode(&root.join("pki/lock")), 0o600);
    // A pre-existing, too open directory is tightened.
    std::fs::set_permissions(root.join("pki"), std::fs::Permissions::from_mode(0o755)).unwrap();
    ensure(&cluster(LB), &root);
    assert_eq!(mode(&root.join("pki")), 0o700);
}

#[test]
fn a_second_run_cannot_interleave() {
    let tmp = tempdir();
    let c = cluster(LB);
    ensure(&c, tmp.path());
    let sd = StateDir::new(tmp.path());
    let held = sd.lock(LockMode::Fail).unwrap();
    let e = pki::ensure_with(
        &c,
        tmp.path(),
        &EnsureOptions {
            now: now(),
            lock: LockMode::Fail,
        },
        &Requests::default(),
    )
    .unwrap_err();
    assert!(matches!(e, PkiError::Locked { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("another kimage run holds the pki state lock"),
        "{e}"
    );
    drop(held);
    pki::ensure_with(
        &c,
        tmp.path(),
        &EnsureOptions {
            now: now(),
            lock: LockMode::Fail,
        },
        &Requests::default(),
    )
    .unwrap();
}

#[test]
fn corrupt_state_is_an_error_and_left_alone() {
    let tmp = tempdir();
    let c = cluster(LB);
    ensure(&c, tmp.path());
    let file = tmp.path().join("pki/state.json");
    let mut bytes = state_bytes(tmp.path());
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&file, &bytes).unwrap();
    let e = pki::ensure(&c, tmp.path(), now()).unwrap_err();
    assert!(matches!(e, PkiError::CorruptState { .. }), "{e}");
    assert!(e.to_string().contains("never regenerates a CA"), "{e}");
    assert_eq!(state_bytes(tmp.path()), bytes, "not overwritten");
    assert_eq!(e.exit_code(), 4);
}

#[test]
fn a_damaged_leaf_is_repaired_a_damaged_ca_is_refused() {
    let tmp = tempdir();
    let c = cluster(LB);
    let (m1, _) = ensure(&c, tmp.path());
    let file = tmp.path().join("pki/state.json");
    let original = std::fs::read_to_string(&file).unwrap();
    // Swap a leaf's key for another leaf's: it no longer matches its certificate. The state records a
    // digest of every record, so the edit itself is refused, naming the record (exit 4).
    let mut doc: serde_json::Value = serde_json::from_str(&original).unwrap();
    doc["certs"]["admin@cp-1"]["key"] = doc["certs"]["admin@cp-2"]["key"].clone();
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let e = pki::ensure(&c, tmp.path(), now()).unwrap_err();
    assert!(matches!(e, PkiError::CorruptState { .. }), "{e}");
    assert_eq!(e.exit_code(), 4);
    assert!(
        e.to_string()
            .contains("of admin@cp-1 does not match the digest"),
        "{e}"
    );
    // A state from before digests (format 2) is checked record by record, as before: the leaf is
    // re-issued with a fresh key.
    let old_format = |doc: &mut serde_json::Value| {
        doc["format"] = 2.into();
        doc.as_object_mut().unwrap().remove("digests");
    };
    old_format(&mut doc);
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let (m2, r) = ensure(&c, tmp.path());
    assert_eq!(r.ids(Action::Reissued), ["admin@cp-1"]);
    assert!(
        r.changes
            .iter()
            .any(|c| c.reasons.iter().any(|x| x.contains("does not belong")))
    );
    assert_ne!(
        m2.key_pem("admin@cp-1"),
        m1.key_pem("admin@cp-2"),
        "a fresh key, not the foreign one"
    );
    // The same damage to a CA is an error naming the explicit replacement.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    doc["certs"]["ca"]["key"] = doc["certs"]["etcd-ca"]["key"].clone();
    old_format(&mut doc);
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let e = pki::ensure(&c, tmp.path(), now()).unwrap_err();
    assert!(matches!(e, PkiError::CaUnusable { .. }), "{e}");
    assert!(
        e.to_string().contains("kimage pki renew ca --replace-ca"),
        "{e}"
    );
}

#[test]
fn a_flipped_character_in_the_stored_ca_certificate_was_shipped() {
    // One base64 character of the CA certificate changed: it still parsed, and nodes got a ca.crt
    // that does not verify their certificates. Now the load refuses it, naming the record.
    let tmp = tempdir();
    let c = cluster(LB);
    ensure(&c, tmp.path());
    let file = tmp.path().join("pki/state.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let pem = doc["certs"]["ca"]["cert"].as_str().unwrap().to_string();
    let at = pem.find('\n').unwrap() + 40;
    let flipped = if &pem[at..=at] == "A" { "B" } else { "A" };
    doc["certs"]["ca"]["cert"] = format!("{}{flipped}{}", &pem[..at], &pem[at + 1..]).into();
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let e = pki::ensure(&c, tmp.path(), now()).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(
        e.to_string().contains("material of ca does not match"),
        "{e}"
    );
    // Another cluster's CA record pasted in (with its own digest) is refused the same way.
    let other = tempdir();
    ensure(&c, other.path());
    let theirs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(other.path().join("pki/state.json")).unwrap(),
    )
    .unwrap();
    doc["certs"]["ca"] = theirs["certs"]["ca"].clone();
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let e = pki::ensure(&c, tmp.path(), now()).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
}

#[test]
fn leftover_temp_files_are_removed() {
    let tmp = tempdir();
    let c = cluster(LB);
    ensure(&c, tmp.path());
    let junk = tmp.path().join("pki/.state.json.tmp-99999");
    std::fs::write(&junk, b"half a state").unwrap();
    let (_, r) = ensure(&c, tmp.path());
    assert_eq!(r.removed_temp_files, std::slice::from_ref(&junk));
    assert!(!junk.exists());
    assert!(!r.written);
}

#[test]
fn validity_dates_come_from_issuance() {
    let tmp = tempdir();
    let c = cluster(LB);
    let t0 = now().replace_nanosecond(0).unwrap();
    let (m, _) = pki::ensure(&c, tmp.path(), t0).unwrap();
    let ca = m.cert("ca").unwrap();
    assert_eq!(ca.not_before, t0 - Duration::minutes(5));
    assert_eq!(ca.not_after, ca.not_before + Duration::hours(87600));
    let leaf = m.cert("apiserver@cp-1").unwrap();
    assert_eq!(leaf.not_before, ca.not_before);
    assert_eq!(leaf.not_after, leaf.not_before + Duration::hours(8760));
    // 340 days later: kept, with an expiry warning; status says expiring.
    let t1 = t0 + Duration::days(340);
    let (_, r) = pki::ensure(&c, tmp.path(), t1).unwrap();
    assert!(!r.written);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("apiserver@cp-1 expires in 24 days")),
        "{:?}",
        r.warnings
    );
    let s = pki::status::status(&c, tmp.path(), t1).unwrap();
    let row = s.rows.iter().find(|r| r.id == "apiserver@cp-1").unwrap();
    assert_eq!(
        (row.state, row.days_left),
        (pki::status::CertState::Expiring, Some(24))
    );
    assert!(s.render_text().contains("expiring"));
    // A renewal then starts from that day (NotBefore backdated 5 minutes), not from the CA's.
    let r = pki::ensure_with(
        &c,
        tmp.path(),
        &EnsureOptions {
            now: t1,
            lock: LockMode::Wait,
        },
        &Requests {
            renew: [kimage::pki::spec::CertId::parse("apiserver@cp-1")].into(),
            ..Default::default()
        },
    )
    .unwrap();
    let renewed = r.0.cert("apiserver@cp-1").unwrap();
    assert_eq!(renewed.not_before, t1 - Duration::minutes(5));
    assert_eq!(
        renewed.not_after,
        renewed.not_before + Duration::hours(8760)
    );
    // A year later the other leaves have expired: re-issued on their own, CAs kept.
    let t2 = t0 + Duration::days(366);
    let (m2, r) = pki::ensure(&c, tmp.path(), t2).unwrap();
    assert!(r.ids(Action::Reissued).contains(&"admin@cp-1"));
    assert!(!r.ids(Action::Reissued).contains(&"apiserver@cp-1"));
    assert!(
        r.changes
            .iter()
            .any(|c| c.reasons.iter().any(|x| x.starts_with("expired on")))
    );
    assert_eq!(m2.cert_pem("ca"), m.cert_pem("ca"));
}

#[test]
fn load_is_read_only_and_strict() {
    let tmp = tempdir();
    let root = tmp.path().join("state");
    let c = cluster(LB);
    let e = pki::load(&c, &root, now()).unwrap_err();
    assert!(matches!(e, PkiError::Stale { .. }), "{e}");
    assert!(!root.exists(), "load creates nothing");
    let (m, _) = ensure(&c, &root);
    let loaded = pki::load(&c, &root, now()).unwrap();
    for n in &c.nodes {
        assert_eq!(
            loaded.node_bundle(&c, n.name.as_str()).unwrap(),
            m.node_bundle(&c, n.name.as_str()).unwrap()
        );
    }
    let before = state_bytes(&root);
    let e = pki::load(&cluster(&with_vip(LB, "10.0.0.100")), &root, now()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("apiserver@cp-1: ip_addresses +10.0.0.100")
            && text.contains("run `kimage pki`"),
        "{text}"
    );
    assert_eq!(state_bytes(&root), before);
    assert_eq!(e.exit_code(), 3);
}

#[test]
fn status_json_and_table() {
    let tmp = tempdir();
    let c = cluster(LB);
    ensure(&c, tmp.path());
    let s = pki::status::status(&c, tmp.path(), now()).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let api = s.rows.iter().find(|r| r.id == "apiserver@cp-1").unwrap();
    assert_eq!(api.subject, "CN=kube-apiserver");
    assert_eq!(api.issuer, "CN=kubernetes");
    assert_eq!(api.days_left, Some(364));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["rows"][0]["id"], "ca");
    assert_eq!(json["rows"][0]["state"], "ok");
    let table = s.render_text();
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("kubelet-serving@w-1") && table.contains("w-1,10.0.0.21"),
        "{table}"
    );
    // Through the command handler, as `kimage pki status -o json` runs it.
    let args = pki::command::PkiArgs {
        state: Some(tmp.path().to_path_buf()),
        no_wait: true,
        new_cluster: false,
        command: Some(pki::command::PkiCommand::Status(pki::command::StatusArgs {
            within: None,
        })),
    };
    let ctx = pki::command::Context {
        cluster: &c,
        profile_dir: tmp.path(),
        json: true,
        now: now(),
    };
    let mut out = Vec::new();
    pki::command::run(&args, &ctx, &mut out, &mut Vec::new()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), s.rows.len());
}

#[test]
fn command_handlers() {
    use pki::command::{PkiArgs, PkiCommand, RenewArgs, run};
    let tmp = tempdir();
    let c = cluster(LB);
    let profile_dir = tmp.path();
    let run_cmd = |command: Option<PkiCommand>, json: bool| {
        let args = PkiArgs {
            state: None,
            no_wait: true,
            new_cluster: false,
            command,
        };
        let ctx = pki::command::Context {
            cluster: &c,
            profile_dir,
            json,
            now: now(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run(&args, &ctx, &mut out, &mut err).map(|()| String::from_utf8(out).unwrap())
    };
    // `kimage pki` writes <profile dir>/kimage-state.
    let text = run_cmd(None, false).unwrap();
    assert!(
        text.contains("issued    ca ") && text.contains("kimage-state/pki/state.json: 35 issued"),
        "{text}"
    );
    let text = run_cmd(None, false).unwrap();
    assert!(
        text.contains("0 issued, 0 reissued, 35 kept, 0 removed (unchanged, nothing written)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run_cmd(None, true).unwrap()).unwrap();
    assert_eq!(json["written"], false);
    let renew = |ids: &[&str]| {
        Some(PkiCommand::Renew(RenewArgs {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            all: false,
            replace_ca: false,
            expiring: None,
        }))
    };
    let text = run_cmd(renew(&["kubelet@w-1"]), false).unwrap();
    assert!(
        text.contains("reissued  kubelet@w-1  renewal requested"),
        "{text}"
    );
    let e = run_cmd(renew(&["front-proxy-ca"]), false).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    // --no-wait while another run holds the lock.
    // Wait, not Fail: a child another test thread forks holds a copy of every descriptor (flocks
    // included) until it execs, so the lock the last command dropped can look held for a moment.
    let held = StateDir::new(&pki::default_state_dir(profile_dir))
        .lock(LockMode::Wait)
        .unwrap();
    assert!(matches!(run_cmd(None, false), Err(PkiError::Locked { .. })));
    drop(held);
}

#[test]
fn status_within_lists_what_expires_and_renew_expiring_reissues_only_that() {
    use pki::command::{PkiArgs, PkiCommand, RenewArgs, StatusArgs, run};
    let tmp = tempdir();
    // Leaves valid for 20 days, CAs for the default 10 years.
    let c = cluster(&LB.replace("name: lb\n", "name: lb\npki: {validity: 20d}\n"));
    assert_eq!(c.pki.validity.as_secs(), 20 * 86400);
    let at = |days: i64| now() + time::Duration::days(days);
    let run_at = |when, command| {
        let args = PkiArgs {
            state: Some(tmp.path().to_path_buf()),
            // Waits: another test thread's forked child can hold a copy of the lock for a moment.
            no_wait: false,
            new_cluster: false,
            command: Some(command),
        };
        let ctx = pki::command::Context {
            cluster: &c,
            profile_dir: tmp.path(),
            json: false,
            now: when,
        };
        let mut out = Vec::new();
        let r = run(&args, &ctx, &mut out, &mut Vec::new());
        (r, String::from_utf8(out).unwrap())
    };
    let within = |d: &str| {
        PkiCommand::Status(StatusArgs {
            within: Some(d.parse().ok().unwrap()),
        })
    };
    ensure(&c, tmp.path());
    // Today nothing expires within 10 days.
    let (r, text) = run_at(at(0), within("10d"));
    assert!(r.is_ok(), "{r:?}");
    // Durations print as kimage normalizes them (hours).
    assert_eq!(text, "nothing expires within 240h\n");
    // In 15 days every leaf does (5 days left), earliest first, each with the node that carries it;
    // no CA does. Monitoring sees exit 3.
    let (r, text) = run_at(at(15), within("10d"));
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(
        e.to_string().contains("kimage pki renew --expiring 240h"),
        "{e}"
    );
    assert!(text.contains("apiserver@cp-1  (cp-1)"), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.contains("  ca  ") || l.contains(" etcd-ca ")),
        "{text}"
    );
    let dates: Vec<&str> = text.lines().skip(1).map(|l| &l[..10]).collect();
    assert!(
        dates.windows(2).all(|w| w[0] <= w[1]),
        "earliest first:\n{text}"
    );
    // Renewing what expires re-issues the leaves and nothing else; then nothing is due.
    let (r, text) = run_at(
        at(15),
        PkiCommand::Renew(RenewArgs {
            ids: vec![],
            all: false,
            replace_ca: false,
            expiring: Some("10d".parse().ok().unwrap()),
        }),
    );
    assert!(r.is_ok(), "{r:?}");
    assert!(
        text.contains("reissued") && text.contains("apiserver@cp-1"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("reissued  ca ")),
        "{text}"
    );
    let (r, text) = run_at(at(15), within("10d"));
    assert!(r.is_ok(), "{r:?}\n{text}");
}
