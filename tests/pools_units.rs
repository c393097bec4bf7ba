//! The units of the bootstrap and pool groups pass `systemd-analyze verify` (with the pools profile the
//! render fixtures lack: the approver timer and service, the pool machine's setup unit and its
//! kubelet), and kimage-pool-setup names a machine and refuses a CA its pool was not built for.
//! Golden snapshots of what a pool machine gets.

mod bootstrap_support;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use bootstrap_support::*;
use kimage::model::NodeModel;

const VERIFY: &str = "/usr/bin/systemd-analyze";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &t).unwrap();
        } else if ft.is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn exec_commands(unit: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.split_once('='))
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

/// Writes the node's rendered files into a root with this host's systemd units and stubs for the
/// programs units run, then verifies `units`.
fn verify(c: &kimage::model::Cluster, n: &NodeModel, units: &[&str]) {
    let tmp = tempdir();
    let root = tmp.path();
    copy_dir(
        Path::new("/usr/lib/systemd/system"),
        &root.join("usr/lib/systemd/system"),
    );
    let files = kimage::render::render_node(c, n).unwrap();
    for f in &files {
        let p = root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
    }
    for f in files.iter().filter(|f| f.path.ends_with(".service")) {
        for cmd in exec_commands(std::str::from_utf8(&f.content).unwrap()) {
            let stub = root.join(cmd.trim_start_matches('/'));
            if !stub.exists() {
                assert!(
                    cmd.starts_with("/usr/local/bin/") || Path::new(&cmd).exists(),
                    "{}: {cmd} is neither kimage's nor on this Debian host",
                    f.path
                );
                write_exec(&stub, "#!/bin/sh\nexit 0\n");
            }
        }
    }
    for u in units {
        assert!(
            root.join("etc/systemd/system").join(u).exists(),
            "{}: no {u}",
            n.name
        );
    }
    let out = Command::new(VERIFY)
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(units)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "{}: systemd-analyze verify {units:?}:\n{text}",
        n.name
    );
}

#[test]
fn bootstrap_and_pool_units_pass_systemd_analyze_verify() {
    require("systemd-analyze");
    let c = pools_cluster();
    verify(
        &c,
        c.node("master-1").unwrap(),
        &[
            "kimage-bootstrap.service",
            "kimage-csr-approver.service",
            "kimage-csr-approver.timer",
        ],
    );
    verify(
        &c,
        c.node("master-2").unwrap(),
        &[
            "kimage-bootstrap.service",
            "kimage-csr-approver.service",
            "kimage-csr-approver.timer",
        ],
    );
    for p in &c.pools {
        verify(
            &c,
            &p.node,
            &[
                "kimage-pool-setup.service",
                "kubelet.service",
                "kube-proxy.service",
                "containerd.service",
            ],
        );
    }
}

#[test]
fn verify_catches_a_broken_timer() {
    require("systemd-analyze");
    let tmp = tempdir();
    let dir = tmp.path().join("etc/systemd/system");
    std::fs::create_dir_all(&dir).unwrap();
    // A timer whose service does not exist and a key systemd does not know.
    std::fs::write(
        dir.join("x.timer"),
        "[Timer]\nOnUnitActiveSec=30s\nOnEverySecond=yes\n[Install]\nWantedBy=timers.target\n",
    )
    .unwrap();
    let out = Command::new(VERIFY)
        .arg("verify")
        .arg(format!("--root={}", tmp.path().display()))
        .arg("x.timer")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() || !text.trim().is_empty(), "{text}");
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
}

/// A pool machine's kimage-pool-setup with fake hostname/hostnamectl on PATH (they record what they
/// are asked) and the pool's real CA and pool.env.
fn setup(hostname: &str, tamper_hash: bool) -> (Setup, std::process::Output, String) {
    let c = pools_cluster();
    let tmp = tempdir();
    let root = tmp.path().to_path_buf();
    let m = pki(&c, &root);
    let pool = c.pool("gpu").unwrap();
    let script = kimage::render::render_node(&c, &pool.node)
        .unwrap()
        .into_iter()
        .find(|f| f.path == "/usr/local/bin/kimage-pool-setup")
        .unwrap();
    write_exec(
        &root.join("kimage-pool-setup"),
        std::str::from_utf8(&script.content).unwrap(),
    );
    std::fs::write(root.join("ca.crt"), m.cert_pem("ca").unwrap()).unwrap();
    let hash = if tamper_hash {
        format!("sha256:{}", "0".repeat(64))
    } else {
        m.ca_cert_hash().unwrap()
    };
    std::fs::write(
        root.join("pool.env"),
        format!("KIMAGE_POOL='gpu'\nKIMAGE_CA_CERT_HASH='{hash}'\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("machine-id"),
        "3f2a9c0d1e8b4a7f9c6d5e4f3a2b1c0d\n",
    )
    .unwrap();
    write_exec(
        &root.join("bin/hostname"),
        &format!(
            "#!/bin/sh\n[ $# -eq 0 ] && echo '{hostname}' && exit 0\necho \"hostname $*\" >> \"{}\"\n",
            root.join("log").display()
        ),
    );
    write_exec(
        &root.join("bin/hostnamectl"),
        &format!(
            "#!/bin/sh\necho \"hostnamectl $*\" >> \"{}\"\n",
            root.join("log").display()
        ),
    );
    let out = Command::new(root.join("kimage-pool-setup"))
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", root.join("bin").display()),
        )
        .env("KIMAGE_POOL_ENV", root.join("pool.env"))
        .env("KIMAGE_CA_FILE", root.join("ca.crt"))
        .env("KIMAGE_MACHINE_ID_FILE", root.join("machine-id"))
        .output()
        .unwrap();
    let log = std::fs::read_to_string(root.join("log")).unwrap_or_default();
    (Setup { _tmp: tmp, root }, out, log)
}

#[test]
fn pool_setup_names_machines_and_pins_the_ca() {
    require("openssl");
    // A shared NoCloud seed leaves the image's hostname: the machine gets <pool>-<machine id>.
    for default in ["localhost", "localhost.localdomain", "gpu", ""] {
        let (_s, out, log) = setup(default, false);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{default}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            log, "hostnamectl set-hostname gpu-3f2a9c0d1e\n",
            "{default}"
        );
        assert!(text.contains("cluster CA matches sha256:"), "{text}");
    }
    // A platform-given hostname is the Node name as it is.
    let (_s, out, log) = setup("ip-10-0-3-17", false);
    assert!(out.status.success());
    assert_eq!(log, "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hostname ip-10-0-3-17 (the Node name)"));
    // A CA the pool was not built for stops the machine before its kubelet.
    let (s, out, _) = setup("ip-10-0-3-17", true);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().last().unwrap().starts_with(&format!(
            "kimage-pool-setup: ERROR: {} has public key hash sha256:",
            s.root.join("ca.crt").display()
        )) && text.contains("the pool's user-data pins sha256:0000"),
        "{text}"
    );
}

#[test]
fn pool_setup_passes_shellcheck() {
    require("shellcheck");
    let c = pools_cluster();
    let tmp = tempdir();
    let f = kimage::render::render_node(&c, &c.pool("gpu").unwrap().node)
        .unwrap()
        .into_iter()
        .find(|f| f.path == "/usr/local/bin/kimage-pool-setup")
        .unwrap();
    let p = tmp.path().join("kimage-pool-setup");
    std::fs::write(&p, &f.content).unwrap();
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn pool_machine_files_match_snapshots() {
    let c = pools_cluster();
    for p in &c.pools {
        let mut out = String::new();
        writeln!(out, "# start plan").unwrap();
        for s in kimage::render::start_plan(&c, &p.node).unwrap() {
            writeln!(out, "{:?} {}", s.action, s.unit).unwrap();
        }
        writeln!(out, "\n# pki files").unwrap();
        for f in kimage::pki::spec::pki_files(&c, &p.node) {
            writeln!(out, "{} {:04o} {:?}", f.path, f.mode, f.source).unwrap();
        }
        for f in kimage::render::render_node(&c, &p.node).unwrap() {
            writeln!(
                out,
                "\n# {} {:04o} layer={} scope={:?} from={}",
                f.path, f.mode, f.layer, f.scope, f.source
            )
            .unwrap();
            out.push_str(std::str::from_utf8(&f.content).unwrap());
        }
        insta::assert_snapshot!(format!("pool-{}", p.name), out);
    }
}
