//! Shared helpers for the render tests: fixture profiles, writing a node's files into a temp root,
//! parsing systemd units.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kimage::diag::Severity;
use kimage::model::{Cluster, NodeModel};
use kimage::profile;
use kimage::render::{self, RenderedFile};

pub const FIXTURES: &[&str] = &["stacked-haproxy", "external-nginx"];

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.yaml"))
}

/// A fixture profile, resolved; it must pass `kimage validate` without errors.
pub fn cluster(name: &str) -> Cluster {
    let loaded =
        profile::load_file(&fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e:?}"));
    let c = Cluster::resolve(&loaded.profile);
    let errors: Vec<_> = kimage::validate::check(&loaded, &c)
        .0
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "fixture {name} is invalid: {errors:#?}");
    c
}

pub fn cluster_from_str(text: &str) -> Cluster {
    let loaded =
        profile::load_str(text, "inline.yaml").unwrap_or_else(|e| panic!("inline profile: {e:?}"));
    Cluster::resolve(&loaded.profile)
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

/// A temp dir under target/ (not /tmp: keepalived's script security rejects world-writable parents).
pub fn tempdir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    tempfile::Builder::new()
        .prefix("render-")
        .tempdir_in(base)
        .unwrap()
}

/// Fails the test with a clear message when a Debian tool is missing (CI installs it).
pub fn require_tool(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package `{package}` (CI's .ci/run installs it)"
    );
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
