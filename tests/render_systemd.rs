//! Every rendered unit passes `systemd-analyze verify` in a root holding the node's files.
//!
//! The root gets a copy of this host's /usr/lib/systemd/system (the standard targets and services
//! kimage's units order against) and stub executables for every command the units run: the release
//! binaries in /usr/local/bin cannot be had here, and Debian's own commands (haproxy, swapoff, ...) are
//! stubbed after checking they exist on this Debian host, so a unit cannot name a path Debian lacks.

mod render_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use render_support::*;

const VERIFY: &str = "/usr/bin/systemd-analyze";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            let target = std::fs::read_link(e.path()).unwrap();
            std::os::unix::fs::symlink(target, &t).unwrap();
        } else if ft.is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// The programs a unit runs (ExecStart*, ExecReload, ...), without systemd's prefixes (-, +, !, @).
fn commands(unit: &str) -> Vec<String> {
    let parsed = parse_unit(unit);
    parsed
        .get("Service")
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("Exec"))
        .map(|(_, v)| {
            v.trim_start_matches(['-', '+', '!', '@', ':'])
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn verify_node(fixture: &str, node_name: &str) -> usize {
    verify_cluster_node(&cluster(fixture), fixture, node_name)
}

fn verify_cluster_node(c: &kimage::model::Cluster, fixture: &str, node_name: &str) -> usize {
    let n = node(c, node_name);
    let files = render(c, n);
    let tmp = tempdir();
    let root = tmp.path();
    copy_dir(
        Path::new("/usr/lib/systemd/system"),
        &root.join("usr/lib/systemd/system"),
    );
    write_tree(root, &files);
    let mut names = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.path.starts_with("/etc/systemd/system/") && f.path.ends_with(".service"))
    {
        names.push(f.path.rsplit('/').next().unwrap().to_string());
        for cmd in commands(std::str::from_utf8(&f.content).unwrap()) {
            assert!(
                cmd.starts_with('/'),
                "{}: command {cmd} is not an absolute path",
                f.path
            );
            if !cmd.starts_with("/usr/local/bin/") {
                assert!(
                    Path::new(&cmd).exists(),
                    "{}: {cmd} does not exist on this Debian host",
                    f.path
                );
            }
            let stub = root.join(cmd.trim_start_matches('/'));
            std::fs::create_dir_all(stub.parent().unwrap()).unwrap();
            std::fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    assert!(!names.is_empty());
    let (ok, out) = run(Command::new(VERIFY)
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(&names));
    // verify exits 0 on unknown keys and unparsable values and only prints them: any output fails.
    assert!(
        ok && out.trim().is_empty(),
        "{fixture}/{node_name}: systemd-analyze verify {names:?}:\n{out}"
    );
    names.len()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    require(VERIFY);
    let mut total = 0;
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            total += verify_node(fx, n.name.as_str());
        }
    }
    assert!(total >= 40, "only {total} units verified");
}

#[test]
fn the_image_import_unit_passes_systemd_analyze_verify() {
    // images.delivery: embed adds kimage-images.service to every node that runs pods.
    require(VERIFY);
    let profile = std::fs::read_to_string(fixture_path("stacked-haproxy"))
        .unwrap()
        .replace("nodes:\n", "images: {extra: [\"nginx:1.27\"]}\nnodes:\n");
    let c = cluster_from_str(&profile);
    for n in ["master-1", "node-1"] {
        let files = render(&c, node(&c, n));
        assert!(
            files
                .iter()
                .any(|f| f.path == "/etc/systemd/system/kimage-images.service"),
            "{n}"
        );
        verify_cluster_node(&c, "stacked-haproxy + images", n);
    }
}

#[test]
fn verify_catches_a_broken_unit() {
    // The check above must be able to fail: a unit with an unknown key and a bad value is reported.
    require(VERIFY);
    let tmp = tempdir();
    let root = tmp.path();
    copy_dir(
        Path::new("/usr/lib/systemd/system"),
        &root.join("usr/lib/systemd/system"),
    );
    let dir = root.join("etc/systemd/system");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broken.service"),
        "[Service]\nExecStart=/bin/true\nLimitNOFILE=lots\nExecStartPost=/bin/true\nBogus=1\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/true"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        root.join("bin/true"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let (_, out) = run(Command::new(VERIFY)
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("broken.service"));
    assert!(out.contains("Bogus") && out.contains("lots"), "{out}");
}
