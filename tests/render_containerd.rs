//! containerd's config.toml in the dialect of the profile's containerd release: version 3 for 2.x
//! (`bin_dirs` from 2.1), version 2 for 1.6/1.7. Debian's containerd 1.6 reads the version-2 file
//! (`containerd config dump` prints the effective settings); the version-3 file is checked as TOML.

mod render_support;

use std::process::Command;

use render_support::*;

const CONTAINERD: &str = "/usr/bin/containerd";

fn config_for(version: &str) -> String {
    let profile = std::fs::read_to_string(fixture_path("stacked-haproxy"))
        .unwrap()
        .replace(
            "nodes:\n",
            &format!("containerRuntime:\n  containerd: {version}\nnodes:\n"),
        );
    let c = cluster_from_str(&profile);
    text(
        &render(&c, node(&c, "node-1")),
        "/etc/containerd/config.toml",
    )
}

fn get<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = t;
    for p in parents {
        cur = cur.get(*p)?.as_table()?;
    }
    cur.get(*last)
}

#[test]
fn containerd_1_6_reads_the_version_2_config() {
    require(CONTAINERD);
    let cfg = config_for("v1.6.20");
    let tmp = tempdir();
    let path = tmp.path().join("config.toml");
    std::fs::write(&path, &cfg).unwrap();
    let (ok, out) = run(Command::new(CONTAINERD)
        .arg("--config")
        .arg(&path)
        .args(["config", "dump"]));
    assert!(ok, "containerd config dump:\n{out}");
    // The effective configuration, as containerd itself resolved it.
    let dump: toml::Table = out.parse().unwrap_or_else(|e| panic!("{e}\n{out}"));
    let cri = ["plugins", "io.containerd.grpc.v1.cri"];
    let at = |rest: &[&str]| {
        let p: Vec<&str> = cri.iter().chain(rest).copied().collect();
        get(&dump, &p)
            .cloned()
            .unwrap_or_else(|| panic!("{p:?} missing from the dump:\n{out}"))
    };
    assert_eq!(
        at(&["sandbox_image"]).as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    assert_eq!(
        at(&["containerd", "snapshotter"]).as_str(),
        Some("overlayfs")
    );
    let runc = ["containerd", "runtimes", "runc"];
    assert_eq!(
        at(&[runc[0], runc[1], runc[2], "runtime_type"]).as_str(),
        Some("io.containerd.runc.v2")
    );
    assert_eq!(
        at(&[runc[0], runc[1], runc[2], "options", "SystemdCgroup"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        at(&[runc[0], runc[1], runc[2], "options", "BinaryName"]).as_str(),
        Some("/usr/local/bin/runc")
    );
    assert_eq!(at(&["cni", "bin_dir"]).as_str(), Some("/opt/cni/bin"));
    assert_eq!(
        at(&["registry", "config_path"]).as_str(),
        Some("/etc/containerd/certs.d")
    );
    assert_eq!(
        get(&dump, &["grpc", "address"]).and_then(|v| v.as_str()),
        Some("/run/containerd/containerd.sock")
    );

    // The dump shows defaults for settings in the wrong place, so the check above can fail.
    let misplaced = cfg.replace(
        "    sandbox_image = ",
        "    [plugins.'io.containerd.grpc.v1.cri'.x]\n    sandbox_image = ",
    );
    std::fs::write(&path, misplaced).unwrap();
    let (_, out) = run(Command::new(CONTAINERD)
        .arg("--config")
        .arg(&path)
        .args(["config", "dump"]));
    let dump: toml::Table = out.parse().unwrap();
    assert_ne!(
        get(
            &dump,
            &["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"]
        )
        .and_then(|v| v.as_str()),
        Some("registry.k8s.io/pause:3.10.1")
    );
}

#[test]
fn containerd_2_dialects() {
    for (version, bin_dirs) in [("v2.0.5", false), ("v2.2.4", true)] {
        let t: toml::Table = config_for(version).parse().unwrap();
        assert_eq!(t["version"].as_integer(), Some(3), "{version}");
        let cni = get(&t, &["plugins", "io.containerd.cri.v1.runtime", "cni"])
            .unwrap()
            .as_table()
            .unwrap();
        assert_eq!(cni.contains_key("bin_dirs"), bin_dirs, "{version}");
        assert_eq!(cni.contains_key("bin_dir"), !bin_dirs, "{version}");
        assert!(
            get(&t, &["plugins", "io.containerd.grpc.v1.cri"]).is_none(),
            "{version}"
        );
    }
    let t: toml::Table = config_for("v1.7.27").parse().unwrap();
    assert_eq!(t["version"].as_integer(), Some(2));
}

#[test]
fn a_registry_mirror_is_containerds_default_host() {
    // images.delivery: mirror: every registry without its own hosts directory is pulled through the
    // mirror (containerd's `_default` hosts.toml), falling back to the registry itself.
    let profile = std::fs::read_to_string(fixture_path("stacked-haproxy"))
        .unwrap()
        .replace(
            "nodes:\n",
            "images: {delivery: mirror, mirror: \"http://10.0.0.5:5000\"}\nnodes:\n",
        );
    let c = cluster_from_str(&profile);
    let files = render(&c, node(&c, "node-1"));
    let hosts: toml::Table = text(&files, "/etc/containerd/certs.d/_default/hosts.toml")
        .parse()
        .unwrap();
    let host = hosts["host"]["http://10.0.0.5:5000"].as_table().unwrap();
    assert_eq!(
        host["capabilities"].as_array().unwrap(),
        &vec![toml::Value::from("pull"), toml::Value::from("resolve")]
    );
    // The config points containerd's registry hosts at that directory.
    assert!(
        text(&files, "/etc/containerd/config.toml")
            .contains("config_path = '/etc/containerd/certs.d'")
    );
    // Embedded images need no mirror on the node; without `images` nothing changes.
    let plain = cluster("stacked-haproxy");
    assert!(!render(&plain, node(&plain, "node-1")).iter().any(|f| {
        f.path.starts_with("/etc/containerd/certs.d/") || f.path.contains("kimage-images")
    }));
}
