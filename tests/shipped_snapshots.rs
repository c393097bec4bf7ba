//! Golden snapshots of what every shipped profile (profiles/*.yaml) builds into, through the CLI as a
//! user runs it: `kimage build --all` with SOURCE_DATE_EPOCH fixed, then per node its user-data,
//! meta-data and network-config, the cluster's manifest.json, and `kimage plan` (text and JSON).
//! Review changes with `cargo insta review` (or INSTA_UPDATE=always).
//!
//! The PKI is new on every build (fresh keys, certificates, serials), and so is everything that digests
//! it. That, and only that, is redacted, with placeholders that keep the structure:
//!
//! - a layer (or the gzip'd tar a user-data carries) that holds PKI material, a PEM or a base64 PEM as
//!   kubeconfigs embed them: its sha256 becomes `[layer NAME tar, PKI redacted: X]` (`[gz+b64 tar, PKI
//!   redacted: X]`), X a digest of its entries (path, mode, owner, mtime, content) with the PKI material
//!   replaced by placeholders, so a change to anything else in it (a sysctl value, a unit) still shows;
//!   its size in bytes (gzip of random keys) becomes `[bytes]`. Layers without PKI (a load
//!   balancer's) keep their digest and size;
//! - PEM blocks and base64 PEMs in plain text: `[PEM LABEL]`, `[base64 PEM]`; the keys of an
//!   EncryptionConfiguration: `[encryption key]`;
//! - a node file whose text was redacted: its sha256 (and, for user-data, its size) in manifest.json;
//!   a node with any redacted artifact: its meta-data instance-id (a digest of the artifacts' digests)
//!   and its seed.img's sha256 and size (the seed carries the redacted files).
//!
//! Every profile is built twice with fresh states and the two must redact to the same text before the
//! snapshot is compared, so a new source of nondeterminism fails here with its own message instead of
//! being redacted away; `a_sysctl_change_shows_through_the_redaction` proves the placeholders do not hide
//! a change that is not PKI.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use support::tools::tempdir;

const BIN: &str = env!("CARGO_BIN_EXE_kimage");
/// 2023-11-14T22:13:20Z: the layers' mtimes.
const EPOCH: &str = "1700000000";

// ---------------------------------------------------------------------------------------------------
// building

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

/// A shipped profile's text; one that downloads binaries at build time gets `binaries.source:
/// fetch-at-boot` (as in tests/shipped_profiles.rs): the build then needs no network and no cache, and
/// everything else about the profile is what ships.
fn shipped(stem: &str) -> String {
    let p = profiles_dir().join(format!("{stem}.yaml"));
    let mut text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    if !text.lines().any(|l| l.starts_with("binaries:")) {
        text.push_str("binaries:\n  source: fetch-at-boot\n");
    }
    text
}

/// `kimage build --all` of a profile in a fresh directory (so with a fresh PKI state), then `kimage
/// plan` against the state it made. Paths are relative to that directory, so outputs name no temp dir.
struct Build {
    dir: tempfile::TempDir,
    plan_text: String,
    plan_json: String,
}

impl Build {
    fn new(profile: &str) -> Build {
        let dir = tempdir();
        std::fs::write(dir.path().join("cluster.yaml"), profile).unwrap();
        let b = |args: &[&str]| kimage(dir.path(), args);
        b(&[
            "build",
            "--profile",
            "cluster.yaml",
            "--state",
            "state",
            "--out",
            "out",
            "--all",
        ]);
        let plan = ["plan", "--profile", "cluster.yaml", "--state", "state"];
        let plan_text = b(&plan);
        let plan_json = b(&[&plan[..], &["--output", "json"]].concat());
        Build {
            dir,
            plan_text,
            plan_json,
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

/// Runs kimage in `dir`; it must succeed. Returns its stdout.
fn kimage(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("KIMAGE_CACHE", dir.join("no-cache"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "kimage {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

// ---------------------------------------------------------------------------------------------------
// redaction

/// Whether `bytes` hold PKI material: a PEM, or a PEM in base64 (as kubeconfigs embed certificates and
/// keys).
fn carries_pki(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ") || has(b"LS0tLS1CRUdJTi") || has(b"kind: EncryptionConfiguration")
}

/// `text` with the keys of an EncryptionConfiguration (`secret: <base64 of 32 bytes>`) replaced by
/// `[encryption key]`.
fn redact_encryption_keys(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            match body.strip_prefix("secret: ").map(str::trim_end) {
                Some(v) if STANDARD.decode(v).is_ok_and(|k| k.len() == 32) => {
                    format!("{indent}secret: [encryption key]{}", &body[8 + v.len()..])
                }
                _ => line.to_string(),
            }
        })
        .collect()
}

/// `text` with every PEM block replaced by `[PEM LABEL]` and every base64 PEM by `[base64 PEM]`.
fn redact_pem(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        match rest[start..].find(&end_marker) {
            Some(end) => {
                out.push_str(&format!("[PEM {label}]"));
                rest = &rest[start + end + end_marker.len()..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    // A base64 PEM starts with the base64 of "-----BEGIN" and runs over base64 characters.
    let mut text = String::new();
    let mut rest = out.as_str();
    while let Some(start) = rest.find("LS0tLS1CRUdJTi") {
        text.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
            .unwrap_or(rest.len() - start);
        text.push_str("[base64 PEM]");
        rest = &rest[start + len..];
    }
    text.push_str(rest);
    redact_encryption_keys(&text)
}

/// A file's content with its PKI material replaced (text), or as it is (binary).
fn redact_content(bytes: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(t) => redact_pem(t).into_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

fn short_sha256(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// The digest of a tar's entries (type, path, link, mode, owner, mtime, content) with their PKI
/// material replaced: what stays the same when only the PKI is new. Not the entries' sizes: a PEM's
/// length varies with its signature's (DER) encoding.
fn redacted_tar_digest(tar_bytes: &[u8]) -> String {
    let mut canon = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let h = e.header().clone();
        let path = e.path().unwrap().display().to_string();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        canon.extend_from_slice(
            format!(
                "{:?} {path} -> {link} {:o} {}:{} {}\n",
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
            )
            .as_bytes(),
        );
        canon.extend_from_slice(&redact_content(&content));
        canon.push(b'\n');
    }
    short_sha256(&canon)
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A gzip'd tar's (or gzip'd file's) placeholder when it holds PKI material.
fn gz_placeholder(what: &str, gz: &[u8]) -> Option<String> {
    let raw = gunzip(gz);
    if !carries_pki(&raw) {
        return None;
    }
    // A tar has "ustar" at offset 257 of its first header.
    let is_tar = raw.len() > 262 && &raw[257..262] == b"ustar";
    Some(if is_tar {
        format!("[{what} tar, PKI redacted: {}]", redacted_tar_digest(&raw))
    } else {
        format!(
            "[{what}, PKI redacted: {}]",
            short_sha256(&redact_content(&raw))
        )
    })
}

/// The user-data's gz+b64 contents that hold PKI material, replaced by their placeholders.
fn redact_gz_b64(user_data: &str) -> String {
    let mut out = String::new();
    for line in user_data.split_inclusive('\n') {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let replaced = body
            .strip_prefix("content: \"")
            .and_then(|v| v.trim_end().strip_suffix('"'))
            .and_then(|v| STANDARD.decode(v).ok())
            .filter(|gz| gz.starts_with(&[0x1f, 0x8b]))
            .and_then(|gz| gz_placeholder("gz+b64", &gz));
        match replaced {
            Some(p) => out.push_str(&format!("{indent}content: \"{p}\"\n")),
            None => out.push_str(line),
        }
    }
    out
}

/// What a build wrote, redacted, by snapshot name (`<node>__user-data`, `manifest.json`, `plan`, ...).
fn redacted(b: &Build) -> BTreeMap<String, String> {
    let out = b.out();
    let manifest_text = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let manifest: Json = serde_json::from_str(&manifest_text).unwrap();
    let nodes = manifest["nodes"].as_object().expect("manifest nodes");

    // Layers holding PKI: digest -> (placeholder, bytes).
    let mut layers: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for n in nodes.values() {
        for l in n["layers"].as_array().unwrap() {
            let digest = l["sha256"].as_str().unwrap().to_string();
            if layers.contains_key(&digest) {
                continue;
            }
            let gz = std::fs::read(out.join(l["path"].as_str().unwrap())).unwrap();
            let name = format!("layer {}", l["name"].as_str().unwrap());
            if let Some(p) = gz_placeholder(&name, &gz) {
                layers.insert(digest, (p, l["bytes"].as_u64().unwrap()));
            }
        }
    }
    let replace_layers = |mut text: String| {
        for (digest, (placeholder, bytes)) in &layers {
            // boot.env's KIMAGE_LAYERS: digest:bytes:name
            text = text.replace(
                &format!("{digest}:{bytes}:"),
                &format!("{placeholder}:[bytes]:"),
            );
            text = text.replace(digest.as_str(), placeholder);
        }
        text
    };

    let mut files = BTreeMap::new();
    // File digests in manifest.json -> placeholder.
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for (name, n) in nodes {
        let mut node_redacted = n["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| layers.contains_key(l["sha256"].as_str().unwrap()));
        for (key, file) in [
            ("user_data", "user-data"),
            ("network_config", "network-config"),
        ] {
            let raw = std::fs::read_to_string(out.join(n[key]["path"].as_str().unwrap())).unwrap();
            let text = replace_layers(redact_pem(&redact_gz_b64(&raw)));
            if text != raw {
                node_redacted = true;
                digests.insert(
                    n[key]["sha256"].as_str().unwrap().to_string(),
                    format!("[sha256 of {name}/{file}]"),
                );
            }
            files.insert(format!("{name}__{file}"), text);
        }
        let raw =
            std::fs::read_to_string(out.join(n["meta_data"]["path"].as_str().unwrap())).unwrap();
        let mut meta = redact_pem(&raw);
        if node_redacted {
            // The instance-id is kimage-<node>-<a digest of the artifacts' digests>.
            meta = meta
                .lines()
                .map(|l| match l.strip_prefix("instance-id: \"") {
                    Some(v) => {
                        let prefix = &v[..v.rfind('-').expect("instance-id kimage-<node>-<hex>")];
                        format!("instance-id: \"{prefix}-[digest of the artifacts' digests]\"\n")
                    }
                    None => format!("{l}\n"),
                })
                .collect();
            for (key, file) in [("meta_data", "meta-data"), ("seed", "seed.img")] {
                if let Some(d) = n[key]["sha256"].as_str() {
                    digests.insert(d.to_string(), format!("[sha256 of {name}/{file}]"));
                }
            }
        }
        files.insert(format!("{name}__meta-data"), meta);
    }

    let mut m = replace_layers(manifest_text);
    for (digest, placeholder) in &digests {
        m = m.replace(digest.as_str(), placeholder);
    }
    // The size of a redacted layer or user-data (gzip of random keys) varies with it, and so does that
    // of a seed.img that carries them (no larger than its content); the size of a meta-data does not.
    let mut redact_bytes = false;
    let mut manifest_out = String::new();
    for line in m.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("\"sha256\": ") {
            redact_bytes =
                t.contains("[layer ") || t.contains("/user-data]") || t.contains("/seed.img]");
        }
        if redact_bytes && t.starts_with("\"bytes\": ") {
            let indent = &line[..line.len() - t.len()];
            let comma = if t.trim_end().ends_with(',') { "," } else { "" };
            manifest_out.push_str(&format!("{indent}\"bytes\": \"[bytes]\"{comma}\n"));
            redact_bytes = false;
        } else {
            manifest_out.push_str(line);
        }
    }
    files.insert("manifest.json".into(), manifest_out);
    files.insert("plan".into(), redact_pem(&b.plan_text));
    files.insert("plan.json".into(), redact_pem(&b.plan_json));
    files
}

/// Two redactions must be equal; else the first differing line of each file that differs.
fn assert_same(what: &str, a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: the builds wrote different files"
    );
    let mut problems = Vec::new();
    for (k, x) in a {
        let y = &b[k];
        if x != y {
            let (i, (l1, l2)) = x
                .lines()
                .zip(y.lines())
                .enumerate()
                .find(|(_, (l1, l2))| l1 != l2)
                .unwrap_or((0, ("(length)", "(length)")));
            let cut = |l: &str| l.chars().take(200).collect::<String>();
            problems.push(format!(
                "{k} line {}:\n  - {}\n  + {}",
                i + 1,
                cut(l1),
                cut(l2)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: two builds with fresh states differ after redaction (nondeterminism, or PKI material \
         the redaction misses):\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------
// the snapshots

/// Builds the profile twice with fresh states; both must redact to the same text, which must match the
/// snapshots.
fn snapshot(stem: &str) {
    let text = shipped(stem);
    let first = redacted(&Build::new(&text));
    let second = redacted(&Build::new(&text));
    assert_same(stem, &first, &second);
    for (name, content) in first {
        insta::assert_snapshot!(format!("{stem}__{name}"), content);
    }
}

macro_rules! shipped_profiles {
    ($($test:ident => $stem:literal,)*) => {
        /// The profiles the tests below snapshot, by file stem.
        const SNAPSHOTTED: &[&str] = &[$($stem),*];
        $(
            #[test]
            fn $test() {
                snapshot($stem);
            }
        )*
    };
}

shipped_profiles! {
    seed_000_ha_nginx_keepalived => "000-ha-nginx-keepalived",
    seed_000_single_master => "000-single-master",
    seed_001_minimal => "001-minimal",
    seed_002_external_etcd_nginx => "002-external-etcd-nginx",
    seed_003_stacked_ha_ipvs => "003-stacked-ha-ipvs",
    seed_004_ha_haproxy => "004-ha-haproxy",
    quickstart => "quickstart",
}

#[test]
fn every_shipped_profile_is_snapshotted() {
    let shipped: BTreeSet<String> = std::fs::read_dir(profiles_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let tested: BTreeSet<String> = SNAPSHOTTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        shipped, tested,
        "add the profile to shipped_profiles! in tests/shipped_snapshots.rs"
    );
}

/// The redaction hides the PKI, not the rest: two builds of seed 001 that differ in one sysctl value
/// differ after redaction (in the config layers' placeholders, so in user-data and manifest.json), while
/// two builds of the same profile do not.
#[test]
fn a_sysctl_change_shows_through_the_redaction() {
    let with = |value: &str| {
        format!(
            "{}os:\n  sysctl:\n    vm.swappiness: \"{value}\"\n",
            shipped("001-minimal")
        )
    };
    let a = redacted(&Build::new(&with("10")));
    let again = redacted(&Build::new(&with("10")));
    let b = redacted(&Build::new(&with("11")));
    assert_same("001-minimal with vm.swappiness 10", &a, &again);
    let differ: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
    for must in ["server__user-data", "node__user-data", "manifest.json"] {
        assert!(
            differ.iter().any(|k| k.as_str() == must),
            "a sysctl change does not show in {must} after redaction; differing: {differ:?}"
        );
    }
    // What differs is the config layers' placeholders (and what follows from them), not PKI leaking.
    let a_ud = &a["node__user-data"];
    let b_ud = &b["node__user-data"];
    let changed: Vec<(&str, &str)> = a_ud
        .lines()
        .zip(b_ud.lines())
        .filter(|(x, y)| x != y)
        .collect();
    assert!(
        changed.iter().all(
            |(x, y)| x.contains("[layer config-worker tar, PKI redacted: ")
                && y.contains("[layer config-worker tar, PKI redacted: ")
        ),
        "{changed:#?}"
    );
}

#[test]
fn redact_pem_keeps_the_text_around() {
    let text = "a: 1\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\nb: LS0tLS1CRUdJTiBDRVJU== c\n";
    assert_eq!(
        redact_pem(text),
        "a: 1\n[PEM CERTIFICATE]\nb: [base64 PEM] c\n"
    );
    assert!(carries_pki(text.as_bytes()));
    assert!(!carries_pki(b"vm.swappiness = 10\n"));
}
