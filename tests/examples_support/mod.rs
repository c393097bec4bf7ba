//! A kimage output directory shaped as /work/shared/DESIGN.md's "Output directory" section describes
//! (manifest.json, nodes/<name>/{user-data,meta-data,network-config,seed.img}, layers/<sha256>.tar.gz),
//! built from a shipped profile with kimage's real user-data, meta-data and network-config generators.
//! `kimage build` is not wired yet; once it is, the examples' tests should run it instead of this.

#![allow(dead_code)]

#[path = "../support/tools.rs"]
mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kimage::cli::TEMPLATES;
use kimage::model::Cluster;
use kimage::profile;
use kimage::userdata::{self, BootInputs, LayerRef};
use sha2::{Digest, Sha256};

pub struct Out {
    _tmp: tempfile::TempDir,
    /// The output directory (what `--out` names).
    pub dir: PathBuf,
    pub manifest: serde_json::Value,
    /// Every node's user-data, by node name.
    pub user_data: BTreeMap<String, String>,
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn tar(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn file_entry(out: &Path, rel: &str, data: &[u8]) -> serde_json::Value {
    let path = out.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, data).unwrap();
    serde_json::json!({"path": rel, "sha256": sha256(data), "bytes": data.len()})
}

/// Builds out/ for the shipped template `template`, with `layers` (`from`, `baseURL`) overriding the
/// profile's `layers:` when given.
pub fn build(template: &str, layers: Option<(&str, &str)>) -> Out {
    let text = TEMPLATES
        .iter()
        .find(|(n, _)| *n == template)
        .unwrap_or_else(|| panic!("no shipped template {template}"))
        .1;
    let text = match layers {
        None => text.to_string(),
        Some((from, base)) => {
            let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
            v["layers"] =
                serde_yaml_ng::from_str(&format!("{{from: {from}, baseURL: '{base}'}}")).unwrap();
            serde_yaml_ng::to_string(&v).unwrap()
        }
    };
    let loaded = profile::load_str(&text, template).expect("shipped profile loads");
    let c = Cluster::resolve(&loaded.profile);
    let plan = kimage::plan::plan(&c).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut nodes = serde_json::Map::new();
    let mut user_data = BTreeMap::new();
    for (n, np) in c.nodes.iter().zip(&plan.nodes) {
        // Three layers, as kimage will share them: one for every node, one per role, one per node.
        let contents = [
            ("base".to_string(), format!("cluster {}\n", c.name)),
            (
                format!("config-{}", n.role.as_str()),
                format!("role {}\n", n.role.as_str()),
            ),
            (format!("node-{}", n.name), format!("node {}\n", n.name)),
        ];
        let mut refs = Vec::new();
        let mut layer_entries = Vec::new();
        for (name, body) in &contents {
            let gz = userdata::gzip(&tar(&[("etc/kimage/layer", body.as_bytes(), 0o644)]));
            let sha = sha256(&gz);
            layer_entries.push(file_entry(&out, &format!("layers/{sha}.tar.gz"), &gz));
            refs.push(LayerRef {
                name: name.clone(),
                sha256: sha,
                bytes: gz.len() as u64,
            });
        }
        // The secret files the plan gives this node, with stand-in content of a realistic size.
        let secret_files: Vec<(String, Vec<u8>)> = np
            .files
            .iter()
            .filter(|f| f.secret)
            .map(|f| (f.path.trim_start_matches('/').to_string(), vec![b'k'; 240]))
            .collect();
        let secrets = userdata::gzip(&tar(&secret_files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice(), 0o600))
            .collect::<Vec<_>>()));
        let ud = userdata::user_data(
            &c,
            n,
            &BootInputs {
                layers: &refs,
                secrets_gz: if secret_files.is_empty() {
                    &[]
                } else {
                    &secrets
                },
                start: "enable-now:kubelet.service",
            },
        );
        let nc = userdata::network_config(&c, n);
        let digests: Vec<String> = refs
            .iter()
            .map(|r| r.sha256.clone())
            .chain([sha256(ud.as_bytes()), sha256(nc.as_bytes())])
            .collect();
        let digest_refs: Vec<&str> = digests.iter().map(String::as_str).collect();
        let md = userdata::meta_data(n, &userdata::instance_id(n, &digest_refs));

        let dir = format!("nodes/{}", n.name);
        let ud_e = file_entry(&out, &format!("{dir}/user-data"), ud.as_bytes());
        let md_e = file_entry(&out, &format!("{dir}/meta-data"), md.as_bytes());
        let nc_e = file_entry(&out, &format!("{dir}/network-config"), nc.as_bytes());
        let seed = seed_image(&out, &dir, &refs);
        let seed_e = file_entry(&out, &format!("{dir}/seed.img"), &seed);
        nodes.insert(
            n.name.to_string(),
            serde_json::json!({
                "role": n.role.as_str(),
                "address": n.address.to_string(),
                "user_data": ud_e,
                "meta_data": md_e,
                "network_config": nc_e,
                "seed": seed_e,
                "layers": layer_entries,
            }),
        );
        user_data.insert(n.name.to_string(), ud);
    }
    let manifest = serde_json::json!({
        "kimage": env!("CARGO_PKG_VERSION"),
        "cluster": c.name,
        "nodes": nodes,
    });
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    Out {
        _tmp: tmp,
        dir: out,
        manifest,
        user_data,
    }
}

/// A NoCloud seed (ISO 9660, label cidata) with the node's three documents and its layers, made by
/// genisoimage the way a person would.
fn seed_image(out: &Path, dir: &str, layers: &[LayerRef]) -> Vec<u8> {
    let img = out.join(dir).join(".seed-build.iso");
    let mut cmd = Command::new("genisoimage");
    cmd.args(["-quiet", "-V", "cidata", "-J", "-r", "-graft-points", "-o"])
        .arg(&img);
    for doc in ["user-data", "meta-data", "network-config"] {
        cmd.arg(format!("{doc}={}", out.join(dir).join(doc).display()));
    }
    for l in layers {
        cmd.arg(format!(
            "layers/{0}.tar.gz={1}",
            l.sha256,
            out.join(format!("layers/{}.tar.gz", l.sha256)).display()
        ));
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("genisoimage is needed to build the NoCloud seed (Debian: apt-get install genisoimage): {e}")
    });
    assert!(status.success(), "genisoimage failed");
    let bytes = std::fs::read(&img).unwrap();
    std::fs::remove_file(&img).unwrap();
    bytes
}

/// A command running `name`; a missing program fails the test, naming the Debian package that provides it.
pub fn tool(name: &str) -> Command {
    Command::new(tools::require(name))
}
