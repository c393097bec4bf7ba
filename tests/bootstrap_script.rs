//! kimage-bootstrap (the script every control-plane node runs, as rendered: the bootstrap node with the
//! cluster's manifests and nodes.list, each with its own self.list) against a fake kubectl on PATH
//! that plays a cluster still forming (tests/bootstrap_support/fake-kubectl.sh): the apiserver refuses
//! connections for a while, admin.conf is forbidden until kubeadm:cluster-admins exists, one apply fails
//! half-way, nodes register late. The script must retry through all of it, use super-admin.conf only for
//! the first binding, change nothing when run again, and exit 1 with a clear message only when it gives
//! up.

mod bootstrap_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bootstrap_support::*;

const FAKE_KUBECTL: &str = include_str!("bootstrap_support/fake-kubectl.sh");

struct Scenario {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    script: PathBuf,
    attempts: u32,
}

impl Scenario {
    fn new() -> Scenario {
        let tmp = tempdir();
        let root = tmp.path().to_path_buf();
        let c = pools_cluster();
        let m = pki(&c, &root);
        let dir = root.join("etc/kimage/bootstrap");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in bootstrap_files(&c, &m) {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        std::fs::write(
            root.join("admin.conf"),
            m.kubeconfig("admin@master-1").unwrap(),
        )
        .unwrap();
        std::fs::write(
            root.join("super-admin.conf"),
            m.kubeconfig("super-admin@master-1").unwrap(),
        )
        .unwrap();
        let script = kimage::render::render_node(&c, bootstrap_node(&c))
            .unwrap()
            .into_iter()
            .find(|f| f.path == "/usr/local/bin/kimage-bootstrap")
            .expect("the bootstrap node gets the script");
        let script_path = root.join("kimage-bootstrap");
        write_exec(&script_path, std::str::from_utf8(&script.content).unwrap());
        write_exec(&root.join("bin/kubectl"), FAKE_KUBECTL);
        for d in [
            "state/applied",
            "state/fail_once",
            "state/register_after",
            "state/nodes",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        Scenario {
            _tmp: tmp,
            root,
            script: script_path,
            attempts: 10,
        }
    }

    fn state(&self, rel: &str) -> PathBuf {
        self.root.join("state").join(rel)
    }

    fn set(&self, rel: &str, content: &str) {
        std::fs::write(self.state(rel), content).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.state(rel)).unwrap_or_default()
    }

    /// The directory another control-plane node's kimage-bootstrap reads: its own files of
    /// /etc/kimage/bootstrap (self.list, and no manifests).
    fn dir_of(&self, node: &str) -> PathBuf {
        let c = pools_cluster();
        let dir = self.root.join("other").join(node);
        std::fs::create_dir_all(&dir).unwrap();
        let n = c.node(node).unwrap();
        for f in kimage::render::render_node(&c, n).unwrap() {
            if let Some(name) = f.path.strip_prefix("/etc/kimage/bootstrap/") {
                std::fs::write(dir.join(name), &f.content).unwrap();
            }
        }
        dir
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.script);
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.root.join("bin").display()),
            )
            .env("FAKE_STATE", self.root.join("state"))
            .env(
                "KIMAGE_BOOTSTRAP_DIR",
                self.root.join("etc/kimage/bootstrap"),
            )
            .env("KIMAGE_ADMIN_KUBECONFIG", self.root.join("admin.conf"))
            .env(
                "KIMAGE_SUPER_ADMIN_KUBECONFIG",
                self.root.join("super-admin.conf"),
            )
            .env("KIMAGE_BOOTSTRAP_ATTEMPTS", self.attempts.to_string())
            .env("KIMAGE_BOOTSTRAP_INTERVAL", "0");
        cmd
    }

    fn run(&self) -> (Output, String) {
        std::fs::write(self.state("events"), "").unwrap();
        let out = self.command().output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out, text)
    }

    fn events(&self) -> Vec<String> {
        self.read("events").lines().map(str::to_string).collect()
    }

    fn node(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .read(&format!("nodes/{name}"))
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }
}

fn manifest_names(s: &Scenario) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.root.join("etc/kimage/bootstrap"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn forms_the_cluster_through_failures_and_a_rerun_changes_nothing() {
    let s = Scenario::new();
    s.set("readyz_fail", "3");
    s.set("fail_once/40-coredns.yaml", "");
    s.set("nodes/master-1", "label kubernetes.io/hostname=master-1\n");
    s.set("register_after/master-2", "2");
    s.set("register_after/node-1", "4");
    let (out, text) = s.run();
    assert!(out.status.success(), "first run failed:\n{text}");

    let names = manifest_names(&s);
    assert_eq!(names.len(), 7, "{names:?}");
    let events = s.events();
    // The first binding with super-admin.conf (admin.conf was forbidden), exactly once.
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("SUPER "))
            .collect::<Vec<_>>(),
        ["SUPER apply 00-cluster-admins.yaml"],
        "{text}"
    );
    // Every manifest applied, the half-applied one again in full.
    for n in &names {
        assert_eq!(
            events
                .iter()
                .filter(|e| **e == format!("CHANGE apply {n}"))
                .count(),
            1,
            "{n}: {events:#?}"
        );
    }
    assert!(events.contains(&"PARTIAL apply 40-coredns.yaml".to_string()));
    // In file-name order: RBAC before what it authorizes, tokens last.
    let applies: Vec<String> = s
        .read("calls")
        .lines()
        .filter(|l| l.contains(" apply "))
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    let mut dedup = applies.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        [
            "00-cluster-admins.yaml",
            "10-rbac.yaml",
            "30-cluster-info.yaml",
            "40-coredns.yaml",
            "50-flannel.yaml",
            "70-bootstrap-token-general.yaml",
            "70-bootstrap-token-gpu.yaml"
        ]
    );
    // /readyz with admin.conf until it answered.
    let readyz = s
        .read("calls")
        .lines()
        .filter(|l| l == &"admin.conf get --raw=/readyz")
        .count();
    assert_eq!(readyz, 4);
    // Nodes got what their kubelets may not set, once they registered.
    let cp = [
        "label node-role.kubernetes.io/control-plane=",
        "taint node-role.kubernetes.io/control-plane:NoSchedule",
    ];
    let state = s.node("master-1");
    for want in cp {
        assert!(state.contains(&want.to_string()), "master-1: {state:?}");
    }
    assert!(
        s.node("node-1")
            .contains(&"label node-role.kubernetes.io/worker=".to_string())
    );
    // The other control-plane node marks its own Node: the bootstrap node does not list it.
    assert_eq!(s.node("master-2"), Vec::<String>::new());
    let dir = s.dir_of("master-2");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["self.list"]);
    let out = s
        .command()
        .env("KIMAGE_BOOTSTRAP_DIR", &dir)
        .output()
        .unwrap();
    let own = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "master-2's own run failed:\n{own}");
    let state = s.node("master-2");
    for want in cp {
        assert!(
            state.contains(&want.to_string()),
            "master-2: {state:?}\n{own}"
        );
    }
    assert!(
        own.contains("kimage-bootstrap: done: 0 manifests applied"),
        "{own}"
    );
    assert!(!s.node("node-1").iter().any(|l| l.starts_with("taint ")));
    assert!(text.contains("not yet (attempt 1 of 10"), "{text}");
    assert!(text.contains("binding kubeadm:cluster-admins with super-admin.conf"));
    assert!(
        text.contains("kimage-bootstrap: done: 6 manifests applied"),
        "{text}"
    );

    // Every boot runs it again: nothing changes, super-admin.conf is not used.
    s.set("calls", "");
    let (out, text) = s.run();
    assert!(out.status.success(), "second run failed:\n{text}");
    assert_eq!(
        s.events(),
        Vec::<String>::new(),
        "second run changed the cluster:\n{text}"
    );
    let calls = s.read("calls");
    assert!(calls.lines().count() > 10, "{calls}");
    assert!(!calls.contains("super-admin.conf"), "{calls}");
    // It only read the nodes, labelled and tainted nothing.
    assert!(
        !calls
            .lines()
            .any(|l| l.contains(" label ") || l.contains(" taint ")),
        "{calls}"
    );
}

#[test]
fn gives_up_when_the_apiserver_never_answers() {
    let mut s = Scenario::new();
    s.attempts = 3;
    s.set("readyz_fail", "100");
    let (out, text) = s.run();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let last = text.lines().last().unwrap();
    assert_eq!(
        last,
        "kimage-bootstrap: ERROR: gave up waiting for the apiserver (GET /readyz with admin.conf) after 3 attempts; last error: The connection to the server 10.0.0.11:6443 was refused - did you specify the right host or port?"
    );
    assert_eq!(s.read("calls").lines().count(), 3, "nothing but /readyz");
    assert!(s.events().is_empty());
}

#[test]
fn gives_up_on_a_node_that_never_registers_after_applying_everything() {
    let mut s = Scenario::new();
    s.attempts = 4;
    s.set("nodes/master-1", "");
    s.set("nodes/master-2", "");
    // node-1 never registers.
    let (out, text) = s.run();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with(
            "kimage-bootstrap: ERROR: gave up labelling and tainting nodes after 4 attempts; last error: waiting for nodes to register: node-1 (Error from server (NotFound): nodes \"node-1\" not found)"
        ),
        "{text}"
    );
    for n in manifest_names(&s) {
        assert!(s.events().contains(&format!("CHANGE apply {n}")), "{n}");
    }
    // The registered nodes were done in the first round and not touched again.
    assert!(
        s.node("master-1")
            .contains(&"taint node-role.kubernetes.io/control-plane:NoSchedule".to_string())
    );
    let gets = s
        .read("calls")
        .lines()
        .filter(|l| l.contains("get node master-1"))
        .count();
    assert_eq!(gets, 1);
}

#[test]
fn without_super_admin_conf_it_says_why_admin_conf_cannot_start() {
    let mut s = Scenario::new();
    s.attempts = 2;
    std::fs::remove_file(s.root.join("super-admin.conf")).unwrap();
    let (out, text) = s.run();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("kimage-bootstrap: ERROR: gave up applying 00-cluster-admins.yaml after 2 attempts; last error: admin.conf is not authorized to bind kubeadm:cluster-admins and ")
            && last.ends_with("super-admin.conf is missing (only the bootstrap node has it)"),
        "{last}"
    );
}

#[test]
fn a_partial_failure_is_retried_not_skipped() {
    // An apply that keeps failing is what it gives up on, naming the file and kubectl's error.
    let mut s = Scenario::new();
    s.attempts = 3;
    for n in ["master-1", "master-2", "node-1"] {
        s.set(&format!("nodes/{n}"), "");
    }
    // The fake fails that file every time: a wrapper re-arms the marker it consumes per call.
    let (out, text) = {
        let mut cmd = s.command();
        std::fs::write(s.state("events"), "").unwrap();
        // Re-arm fail_once before each call through a wrapper kubectl.
        let real = s.root.join("bin/kubectl");
        let wrapped = s.root.join("bin/kubectl.real");
        std::fs::rename(&real, &wrapped).unwrap();
        write_exec(
            &real,
            &format!(
                "#!/bin/sh\ntouch \"$FAKE_STATE/fail_once/50-flannel.yaml\"\nexec {} \"$@\"\n",
                wrapped.display()
            ),
        );
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out, text)
    };
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.lines().last().unwrap(),
        "kimage-bootstrap: ERROR: gave up applying 50-flannel.yaml after 3 attempts; last error: Error from server (InternalError): error when applying: Internal error occurred: etcdserver: request timed out"
    );
    assert_eq!(
        s.events()
            .iter()
            .filter(|e| *e == "PARTIAL apply 50-flannel.yaml")
            .count(),
        3
    );
    // Nothing after the file it gave up on was applied.
    assert!(!s.events().iter().any(|e| e.contains("70-bootstrap-token")));
}

#[test]
fn two_runs_at_once_converge() {
    let s = Scenario::new();
    for n in ["master-1", "master-2", "node-1"] {
        s.set(&format!("nodes/{n}"), "");
    }
    std::fs::write(s.state("events"), "").unwrap();
    let spawn = || {
        s.command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    assert_eq!(
        s.node("master-1"),
        [
            "label node-role.kubernetes.io/control-plane=",
            "taint node-role.kubernetes.io/control-plane:NoSchedule"
        ]
    );
    // A third run finds nothing to do.
    let (out, text) = s.run();
    assert!(out.status.success(), "{text}");
    assert_eq!(s.events(), Vec::<String>::new(), "{text}");
}

#[test]
fn script_passes_shellcheck() {
    require("shellcheck");
    let c = pools_cluster();
    let tmp = tempdir();
    for f in kimage::render::render_node(&c, bootstrap_node(&c)).unwrap() {
        if f.path.starts_with("/usr/local/bin/kimage-") {
            let p = tmp.path().join(Path::new(&f.path).file_name().unwrap());
            std::fs::write(&p, &f.content).unwrap();
            let out = Command::new("shellcheck")
                .args(["-s", "sh"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "shellcheck {}:\n{}",
                f.path,
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    let fake = tmp.path().join("fake-kubectl.sh");
    std::fs::write(&fake, FAKE_KUBECTL).unwrap();
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(&fake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
