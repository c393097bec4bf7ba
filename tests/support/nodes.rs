//! Nodes as hosts for tests: each node in its own network namespace, wired to a bridge in a "lan"
//! namespace that the test also uses as its client host; each process of a node runs in a private mount
//! namespace in which the node's unpacked files appear at their on-node paths. Everything is torn down
//! when the `Lan` is dropped. Needs root, iproute2 and util-linux (`unshare`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private network: a bridge in namespace `<tag>-lan` with the address `<net>.1`.
pub struct Lan {
    pub ns: String,
    pub net: String,
    nodes: Vec<String>,
    children: Vec<Child>,
}

impl Lan {
    /// `net` is the first three octets, e.g. `10.99.7`.
    pub fn new(tag: &str, net: &str) -> Lan {
        let ns = format!("{tag}-lan");
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && ip -n {ns} link add br0 type bridge && \
             ip -n {ns} link set br0 up && ip -n {ns} addr add {net}.1/24 dev br0"
        ));
        Lan {
            ns,
            net: net.to_string(),
            nodes: Vec::new(),
            children: Vec::new(),
        }
    }

    /// A node namespace with `address/24` on eth0, plugged into the bridge. Returns its namespace name.
    pub fn node(&mut self, name: &str, address: &str) -> String {
        let ns = format!("{}-{name}", self.ns.trim_end_matches("-lan"));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let host_if = format!("v{}", self.nodes.len());
        let lan = &self.ns;
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && \
             ip link add {host_if}-{pid} type veth peer name eth0 netns {ns} && \
             ip link set {host_if}-{pid} netns {lan} && ip -n {lan} link set {host_if}-{pid} master br0 up && \
             ip -n {ns} addr add {address}/24 dev eth0 && ip -n {ns} link set eth0 up",
            pid = std::process::id() % 10000
        ));
        self.nodes.push(ns.clone());
        ns
    }

    /// Runs a command on the client host (the lan namespace).
    pub fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn keep(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn kill(&mut self, index: usize) {
        let c = &mut self.children[index];
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.nodes.iter().chain(std::iter::once(&self.ns)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Mounts for one node's processes: `(directory on this machine, path on the node)`, bind-mounted in a
/// private mount namespace, so the node's files sit at their on-node paths without touching this host's.
pub struct NodeFs {
    pub root: PathBuf,
    pub binds: Vec<(PathBuf, String)>,
}

impl NodeFs {
    /// The unpacked tree `root`; `dirs` are on-node directories to show from it (created if missing).
    pub fn new(root: &Path, dirs: &[&str]) -> NodeFs {
        let mut binds = Vec::new();
        for d in dirs {
            let src = root.join(d.trim_start_matches('/'));
            std::fs::create_dir_all(&src).unwrap();
            binds.push((src, d.to_string()));
        }
        NodeFs {
            root: root.to_path_buf(),
            binds,
        }
    }

    /// Also show `src` at `target` (e.g. a data directory, or a directory of tools as /usr/local/bin).
    pub fn bind(mut self, src: &Path, target: &str) -> NodeFs {
        std::fs::create_dir_all(src).unwrap();
        self.binds.push((src.to_path_buf(), target.to_string()));
        self
    }

    /// A `sh -c` script that sets up the mounts and then runs `script`.
    fn wrap(&self, script: &str) -> String {
        let mut s = String::from("set -e; mount --make-rprivate /; ");
        for (src, target) in &self.binds {
            // The mount point must exist on this machine; an empty directory is all it leaves behind.
            s.push_str(&format!(
                "mkdir -p '{target}'; mount --bind '{}' '{target}'; ",
                src.display()
            ));
        }
        s.push_str(script);
        s
    }

    /// Starts `script` in namespace `ns` with the node's files mounted.
    pub fn spawn(
        &self,
        ns: &str,
        script: &str,
        env: &BTreeMap<String, String>,
        log: &Path,
    ) -> Child {
        let f = std::fs::File::create(log).unwrap();
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "unshare",
                "--mount",
                "sh",
                "-c",
                &self.wrap(script),
            ])
            .envs(env)
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap()
    }

    /// Runs `script` to completion in namespace `ns` with the node's files mounted.
    pub fn run(
        &self,
        ns: &str,
        script: &str,
        env: &BTreeMap<String, String>,
    ) -> std::process::Output {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "unshare",
                "--mount",
                "sh",
                "-c",
                &self.wrap(script),
            ])
            .envs(env)
            .output()
            .unwrap()
    }
}

/// A systemd unit's settings as systemd would give them to the process: `KEY=value` pairs from its
/// EnvironmentFile= files (read from the node's tree; `-` prefix: optional), Environment= lines, and the
/// ExecStart= command line. `%d` (the credentials directory) is replaced by `creds`.
pub struct Unit {
    pub env: BTreeMap<String, String>,
    pub exec_start: String,
    pub credentials: Vec<(String, String)>,
}

/// Parses `unit` (and drop-ins in `<unit>.d/`) from the unpacked tree at `root`.
pub fn unit(root: &Path, name: &str, creds: &Path) -> Unit {
    let dir = root.join("etc/systemd/system");
    let mut text = std::fs::read_to_string(dir.join(name)).unwrap();
    if let Ok(rd) = std::fs::read_dir(dir.join(format!("{name}.d"))) {
        let mut dropins: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
        dropins.sort();
        for d in dropins {
            text.push('\n');
            text.push_str(&std::fs::read_to_string(d).unwrap());
        }
    }
    let mut env = BTreeMap::new();
    let mut exec_start = String::new();
    let mut credentials = Vec::new();
    let creds = creds.display().to_string();
    for line in text.lines() {
        let line = line.trim();
        if let Some(f) = line.strip_prefix("EnvironmentFile=") {
            let (optional, f) = match f.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, f),
            };
            match std::fs::read_to_string(root.join(f.trim_start_matches('/'))) {
                Ok(content) => {
                    for l in content.lines().map(str::trim) {
                        if l.is_empty() || l.starts_with('#') {
                            continue;
                        }
                        if let Some((k, v)) = l.split_once('=') {
                            env.insert(k.to_string(), v.trim_matches('"').to_string());
                        }
                    }
                }
                Err(e) if !optional => panic!("{name}: EnvironmentFile {f}: {e}"),
                Err(_) => {}
            }
        } else if let Some(e) = line.strip_prefix("Environment=") {
            let (k, v) = e.split_once('=').unwrap();
            env.insert(k.to_string(), v.replace("%d", &creds));
        } else if let Some(c) = line.strip_prefix("ExecStart=") {
            exec_start = c.trim_start_matches(['+', '-', '!']).replace("%d", &creds);
        } else if let Some(c) = line.strip_prefix("LoadCredential=") {
            let (id, path) = c.split_once(':').unwrap();
            credentials.push((id.to_string(), path.to_string()));
        }
    }
    Unit {
        env,
        exec_start,
        credentials,
    }
}

impl Unit {
    /// What systemd's LoadCredential= does: copy each credential (from the node's tree) into `creds`.
    pub fn load_credentials(&self, root: &Path, creds: &Path) {
        std::fs::create_dir_all(creds).unwrap();
        for (id, path) in &self.credentials {
            std::fs::copy(root.join(path.trim_start_matches('/')), creds.join(id)).unwrap();
        }
    }
}
