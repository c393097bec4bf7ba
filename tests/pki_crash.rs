//! A `kimage pki` killed with SIGKILL at random points never leaves a state the next run cannot use:
//! the child (this test binary re-executed) refreshes the state in a loop, alternating profiles so it
//! is always generating or writing; the parent kills it after a random delay, then checks that a
//! rerun succeeds, the CA never changed and no temporary file survives.

#[path = "support/pki.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kimage::pki::{self, EnsureOptions, LockMode, Requests};
use support::*;

const CHILD_ENV: &str = "KIMAGE_PKI_CRASH_CHILD";

const A: &str = "apiVersion: kimage/v1alpha1
kind: Cluster
name: crash
loadBalancer:
  kind: haproxy
nodes:
  - {name: cp-1, role: control-plane, address: 10.0.0.11}
  - {name: cp-2, role: control-plane, address: 10.0.0.12}
  - {name: cp-3, role: control-plane, address: 10.0.0.13}
  - {name: w-1,  role: worker,        address: 10.0.0.21}
  - {name: w-2,  role: worker,        address: 10.0.0.22}
  - {name: lb-1, role: load-balancer, address: 10.0.0.31}
";

fn b() -> String {
    A.replace("  kind: haproxy\n", "  kind: haproxy\n  vip: 10.0.0.100\n")
        .replace(
            "  - {name: w-2,  role: worker,        address: 10.0.0.22}\n",
            "",
        )
}

/// The child: refreshes the state forever. Run only by `killed_runs_leave_a_usable_state`.
#[test]
#[ignore = "child process of killed_runs_leave_a_usable_state"]
fn crash_child() {
    let dir = std::env::var(CHILD_ENV).expect("run by killed_runs_leave_a_usable_state");
    let (a, b) = (cluster(A), cluster(&b()));
    let all = Requests {
        renew: pki::spec::cert_specs(&a)
            .into_iter()
            .filter(|s| s.signer.is_some())
            .map(|s| s.id)
            .collect(),
        ..Default::default()
    };
    loop {
        for (c, req) in [
            (&a, Requests::default()),
            (&b, Requests::default()),
            (&a, all.clone()),
        ] {
            pki::ensure_with(
                c,
                Path::new(&dir),
                &EnsureOptions {
                    now: now(),
                    lock: LockMode::Wait,
                },
                &req,
            )
            .unwrap();
        }
    }
}

/// xorshift64*, seeded from the clock: different kill points on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
}

fn check_usable(dir: &Path, expected_ca: Option<&str>) -> String {
    let a = cluster(A);
    // The repair run: whatever the kill left, a rerun succeeds.
    let (m, r) =
        pki::ensure(&a, dir, now()).unwrap_or_else(|e| panic!("rerun after kill failed: {e}"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("pki"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "state.json" && n != "lock")
        .collect();
    assert!(
        leftovers.is_empty(),
        "left behind: {leftovers:?} (report: {:?})",
        r.removed_temp_files
    );
    pki::load(&a, dir, now()).unwrap_or_else(|e| panic!("state not loadable after repair: {e}"));
    let ca = m.cert_pem("ca").unwrap().to_string();
    if let Some(want) = expected_ca {
        assert_eq!(ca, want, "a kill must never replace the CA");
    }
    ca
}

#[test]
fn killed_runs_leave_a_usable_state() {
    let exe = std::env::current_exe().unwrap();
    let tmp = tempdir();
    let main = tmp.path().join("state");
    let ca = check_usable(&main, None);
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1);
    let (mut temp_seen, mut committed) = (0, 0);
    for i in 0..40 {
        // Every fifth run starts from nothing, so kills also land while the CAs are first made.
        let fresh = i % 5 == 4;
        let dir = if fresh {
            tmp.path().join(format!("fresh-{i}"))
        } else {
            main.clone()
        };
        let before = std::fs::read(dir.join("pki/state.json")).ok();
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next(150)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Ok(entries) = std::fs::read_dir(dir.join("pki")) {
            temp_seen += entries
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .contains(".tmp-")
                })
                .count();
        }
        if std::fs::read(dir.join("pki/state.json")).ok() != before {
            committed += 1;
        }
        check_usable(&dir, if fresh { None } else { Some(&ca) });
    }
    eprintln!(
        "40 kills: {committed} after the child had committed a new state, {temp_seen} left a temporary file (cleaned up)"
    );
    // The final state still chains under openssl.
    let (m, _) = pki::ensure(&cluster(A), &main, now()).unwrap();
    let v = tmp.path().join("v");
    let ca_file = write(&v, "ca.crt", m.cert_pem("ca").unwrap());
    for id in ["apiserver@cp-3", "kubelet@w-2", "admin@cp-1"] {
        let (crt, _) = write_pair(&m, id, &v);
        openssl(&[
            "verify",
            "-CAfile",
            ca_file.to_str().unwrap(),
            crt.to_str().unwrap(),
        ]);
    }
}
