//! A node's artifacts as the machine gets them, with real tools: the layers extracted by GNU tar in the
//! order the manifest lists them, then the secrets tarball the user-data carries (gzip + base64).

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value as Json;
use serde_yaml_ng::Value;

fn untar(archive: &Path, root: &Path) {
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(root)
        .status()
        .unwrap();
    assert!(st.success(), "tar -xzf {}", archive.display());
}

/// Writes the node's filesystem under `root` from `out` (the build's output directory) and its manifest
/// entry; returns the parsed user-data.
pub fn materialize(out: &Path, entry: &Json, root: &Path) -> Value {
    for l in entry["layers"].as_array().unwrap() {
        untar(&out.join(l["path"].as_str().unwrap()), root);
    }
    let ud: Value = serde_yaml_ng::from_slice(
        &std::fs::read(out.join(entry["user_data"]["path"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    extract_secrets(&ud, root);
    ud
}

/// Extracts the secrets tarball a user-data carries (a node's or a worker pool's) under `root`, with
/// GNU tar as the node's apply step does. A load balancer's carries none.
pub fn extract_secrets(ud: &Value, root: &Path) {
    let secrets = ud["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/run/kimage/secrets.tar");
    // A load balancer carries no secrets at all.
    if let Some(secrets) = secrets {
        assert_eq!(secrets["permissions"], "0600");
        let gz = STANDARD
            .decode(secrets["content"].as_str().unwrap())
            .unwrap();
        let f = root.join("secrets.tar.gz");
        std::fs::write(&f, gz).unwrap();
        untar(&f, root);
        std::fs::remove_file(&f).unwrap();
    }
}
