//! Growth without SSH, for real: a 3-member etcd cluster (the pinned etcd 3.6, built from its Go module
//! by ci/real/build.sh) runs from one `kimage
//! build`; a fourth member added to the profile is built alone (`kimage build --role etcd-4`), and when it
//! starts exactly as its units say — kimage-etcd-join.service first, then etcd.service with its drop-in,
//! then kimage-etcd-promote.service — it adds itself as a learner, joins and becomes a voting member, with
//! no command typed by a person. The first members' artifacts do not change. Then `kimage etcd remove`
//! retires a member. Each node is a host in its own network namespace.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::nodes::{Lan, NodeFs, unit};
use support::tools::{require, require_root};

const NET: &str = "10.77.7";

fn profile(members: &[(&str, u8)]) -> String {
    let mut s = format!(
        "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: grow\n\
         etcd:\n  topology: external\n  heartbeatInterval: 100\n  electionTimeout: 1000\n\
         # The binaries are the real build's (on this machine), not kimage's downloads.\n\
         binaries:\n  exclude: [kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, etcd, etcdctl, etcdutl, containerd, runc, crictl, cni-plugins]\n\
         # /etc/hosts would list the new member on every node; without it the first members' artifacts\n\
         # stay byte-identical when the cluster grows.\n\
         os:\n  hostsFile: false\n\
         nodes:\n  - {{name: cp-1, role: control-plane, address: {NET}.10}}\n"
    );
    for (name, octet) in members {
        s.push_str(&format!(
            "  - {{name: {name}, role: etcd, address: {NET}.{octet}}}\n"
        ));
    }
    s
}

fn kimage(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kimage"))
        .args(args)
        .current_dir(dir)
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

struct Member {
    name: &'static str,
    ns: String,
    fs: NodeFs,
}

/// Starts a unit's ExecStart the way systemd would (environment files, Environment=, credentials).
fn start_unit(lan: &mut Lan, m: &Member, name: &str, tmp: &Path) -> usize {
    let creds = tmp.join(format!("{}-creds-{name}", m.name));
    let u = unit(&m.fs.root, name, &creds);
    u.load_credentials(&m.fs.root, &creds);
    let child = m.fs.spawn(
        &m.ns,
        &format!("exec {}", u.exec_start),
        &u.env,
        &tmp.join(format!("{}-{name}.log", m.name)),
    );
    lan.keep(child)
}

fn ctl(lan: &Lan, pki: &Path, endpoints: &str, args: &[&str]) -> (bool, String) {
    let ca = pki.join("ca.crt");
    let cert = pki.join("healthcheck-client.crt");
    let key = pki.join("healthcheck-client.key");
    let mut cmd = vec![
        support::real::program(&support::real::etcd(), "etcdctl"),
        format!("--endpoints={endpoints}"),
        format!("--cacert={}", ca.display()),
        format!("--cert={}", cert.display()),
        format!("--key={}", key.display()),
        "--command-timeout=5s".to_string(),
    ];
    cmd.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = lan.client(&refs);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<String>) -> String {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_fourth_member_joins_by_itself_and_a_member_is_removed() {
    require_root();
    for t in ["unshare", "ip"] {
        require(t);
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["etcd", "etcdctl"] {
        std::os::unix::fs::symlink(
            support::real::program(&support::real::etcd(), b),
            bin.join(b),
        )
        .unwrap();
    }

    // 1. Three members from the first build.
    let first = [("etcd-1", 11), ("etcd-2", 12), ("etcd-3", 13)];
    std::fs::write(dir.join("cluster.yaml"), profile(&first)).unwrap();
    kimage(dir, &["build", "--all"]);
    let manifest1: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/manifest.json")).unwrap())
            .unwrap();
    let mut lan = Lan::new(&format!("kg{}", std::process::id() % 100000), NET);
    let mut members = Vec::new();
    for (name, octet) in first.iter().chain([("etcd-4", 14)].iter()) {
        let ns = lan.node(name, &format!("{NET}.{octet}"));
        members.push((name, ns));
    }
    let mk = |name: &'static str, ns: &str| -> Member {
        let root = dir.join("nodes").join(name);
        kimage(
            dir,
            &["unpack", "--role", name, "--into", root.to_str().unwrap()],
        );
        let fs = NodeFs::new(
            &root,
            &[
                "/etc/kubernetes",
                "/etc/etcd",
                "/etc/kimage",
                "/usr/local/lib/kimage",
            ],
        )
        .bind(&dir.join("data").join(name), "/var/lib/etcd")
        .bind(&root.join("run/kimage"), "/run/kimage")
        .bind(&bin, "/usr/local/bin");
        Member {
            name,
            ns: ns.to_string(),
            fs,
        }
    };
    let mut running: BTreeMap<&str, usize> = BTreeMap::new();
    let mut m3 = Vec::new();
    for (name, ns) in members.iter().take(3) {
        let m = mk(name, ns);
        running.insert(name, start_unit(&mut lan, &m, "etcd.service", dir));
        m3.push(m);
    }
    let pki = m3[0].fs.root.join("etc/kubernetes/pki/etcd");
    let eps3 = format!("https://{NET}.11:2379,https://{NET}.12:2379,https://{NET}.13:2379");
    wait_for("3 healthy members", Duration::from_secs(60), || {
        let (ok, out) = ctl(&lan, &pki, &eps3, &["endpoint", "health"]);
        (ok && out.matches("is healthy").count() == 3).then_some(out)
    });
    assert!(ctl(&lan, &pki, &eps3, &["put", "grow/before", "3 members"]).0);

    // 2. The grown profile; only the new member is built. The first members' artifacts are unchanged:
    //    a full rebuild into another directory gives them the same digests.
    let grown = [
        ("etcd-1", 11),
        ("etcd-2", 12),
        ("etcd-3", 13),
        ("etcd-4", 14),
    ];
    std::fs::write(dir.join("cluster.yaml"), profile(&grown)).unwrap();
    let out = kimage(dir, &["build", "--role", "etcd-4"]);
    assert!(out.contains("etcd-4 join the running cluster"), "{out}");
    kimage(dir, &["build", "--all", "--out", "out-full"]);
    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out-full/manifest.json")).unwrap())
            .unwrap();
    for (name, _) in first {
        assert_eq!(
            manifest1["nodes"][name]["layers"], full["nodes"][name]["layers"],
            "{name}'s layers changed when the cluster grew"
        );
    }
    let m4 = mk("etcd-4", &members[3].1);
    let root4 = m4.fs.root.clone();
    for f in [
        "etc/systemd/system/kimage-etcd-join.service",
        "etc/systemd/system/etcd.service.d/10-kimage-join.conf",
        "etc/systemd/system/kimage-etcd-promote.service",
    ] {
        assert!(root4.join(f).exists(), "etcd-4 lacks {f}");
    }

    // 3. etcd-4 boots: its units, in systemd's order, nothing typed by a person. (Retries every second
    //    instead of five, to keep the test short.)
    let join = unit(&root4, "kimage-etcd-join.service", &dir.join("unused"));
    let mut env = BTreeMap::new();
    env.insert("KIMAGE_ETCD_JOIN_WAIT".to_string(), "1".to_string());
    let out = m4.fs.run(&m4.ns, &join.exec_start, &env);
    assert!(
        out.status.success(),
        "kimage-etcd-join: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let joined = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        joined.contains("added to the running cluster as a learner"),
        "{joined}"
    );
    running.insert("etcd-4", start_unit(&mut lan, &m4, "etcd.service", dir));
    let promote = unit(&root4, "kimage-etcd-promote.service", &dir.join("unused"));
    let out = m4.fs.run(&m4.ns, &promote.exec_start, &env);
    assert!(
        out.status.success(),
        "promote: {}{}\netcd-4's log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("etcd-4-etcd.service.log")).unwrap_or_default()
    );
    let eps4 = format!("{eps3},https://{NET}.14:2379");
    let list = wait_for("4 voting members", Duration::from_secs(60), || {
        let (ok, out) = ctl(&lan, &pki, &eps4, &["member", "list", "-w", "simple"]);
        (ok && out
            .lines()
            .filter(|l| l.ends_with(", false") && l.contains(", started, "))
            .count()
            == 4)
            .then_some(out)
    });
    assert!(list.contains(", etcd-4, "), "{list}");
    // The new member has the data written before it joined.
    let (ok, got) = ctl(
        &lan,
        &pki,
        &format!("https://{NET}.14:2379"),
        &["get", "grow/before", "--print-value-only"],
    );
    assert!(ok && got.trim() == "3 members", "{got}");

    // 4. Retire etcd-2: kimage removes the member with a client certificate from the state.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lan.ns,
            env!("CARGO_BIN_EXE_kimage"),
            "etcd",
            "--endpoints",
            &format!("https://{NET}.11:2379"),
            "remove",
            "etcd-2",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kimage etcd remove: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lan.kill(running["etcd-2"]);
    let eps = format!("https://{NET}.11:2379,https://{NET}.13:2379,https://{NET}.14:2379");
    let list = wait_for(
        "3 members after the removal",
        Duration::from_secs(30),
        || {
            let (ok, out) = ctl(&lan, &pki, &eps, &["member", "list", "-w", "simple"]);
            (ok && out.lines().count() == 3 && !out.contains("etcd-2")).then_some(out)
        },
    );
    // Removing the leader starts an election; writes resume once the remaining three have a leader.
    wait_for(
        &format!("a write after the removal (members:\n{list})"),
        Duration::from_secs(30),
        || {
            ctl(&lan, &pki, &eps, &["put", "grow/after", "still writable"])
                .0
                .then(String::new)
        },
    );
    // `kimage etcd members` lists what etcd says.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lan.ns,
            env!("CARGO_BIN_EXE_kimage"),
            "etcd",
            "members",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("etcd-4") && !text.contains("etcd-2"),
        "{text}"
    );
    eprintln!(
        "growth_etcd: 3 members, a fourth joined and was promoted, one removed, in {:?}",
        started.elapsed()
    );
}
