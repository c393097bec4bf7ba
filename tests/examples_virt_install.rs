//! examples/virt-install/create-vms.sh: passes `bash -n` and shellcheck, uses only options
//! `virt-install --help` lists (and sub-options `virt-install --OPT=?` lists), and virt-install itself
//! accepts every command it builds: the script runs against libvirt's test driver (test:///default)
//! with --print-xml, on an out/ directory of DESIGN.md's shape, in both modes.

mod examples_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use examples_support::{build, tool};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/virt-install/create-vms.sh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn script_passes_bash_n_and_shellcheck() {
    let o = tool("bash").arg("-n").arg(script()).output().unwrap();
    assert!(o.status.success(), "bash -n: {}", text(&o.stderr));
    let o = tool("shellcheck").arg(script()).output().unwrap();
    assert!(
        o.status.success(),
        "shellcheck: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

struct Run {
    _tmp: tempfile::TempDir,
    out: examples_support::Out,
    pool: PathBuf,
    result: Output,
}

fn run(mode: &str, extra: &[&str]) -> Run {
    let out = build("002-external-etcd-nginx", None);
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in for the cloud image: nothing reads it when virt-install only prints the XML.
    let base = tmp.path().join("base.qcow2");
    std::fs::write(&base, b"QFI\xfb").unwrap();
    let pool = tmp.path().join("pool");
    tool("virt-install");
    let result = tool("bash")
        .arg(script())
        .arg("--out")
        .arg(&out.dir)
        .arg("--base-image")
        .arg(&base)
        .arg("--pool-dir")
        .arg(&pool)
        .args(["--connect", "test:///default", "--mode", mode])
        .args(extra)
        // virt-install keeps its cloud-init ISO below $HOME; keep it inside the test's directory.
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    Run {
        _tmp: tmp,
        out,
        pool,
        result,
    }
}

fn nodes(r: &Run) -> Vec<(String, serde_json::Value)> {
    r.out.manifest["nodes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn virt_install_accepts_every_command_in_seed_mode() {
    let r = run(
        "seed",
        &["--print-xml", "--mac", "etcd-0=52:54:00:00:00:08"],
    );
    let stdout = text(&r.result.stdout);
    assert!(
        r.result.status.success(),
        "create-vms.sh failed: {}",
        text(&r.result.stderr)
    );
    let cluster = r.out.manifest["cluster"].as_str().unwrap();
    for (name, node) in nodes(&r) {
        assert!(
            stdout.contains(&format!("<name>{cluster}-{name}</name>")),
            "no domain for {name}"
        );
        let sha = node["seed"]["sha256"].as_str().unwrap();
        let copy = r
            .pool
            .join(format!("{cluster}-{name}-seed-{}.img", &sha[..12]));
        assert!(
            stdout.contains(&format!("<source file=\"{}\"/>", copy.display())),
            "{name}'s seed is not attached"
        );
        // The copy is the seed itself, readable only by its owner (it carries the node's keys).
        let bytes = std::fs::read(&copy).unwrap();
        assert_eq!(hex_sha(&bytes), sha);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(stdout.matches("<readonly/>").count(), nodes(&r).len());
    assert!(stdout.contains("<mac address=\"52:54:00:00:00:08\"/>"));
    assert!(stdout.contains("<console type=\"pty\">"));
}

#[test]
fn virt_install_accepts_every_command_in_cloud_init_mode() {
    let r = run("cloud-init", &["--print-xml", "--node", "master-1"]);
    assert!(
        r.result.status.success(),
        "create-vms.sh failed: {}",
        text(&r.result.stderr)
    );
    let stdout = text(&r.result.stdout);
    let cluster = r.out.manifest["cluster"].as_str().unwrap();
    assert!(stdout.contains(&format!("<name>{cluster}-master-1</name>")));
    assert!(!stdout.contains(&format!("<name>{cluster}-node-1</name>")));
    // virt-install attached its NoCloud disk and told cloud-init where to look.
    assert!(stdout.contains("device=\"cdrom\""));
    assert!(stdout.contains("ds=nocloud"));
}

#[test]
fn script_refuses_artifacts_that_do_not_match_the_manifest() {
    let r = run("seed", &["--dry-run"]);
    assert!(r.result.status.success(), "{}", text(&r.result.stderr));
    // Tamper with one seed after the manifest was written.
    let seed = r.out.dir.join("nodes/node-1/seed.img");
    let mut b = std::fs::read(&seed).unwrap();
    b[40000] ^= 1;
    std::fs::write(&seed, b).unwrap();
    let o = tool("bash")
        .arg(script())
        .arg("--out")
        .arg(&r.out.dir)
        .arg("--base-image")
        .arg(r.pool.parent().unwrap().join("base.qcow2"))
        .arg("--pool-dir")
        .arg(&r.pool)
        .args(["--connect", "test:///default", "--dry-run"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("nodes/node-1/seed.img: sha256"),
        "{}",
        text(&o.stderr)
    );
}

fn hex_sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// `--opt` words and `--opt value` pairs of every virt-install command the script prints.
fn commands(dry_run_stdout: &str) -> Vec<Vec<String>> {
    dry_run_stdout
        .lines()
        .filter(|l| l.starts_with("virt-install "))
        .map(|l| {
            // The script prints with printf %q; the values it quotes have no spaces.
            l.split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| w.replace('\\', ""))
                .collect()
        })
        .collect()
}

#[test]
fn options_are_ones_virt_install_help_lists() {
    let help = tool("virt-install").arg("--help").output().unwrap();
    let help = text(&help.stdout);
    let mut seen = BTreeSet::new();
    let mut sub_options: std::collections::HashMap<String, String> = Default::default();
    for mode in ["seed", "cloud-init"] {
        let r = run(mode, &["--dry-run"]);
        assert!(r.result.status.success(), "{}", text(&r.result.stderr));
        let cmds = commands(&text(&r.result.stdout));
        assert_eq!(cmds.len(), nodes(&r).len(), "one command per node");
        for cmd in cmds {
            for (i, w) in cmd.iter().enumerate() {
                let Some(opt) = w.strip_prefix("--") else {
                    continue;
                };
                assert!(
                    help.contains(&format!("--{opt}")),
                    "virt-install --help does not list --{opt}"
                );
                // Sub-options (key=value,...) must be ones `virt-install --opt=?` lists.
                if let Some(value) = cmd.get(i + 1).filter(|v| v.contains('=')) {
                    let subs = sub_options.entry(opt.to_string()).or_insert_with(|| {
                        let o = tool("virt-install")
                            .arg(format!("--{opt}=?"))
                            .output()
                            .unwrap();
                        text(&o.stdout)
                    });
                    for kv in value.split(',') {
                        let key = kv.split('=').next().unwrap();
                        if kv.contains('=') {
                            assert!(
                                subs.lines().any(|l| l.trim() == key),
                                "virt-install --{opt}=? does not list `{key}`"
                            );
                        }
                    }
                }
                seen.insert(opt.to_string());
            }
        }
    }
    for must in ["import", "disk", "cloud-init", "network", "os-variant"] {
        assert!(seen.contains(must), "no command uses --{must}: {seen:?}");
    }
}
