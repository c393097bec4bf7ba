//! Every generated certificate against tests/reference/k8s-pki-requirements.yaml: CN, O, key usage,
//! extended key usage, SANs, validity, file names and modes, which role gets which file. Certificates
//! are read with x509-parser and openssl from the PEM kimage produced, never from kimage's own specs;
//! chains are checked with `openssl verify`.

#[path = "support/pki.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use kimage::model::Cluster;
use kimage::pki::{PkiMaterial, spec};
use serde_yaml_ng::Value;
use support::*;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

fn reference() -> Value {
    let text =
        std::fs::read_to_string(repo().join("tests/reference/k8s-pki-requirements.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// "8760h" / "5m" as a Duration.
fn duration(v: &Value) -> Duration {
    let s = v.as_str().unwrap();
    let (n, unit) = s.split_at(s.len() - 1);
    let n: i64 = n.parse().unwrap();
    match unit {
        "h" => Duration::hours(n),
        "m" => Duration::minutes(n),
        _ => panic!("unit of {s}"),
    }
}

/// The organization list for Kubernetes 1.`minor`: a plain list, or the latest `since_1.N` ≤ minor.
fn organizations(v: &Value, minor: u64) -> Vec<String> {
    if let Some(map) = v.as_mapping() {
        let mut best: Option<(u64, Vec<String>)> = None;
        for (k, val) in map {
            if let Some(n) = k.as_str().unwrap().strip_prefix("since_1.") {
                let n: u64 = n.parse().unwrap();
                if n <= minor && best.as_ref().is_none_or(|(b, _)| n > *b) {
                    best = Some((n, strs(val)));
                }
            }
        }
        best.expect("a since_ entry applies").1
    } else {
        strs(v)
    }
}

struct Parsed {
    cn: String,
    orgs: Vec<String>,
    key_usage: BTreeSet<String>,
    ext_key_usage: BTreeSet<String>,
    is_ca: bool,
    dns: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
    has_san: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: u128,
    issuer_raw: Vec<u8>,
    subject_raw: Vec<u8>,
}

fn parse(pem: &str) -> Parsed {
    let der = der_of(pem);
    let (rest, x) = X509Certificate::from_der(&der).unwrap();
    assert!(rest.is_empty());
    let mut key_usage = BTreeSet::new();
    if let Ok(Some(ku)) = x.key_usage() {
        assert!(ku.critical, "key usage is critical");
        for (on, name) in [
            (ku.value.digital_signature(), "digitalSignature"),
            (ku.value.non_repudiation(), "nonRepudiation"),
            (ku.value.key_encipherment(), "keyEncipherment"),
            (ku.value.data_encipherment(), "dataEncipherment"),
            (ku.value.key_agreement(), "keyAgreement"),
            (ku.value.key_cert_sign(), "keyCertSign"),
            (ku.value.crl_sign(), "cRLSign"),
        ] {
            if on {
                key_usage.insert(name.to_string());
            }
        }
    }
    let mut ext_key_usage = BTreeSet::new();
    if let Ok(Some(eku)) = x.extended_key_usage() {
        if eku.value.server_auth {
            ext_key_usage.insert("serverAuth".to_string());
        }
        if eku.value.client_auth {
            ext_key_usage.insert("clientAuth".to_string());
        }
        assert!(eku.value.other.is_empty() && !eku.value.any && !eku.value.code_signing);
    }
    let is_ca = x
        .basic_constraints()
        .unwrap()
        .map(|b| b.value.ca)
        .expect("basicConstraints present");
    let (mut dns, mut ips, mut has_san) = (BTreeSet::new(), BTreeSet::new(), false);
    if let Ok(Some(san)) = x.subject_alternative_name() {
        has_san = true;
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) => {
                    dns.insert(s.to_string());
                }
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                        _ => panic!("bad IP SAN"),
                    };
                    ips.insert(ip);
                }
                other => panic!("unexpected SAN {other:?}"),
            }
        }
    }
    let serial_bytes = x.tbs_certificate.raw_serial();
    assert!(serial_bytes.len() <= 9, "serial fits in 63 bits");
    let serial = serial_bytes
        .iter()
        .fold(0u128, |a, b| (a << 8) | *b as u128);
    Parsed {
        cn: x
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string(),
        orgs: x
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap().to_string())
            .collect(),
        key_usage,
        ext_key_usage,
        is_ca,
        dns,
        ips,
        has_san,
        not_before: x.validity().not_before.to_datetime(),
        not_after: x.validity().not_after.to_datetime(),
        serial,
        issuer_raw: x.issuer().as_raw().to_vec(),
        subject_raw: x.subject().as_raw().to_vec(),
    }
}

/// Substitutes the reference's placeholders for one node.
fn subst(s: &str, c: &Cluster, node: Option<&str>) -> String {
    let mut s = s.to_string();
    if let Some(n) = node {
        let addr = c.node(n).unwrap().address.to_string();
        s = s
            .replace("<nodeRegistration.name>", n)
            .replace("<nodeName>", n);
        s = s.replace("<localAPIEndpoint.advertiseAddress>", &addr);
    }
    s.replace(
        "<first IP of serviceSubnet>",
        &c.kubernetes.first_service_ip.to_string(),
    )
    .replace("<dnsDomain>", &c.kubernetes.cluster_domain)
}

fn ids_of_kind<'a>(m: &'a PkiMaterial, kind: &str) -> Vec<(&'a str, Option<&'a str>)> {
    m.cert_ids()
        .filter_map(|id| match id.split_once('@') {
            Some((k, n)) if k == kind => Some((id, Some(n))),
            None if id == kind => Some((id, None)),
            _ => None,
        })
        .collect()
}

/// `openssl verify` of leaves against their CA, for one purpose.
fn openssl_verify(dir: &Path, m: &PkiMaterial, ca: &str, leaves: &[&str], purpose: &str) {
    if leaves.is_empty() {
        return;
    }
    let ca_file = write(dir, &format!("{ca}.crt"), m.cert_pem(ca).unwrap());
    let mut args: Vec<String> = vec![
        "verify".into(),
        "-x509_strict".into(),
        "-purpose".into(),
        purpose.into(),
        "-CAfile".into(),
    ];
    args.push(ca_file.display().to_string());
    for id in leaves {
        args.push(
            write(dir, &format!("{id}.crt"), m.cert_pem(id).unwrap())
                .display()
                .to_string(),
        );
    }
    let out = openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for id in leaves {
        assert!(
            out.contains(&format!("{id}.crt: OK")),
            "openssl verify {purpose} {id}: {out}"
        );
    }
}

/// Walks the reference and checks everything it says about certificates against `m`.
fn check(c: &Cluster, m: &PkiMaterial, issued: OffsetDateTime) {
    let r = reference();
    let d = &r["defaults"];
    let issued = issued.replace_nanosecond(0).unwrap();
    let minor: u64 = c
        .kubernetes
        .version
        .to_string()
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let tmp = tempdir();
    let ca_validity = duration(&d["validity"]["ca"]);
    let leaf_validity = duration(&d["validity"]["leaf"]);
    let backdate = duration(&d["validity"]["ca_not_before_backdate"]);
    let ca_ku: BTreeSet<String> = strs(&d["key_usage"]["ca"]).into_iter().collect();
    let leaf_ku: BTreeSet<String> = strs(&d["key_usage"]["leaf"]).into_iter().collect();
    let mut checked = BTreeSet::new();

    // CAs.
    let mut ca_nb = BTreeMap::new();
    for ca in r["cas"].as_sequence().unwrap() {
        let name = ca["name"].as_str().unwrap();
        let p = parse(m.cert_pem(name).unwrap_or_else(|| panic!("no {name}")));
        assert_eq!(p.cn, ca["cn"].as_str().unwrap(), "{name} CN");
        assert!(p.orgs.is_empty(), "{name} O");
        assert!(p.is_ca, "{name} CA:TRUE");
        assert_eq!(p.key_usage, ca_ku, "{name} key usage");
        assert!(p.ext_key_usage.is_empty(), "{name} has no EKU");
        // ca_san_quirk: one DNS SAN equal to the CN.
        assert_eq!(p.dns, BTreeSet::from([p.cn.clone()]), "{name} SAN");
        assert!(p.ips.is_empty());
        assert_eq!(p.issuer_raw, p.subject_raw, "{name} self-signed");
        assert_eq!(
            p.not_before,
            issued - backdate,
            "{name} NotBefore = now - backdate"
        );
        assert_eq!(p.not_after - p.not_before, ca_validity, "{name} validity");
        assert!(p.serial >= 1 && p.serial < i64::MAX as u128);
        ca_nb.insert(name.to_string(), (p.not_before, p.subject_raw));
        checked.insert(name.to_string());
    }

    // Leaves.
    for leaf in r["leaf_certificates"].as_sequence().unwrap() {
        let name = leaf["name"].as_str().unwrap();
        let signer = leaf["signer"].as_str().unwrap();
        let certs = ids_of_kind(m, name);
        assert!(!certs.is_empty(), "no {name} certificates");
        let mut server = Vec::new();
        let mut client = Vec::new();
        for (id, node) in &certs {
            let p = parse(m.cert_pem(id).unwrap());
            assert_eq!(
                p.cn,
                subst(leaf["cn"].as_str().unwrap(), c, *node),
                "{id} CN"
            );
            assert_eq!(
                p.orgs,
                organizations(&leaf["organization"], minor),
                "{id} O"
            );
            assert!(!p.is_ca, "{id} CA:FALSE");
            assert_eq!(p.key_usage, leaf_ku, "{id} key usage");
            let eku: BTreeSet<String> = strs(&leaf["ext_key_usage"]).into_iter().collect();
            assert_eq!(p.ext_key_usage, eku, "{id} EKU");
            assert_eq!(p.issuer_raw, ca_nb[signer].1, "{id} issuer is {signer}");
            assert_eq!(
                p.not_before, ca_nb[signer].0,
                "{id} NotBefore = CA NotBefore"
            );
            assert_eq!(p.not_after - p.not_before, leaf_validity, "{id} validity");
            assert!(p.serial >= 1 && p.serial < i64::MAX as u128);
            let san = &leaf["san"];
            if san.as_str() == Some("none") {
                assert!(!p.has_san, "{id} has no SANs");
            } else {
                let dns: BTreeSet<String> = strs(&san["dns"])
                    .iter()
                    .map(|s| subst(s, c, *node))
                    .collect();
                let ips: BTreeSet<IpAddr> = strs(&san["ip"])
                    .iter()
                    .map(|s| subst(s, c, *node).parse().unwrap())
                    .collect();
                if name == "apiserver" {
                    // Required names are there; beyond them the certificate carries exactly the
                    // node's SAN set in the model (its own name and address, the endpoint, the
                    // VIP, extraSANs, localhost/127.0.0.1 for local clients).
                    assert!(
                        dns.is_subset(&p.dns),
                        "{id} DNS {:?} lacks some of {dns:?}",
                        p.dns
                    );
                    assert!(
                        ips.is_subset(&p.ips),
                        "{id} IP {:?} lacks some of {ips:?}",
                        p.ips
                    );
                    let sans = c
                        .node(node.expect("apiserver certificates are per node"))
                        .and_then(|n| n.apiserver_sans.as_ref())
                        .expect("a control-plane node's SANs");
                    let model_dns: BTreeSet<String> = sans.dns.iter().cloned().collect();
                    let model_ips: BTreeSet<IpAddr> = sans.ips.iter().cloned().collect();
                    assert_eq!(p.dns, model_dns, "{id} DNS = model");
                    assert_eq!(p.ips, model_ips, "{id} IP = model");
                    match &c.endpoint.host {
                        kimage::profile::Host::Ip(ip) => {
                            assert!(p.ips.contains(ip), "{id} names the endpoint")
                        }
                        kimage::profile::Host::Dns(n) => {
                            assert!(p.dns.contains(n), "{id} names the endpoint")
                        }
                    }
                    for s in strs(&san["not_included_by_default"]) {
                        let in_model = model_dns.contains(&s)
                            || s.parse().is_ok_and(|ip| model_ips.contains(&ip));
                        assert!(in_model || !p.dns.contains(&s), "{id} must not carry {s}");
                    }
                } else {
                    assert_eq!(p.dns, dns, "{id} DNS SANs");
                    assert_eq!(p.ips, ips, "{id} IP SANs");
                }
            }
            if eku.contains("serverAuth") {
                server.push(*id);
            }
            if eku.contains("clientAuth") {
                client.push(*id);
            }
            checked.insert(id.to_string());
        }
        openssl_verify(tmp.path(), m, signer, &server, "sslserver");
        openssl_verify(tmp.path(), m, signer, &client, "sslclient");
    }

    // Kubeconfig client certificates.
    let kinds = BTreeMap::from([
        ("admin.conf", "admin"),
        ("super-admin.conf", "super-admin"),
        ("controller-manager.conf", "controller-manager"),
        ("scheduler.conf", "scheduler"),
        ("kubelet.conf", "kubelet"),
    ]);
    for k in r["kubeconfigs"].as_sequence().unwrap() {
        let file = k["file"].as_str().unwrap();
        let Some(kind) = kinds.get(file) else {
            // bootstrap-kubelet.conf: kubelet.conf is pre-generated instead of TLS bootstrap.
            assert_eq!(file, "bootstrap-kubelet.conf");
            continue;
        };
        let certs = ids_of_kind(m, kind);
        assert!(!certs.is_empty(), "no {kind} certificates");
        let mut ids = Vec::new();
        for (id, node) in &certs {
            let p = parse(m.cert_pem(id).unwrap());
            assert_eq!(
                p.cn,
                subst(k["user_cn"].as_str().unwrap(), c, *node),
                "{id} CN"
            );
            assert_eq!(p.orgs, organizations(&k["organization"], minor), "{id} O");
            assert_eq!(
                p.ext_key_usage,
                BTreeSet::from(["clientAuth".to_string()]),
                "{id} EKU"
            );
            assert_eq!(p.key_usage, leaf_ku);
            assert_eq!(p.issuer_raw, ca_nb["ca"].1, "{id} signed by ca");
            assert_eq!(p.not_after - p.not_before, leaf_validity);
            // The kubeconfig embeds ca.crt and this certificate and key; user, cluster and context
            // follow kubeconfig_naming.
            let kc: Value = serde_yaml_ng::from_str(&m.kubeconfig(id).unwrap()).unwrap();
            let b64 = |v: &Value| {
                use base64::Engine;
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap())
                        .unwrap(),
                )
                .unwrap()
            };
            assert_eq!(
                b64(&kc["clusters"][0]["cluster"]["certificate-authority-data"]),
                m.cert_pem("ca").unwrap()
            );
            assert_eq!(
                b64(&kc["users"][0]["user"]["client-certificate-data"]),
                m.cert_pem(id).unwrap()
            );
            assert_eq!(
                b64(&kc["users"][0]["user"]["client-key-data"]),
                m.key_pem(id).unwrap()
            );
            assert_eq!(kc["users"][0]["name"].as_str().unwrap(), p.cn);
            assert_eq!(kc["clusters"][0]["name"].as_str().unwrap(), c.name);
            assert_eq!(
                kc["contexts"][0]["name"].as_str().unwrap(),
                format!("{}@{}", p.cn, c.name)
            );
            // Every kubeconfig dials the controlPlane endpoint (kubeadm points controller-manager
            // and scheduler at the local apiserver; kimage's contract is one endpoint for all).
            assert_eq!(
                kc["clusters"][0]["cluster"]["server"].as_str().unwrap(),
                c.endpoint_url
            );
            ids.push(*id);
            checked.insert(id.to_string());
        }
        openssl_verify(tmp.path(), m, "ca", &ids, "sslclient");
    }

    // kubelet serving and kube-proxy: not in kubeadm's tables (see the task), checked here.
    for (id, node) in ids_of_kind(m, "kubelet-serving") {
        let n = c.node(node.unwrap()).unwrap();
        let p = parse(m.cert_pem(id).unwrap());
        assert_eq!(p.cn, format!("system:node:{}", n.name.as_str()));
        assert_eq!(p.orgs, ["system:nodes"]);
        assert_eq!(p.dns, BTreeSet::from([n.name.as_str().to_string()]));
        assert_eq!(p.ips, BTreeSet::from([n.address]));
        assert_eq!(p.ext_key_usage, BTreeSet::from(["serverAuth".to_string()]));
        assert_eq!(p.key_usage, leaf_ku);
        openssl_verify(tmp.path(), m, "ca", &[id], "sslserver");
        checked.insert(id.to_string());
    }
    for (id, _) in ids_of_kind(m, "kube-proxy") {
        let p = parse(m.cert_pem(id).unwrap());
        assert_eq!(p.cn, "system:kube-proxy");
        assert!(p.orgs.is_empty());
        assert_eq!(p.ext_key_usage, BTreeSet::from(["clientAuth".to_string()]));
        openssl_verify(tmp.path(), m, "ca", &[id], "sslclient");
        checked.insert(id.to_string());
    }
    let all: BTreeSet<String> = m.cert_ids().map(String::from).collect();
    assert_eq!(
        checked, all,
        "every certificate was checked against the reference"
    );

    // Keys: PEM form per algorithm (keyutil.MarshalPrivateKeyToPEM), and each key is the one of its
    // certificate, as openssl sees them.
    let rsa = matches!(
        c.pki.algorithm,
        kimage::profile::KeyAlgorithm::Rsa2048
            | kimage::profile::KeyAlgorithm::Rsa3072
            | kimage::profile::KeyAlgorithm::Rsa4096
    );
    let label = if rsa {
        "-----BEGIN RSA PRIVATE KEY-----\n"
    } else {
        "-----BEGIN EC PRIVATE KEY-----\n"
    };
    for id in m.cert_ids() {
        let key = m.key_pem(id).unwrap();
        assert!(key.starts_with(label), "{id} key PEM is {label}");
        let (crt, keyf) = write_pair(m, id, tmp.path());
        let from_key = openssl(&["pkey", "-in", keyf.to_str().unwrap(), "-pubout"]);
        let from_cert = openssl(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert, "{id}: key belongs to certificate");
    }
    // sa.pub: PKIX PUBLIC KEY of sa.key; the key follows the algorithm.
    let sa_key = write(tmp.path(), "sa.key", m.sa_key_pem().unwrap());
    assert!(m.sa_key_pem().unwrap().starts_with(label));
    assert!(m.sa_pub_pem().unwrap().starts_with(&format!(
        "-----BEGIN {}-----\n",
        d["pem"]["public_key_block"].as_str().unwrap()
    )));
    let derived = openssl(&["pkey", "-in", sa_key.to_str().unwrap(), "-pubout"]);
    assert_eq!(derived, m.sa_pub_pem().unwrap());
    let text = openssl(&["pkey", "-in", sa_key.to_str().unwrap(), "-noout", "-text"]);
    let bits = match c.pki.algorithm.as_str() {
        "ecdsa-p256" => "256 bit",
        "ecdsa-p384" => "384 bit",
        "rsa-2048" => "2048 bit",
        "rsa-3072" => "3072 bit",
        _ => "4096 bit",
    };
    assert!(
        text.contains(bits),
        "sa.key is {bits}: {}",
        text.lines().next().unwrap_or("")
    );
}

/// Which files each role gets: node_roles, files and file_modes of the reference.
fn check_files(c: &Cluster, m: &PkiMaterial, ca_keys_on_cp: bool) {
    let r = reference();
    let pki_dir = r["defaults"]["pki_dir"].as_str().unwrap();
    let kc_dir = r["defaults"]["kubeconfig_dir"].as_str().unwrap();
    let roles = &r["node_roles"];
    // name -> (cert file, key file) relative to pki_dir, for leaves and CAs.
    let mut files = BTreeMap::new();
    for e in r["cas"]
        .as_sequence()
        .unwrap()
        .iter()
        .chain(r["leaf_certificates"].as_sequence().unwrap())
    {
        files.insert(
            e["name"].as_str().unwrap().to_string(),
            (
                e["files"]["cert"].as_str().unwrap().to_string(),
                e["files"]["key"].as_str().unwrap().to_string(),
            ),
        );
    }
    let split = |bundle: &[kimage::pki::NodeFile]| {
        let pki: BTreeSet<String> = bundle
            .iter()
            .filter_map(|f| {
                f.path
                    .strip_prefix(&format!("{pki_dir}/"))
                    .map(String::from)
            })
            .collect();
        let confs: BTreeSet<String> = bundle
            .iter()
            .filter_map(|f| f.path.strip_prefix(&format!("{kc_dir}/")))
            .filter(|p| !p.contains('/') && p.ends_with(".conf"))
            .map(String::from)
            .collect();
        (pki, confs)
    };
    let optional_ca_keys: BTreeSet<String> = ["etcd/ca.key", "front-proxy-ca.key"]
        .map(String::from)
        .into();
    for n in &c.nodes {
        let bundle = m.node_bundle(c, n.name.as_str()).unwrap();
        // Modes: keys, kubeconfigs and the encryption configuration 0600, certificates and sa.pub 0644.
        for f in &bundle {
            let want = if f.is_secret()
                || f.path.ends_with(".key")
                || f.path.ends_with(".conf")
                || f.path.ends_with("kubeconfig.conf")
            {
                0o600
            } else {
                0o644
            };
            assert_eq!(f.mode, want, "{} mode", f.path);
        }
        let (pki, confs) = split(&bundle);
        let name = n.name.as_str();
        if n.role == kimage::profile::Role::ControlPlane {
            let (mut want_pki, want_confs): (BTreeSet<String>, BTreeSet<String>) = if n.is_bootstrap
            {
                let first = &roles["control_plane_first"];
                (
                    strs(&first["pki"]).into_iter().collect(),
                    strs(&first["kubeconfigs"]).into_iter().collect(),
                )
            } else {
                let add = &roles["control_plane_additional"];
                let mut p: BTreeSet<String> = strs(&add["shared_from_first_node"]["local_etcd"])
                    .into_iter()
                    .collect();
                for g in strs(&add["generated_per_node"]) {
                    p.insert(files[&g].0.clone());
                    p.insert(files[&g].1.clone());
                }
                (p, strs(&add["kubeconfigs"]).into_iter().collect())
            };
            if !ca_keys_on_cp {
                want_pki = want_pki.difference(&optional_ca_keys).cloned().collect();
            }
            assert_eq!(pki, want_pki, "{name}: files under {pki_dir}");
            assert_eq!(confs, want_confs, "{name}: kubeconfigs");
            // Each per-node file holds this node's certificate.
            for (kind, (crt, _)) in &files {
                if let Some(f) = bundle.iter().find(|f| f.path == format!("{pki_dir}/{crt}")) {
                    let id = if m.cert(kind).is_some() {
                        kind.clone()
                    } else {
                        format!("{kind}@{name}")
                    };
                    assert_eq!(
                        f.bytes,
                        m.cert_pem(&id).unwrap().as_bytes(),
                        "{} holds {id}",
                        f.path
                    );
                }
            }
        } else if n.role == kimage::profile::Role::Worker {
            let w = &roles["worker"];
            assert_eq!(
                pki,
                strs(&w["pki"]).into_iter().collect(),
                "{name}: files under {pki_dir}"
            );
            assert_eq!(
                confs,
                strs(&w["kubeconfigs"]).into_iter().collect(),
                "{name}: kubeconfigs"
            );
            assert!(
                bundle
                    .iter()
                    .all(|f| !f.path.ends_with("ca.key") && !f.path.contains("/sa.")),
                "{name} gets no CA keys and no sa.*"
            );
        }
    }
}

#[test]
fn ecdsa_p256_seed003_matches_reference() {
    let dir = tempdir();
    let c = seed003("ecdsa-p256");
    let now = now();
    let (m, _) = kimage::pki::ensure(&c, dir.path(), now).unwrap();
    assert_eq!(m.cert_ids().count(), 52);
    check(&c, &m, now);
    check_files(&c, &m, false);
}

#[test]
fn ca_keys_on_control_plane_gives_kubeadms_layout() {
    let dir = tempdir();
    let yaml = with_pki(
        SEED_003,
        "  etcdCaKeyOnControlPlane: true\n  frontProxyCaKeyOnControlPlane: true",
    );
    let c = cluster(&yaml);
    let (m, _) = ensure(&c, dir.path());
    check_files(&c, &m, true);
}

#[test]
fn ecdsa_p384_seed003_matches_reference() {
    let dir = tempdir();
    let c = seed003("ecdsa-p384");
    let now = now();
    let (m, _) = kimage::pki::ensure(&c, dir.path(), now).unwrap();
    check(&c, &m, now);
}

#[test]
fn rsa_2048_seed003_matches_reference() {
    let dir = tempdir();
    let c = seed003("rsa-2048");
    let now = now();
    let (m, _) = kimage::pki::ensure(&c, dir.path(), now).unwrap();
    check(&c, &m, now);
}

#[test]
fn rsa_3072_and_4096_match_reference() {
    for alg in ["rsa-3072", "rsa-4096"] {
        let dir = tempdir();
        let c = small(alg);
        let now = now();
        let (m, _) = kimage::pki::ensure(&c, dir.path(), now).unwrap();
        check(&c, &m, now);
        check_files(&c, &m, false);
    }
}

#[test]
fn external_etcd_members_get_their_certificates() {
    let dir = tempdir();
    let c = cluster(
        &std::fs::read_to_string(repo().join("profiles/002-external-etcd-nginx.yaml")).unwrap(),
    );
    let now = now();
    let (m, _) = kimage::pki::ensure(&c, dir.path(), now).unwrap();
    check(&c, &m, now);
    for n in ["etcd-0", "etcd-1", "etcd-2"] {
        let paths: BTreeSet<String> = m
            .node_bundle(&c, n)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        let want: BTreeSet<String> = [
            "etcd/ca.crt",
            "etcd/server.crt",
            "etcd/server.key",
            "etcd/peer.crt",
            "etcd/peer.key",
            "etcd/healthcheck-client.crt",
            "etcd/healthcheck-client.key",
        ]
        .iter()
        .map(|f| format!("{}/{f}", spec::PKI_DIR))
        .collect();
        assert_eq!(paths, want, "{n}");
    }
    // Control planes have no etcd member but still the client certificate for the external members.
    assert!(m.cert_pem("apiserver-etcd-client@master-1").is_some());
    assert!(m.cert_pem("etcd-server@master-1").is_none());
}
