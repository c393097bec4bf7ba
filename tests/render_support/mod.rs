//! Shared helpers for the render tests: fixture profiles, writing a node's files into a temp root,
//! parsing systemd units; temp dirs, required tools, openssl and the real programs from the shared
//! support files.
#![allow(dead_code)]

#[path = "../support/openssl.rs"]
pub mod openssl;
#[path = "../support/profiles.rs"]
mod profiles;
#[path = "../support/real.rs"]
pub mod real;
#[path = "../support/tools.rs"]
pub mod tools;

#[allow(unused_imports)] // each test binary uses some
pub use tools::{require, tempdir};

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kimage::model::{Cluster, NodeModel};
use kimage::render::{self, RenderedFile};

pub const FIXTURES: &[&str] = &["stacked-haproxy", "external-nginx"];

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.yaml"))
}

/// A fixture profile, resolved; it must pass `kimage validate` without errors.
pub fn cluster(name: &str) -> Cluster {
    profiles::cluster_file(&fixture_path(name))
}

/// An inline profile, resolved (not validated).
pub fn cluster_from_str(text: &str) -> Cluster {
    profiles::resolve(text)
}

pub fn node<'a>(c: &'a Cluster, name: &str) -> &'a NodeModel {
    c.node(name).unwrap_or_else(|| panic!("no node {name}"))
}

pub fn render(c: &Cluster, n: &NodeModel) -> Vec<RenderedFile> {
    render::render_node(c, n).unwrap_or_else(|e| panic!("rendering {}: {e}", n.name))
}

pub fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no rendered file {path}"))
}

pub fn text(files: &[RenderedFile], path: &str) -> String {
    String::from_utf8(file(files, path).content.to_vec()).expect("utf-8")
}

/// Writes rendered files below `root` with their modes.
pub fn write_tree(root: &Path, files: &[RenderedFile]) {
    for f in files {
        let p = root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
    }
}

pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

#[path = "../support/unit_text.rs"]
mod unit_text;
#[allow(unused_imports)] // not every test binary parses units
pub use unit_text::parse_unit;

pub fn unit_values(
    unit: &BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> Vec<String> {
    unit.get(section)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// Splits an ExecStart command line (no quoting is used in kimage's kube/etcd units).
pub fn exec_args(unit: &BTreeMap<String, Vec<(String, String)>>) -> Vec<String> {
    let exec = unit_values(unit, "Service", "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart expected");
    exec[0].split_whitespace().map(str::to_string).collect()
}

/// `--flag=value` arguments of a command line as a map (flags without `=` map to "true").
pub fn flags(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .skip(1)
        .map(|a| {
            assert!(a.starts_with("--"), "argument `{a}` is not a --flag");
            match a.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (a.clone(), "true".to_string()),
            }
        })
        .collect()
}

/// `KEY=value` lines of an EnvironmentFile.
pub fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("env line without '=': {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}
