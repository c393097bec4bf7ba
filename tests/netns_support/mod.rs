//! The harness of the netns tests: every node of a `kimage build` is materialized with `kimage unpack`
//! and becomes a host of its own, in a network namespace the test creates (a bridge in a private "hub"
//! namespace, one veth pair per node, the addresses and interface names of the node's network-config)
//! and a private mount namespace in which the node's unpacked tree lies over the real paths:
//!
//! - `/etc`: overlay of the node's `/etc` over the machine's (writable, the writes stay in the node);
//! - `/var/lib`: the node's `/var/lib` alone (a fresh node has nothing of the test machine there);
//! - `/run`, `/tmp`, `/root`: empty tmpfs; `/var/log`: overlay of the machine's, writes stay in the node.
//!
//! Each node also has its own UTS namespace with its name as hostname (components name themselves after
//! it: leader-election identities, Node names). A holder process (`sleep`) keeps the namespaces alive;
//! programs run inside with `nsenter`, so a member that is stopped and started again finds its data
//! where it left it, as on a real host.
//! systemd units from the node's tree are started the way systemd would ([`Unit`]): User=/Group=,
//! EnvironmentFile=, Environment=, LoadCredential= (copied into `/run/credentials/<unit>` and
//! `$CREDENTIALS_DIRECTORY`/`%d` set), Limit*=, ExecStartPre=, ExecStart=.
//!
//! Nothing reaches the machine's network: the bridge lives in the hub namespace, not in the root one,
//! and `kimage build`/`unpack` run in an empty network namespace (`unshare --net`). Where this machine
//! cannot do what systemd does on a node (raise hard resource limits without CAP_SYS_RESOURCE), the
//! harness clamps and records a note that the tests print. NETNS_KEEP_LOGS=1 keeps the logs of a run.
//! [`Net`]'s Drop stops every process it started (by pid), kills whatever is left inside its namespaces
//! (by pid, from `ip netns pids`), deletes the namespaces, and the temp dirs go with their owners, also
//! when a test fails. Namespace names carry the process id and a counter, so tests run in parallel.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const KIMAGE: &str = env!("CARGO_BIN_EXE_kimage");
pub const IP: &str = "/usr/sbin/ip";
pub const NSENTER: &str = "/usr/bin/nsenter";
pub use openssl_certs::OPENSSL;

/// Writes to the real stderr (not captured by the test harness), so CI logs show the measurements.
pub fn report(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = e.write_all(b"\n");
    }
}

/// What every netns test needs on this machine, besides root.
pub const HOST_TOOLS: &[&str] = &[
    IP,
    NSENTER,
    "/usr/bin/unshare",
    "/usr/bin/setpriv",
    "/usr/bin/prlimit",
    "/usr/bin/timeout",
    "/usr/bin/kill",
];

/// Root (network and mount namespaces), [`HOST_TOOLS`] and the test's own `tools`.
pub fn require_netns(tools: &[&str]) {
    require_root();
    require_tools(HOST_TOOLS);
    require_tools(tools);
}

pub fn run(cmd: &mut Command) -> (bool, String) {
    let (status, s) = run_status(cmd);
    (status.success(), s)
}

/// Runs with no stdin; returns the exit status and stdout followed by stderr.
fn run_status(cmd: &mut Command) -> (std::process::ExitStatus, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status, s)
}

fn must(cmd: &mut Command) -> String {
    let (ok, out) = run(cmd);
    assert!(ok, "{cmd:?} failed:\n{out}");
    out
}

/// Where the temp dirs the nodes can see are: not under /tmp, /run or /root (each node has its own) nor
/// under a world-writable parent (keepalived's script security rejects those, /var/tmp included),
/// wherever the checkout is. Use with [`tempdir_in`].
pub const NODES_SEE: &str = "/var/cache/kimage-netns-tests";

/// Elapsed seconds, for reports.
pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------------
// kimage build + unpack

/// One node as `kimage build` describes it in manifest.json and network-config.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub role: String,
    pub address: IpAddr,
    /// Interface name and `address/prefix` from the node's network-config.
    pub interface: String,
    pub cidr: String,
    /// `(to, via)` of the network-config's routes (the default route when the profile has a gateway).
    pub routes: Vec<(String, String)>,
}

/// The output of `kimage build --all` on a copy of a fixture profile, in a temp dir.
pub struct Built {
    pub dir: tempfile::TempDir,
    pub profile: PathBuf,
    pub state: PathBuf,
    pub out: PathBuf,
    pub nodes: Vec<NodeInfo>,
    pub profile_text: String,
}

impl Built {
    /// Copies tests/fixtures/netns-<name>.yaml and runs `kimage build --all` on it.
    pub fn new(fixture: &str) -> Built {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("netns-{fixture}.yaml"));
        let text = std::fs::read_to_string(&src)
            .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
        let dir = tempdir_in(Path::new(NODES_SEE), "netns-build-");
        let profile = dir.path().join("cluster.yaml");
        std::fs::write(&profile, &text).unwrap();
        let state = dir.path().join("state");
        let out = dir.path().join("out");
        // In an empty network namespace: the build must not need the network (and cannot reach it).
        must(
            Command::new("/usr/bin/unshare")
                .args(["--net", KIMAGE])
                .arg("build")
                .arg("--profile")
                .arg(&profile)
                .arg("--state")
                .arg(&state)
                .arg("--out")
                .arg(&out)
                .arg("--all"),
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        let mut nodes = Vec::new();
        for (name, n) in manifest["nodes"].as_object().expect("manifest nodes") {
            let nc_path = out.join(n["network_config"]["path"].as_str().unwrap());
            let nc: serde_yaml_ng::Value =
                serde_yaml_ng::from_slice(&std::fs::read(&nc_path).unwrap()).unwrap();
            let eths = nc["ethernets"]
                .as_mapping()
                .expect("network-config ethernets");
            assert_eq!(
                eths.len(),
                1,
                "{}: one interface expected",
                nc_path.display()
            );
            let (iface, cfg) = eths.iter().next().unwrap();
            let cidr = cfg["addresses"][0].as_str().unwrap().to_string();
            let routes = cfg["routes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["to"].as_str().unwrap().to_string(),
                        r["via"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            nodes.push(NodeInfo {
                name: name.clone(),
                role: n["role"].as_str().unwrap().to_string(),
                address: n["address"].as_str().unwrap().parse().unwrap(),
                interface: iface.as_str().unwrap().to_string(),
                cidr,
                routes,
            });
        }
        Built {
            dir,
            profile,
            state,
            out,
            nodes,
            profile_text: text,
        }
    }

    /// One build per fixture and test binary, shared by its tests (they unpack their own copies, so a
    /// companion's tampering stays in its trees). kimage's PKI generation (RSA keys above all) is the
    /// slow part of a build. The builds are removed when the test binary exits.
    pub fn shared(fixture: &str) -> Arc<Built> {
        static CACHE: Mutex<BTreeMap<String, Arc<Built>>> = Mutex::new(BTreeMap::new());
        static CLEANUP: std::sync::Once = std::sync::Once::new();
        unsafe extern "C" {
            fn atexit(cb: extern "C" fn()) -> std::ffi::c_int;
        }
        extern "C" fn remove_builds() {
            if let Ok(mut c) = CACHE.lock() {
                c.clear();
            }
        }
        CLEANUP.call_once(|| {
            // SAFETY: registers a plain function with the C runtime; libtest ends with exit(), which
            // runs it (also when tests failed).
            unsafe {
                atexit(remove_builds);
            }
        });
        // Held while building: the other tests of the fixture wait for this build instead of starting
        // their own.
        let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        c.entry(fixture.to_string())
            .or_insert_with(|| Arc::new(Built::new(fixture)))
            .clone()
    }

    pub fn node(&self, name: &str) -> &NodeInfo {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in the build"))
    }

    pub fn with_role(&self, role: &str) -> Vec<&NodeInfo> {
        self.nodes.iter().filter(|n| n.role == role).collect()
    }

    /// `kimage unpack --role NODE --into DIR`.
    pub fn unpack(&self, node: &str, into: &Path) {
        must(
            Command::new("/usr/bin/unshare")
                .args(["--net", KIMAGE])
                .arg("unpack")
                .arg("--profile")
                .arg(&self.profile)
                .arg("--state")
                .arg(&self.state)
                .arg("--role")
                .arg(node)
                .arg("--into")
                .arg(into),
        );
    }

    /// PEM certificate and key of a PKI state entry (`etcd-ca`, `ca`, `apiserver@cp-1`).
    pub fn state_pem(&self, id: &str) -> (String, String) {
        let p = self.state.join("pki/state.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let c = &v["certs"][id];
        (
            c["cert"]
                .as_str()
                .unwrap_or_else(|| panic!("no {id}"))
                .into(),
            c["key"].as_str().unwrap().into(),
        )
    }
}

/// The unpacked trees of some nodes, before they boot: tests may break one thing in them.
pub struct Trees {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeInfo>,
}

impl Trees {
    pub fn unpack(built: &Built, names: &[&str]) -> Trees {
        let dir = tempdir_in(Path::new(NODES_SEE), "netns-nodes-");
        let mut nodes = Vec::new();
        for n in names {
            let info = built.node(n).clone();
            built.unpack(n, &dir.path().join(n).join("root"));
            nodes.push(info);
        }
        Trees { dir, nodes }
    }

    pub fn root(&self, node: &str) -> PathBuf {
        assert!(
            self.nodes.iter().any(|n| n.name == node),
            "no tree for {node}"
        );
        self.dir.path().join(node).join("root")
    }

    /// A node path (`/etc/etcd/etcd.conf`) in the unpacked tree.
    pub fn file(&self, node: &str, path: &str) -> PathBuf {
        self.root(node).join(path.trim_start_matches('/'))
    }

    pub fn read(&self, node: &str, path: &str) -> String {
        let p = self.file(node, path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    }

    /// Replaces `from` by `to` in a node file (which must contain it), keeping its mode.
    pub fn edit(&self, node: &str, path: &str, from: &str, to: &str) {
        let t = self.read(node, path);
        assert!(t.contains(from), "{node}:{path} has no `{from}`:\n{t}");
        std::fs::write(self.file(node, path), t.replace(from, to)).unwrap();
    }

    pub fn write(&self, node: &str, path: &str, content: &str) {
        std::fs::write(self.file(node, path), content).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------
// companions: a scenario run on a broken tree must fail, and for the reason named

/// Checks a companion's outcome (`Ok` carries the passing scenario's report): it must be an error that
/// mentions one of `why`. Returns the line the test prints.
pub fn failed_as_expected(outcome: Result<String, String>, why: &[&str]) -> String {
    let e = match outcome {
        Ok(report) => panic!("the scenario passed on a broken tree:\n{report}"),
        Err(e) => e,
    };
    assert!(
        why.iter().any(|w| e.contains(w)),
        "the scenario failed, but not for the expected reason ({why:?}):\n{e}"
    );
    let first = e.lines().next().unwrap_or("");
    let hit = e
        .lines()
        .find(|l| why.iter().any(|w| l.contains(w)) && *l != first)
        .map(|l| format!("\n    {}", l.trim()))
        .unwrap_or_default();
    format!("  failed as expected: {first}{hit}\n")
}

// ---------------------------------------------------------------------------------------------------
// openssl helpers for the companions (certificates kimage did not make)

#[path = "../support/openssl.rs"]
pub mod openssl_certs;

// Each suite uses a different part.
#[allow(unused_imports)]
pub use openssl_certs::{CLIENT_EXT, openssl_ca, openssl_leaf};

// ---------------------------------------------------------------------------------------------------
// systemd units

#[path = "../support/unit_text.rs"]
mod unit_text;
#[allow(unused_imports)] // not every test binary parses units
pub use unit_text::parse_unit;

/// Splits a command line as systemd does for Exec*= (whitespace, single and double quotes).
pub fn split_command(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => cur.push(chars.next().unwrap_or('\\')),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '\\') => {
                cur.push(chars.next().unwrap_or('\\'));
                in_word = true;
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in `{line}`");
    if in_word {
        out.push(cur);
    }
    out
}

/// `KEY=value` lines of an EnvironmentFile, as systemd reads them (comments, blank lines, quotes).
pub fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';']))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("EnvironmentFile line without '=': {l}"));
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// `--flag=value` arguments of a command line (without the program) as a map.
pub fn flags(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .skip(1)
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (a.clone(), "true".to_string()),
        })
        .collect()
}

/// What systemd does with a unit's [Service] section, for the keys kimage's units use. Any other key
/// makes the test fail, so a new setting in a unit cannot be silently ignored here.
#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    pub service_type: String,
    pub user: Option<String>,
    pub group: Option<String>,
    pub environment_files: Vec<String>,
    pub environment: Vec<String>,
    pub credentials: Vec<(String, String)>,
    pub exec_start_pre: Vec<Vec<String>>,
    pub exec_start: Vec<Vec<String>>,
    pub limits: Vec<(String, String)>,
    /// LogsDirectory= (relative to /var/log) and LogsDirectoryMode=.
    pub logs_directories: Vec<String>,
    pub logs_directory_mode: u32,
    pub sections: BTreeMap<String, Vec<(String, String)>>,
}

/// [Service] keys that change nothing about how the process is started once (restart policy,
/// timeouts, kill mode, reload commands, where the output goes).
const IGNORED_SERVICE_KEYS: &[&str] = &[
    "Restart",
    "RestartSec",
    "TimeoutStartSec",
    "KillMode",
    "SuccessExitStatus",
    "ExecReload",
    "RemainAfterExit",
    "StandardOutput",
    "StandardError",
];

impl Unit {
    pub fn parse(name: &str, text: &str) -> Unit {
        let sections = parse_unit(text);
        let mut u = Unit {
            name: name.to_string(),
            service_type: "simple".into(),
            user: None,
            group: None,
            environment_files: vec![],
            environment: vec![],
            credentials: vec![],
            exec_start_pre: vec![],
            exec_start: vec![],
            limits: vec![],
            logs_directories: vec![],
            logs_directory_mode: 0o755,
            sections: sections.clone(),
        };
        for (k, v) in sections.get("Service").into_iter().flatten() {
            match k.as_str() {
                "Type" => u.service_type = v.clone(),
                "User" => u.user = Some(v.clone()),
                "Group" => u.group = Some(v.clone()),
                "EnvironmentFile" => u.environment_files.push(v.clone()),
                "Environment" => u.environment.extend(split_command(v)),
                "LoadCredential" => {
                    let (id, src) = v
                        .split_once(':')
                        .unwrap_or_else(|| panic!("{name}: LoadCredential={v} without ':'"));
                    u.credentials.push((id.to_string(), src.to_string()));
                }
                "ExecStartPre" => u.exec_start_pre.push(split_command(v)),
                "ExecStart" => u.exec_start.push(split_command(v)),
                k if k.starts_with("Limit") => u.limits.push((k.to_string(), v.clone())),
                "LogsDirectory" => u
                    .logs_directories
                    .extend(v.split_whitespace().map(str::to_string)),
                "LogsDirectoryMode" => {
                    u.logs_directory_mode = u32::from_str_radix(v, 8)
                        .unwrap_or_else(|e| panic!("{name}: LogsDirectoryMode={v}: {e}"))
                }
                k if IGNORED_SERVICE_KEYS.contains(&k) => {}
                other => panic!(
                    "{name}: [Service] {other}={v} is not emulated by the netns harness; teach \
                     tests/netns_support/mod.rs what systemd does with it"
                ),
            }
        }
        assert!(!u.exec_start.is_empty(), "{name}: no ExecStart");
        if u.service_type != "oneshot" {
            assert_eq!(u.exec_start.len(), 1, "{name}: one ExecStart expected");
        }
        u
    }

    /// ExecStart of a long-running service.
    pub fn command(&self) -> &[String] {
        &self.exec_start[0]
    }

    pub fn flags(&self) -> BTreeMap<String, String> {
        flags(self.command())
    }

    /// `%d` is the credentials directory; kimage's units use no other specifier.
    fn expand(&self, s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match it.next() {
                Some('d') => out.push_str(&format!("/run/credentials/{}", self.name)),
                Some('%') => out.push('%'),
                other => panic!(
                    "{}: specifier %{other:?} in `{s}` is not emulated by the netns harness",
                    self.name
                ),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------------
// the network of hosts

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Host {
    pub info: NodeInfo,
    pub ns: String,
    /// Pid of the holder (`sleep`) whose mount namespace is the node's.
    pub pid: u32,
    pub root: PathBuf,
}

impl Host {
    /// A path as the node sees it, reachable from the test process.
    pub fn path(&self, node_path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid, node_path))
    }

    pub fn read(&self, node_path: &str) -> String {
        let p = self.path(node_path);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: reading {node_path}: {e}", self.info.name))
    }

    /// A command that runs inside the node (its network and mount namespaces), as root.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new(NSENTER);
        c.args(["-t", &self.pid.to_string(), "-m", "-n", "-u", "-p", "--"])
            .args(argv)
            .current_dir("/")
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root");
        c
    }

    /// Runs a command in the node (bounded by `timeout` so a hang cannot stall the suite).
    pub fn run(&self, argv: &[&str]) -> (bool, String) {
        self.run_for(argv, 60)
    }

    /// [`Host::run`] killed after `secs` seconds; the output then says so (what the command had
    /// buffered is lost with it).
    pub fn run_for(&self, argv: &[&str], secs: u32) -> (bool, String) {
        let secs = secs.to_string();
        let mut v = vec!["/usr/bin/timeout", secs.as_str()];
        v.extend_from_slice(argv);
        let (status, mut s) = run_status(&mut self.command(&v));
        if status.code() == Some(124) {
            s.push_str(&format!("(killed after {secs} s: {})\n", argv.join(" ")));
        }
        (status.success(), s)
    }

    /// The unit file from the node's /etc/systemd/system, parsed.
    pub fn unit(&self, name: &str) -> Unit {
        Unit::parse(name, &self.read(&format!("/etc/systemd/system/{name}")))
    }

    pub fn has(&self, node_path: &str) -> bool {
        self.path(node_path).exists()
    }

    /// The IPv4 addresses on the node's interface.
    pub fn addresses(&self) -> Vec<String> {
        let out = must(Command::new(IP).args([
            "-n",
            &self.ns,
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            &self.info.interface,
        ]));
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|x| *x == "inet")?;
                w.next().map(|a| a.split('/').next().unwrap().to_string())
            })
            .collect()
    }

    pub fn mac(&self) -> String {
        let out = must(Command::new(IP).args([
            "-n",
            &self.ns,
            "-o",
            "link",
            "show",
            "dev",
            &self.info.interface,
        ]));
        let mut w = out.split_whitespace();
        w.find(|x| *x == "link/ether");
        w.next().unwrap_or_default().to_string()
    }

    /// The link-layer address this node has cached for `ip`.
    pub fn neighbour(&self, ip: &str) -> Option<String> {
        let out = must(Command::new(IP).args(["-n", &self.ns, "neigh", "show", ip]));
        let mut w = out.split_whitespace();
        w.find(|x| *x == "lladdr")?;
        w.next().map(str::to_string)
    }
}

/// A process started inside a node.
pub struct Proc {
    pub label: String,
    pub host: String,
    child: Child,
    pub log: PathBuf,
    pub exited: Option<String>,
    pub started: Instant,
    /// Type=notify units: the sd_notify messages received, with when (see [`Notify`]).
    notify: Option<Arc<Notify>>,
}

/// The receiving end of `$NOTIFY_SOCKET` for one Type=notify unit, as systemd holds it: a datagram socket
/// in the node's /run. A thread records each message; it ends when the process's record is dropped.
pub struct Notify {
    messages: Mutex<Vec<(Instant, String)>>,
}

impl Notify {
    /// Binds `/run/kimage-netns-notify/<unit>.sock` inside the node; returns the path as the node sees it.
    fn bind(host: &Host, unit: &str) -> (Arc<Notify>, String) {
        use std::os::unix::net::UnixDatagram;
        let dir = "/run/kimage-netns-notify";
        std::fs::create_dir_all(host.path(dir)).unwrap();
        let node_path = format!("{dir}/{unit}.sock");
        let path = host.path(&node_path);
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path)
            .unwrap_or_else(|e| panic!("{}: binding {node_path}: {e}", host.info.name));
        // Services running under User= must be able to send to it (systemd's socket is 0777 too).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let n = Arc::new(Notify {
            messages: Mutex::new(vec![]),
        });
        let weak = Arc::downgrade(&n);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                let got = sock.recv(&mut buf);
                let Some(n) = weak.upgrade() else { return };
                if let Ok(len) = got {
                    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                    n.messages.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        (n, node_path)
    }

    /// When the first message carrying `KEY=VALUE` (as a line) came.
    fn first(&self, line: &str) -> Option<Instant> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .find(|(_, m)| m.lines().any(|l| l == line))
            .map(|(t, _)| *t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId(usize);

pub struct Net {
    hub: String,
    pub hosts: Vec<Host>,
    holders: Vec<Child>,
    procs: Mutex<Vec<Proc>>,
    notes: Mutex<Vec<String>>,
    namespaces: Vec<String>,
    logs: PathBuf,
    /// Dropped after the namespaces are gone.
    pub trees: Trees,
}

impl Net {
    /// Creates the hub with its bridge, one namespace per tree, and boots every node's holder.
    pub fn start(trees: Trees) -> Net {
        Net::start_with_programs(trees, &[])
    }

    /// [`Net::start`], with the programs of `bins` (directories, e.g. the real Kubernetes and etcd
    /// builds) in every node's /usr/local/bin beside the node's own files there, so units start the
    /// release binaries from the paths they name, as on a node after kimage's apply step.
    pub fn start_with_programs(trees: Trees, bins: &[PathBuf]) -> Net {
        require_netns(&[]);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("kn{}x{n}", std::process::id());
        let logs = trees.dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mut net = Net {
            hub: format!("{tag}-hub"),
            hosts: vec![],
            holders: vec![],
            procs: Mutex::new(vec![]),
            notes: Mutex::new(vec![]),
            namespaces: vec![],
            logs,
            trees,
        };
        let hub = net.hub.clone();
        must(Command::new(IP).args(["netns", "add", &hub]));
        net.namespaces.push(hub.clone());
        must(Command::new(IP).args(["-n", &hub, "link", "set", "lo", "up"]));
        must(Command::new(IP).args(["-n", &hub, "link", "add", "br0", "type", "bridge"]));
        must(Command::new(IP).args(["-n", &hub, "link", "set", "br0", "up"]));
        let nodes = net.trees.nodes.clone();
        for (i, info) in nodes.iter().enumerate() {
            let ns = format!("{tag}-{}", info.name);
            must(Command::new(IP).args(["netns", "add", &ns]));
            net.namespaces.push(ns.clone());
            let port = format!("p{i}");
            // Created inside the hub, its peer moved straight into the node: nothing in the root namespace.
            must(Command::new(IP).args([
                "-n",
                &hub,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                &info.interface,
                "netns",
                &ns,
            ]));
            must(Command::new(IP).args(["-n", &hub, "link", "set", &port, "master", "br0", "up"]));
            must(Command::new(IP).args(["-n", &ns, "link", "set", "lo", "up"]));
            must(Command::new(IP).args([
                "-n",
                &ns,
                "addr",
                "add",
                &info.cidr,
                "dev",
                &info.interface,
            ]));
            must(Command::new(IP).args(["-n", &ns, "link", "set", &info.interface, "up"]));
            // The routes of its network-config (a gateway nobody answers for is still a route: local
            // traffic to Service cluster IPs needs one before kube-proxy's rules rewrite it).
            for (to, via) in &info.routes {
                let to = if to == "0.0.0.0/0" { "default" } else { to };
                must(Command::new(IP).args(["-n", &ns, "route", "add", to, "via", via]));
            }
            let root = net.trees.root(&info.name);
            let (child, pid) = boot_holder(&ns, &info.name, &root, bins);
            net.holders.push(child);
            net.hosts.push(Host {
                info: info.clone(),
                ns,
                pid,
                root,
            });
        }
        net
    }

    /// Records a deviation from what systemd would do on a node (reported once per test).
    pub fn note(&self, text: String) {
        let mut n = self.notes.lock().unwrap();
        if !n.contains(&text) {
            n.push(text);
        }
    }

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.info.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Starts a long-running command inside a node, its output in a log file.
    pub fn spawn(&self, host: &Host, label: &str, cmd: Command) -> ProcId {
        self.spawn_notify(host, label, cmd, None)
    }

    fn spawn_notify(
        &self,
        host: &Host,
        label: &str,
        mut cmd: Command,
        notify: Option<Arc<Notify>>,
    ) -> ProcId {
        let mut procs = self.procs.lock().unwrap();
        let log = self
            .logs
            .join(format!("{}-{label}-{}.log", host.info.name, procs.len()));
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            // Its own process group: stopping it reaches the program behind nsenter and its children.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label} on {}: {e}", host.info.name));
        procs.push(Proc {
            label: label.to_string(),
            host: host.info.name.clone(),
            child,
            log,
            exited: None,
            started: Instant::now(),
            notify,
        });
        ProcId(procs.len() - 1)
    }

    /// Whether the process still runs; records how it ended otherwise.
    pub fn running(&self, id: ProcId) -> bool {
        let mut procs = self.procs.lock().unwrap();
        let p = &mut procs[id.0];
        if p.exited.is_some() {
            return false;
        }
        match p.child.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                p.exited = Some(st.to_string());
                false
            }
            Err(e) => {
                p.exited = Some(e.to_string());
                false
            }
        }
    }

    pub fn log(&self, id: ProcId) -> String {
        let procs = self.procs.lock().unwrap();
        std::fs::read_to_string(&procs[id.0].log).unwrap_or_default()
    }

    pub fn label(&self, id: ProcId) -> String {
        let procs = self.procs.lock().unwrap();
        format!("{} on {}", procs[id.0].label, procs[id.0].host)
    }

    /// The last lines of a process's log, for error messages.
    pub fn tail(&self, id: ProcId, lines: usize) -> String {
        let log = self.log(id);
        let v: Vec<&str> = log.lines().collect();
        let from = v.len().saturating_sub(lines);
        format!(
            "--- last {} lines of {} ---\n{}",
            v.len() - from,
            self.label(id),
            v[from..].join("\n")
        )
    }

    /// For a Type=notify unit: waits for `READY=1` (what systemd waits for before it starts the units
    /// ordered after it). Returns the time from the start of the process.
    pub fn wait_ready(&self, id: ProcId, deadline: Duration) -> Result<Duration, String> {
        let notify = self.procs.lock().unwrap()[id.0]
            .notify
            .clone()
            .unwrap_or_else(|| panic!("{} is not a Type=notify unit", self.label(id)));
        let started = self.procs.lock().unwrap()[id.0].started;
        poll(
            &format!("{} notifies READY=1", self.label(id)),
            deadline,
            Duration::from_millis(50),
            || {
                if let Some(t) = notify.first("READY=1") {
                    return Poll::Ok(t - started);
                }
                if !self.running(id) {
                    return Poll::Fatal(format!("it exited\n{}", self.tail(id, 30)));
                }
                Poll::Retry(self.tail(id, 10))
            },
        )
        .map(|(d, _)| d)
    }

    /// The program's pid as the test machine sees it (the child of the `nsenter` the harness started).
    pub fn pid(&self, id: ProcId) -> u32 {
        let nsenter = self.procs.lock().unwrap()[id.0].child.id();
        only_child(nsenter).unwrap_or(nsenter)
    }

    /// Sends a signal (`-TERM`) to the process's group without waiting: failover times then start at
    /// the signal.
    pub fn signal(&self, id: ProcId, sig: &str) {
        let procs = self.procs.lock().unwrap();
        if procs[id.0].exited.is_none() {
            signal(procs[id.0].child.id(), sig);
        }
    }

    /// Stops a process as systemd does (SIGTERM, then SIGKILL after `grace`), by its process group.
    pub fn stop(&self, id: ProcId, grace: Duration) {
        let mut procs = self.procs.lock().unwrap();
        stop_child(&mut procs[id.0], grace);
    }

    /// Starts a unit of the node as systemd would (see [`Unit`]); `program` maps the ExecStart binary
    /// path to the one on this machine (the release binary in /usr/local/bin → Debian's in /usr/bin),
    /// `extra` arguments are appended (stated by the caller). ExecStartPre= commands run first and
    /// must succeed. A oneshot unit runs to completion.
    pub fn start_unit(
        &self,
        host: &Host,
        unit: &Unit,
        program: &[(&str, &str)],
        extra: &[&str],
    ) -> Result<Option<ProcId>, String> {
        let node = &host.info.name;
        // EnvironmentFile=, then Environment= (later assignments win, as in systemd).
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for f in &unit.environment_files {
            let (optional, path) = match f.strip_prefix('-') {
                Some(p) => (true, p),
                None => (false, f.as_str()),
            };
            match std::fs::read_to_string(host.path(path)) {
                Ok(t) => env.extend(env_file(&t)),
                Err(e) if !optional => {
                    return Err(format!(
                        "{node}: {}: EnvironmentFile={path}: {e}",
                        unit.name
                    ));
                }
                Err(_) => {}
            }
        }
        for e in &unit.environment {
            let (k, v) = e
                .split_once('=')
                .unwrap_or_else(|| panic!("Environment={e} without '='"));
            env.insert(k.to_string(), unit.expand(v));
        }
        // User=: the account as the node knows it (its /etc/passwd).
        let account = unit.user.as_ref().map(|u| {
            let passwd = host.read("/etc/passwd");
            let line = passwd
                .lines()
                .find(|l| l.split(':').next() == Some(u.as_str()))
                .unwrap_or_else(|| panic!("{node}: {}: User={u} does not exist", unit.name));
            let f: Vec<&str> = line.split(':').collect();
            (
                u.clone(),
                f[2].parse::<u32>().unwrap(),
                f[3].parse::<u32>().unwrap(),
                f[5].to_string(),
                f[6].to_string(),
            )
        });
        // LoadCredential=: copies readable by the service user only, in /run/credentials/<unit>.
        if !unit.credentials.is_empty() {
            let dir = host.path(&format!("/run/credentials/{}", unit.name));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (id, src) in &unit.credentials {
                let dst = dir.join(id);
                std::fs::copy(host.path(src), &dst).map_err(|e| {
                    format!("{node}: {}: LoadCredential={id}:{src}: {e}", unit.name)
                })?;
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o400)).unwrap();
                if let Some((_, uid, gid, _, _)) = &account {
                    std::os::unix::fs::chown(&dst, Some(*uid), Some(*gid)).unwrap();
                }
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
            if let Some((_, uid, gid, _, _)) = &account {
                std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).unwrap();
            }
            env.insert(
                "CREDENTIALS_DIRECTORY".into(),
                format!("/run/credentials/{}", unit.name),
            );
        }
        // LogsDirectory=: /var/log/<dir>, owned by the service user, with LogsDirectoryMode=.
        for d in &unit.logs_directories {
            let mut path = PathBuf::from("/var/log");
            for part in Path::new(d).components() {
                path.push(part);
                let p = host.path(&path.display().to_string());
                if !p.exists() {
                    std::fs::create_dir(&p).unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                }
            }
            let p = host.path(&path.display().to_string());
            std::fs::set_permissions(
                &p,
                std::fs::Permissions::from_mode(unit.logs_directory_mode),
            )
            .unwrap();
            if let Some((_, uid, gid, _, _)) = &account {
                std::os::unix::fs::chown(&p, Some(*uid), Some(*gid)).unwrap();
            }
        }
        // Type=notify: systemd hands the service $NOTIFY_SOCKET and waits for READY=1.
        let notify = (unit.service_type == "notify").then(|| {
            let (n, path) = Notify::bind(host, &unit.name);
            env.insert("NOTIFY_SOCKET".into(), path);
            n
        });
        let mut prefix: Vec<String> = vec!["/usr/bin/prlimit".into()];
        for (k, v) in &unit.limits {
            let (res, row) = match k.as_str() {
                "LimitNOFILE" => ("nofile", "Max open files"),
                "LimitNPROC" => ("nproc", "Max processes"),
                "LimitMEMLOCK" => ("memlock", "Max locked memory"),
                other => panic!("{}: {other} is not emulated", unit.name),
            };
            let want: Option<u64> = match v.as_str() {
                "infinity" => None,
                v => Some(match v.strip_suffix('K') {
                    Some(kib) => kib.parse::<u64>().unwrap() * 1024,
                    None => v.parse().unwrap(),
                }),
            };
            // Without CAP_SYS_RESOURCE (containers) a hard limit cannot be raised: clamp, and say so.
            let hard = hard_limit(row);
            let value = match (want, hard) {
                (Some(w), Some(h)) if w > h => {
                    self.note(format!("{k}={v} clamped to this machine's hard limit {h}"));
                    h.to_string()
                }
                (None, Some(h)) => {
                    self.note(format!("{k}={v} clamped to this machine's hard limit {h}"));
                    h.to_string()
                }
                (Some(w), _) => w.to_string(),
                (None, None) => "unlimited".to_string(),
            };
            prefix.push(format!("--{res}={value}:{value}"));
        }
        prefix.push("--".into());
        if let Some((name, _, _, home, shell)) = &account {
            let group = unit.group.clone().unwrap_or_else(|| name.clone());
            prefix.extend([
                "/usr/bin/setpriv".into(),
                format!("--reuid={name}"),
                format!("--regid={group}"),
                "--init-groups".into(),
                "--".into(),
            ]);
            env.insert("USER".into(), name.clone());
            env.insert("LOGNAME".into(), name.clone());
            env.insert("HOME".into(), home.clone());
            env.insert("SHELL".into(), shell.clone());
        }
        let build = |argv: &[String], extra: &[&str]| -> Command {
            let mut argv: Vec<String> = argv.iter().map(|a| unit.expand(a)).collect();
            // systemd prefixes ("-", "@", "+", ...) are not used by kimage's units.
            assert!(
                !argv[0].starts_with(['-', '@', '+', '!', ':']),
                "{}: exec prefix in {} not emulated",
                unit.name,
                argv[0]
            );
            if let Some((_, to)) = program.iter().find(|(from, _)| *from == argv[0]) {
                argv[0] = to.to_string();
            }
            // As the node sees it (its /usr/local/bin holds the programs given to the Net).
            assert!(
                host.path(&argv[0]).exists(),
                "{}: {} is not on the node {}",
                unit.name,
                argv[0],
                host.info.name
            );
            argv.extend(extra.iter().map(|s| s.to_string()));
            let all: Vec<&str> = prefix
                .iter()
                .map(String::as_str)
                .chain(argv.iter().map(String::as_str))
                .collect();
            let mut c = host.command(&all);
            c.envs(&env);
            c
        };
        for pre in &unit.exec_start_pre {
            let (ok, out) = run(&mut build(pre, &[]));
            if !ok {
                return Err(format!(
                    "{node}: {}: ExecStartPre={} failed:\n{out}",
                    unit.name,
                    pre.join(" ")
                ));
            }
        }
        if unit.service_type == "oneshot" {
            for cmd in &unit.exec_start {
                let (ok, out) = run(&mut build(cmd, &[]));
                if !ok {
                    return Err(format!(
                        "{node}: {}: ExecStart={} failed:\n{out}",
                        unit.name,
                        cmd.join(" ")
                    ));
                }
            }
            return Ok(None);
        }
        Ok(Some(self.spawn_notify(
            host,
            unit.name.trim_end_matches(".service"),
            build(unit.command(), extra),
            notify,
        )))
    }
}

/// The hard limit of a resource (row of /proc/self/limits); `None` for unlimited.
pub fn hard_limit(row: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no `{row}` in /proc/self/limits"));
    let hard = line[row.len()..].split_whitespace().nth(1).unwrap();
    hard.parse().ok()
}

/// Boots a node's holder: `ip netns exec` (network namespace) + `unshare --mount` (private mounts), the
/// node's tree mounted over the real paths, then `sleep` keeps both namespaces alive.
fn boot_holder(ns: &str, hostname: &str, root: &Path, bins: &[PathBuf]) -> (Child, u32) {
    let r = root.display().to_string();
    for p in std::iter::once(r.clone()).chain(bins.iter().map(|b| b.display().to_string())) {
        assert!(
            !p.contains([':', ',', ' ', '\'']),
            "overlay paths cannot contain ':', ',', spaces or quotes: {p}"
        );
    }
    assert!(
        hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "node name {hostname} is not a plain hostname"
    );
    std::fs::create_dir_all(root.join("var/lib")).unwrap();
    // The node's /usr/local/bin first (kimage's scripts), then the programs given.
    let usr_local_bin = if bins.is_empty() {
        String::new()
    } else {
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        let lower: Vec<String> = std::iter::once(format!("{r}/usr/local/bin"))
            .chain(bins.iter().map(|b| b.display().to_string()))
            .collect();
        format!(
            "mount -t overlay kimage-bin -o ro,lowerdir={} /usr/local/bin\n",
            lower.join(":")
        )
    };
    let script = format!(
        r#"set -e
hostname {hostname}
mount -t tmpfs -o mode=0755 kimage-run /run
s=/run/.kimage-netns
mkdir -p $s/etc.u $s/etc.w $s/varlib.u $s/varlib.w $s/varlog.u $s/varlog.w
mount -t overlay kimage-etc -o lowerdir={r}/etc:/etc,upperdir=$s/etc.u,workdir=$s/etc.w /etc
mount -t overlay kimage-var-lib -o lowerdir={r}/var/lib,upperdir=$s/varlib.u,workdir=$s/varlib.w /var/lib
mount -t overlay kimage-var-log -o lowerdir=/var/log,upperdir=$s/varlog.u,workdir=$s/varlog.w /var/log
mount -t tmpfs -o mode=1777 kimage-tmp /tmp
mount -t tmpfs -o mode=0700 kimage-root /root
{usr_local_bin}echo ready
exec sleep infinity
"#
    );
    let mut child = Command::new(IP)
        .args([
            "netns",
            "exec",
            ns,
            "/usr/bin/unshare",
            "--mount",
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
        ])
        .args(["/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip netns exec");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.trim() != "ready" {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "booting the node namespace {ns} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `unshare --fork` runs the script (now `sleep`) as PID 1 of the node's PID namespace, as its child:
    // that process is the node (its mount, UTS and PID namespaces).
    let pid =
        only_child(child.id()).unwrap_or_else(|| panic!("the holder of {ns} has no child process"));
    (child, pid)
}

/// The one child of a process (`nsenter` and `unshare --fork` run the program as their child).
fn only_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Signals a process group (a started program, the `nsenter` in front of it and whatever it forked),
/// as systemd signals a unit's whole control group.
fn signal(pgid: u32, sig: &str) {
    let _ = Command::new("/usr/bin/kill")
        .args([sig, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn stop_child(p: &mut Proc, grace: Duration) {
    if p.exited.is_some() {
        return;
    }
    if let Ok(Some(st)) = p.child.try_wait() {
        p.exited = Some(st.to_string());
        return;
    }
    signal(p.child.id(), "-TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = p.child.try_wait() {
            p.exited = Some(st.to_string());
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(p.child.id(), "-KILL");
    let st = p.child.wait();
    p.exited = Some(format!("{st:?} (SIGKILL after {grace:?})"));
}

impl Drop for Net {
    fn drop(&mut self) {
        // NETNS_KEEP_LOGS=1 keeps the unpacked trees and logs for a look after the run.

        // The processes this test started, by pid.
        if let Ok(mut procs) = self.procs.lock() {
            for p in procs.iter_mut() {
                stop_child(p, Duration::from_secs(3));
            }
        }
        // Whatever they left inside the node namespaces (workers, check scripts), by pid.
        for ns in &self.namespaces {
            if let Ok(out) = Command::new(IP).args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if pid.parse::<u32>().is_ok() {
                        let _ = Command::new("/usr/bin/kill").args(["-KILL", pid]).status();
                    }
                }
            }
        }
        for h in &mut self.holders {
            let _ = h.kill();
            let _ = h.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new(IP)
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if std::env::var_os("NETNS_KEEP_LOGS").is_some() {
            let keep = tempfile::Builder::new().tempdir().unwrap().keep();
            std::fs::rename(&self.logs, keep.join("logs")).ok();
            report(&format!("[netns] logs moved to {}/logs", keep.display()));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// polling

/// Polls `f` every `every` until it returns `Ok` or `Err(Fatal)`, or the deadline passes.
pub enum Poll<T> {
    Ok(T),
    /// Not yet (the last message is kept for the timeout error).
    Retry(String),
    /// Will not get better (a certificate was refused, a process died): stop now.
    Fatal(String),
}

pub fn poll<T>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut f: impl FnMut() -> Poll<T>,
) -> Result<(T, Duration), String> {
    let start = Instant::now();
    loop {
        let last = match f() {
            Poll::Ok(v) => return Ok((v, start.elapsed())),
            Poll::Fatal(m) => return Err(format!("{what}: {m}")),
            Poll::Retry(m) => m,
        };
        if start.elapsed() >= deadline {
            return Err(format!(
                "{what}: not within {deadline:?}; last attempt:\n{last}"
            ));
        }
        std::thread::sleep(every);
    }
}

/// Whether a client's error is a TLS/certificate refusal (permanent) rather than "not up yet".
pub fn is_tls_refusal(out: &str) -> bool {
    let o = out.to_lowercase();
    [
        "x509",
        "certificate",
        "unknown ca",
        "verify error",
        "verification failed",
        "alert",
    ]
    .iter()
    .any(|k| o.contains(k))
}

// ---------------------------------------------------------------------------------------------------
// reports

/// What a scenario found, one line per step with the time the step took.
pub struct Report {
    pub lines: Vec<String>,
    last: Instant,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            lines: vec![],
            last: Instant::now(),
        }
    }
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// A finding, with the time since the previous one.
    pub fn add(&mut self, s: impl Into<String>) {
        let now = Instant::now();
        self.lines
            .push(format!("[{}] {}", secs(now - self.last), s.into()));
        self.last = now;
    }

    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("  - {l}\n")).collect()
    }
}

/// Runs a test body and prints what it reported with its time (to the real stderr: CI logs keep it).
pub fn timed(name: &str, f: impl FnOnce() -> String) {
    let t = Instant::now();
    let text = f();
    report(&format!(
        "[netns] {name}: {} (passed)\n{text}",
        secs(t.elapsed())
    ));
}

// ---------------------------------------------------------------------------------------------------
// units that several suites start

/// The units etcd.service Requires= (kimage-etcd-setup.service: systemd-sysusers, systemd-tmpfiles),
/// then etcd.service itself, from the binary its ExecStart names.
pub fn start_etcd_member(net: &Net, host: &Host) -> Result<ProcId, String> {
    let etcd = host.unit("etcd.service");
    let requires = etcd.sections["Unit"]
        .iter()
        .filter(|(k, _)| k == "Requires")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string))
        .collect::<Vec<_>>();
    for dep in &requires {
        net.start_unit(host, &host.unit(dep), &[], &[])?;
    }
    assert_eq!(
        etcd.command()[0],
        "/usr/local/bin/etcd",
        "etcd.service runs the release binary"
    );
    Ok(net
        .start_unit(host, &etcd, &[], &[])?
        .expect("etcd.service is long-running"))
}

/// keepalived timers of a node's config.
pub struct Vrrp {
    pub advert: f64,
    pub priority: u32,
    pub interval: f64,
    pub fall: f64,
    pub rise: f64,
}

impl Vrrp {
    pub fn parse(conf: &str) -> Vrrp {
        let get = |key: &str| -> f64 {
            conf.lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix(&format!("{key} ")))
                .unwrap_or_else(|| panic!("keepalived config has no `{key}`:\n{conf}"))
                .trim()
                .parse()
                .unwrap()
        };
        Vrrp {
            advert: get("advert_int"),
            priority: get("priority") as u32,
            interval: get("interval"),
            fall: get("fall"),
            rise: get("rise"),
        }
    }

    /// RFC 3768's Master_Down_Interval for this (backup) router: 3 × advert + skew.
    pub fn master_down(&self) -> f64 {
        3.0 * self.advert + self.skew()
    }

    pub fn skew(&self) -> f64 {
        (256.0 - self.priority as f64) / 256.0 * self.advert
    }
}

/// A load-balancer node running its proxy unit and keepalived.
#[derive(Clone)]
pub struct Lb {
    pub node: String,
    /// `haproxy.service` or `nginx.service`.
    pub unit: String,
    pub proxy: ProcId,
    pub keepalived: ProcId,
    pub vrrp_priority: u32,
}

/// haproxy needs about 2 × maxconn file descriptors and refuses to start without them. A node's
/// systemd grants a hard limit of 524288 (DefaultLimitNOFILE); a container without CAP_SYS_RESOURCE may
/// cap it lower (20000 here). Only then the node's copy gets a maxconn that fits, and the report says so.
pub fn fit_haproxy_maxconn(net: &Net, h: &Host) {
    let path = "/etc/haproxy/kimage.cfg";
    let cfg = h.read(path);
    let Some(line) = cfg.lines().find(|l| l.trim_start().starts_with("maxconn ")) else {
        return;
    };
    let maxconn: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let Some(hard) = hard_limit("Max open files") else {
        return;
    };
    let need = 2 * maxconn + 100;
    if hard >= need {
        return;
    }
    let fit = (hard - 100) / 2;
    std::fs::write(
        h.path(path),
        cfg.replace(line, &line.replace(&maxconn.to_string(), &fit.to_string())),
    )
    .unwrap();
    net.note(format!(
        "haproxy maxconn {maxconn} needs {need} fds, this machine's hard limit is {hard} (a systemd \
         node's is 524288): maxconn {fit} in the node's copy"
    ));
}

/// Starts each load balancer's proxy unit (haproxy.service or nginx.service), waits until it serves
/// (what systemd waits for before keepalived.service, which is ordered After= it), then keepalived.
/// Returns them in VRRP priority order (the intended master first).
pub fn start_load_balancers(net: &Net, names: &[String]) -> Result<Vec<Lb>, String> {
    let mut started = Vec::new();
    for n in names {
        let h = net.host(n);
        let unit = ["haproxy.service", "nginx.service"]
            .into_iter()
            .find(|u| h.has(&format!("/etc/systemd/system/{u}")))
            .ok_or_else(|| format!("{n} has neither haproxy.service nor nginx.service"))?;
        if unit == "haproxy.service" {
            fit_haproxy_maxconn(net, h);
        }
        let proxy = net
            .start_unit(h, &h.unit(unit), &[], &[])?
            .expect("long-running");
        started.push((n.clone(), unit.to_string(), proxy));
    }
    for (n, unit, proxy) in &started {
        // haproxy (Type=notify) says READY=1; nginx.service is Type=exec: its workers run.
        if unit == "haproxy.service" {
            net.wait_ready(*proxy, Duration::from_secs(30))?;
            continue;
        }
        poll(
            &format!("{unit} on {n} started"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                if !net.running(*proxy) {
                    return Poll::Fatal(net.tail(*proxy, 20));
                }
                if net.log(*proxy).contains("start worker process") {
                    Poll::Ok(())
                } else {
                    Poll::Retry(net.log(*proxy))
                }
            },
        )?;
    }
    let mut lbs = Vec::new();
    for (n, unit, proxy) in started {
        let h = net.host(&n);
        // Logging to the console is the only addition (systemd would hand keepalived a journal).
        let keepalived = net
            .start_unit(
                h,
                &h.unit("keepalived.service"),
                &[],
                &["--log-console", "--log-detail"],
            )?
            .expect("long-running");
        let vrrp_priority = Vrrp::parse(&h.read("/etc/keepalived/kimage.conf")).priority;
        lbs.push(Lb {
            node: n,
            unit,
            proxy,
            keepalived,
            vrrp_priority,
        });
    }
    lbs.sort_by_key(|l| std::cmp::Reverse(l.vrrp_priority));
    Ok(lbs)
}

// ---------------------------------------------------------------------------------------------------
// the real programs (ci/real/build.sh), kubectl among them; temp dirs and required tools

#[path = "../support/kubectl.rs"]
pub mod kubectl;
#[path = "../support/real.rs"]
pub mod real;
#[path = "../support/tools.rs"]
pub mod tools;

#[allow(unused_imports)] // each suite uses a different part
pub use kubectl::kubectl;
#[allow(unused_imports)]
pub use tools::{require, require_root, require_tools, tempdir_in};

#[path = "../support/artifacts.rs"]
pub mod artifacts;
