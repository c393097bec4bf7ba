//! out/ defends itself (issue: "nothing lost, nothing forged"): each test is named after what a
//! hostile run did to the previous kimage, and judges the result with `kimage verify` (every file
//! against manifest.json) and, independently, with sha256sum.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KIMAGE: &str = env!("CARGO_BIN_EXE_kimage");

const PROFILE: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: guard
binaries: {source: fetch-at-boot}
network: {gateway: 10.0.0.1}
nodes:
  - {name: cp-1, role: control-plane, address: 10.0.0.10}
  - {name: w-1, role: worker, address: 10.0.0.21}
";

fn kimage(dir: &Path, args: &[&str]) -> Output {
    Command::new(KIMAGE)
        .args(args)
        .current_dir(dir)
        .env("KIMAGE_CACHE", dir.join("cache"))
        .env_remove("KIMAGE_PROFILE")
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.yaml"), PROFILE).unwrap();
    ok(&kimage(tmp.path(), &["build", "--all"]));
    tmp
}

/// Every file manifest.json names, with the sha256 it records.
fn recorded(out: &Path) -> Vec<(PathBuf, String)> {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let mut v = Vec::new();
    let mut visit = |a: &serde_json::Value| {
        if let (Some(p), Some(h)) = (a["path"].as_str(), a["sha256"].as_str()) {
            v.push((out.join(p), h.to_string()));
        }
    };
    for n in m["nodes"].as_object().unwrap().values() {
        for k in ["user_data", "meta_data", "network_config", "seed"] {
            visit(&n[k]);
        }
        for l in n["layers"].as_array().unwrap() {
            visit(l);
        }
    }
    v.sort();
    v.dedup();
    assert!(v.len() > 5, "{v:?}");
    v
}

/// sha256sum, not kimage, says whether out/ holds what its manifest says.
fn matches_manifest(out: &Path) -> Result<(), String> {
    for (path, want) in recorded(out) {
        let o = Command::new("sha256sum").arg(&path).output().unwrap();
        let got = String::from_utf8_lossy(&o.stdout);
        if !o.status.success() || !got.starts_with(&want) {
            return Err(format!("{}: sha256sum says {got}", path.display()));
        }
    }
    Ok(())
}

fn flip_byte(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x55]).unwrap();
}

#[test]
fn tampered_seed_layer_and_user_data_were_kept_by_the_next_build() {
    let tmp = project();
    let out = tmp.path().join("out");
    ok(&kimage(tmp.path(), &["verify"]));
    let layer = recorded(&out)
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("/layers/"))
        .unwrap()
        .0;
    // Seeds are as small as their content: a byte in the middle, wherever that is.
    let seed = out.join("nodes/w-1/seed.img");
    flip_byte(&seed, std::fs::metadata(&seed).unwrap().len() / 2);
    flip_byte(&layer, 100);
    flip_byte(&out.join("nodes/cp-1/user-data"), 10);
    // The companion: the tampering is seen, by sha256sum and by kimage verify (exit 4, each named).
    assert!(matches_manifest(&out).is_err());
    let v = kimage(tmp.path(), &["verify"]);
    assert_eq!(v.status.code(), Some(4));
    let err = String::from_utf8_lossy(&v.stderr);
    for f in ["nodes/w-1/seed.img", "nodes/cp-1/user-data", "layers/"] {
        assert!(err.contains(f), "{f} not named:\n{err}");
    }
    ok(&kimage(tmp.path(), &["build", "--all"]));
    matches_manifest(&out).unwrap();
    ok(&kimage(tmp.path(), &["verify"]));
}

#[test]
fn a_linked_nodes_or_layers_directory_made_build_delete_files_elsewhere() {
    for sub in ["nodes", "layers"] {
        let tmp = project();
        let out = tmp.path().join("out");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("precious"), "keep me").unwrap();
        std::fs::create_dir(elsewhere.join("also-precious")).unwrap();
        std::fs::remove_dir_all(out.join(sub)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join(sub)).unwrap();
        let o = kimage(tmp.path(), &["build", "--all"]);
        assert_eq!(o.status.code(), Some(4), "{sub}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("out/{sub}: is a symbolic link")),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(elsewhere.join("precious")).unwrap(),
            "keep me"
        );
        assert!(elsewhere.join("also-precious").is_dir());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 2, "{sub}");
    }
}

#[test]
fn temp_files_of_killed_runs_stayed_in_node_directories() {
    let tmp = project();
    let out = tmp.path().join("out");
    let stale = [
        out.join("nodes/w-1/.kimage-Xy12ab"),
        out.join("layers/.layer-Zz99"),
        out.join(".kimage-q1w2e3"),
    ];
    for s in &stale {
        std::fs::write(s, "user-data of a killed run").unwrap();
    }
    // A partial build (one node) cleans too.
    ok(&kimage(tmp.path(), &["build", "--node", "w-1"]));
    for s in &stale {
        assert!(!s.exists(), "{} left behind", s.display());
    }
}

#[test]
fn a_regular_file_in_out_nodes_made_every_build_fail() {
    let tmp = project();
    let out = tmp.path().join("out");
    std::fs::write(out.join("nodes/stray"), "not a node").unwrap();
    ok(&kimage(tmp.path(), &["build", "--all"]));
    assert!(!out.join("nodes/stray").exists());
    matches_manifest(&out).unwrap();
}

#[test]
fn concurrent_builds_on_one_out_left_it_inconsistent() {
    // Two profiles that differ in one sysctl, built at the same time into the same out/ with the
    // same state, twenty times: both succeed (one waits for the other) and out/ always matches its
    // manifest afterwards.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("a.yaml"), PROFILE).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        format!("{PROFILE}os: {{sysctl: {{vm.swappiness: \"5\"}}}}\n"),
    )
    .unwrap();
    let spawn = |p: &str| {
        Command::new(KIMAGE)
            .args(["--profile", p, "build", "--all", "--out", "out"])
            .current_dir(dir)
            .env("KIMAGE_CACHE", dir.join("cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The state exists first: two runs that both issue a new PKI at once are refused by the state's own
    // check (one exits 3, "changed while this run prepared its build", writing nothing).
    let first = spawn("a.yaml").wait_with_output().unwrap();
    assert!(first.status.success(), "{first:?}");
    for round in 0..20 {
        let (a, b) = (spawn("a.yaml"), spawn("b.yaml"));
        for c in [a, b] {
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        matches_manifest(&dir.join("out")).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let v = Command::new(KIMAGE)
            .args(["verify", "--out", "out"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(v.status.success(), "round {round}: {:?}", v);
    }
}

#[test]
fn a_deleted_state_json_gave_the_built_cluster_a_new_ca() {
    let tmp = project();
    let state = tmp.path().join("kimage-state/pki/state.json");
    let before = std::fs::read(&state).unwrap();
    std::fs::remove_file(&state).unwrap();
    for args in [&["build", "--all"][..], &["pki"][..]] {
        let o = kimage(tmp.path(), args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("kimage-state/pki/state.json is gone") && err.contains("--new-cluster"),
            "{err}"
        );
        assert!(!state.exists(), "{args:?} wrote a new state");
    }
    // Restoring it is the fix; starting over is explicit.
    std::fs::write(&state, &before).unwrap();
    ok(&kimage(tmp.path(), &["build", "--all"]));
    std::fs::remove_file(&state).unwrap();
    ok(&kimage(tmp.path(), &["build", "--all", "--new-cluster"]));
    assert_ne!(std::fs::read(&state).unwrap(), before);
}

#[test]
fn a_deleted_cluster_json_was_recreated_silently() {
    // Recreated, a fourth stacked member added later would get a new initial cluster instead of
    // joining the formed one (a split cluster).
    let tmp = project();
    let record = tmp.path().join("kimage-state/cluster.json");
    std::fs::remove_file(&record).unwrap();
    let o = kimage(tmp.path(), &["build", "--all"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("kimage-state/cluster.json is gone"),
        "{o:?}"
    );
    assert!(!record.exists());
}

#[test]
fn build_waited_on_a_held_lock_without_saying_so() {
    let tmp = project();
    for (lock, says) in [
        (
            "kimage-state/pki/lock",
            "waiting for another kimage run to release",
        ),
        ("out/.kimage.lock", "waiting for another kimage build"),
    ] {
        // flock(1) holds the same kind of lock kimage takes, for two seconds.
        let mut holder = Command::new("flock")
            .args([lock, "sleep", "2"])
            .current_dir(tmp.path())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let o = kimage(tmp.path(), &["build", "--all"]);
        holder.wait().unwrap();
        ok(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{lock}: {err}");
    }
}

/// A small deterministic generator (no dependency, same sequence every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn kill_loop_over_build_pki_and_renew_leaves_out_and_state_valid() {
    // 100 SIGKILLs (KIMAGE_KILL_ROUNDS for another number) at varying moments of build, pki and pki renew
    // --all (about 0.3 s of work each in a debug build); after each, a rerun of build succeeds and
    // out/ matches its manifest. Between kills the profile alternates between two sysctl values, so
    // reruns change files.
    let rounds: usize = std::env::var("KIMAGE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tmp = project();
    let dir = tmp.path();
    let mut rng = Lcg(7);
    let profiles = [
        PROFILE.to_string(),
        format!("{PROFILE}os: {{sysctl: {{vm.swappiness: \"5\"}}}}\n"),
    ];
    // Kill moments spread over each command's own run time (a release build runs `pki` in a few
    // milliseconds, a debug build in a few hundred).
    let took = |args: &[&str]| {
        let t = std::time::Instant::now();
        ok(&kimage(dir, args));
        (t.elapsed().as_millis() as u64).max(2)
    };
    let durations = [
        took(&["build", "--all"]),
        took(&["pki"]),
        took(&["pki", "renew", "--all"]),
    ];
    ok(&kimage(dir, &["build", "--all"]));
    let mut killed_mid_run = 0;
    for round in 0..rounds {
        std::fs::write(dir.join("cluster.yaml"), &profiles[round % 2]).unwrap();
        let args: &[&str] = match round % 3 {
            0 => &["build", "--all"],
            1 => &["pki"],
            _ => &["pki", "renew", "--all"],
        };
        let mut child = Command::new(KIMAGE)
            .args(args)
            .current_dir(dir)
            .env("KIMAGE_CACHE", dir.join("cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(
            rng.next() % durations[round % 3],
        ));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let o = kimage(dir, &["build", "--all"]);
        assert!(
            o.status.success(),
            "round {round} after killing {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        matches_manifest(&dir.join("out")).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let v = kimage(dir, &["verify"]);
        assert!(v.status.success(), "round {round}: {v:?}");
    }
    // Most kills must land while the command runs, or the loop proves little.
    assert!(
        killed_mid_run >= rounds / 3,
        "only {killed_mid_run} of {rounds} kills landed mid-run"
    );
    eprintln!("{killed_mid_run} of {rounds} kills landed mid-run");
}

#[test]
fn mutated_profiles_never_crash_or_hang_the_loader() {
    // A bounded fuzz of the parser and validator (cargo-fuzz needs a nightly toolchain this machine
    // does not have): 3,000 byte-level mutations of a profile, each loaded and validated in-process;
    // none may panic, and every failure must be a diagnostic.
    let base = PROFILE.as_bytes().to_vec();
    let mut rng = Lcg(42);
    let alphabet = b" \n\t:-[]{}&*!|>'\",#0123456789abcdefxyzAZ.%@\x00\xff";
    for i in 0..3000 {
        let mut t = base.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % t.len();
            match rng.next() % 3 {
                0 => t[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => {
                    t.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]);
                }
                _ => {
                    t.remove(at);
                }
            }
        }
        let text = String::from_utf8_lossy(&t).into_owned();
        let r = std::panic::catch_unwind(|| match kimage::profile::load_str(&text, "f.yaml") {
            Ok(loaded) => {
                let c = kimage::model::Cluster::resolve(&loaded.profile);
                let _ = kimage::validate::check(&loaded, &c);
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
            }
        });
        assert!(r.is_ok(), "mutation {i} panicked:\n{text}");
    }
}

#[test]
fn a_full_disk_named_temp_files_and_left_out_out_of_step() {
    // out/ and the state on a 16 MiB tmpfs mounted in a mount namespace of this test's own (root: CI
    // runs as root). A rebuild that runs out of space fails naming the file it was writing, out/ is
    // then reported by kimage verify, and the next build with space again leaves it matching.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "this test mounts a small tmpfs: run it as root (CI does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("cluster.yaml"), PROFILE).unwrap();
    let small = dir.join("small");
    std::fs::create_dir(&small).unwrap();
    // unshare -m: the mount exists only for the shell script below and its children.
    let script = format!(
        r#"set -u
mount -t tmpfs -o size=16m tmpfs {small}
run() {{ KIMAGE_CACHE={dir}/cache {kimage} --profile {dir}/cluster.yaml "$@"; }}
run build --all --state {small}/state --out {small}/out >/dev/null 2>&1 || {{ echo "first build failed"; exit 1; }}
# Fill what is left, then rebuild with a change that rewrites every node's files.
dd if=/dev/zero of={small}/filler bs=64k >/dev/null 2>&1
sed -i 's/name: guard/name: guard\nos: {{sysctl: {{vm.swappiness: "5"}}}}/' {dir}/cluster.yaml
run build --all --state {small}/state --out {small}/out >/dev/null 2>{dir}/full.err
echo "full=$?"
run verify --out {small}/out >/dev/null 2>&1
echo "verify-after-full=$?"
rm {small}/filler
run build --all --state {small}/state --out {small}/out >/dev/null 2>{dir}/again.err
echo "again=$?"
run verify --out {small}/out >/dev/null 2>&1
echo "verify-again=$?"
"#,
        small = small.display(),
        dir = dir.display(),
        kimage = KIMAGE,
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let full_err = std::fs::read_to_string(dir.join("full.err")).unwrap_or_default();
    assert!(
        out.contains("full=1") || out.contains("full=4"),
        "{out}\n{full_err}"
    );
    assert!(full_err.contains("No space left"), "{full_err}");
    assert!(
        !full_err.contains("/.kimage-") && !full_err.contains("/.layer-"),
        "the error names a temporary file: {full_err}"
    );
    assert!(
        out.contains("again=0"),
        "{out}\n{}",
        std::fs::read_to_string(dir.join("again.err")).unwrap_or_default()
    );
    assert!(out.contains("verify-again=0"), "{out}");
}

/// A build wrote every seed.img at 3 MiB, zeros included, whatever it held (10,000 workers: 23 GB).
/// The seeds of a build are now their content's size, the zeros left in them are holes, `kimage verify`
/// hashes them as the same bytes, and a rebuild keeps them (the same inode, nothing rewritten).
#[test]
fn built_seeds_were_3_mib_of_written_zeros() {
    use std::os::unix::fs::MetadataExt;
    let tmp = project();
    let out = tmp.path().join("out");
    let mut inodes = Vec::new();
    for node in ["cp-1", "w-1"] {
        let seed = out.join(format!("nodes/{node}/seed.img"));
        let bytes = std::fs::read(&seed).unwrap();
        let meta = std::fs::metadata(&seed).unwrap();
        // The seed carries the node's user-data and layers: its size follows them, plus a few KB of FAT.
        let layers: u64 = recorded(&out)
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("/layers/"))
            .map(|(p, _)| std::fs::metadata(p).unwrap().len())
            .sum();
        let docs: u64 = ["user-data", "meta-data", "network-config"]
            .iter()
            .map(|f| {
                std::fs::metadata(out.join(format!("nodes/{node}/{f}")))
                    .unwrap()
                    .len()
            })
            .sum();
        assert!(
            meta.len() <= docs + layers + 64 * 1024,
            "{node}: {} bytes for {docs} bytes of documents and at most {layers} of layers",
            meta.len()
        );
        let nonzero = bytes
            .chunks(4096)
            .filter(|b| b.iter().any(|&x| x != 0))
            .count() as u64
            * 4096;
        assert!(
            meta.blocks() * 512 <= 2 * nonzero,
            "{node}: {} bytes allocated for {nonzero} in non-zero blocks",
            meta.blocks() * 512
        );
        inodes.push(meta.ino());
    }
    ok(&kimage(tmp.path(), &["verify"]));
    ok(&kimage(tmp.path(), &["build", "--all"]));
    let again: Vec<u64> = ["cp-1", "w-1"]
        .iter()
        .map(|n| {
            std::fs::metadata(out.join(format!("nodes/{n}/seed.img")))
                .unwrap()
                .ino()
        })
        .collect();
    assert_eq!(again, inodes, "an unchanged seed was rewritten");
}
