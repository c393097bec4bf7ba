//! `kimage plan --output json` lists every file `kimage unpack` writes for a node, units and binaries
//! included, with the same mode and owner: the plan is the build's own file list, not a description of
//! it. Checked for every node of every shipped profile (binaries fetched at boot: the plan lists them,
//! unpack cannot write them), and for a profile whose binaries are embedded from a fetched cache (the
//! plan's `DIR/*` entries stand for every program of an archive directory).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::http::TestServer;
use support::releases::{FakeUpstream, Versions, profile_yaml};

const KIMAGE: &str = env!("CARGO_BIN_EXE_kimage");

fn kimage(dir: &Path, cache: &Path, args: &[&str]) -> String {
    let out = Command::new(KIMAGE)
        .args(args)
        .current_dir(dir)
        .env("KIMAGE_CACHE", cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kimage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Regular files under `root` as the node sees them: path → (mode, uid:gid).
fn unpacked(root: &Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    format!("/{}", p.strip_prefix(root).unwrap().display()),
                    (
                        format!("{:04o}", m.mode() & 0o7777),
                        format!("{}:{}", m.uid(), m.gid()),
                    ),
                );
            }
        }
    }
    out
}

/// Compares one node's plan with what unpack wrote; `fetched` files are not written by unpack.
fn compare(name: &str, plan: &serde_json::Value, tree: &BTreeMap<String, (String, String)>) {
    let mut exact: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut globs: Vec<(String, String, String)> = Vec::new();
    for f in plan["files"].as_array().unwrap() {
        if f["carrier"] == "fetched-at-boot" {
            continue;
        }
        let path = f["path"].as_str().unwrap().to_string();
        let mo = (
            f["mode"].as_str().unwrap().to_string(),
            f["owner"].as_str().unwrap().to_string(),
        );
        match path.strip_suffix('*') {
            Some(dir) => globs.push((dir.to_string(), mo.0, mo.1)),
            None => {
                exact.insert(path, mo);
            }
        }
    }
    let mut problems = Vec::new();
    for (path, mo) in tree {
        match exact.get(path) {
            Some(want) if want == mo => {}
            Some(want) => problems.push(format!("{path}: unpack {mo:?}, plan {want:?}")),
            None => match globs.iter().find(|(dir, ..)| {
                path.strip_prefix(dir.as_str())
                    .is_some_and(|rest| !rest.contains('/'))
            }) {
                Some((_, m, o)) if (m, o) == (&mo.0, &mo.1) => {}
                Some((dir, m, o)) => {
                    problems.push(format!("{path}: unpack {mo:?}, plan {dir}* ({m}, {o})"))
                }
                None => problems.push(format!("{path}: written by unpack, not in the plan")),
            },
        }
    }
    for path in exact.keys() {
        if !tree.contains_key(path) {
            problems.push(format!("{path}: in the plan, not written by unpack"));
        }
    }
    for (dir, ..) in &globs {
        if !tree.keys().any(|p| p.starts_with(dir.as_str())) {
            problems.push(format!("{dir}*: in the plan, unpack wrote nothing there"));
        }
    }
    assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
}

fn check_every_node(dir: &Path, cache: &Path) -> usize {
    let plan: serde_json::Value =
        serde_json::from_str(&kimage(dir, cache, &["plan", "--output", "json"])).unwrap();
    let mut n = 0;
    for node in plan["nodes"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        let into: PathBuf = dir.join("unpacked").join(name);
        kimage(
            dir,
            cache,
            &["unpack", "--role", name, "--into", into.to_str().unwrap()],
        );
        compare(name, node, &unpacked(&into));
        n += 1;
    }
    n
}

#[test]
fn plan_lists_what_unpack_writes_for_every_shipped_node() {
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut checked = 0;
    for e in std::fs::read_dir(profiles).unwrap() {
        let src = e.unwrap().path();
        if src.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut text = std::fs::read_to_string(&src).unwrap();
        if !text.lines().any(|l| l.starts_with("binaries:")) {
            text.push_str("binaries:\n  source: fetch-at-boot\n");
        }
        std::fs::write(tmp.path().join("cluster.yaml"), text).unwrap();
        let cache = tmp.path().join("no-cache");
        kimage(tmp.path(), &cache, &["build", "--all"]);
        checked += check_every_node(tmp.path(), &cache);
    }
    assert!(checked >= 20, "only {checked} nodes checked");
}

#[test]
fn plan_lists_embedded_binaries_as_unpack_writes_them() {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "amd64");
    let srv = TestServer::start();
    up.serve(&srv, "/m");
    let tmp = tempfile::tempdir().unwrap();
    // The shared release profile has an etcd node: external etcd makes it a valid cluster.
    let text = profile_yaml(&v, "amd64", &format!("  mirror: {}/m", srv.url()))
        .replace("topology: stacked", "topology: external")
        .replace("nodes:", "network: {gateway: 192.168.31.1}\nnodes:");
    std::fs::write(tmp.path().join("cluster.yaml"), text).unwrap();
    let cache = tmp.path().join("cache");
    kimage(tmp.path(), &cache, &["lock"]);
    kimage(tmp.path(), &cache, &["fetch"]);
    kimage(tmp.path(), &cache, &["build", "--all"]);
    assert_eq!(check_every_node(tmp.path(), &cache), 5);
}
