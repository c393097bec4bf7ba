//! Real etcd members from kimage's output: `kimage build` + `kimage unpack` per node, each node its own
//! host (network, mount, UTS and PID namespace, tests/netns_support), the pinned etcd (3.6, built from its
//! Go module by ci/real/build.sh, in the nodes' /usr/local/bin) started from exactly what the
//! node's etcd.service carries (kimage-etcd-setup.service first, as Requires= says; EnvironmentFile=,
//! Environment=, LoadCredential= → $CREDENTIALS_DIRECTORY, User=etcd, Limit*=, the ExecStart flags),
//! with the node's certificates at their on-node paths. Checks, with etcdctl and curl from inside the
//! nodes: the cluster forms with TLS on client and peer ports; `endpoint health --cluster` with each
//! member's healthcheck-client certificate and `member list`/put/get with the flags kube-apiserver.service
//! carries (apiserver-etcd-client); clients with another CA's certificate, without one, or speaking plain
//! HTTP are refused; one member of three stopped keeps the cluster writable, restarted it rejoins with
//! its data. Companions break one thing in the unpacked trees and expect the scenario to fail.
//!
//! kimage's etcd settings are meant to hold from 3.4 to 3.6 (members of an older cluster):
//! `etcd_settings_against_3_4_and_3_6` checks every rendered key against the real 3.6's own --help and
//! Debian's etcd 3.4's (tests/reference/etcd.yaml gives the portable subset and the default changes).

mod netns_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use netns_support::*;

/// As the nodes see them (the real build overlaid on their /usr/local/bin).
const ETCDCTL: &str = "/usr/local/bin/etcdctl";
/// Debian's etcd 3.4: only the settings test asks it, for members of older clusters.
const ETCD_3_4: &str = "/usr/bin/etcd";
const CURL: &str = "/usr/bin/curl";
/// Generous: a healthy cluster forms in about a second with the fixtures' raft timers.
const FORM: Duration = Duration::from_secs(30);

/// What these tests run besides the netns harness's tools.
const TOOLS: &[&str] = &[
    CURL,
    OPENSSL,
    "/usr/bin/systemd-tmpfiles",
    "/usr/bin/systemd-sysusers",
];

struct Member {
    name: String,
    proc: ProcId,
    /// What the node's etcd.conf says (ETCD_* → value).
    conf: BTreeMap<String, String>,
}

struct Lab {
    net: Net,
    members: Vec<Member>,
    /// A control-plane node: runs etcdctl with kube-apiserver.service's etcd flags.
    apiserver: String,
}

impl Lab {
    fn host(&self, n: &str) -> &Host {
        self.net.host(n)
    }

    fn member_logs(&self) -> String {
        self.members
            .iter()
            .map(|m| self.net.tail(m.proc, 15))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A member that stopped by itself is fatal for a poll.
    fn dead_member(&self) -> Option<String> {
        self.members.iter().find_map(|m| {
            (!self.net.running(m.proc)).then(|| {
                format!(
                    "etcd on {} exited by itself\n{}",
                    m.name,
                    self.net.tail(m.proc, 25)
                )
            })
        })
    }
}

/// etcdctl inside a node with TLS files at node paths (`None`: no client certificate).
fn etcdctl(
    host: &Host,
    endpoints: &str,
    cacert: &str,
    cert: Option<(&str, &str)>,
    args: &[&str],
) -> (bool, String) {
    etcdctl_t(host, endpoints, cacert, cert, args, "4s")
}

/// Refusals and dead members make etcdctl retry until its command timeout: keep that short there.
fn etcdctl_t(
    host: &Host,
    endpoints: &str,
    cacert: &str,
    cert: Option<(&str, &str)>,
    args: &[&str],
    timeout: &str,
) -> (bool, String) {
    let mut argv: Vec<String> = vec![
        "/usr/bin/timeout".into(),
        "20".into(),
        ETCDCTL.into(),
        format!("--endpoints={endpoints}"),
        format!("--cacert={cacert}"),
        "--dial-timeout=2s".into(),
        format!("--command-timeout={timeout}"),
    ];
    if let Some((c, k)) = cert {
        argv.push(format!("--cert={c}"));
        argv.push(format!("--key={k}"));
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let v: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut cmd = host.command(&v);
    run(&mut cmd)
}

const HC_CERT: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.crt";
const HC_KEY: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.key";
const ETCD_CA: &str = "/etc/kubernetes/pki/etcd/ca.crt";

/// `endpoint health --cluster` from a member with its healthcheck-client certificate.
fn cluster_health(lab: &Lab, from: &str) -> (bool, String) {
    let m = lab.members.iter().find(|m| m.name == from).unwrap();
    etcdctl_t(
        lab.host(from),
        &m.conf["ETCD_ADVERTISE_CLIENT_URLS"],
        ETCD_CA,
        Some((HC_CERT, HC_KEY)),
        &["endpoint", "health", "--cluster"],
        "2s",
    )
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(160)
        .collect()
}

/// curl from a member to every member's /health with its healthcheck-client certificate: the first
/// TLS refusal, if any.
fn tls_diagnosis(lab: &Lab, from: &str) -> Option<String> {
    let h = lab.host(from);
    for m in &lab.members {
        let url = format!("{}/health", m.conf["ETCD_ADVERTISE_CLIENT_URLS"]);
        let (_, out) = h.run(&[
            CURL,
            "-sS",
            "--http1.1",
            "--max-time",
            "1",
            "--cacert",
            ETCD_CA,
            "--cert",
            HC_CERT,
            "--key",
            HC_KEY,
            &url,
        ]);
        if is_tls_refusal(&out) {
            return Some(format!("curl {url}: {}", out.trim()));
        }
    }
    None
}

/// Polls until every member answers healthy, checked from every member.
fn wait_healthy(lab: &Lab, what: &str) -> Result<Duration, String> {
    let n = lab.members.len();
    // Only what the members log from now on counts (earlier steps provoke refusals on purpose).
    let seen: Vec<usize> = lab
        .members
        .iter()
        .map(|m| lab.net.log(m.proc).len())
        .collect();
    poll(what, FORM, Duration::from_millis(200), || {
        if let Some(d) = lab.dead_member() {
            return Poll::Fatal(d);
        }
        for m in &lab.members {
            let (ok, out) = cluster_health(lab, &m.name);
            if is_tls_refusal(&out) {
                return Poll::Fatal(format!(
                    "TLS refused, seen from {}:\n{out}\n{}",
                    m.name,
                    lab.member_logs()
                ));
            }
            if !ok || out.matches("is healthy").count() != n {
                // etcdctl hides TLS failures behind retries; curl names them at once.
                if let Some(why) = tls_diagnosis(lab, &m.name) {
                    return Poll::Fatal(format!("TLS refused, seen from {}: {why}", m.name));
                }
                // Members refusing each other (peer TLS) say so in their logs.
                let mut refused = BTreeSet::new();
                for (m, from) in lab.members.iter().zip(&seen) {
                    let log = lab.net.log(m.proc);
                    for l in log.get(*from..).unwrap_or("").lines() {
                        if l.contains("rejected connection") && is_tls_refusal(l)
                            || l.contains("x509:")
                        {
                            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                            let e = v["error"].as_str().unwrap_or(l);
                            refused.insert(format!("{} logged: {} ({e})", m.name, v["msg"]));
                        }
                    }
                }
                if !refused.is_empty() {
                    return Poll::Fatal(format!(
                        "TLS refused between members:\n{}",
                        refused.into_iter().collect::<Vec<_>>().join("\n")
                    ));
                }
                return Poll::Retry(format!("from {}:\n{out}", m.name));
            }
        }
        Poll::Ok(())
    })
    .map(|(_, d)| d)
}

/// kube-apiserver.service's etcd client settings on the control-plane node.
struct ApiEtcd {
    servers: String,
    ca: String,
    cert: String,
    key: String,
}

fn api_etcd(host: &Host) -> ApiEtcd {
    let f = host.unit("kube-apiserver.service").flags();
    ApiEtcd {
        servers: f["--etcd-servers"].clone(),
        ca: f["--etcd-cafile"].clone(),
        cert: f["--etcd-certfile"].clone(),
        key: f["--etcd-keyfile"].clone(),
    }
}

fn api_etcdctl(lab: &Lab, args: &[&str]) -> (bool, String) {
    let h = lab.host(&lab.apiserver);
    let a = api_etcd(h);
    etcdctl(h, &a.servers, &a.ca, Some((&a.cert, &a.key)), args)
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string()
}

/// The whole scenario on a fixture; `tamper` breaks something in the unpacked trees first.
fn scenario(fixture: &str, tamper: impl FnOnce(&Built, &Trees)) -> Result<Report, String> {
    require_netns(TOOLS);
    let mut r = Report::new();
    let built = Built::shared(fixture);
    let member_names: Vec<String> = built
        .nodes
        .iter()
        .filter(|n| {
            n.role == "etcd" || (n.role == "control-plane" && fixture.starts_with("stacked"))
        })
        .map(|n| n.name.clone())
        .collect();
    let cp = built.with_role("control-plane")[0].name.clone();
    let mut names: Vec<&str> = member_names.iter().map(String::as_str).collect();
    if !names.contains(&cp.as_str()) {
        names.push(&cp);
    }
    let trees = Trees::unpack(&built, &names);
    for m in &member_names {
        assert!(
            trees.file(m, "/etc/etcd/etcd.conf").exists(),
            "{m} is an etcd member but has no /etc/etcd/etcd.conf"
        );
    }
    tamper(&built, &trees);
    let net = Net::start_with_programs(trees, &[real::etcd().join("bin")]);
    r.add(format!(
        "kimage build (once per fixture) + unpack of {} nodes, namespaces up",
        names.len()
    ));

    let mut members = Vec::new();
    for m in &member_names {
        let h = net.host(m);
        let conf: BTreeMap<String, String> = env_file(&h.read("/etc/etcd/etcd.conf"))
            .into_iter()
            .collect();
        let proc = start_etcd_member(&net, h)?;
        members.push(Member {
            name: m.clone(),
            proc,
            conf,
        });
    }
    let lab = Lab {
        net,
        members,
        apiserver: cp,
    };
    let formed = wait_healthy(&lab, "cluster forms")?;
    r.add(format!(
        "{} members healthy over TLS {} after the first start (checked from every member with its \
         healthcheck-client certificate, endpoint health --cluster)",
        lab.members.len(),
        secs(formed)
    ));

    // systemd's part, as the node would have it: the member runs as the unit's User=, its data directory
    // is what tmpfiles.d says, and that user reads the private keys only through LoadCredential= copies.
    {
        let m = &lab.members[0];
        let h = lab.host(&m.name);
        let unit = h.unit("etcd.service");
        let user = unit.user.clone().unwrap_or_else(|| "root".into());
        let status = std::fs::read_to_string(format!("/proc/{}/status", lab.net.pid(m.proc)))
            .unwrap_or_default();
        let uid = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string();
        let (_, id) = h.run(&["id", "-u", &user]);
        if uid != id.trim() {
            return Err(format!("etcd on {} runs as uid {uid}, not {user}", m.name));
        }
        let data_dir = unit.flags()["--data-dir"].clone();
        let (_, st) = h.run(&["stat", "-c", "%a %U", &data_dir]);
        if st.trim() != format!("700 {user}") {
            return Err(format!("{}: {data_dir} is `{}`", m.name, st.trim()));
        }
        let as_user = |path: &str| {
            h.run(&[
                "/usr/bin/setpriv",
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
                "--",
                "cat",
                path,
            ])
        };
        for (id, src) in &unit.credentials {
            let (direct, _) = as_user(src);
            let (cred, out) = as_user(&format!("/run/credentials/etcd.service/{id}"));
            if direct || !cred {
                return Err(format!(
                    "{}: {user} reads {src}: {direct}, its credential {id}: {cred} ({out})",
                    m.name
                ));
            }
        }
        r.add(format!(
            "systemd's part on {}: etcd runs as {user} (uid {uid}); {data_dir} is 0700 {user} \
             (kimage-etcd-setup.service: systemd-sysusers, systemd-tmpfiles); {user} cannot read {} but \
             reads its LoadCredential= copies in $CREDENTIALS_DIRECTORY",
            m.name,
            unit.credentials
                .iter()
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // member list with kube-apiserver's own flags: names, https peer and client URLs on the addresses
    // of the nodes' network-config.
    let (ok, out) = api_etcdctl(&lab, &["member", "list", "-w", "json"]);
    if !ok {
        return Err(format!("member list (apiserver-etcd-client):\n{out}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("member list json: {e}\n{out}"))?;
    let mut ids = BTreeMap::new();
    for m in v["members"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap_or("").to_string();
        let node = built
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| format!("member list has `{name}`, no such node:\n{out}"))?;
        for key in ["peerURLs", "clientURLs"] {
            let urls: Vec<&str> = m[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap())
                .collect();
            if urls.len() != 1
                || !urls[0].starts_with("https://")
                || host_of(urls[0]) != node.address.to_string()
            {
                return Err(format!(
                    "member {name}: {key} {urls:?} is not https on {}",
                    node.address
                ));
            }
        }
        ids.insert(name, m["ID"].as_u64().unwrap());
    }
    let want: BTreeSet<&String> = member_names.iter().collect();
    if ids.keys().collect::<BTreeSet<_>>() != want {
        return Err(format!("member list names {:?}, want {want:?}", ids.keys()));
    }
    r.add(format!(
        "member list (kube-apiserver.service's --etcd-servers/--etcd-cafile/--etcd-certfile/--etcd-keyfile \
         on {}): {:?}, every peer and client URL https on the node's address",
        lab.apiserver,
        ids.keys().collect::<Vec<_>>()
    ));
    let (ok, out) = api_etcdctl(&lab, &["put", "/kimage/netns", "formed"]);
    if !ok {
        return Err(format!("put (apiserver-etcd-client): {out}"));
    }

    // Refusals: another CA's client certificate, none at all, plain HTTP on the client and peer ports.
    let first = &lab.members[0];
    let fh = lab.host(&first.name);
    let ep = first.conf["ETCD_ADVERTISE_CLIENT_URLS"].clone();
    let other = lab.net.trees.dir.path().join("other-ca");
    let (oca_key, oca_crt) = openssl_ca(&other, "ca", "not-the-etcd-ca");
    let x_key = other.join("intruder.key");
    let x_crt = openssl_leaf(
        &other,
        "intruder",
        "/CN=kube-apiserver-etcd-client",
        &x_key,
        (&oca_key, &oca_crt),
        CLIENT_EXT,
    );
    let (ok, out) = etcdctl_t(
        fh,
        &ep,
        ETCD_CA,
        Some((x_crt.to_str().unwrap(), x_key.to_str().unwrap())),
        &["get", "/kimage/netns"],
        // Long enough for the handshake to reach the server's verdict on a loaded machine.
        "5s",
    );
    let mut refusals = vec![format!("other CA: {}", last_line(&out))];
    if ok {
        return Err(format!(
            "a client certificate from another CA was served:\n{out}"
        ));
    }
    let (ok, out) = etcdctl_t(fh, &ep, ETCD_CA, None, &["get", "/kimage/netns"], "5s");
    refusals.push(format!("no certificate: {}", last_line(&out)));
    if ok {
        return Err(format!("a client without a certificate was served:\n{out}"));
    }
    let curl = |args: &[&str]| {
        let mut v = vec![CURL, "-sS", "--http1.1", "--max-time", "5"];
        v.extend_from_slice(args);
        fh.run(&v)
    };
    let plain_ep = ep.replacen("https://", "http://", 1);
    // The gRPC gateway's range request for /kimage/netns (key base64-encoded).
    let (_, out) = curl(&[
        &format!("{plain_ep}/v3/kv/range"),
        "-d",
        "{\"key\":\"L2tpbWFnZS9uZXRucw==\"}",
    ]);
    if out.contains("\"kvs\"") {
        return Err(format!("plain HTTP on the client port was served:\n{out}"));
    }
    let (ok, out) = etcdctl_t(
        fh,
        &plain_ep,
        ETCD_CA,
        None,
        &["get", "/kimage/netns"],
        "1s",
    );
    refusals.push(format!("etcdctl over http: {}", last_line(&out)));
    if ok {
        return Err(format!("etcdctl over plain HTTP was served:\n{out}"));
    }
    // The peer port: TLS with the node's peer certificate works, without a certificate or in plain
    // HTTP it does not.
    let peer = first.conf["ETCD_INITIAL_ADVERTISE_PEER_URLS"].clone();
    let peer_crt = &first.conf["ETCD_PEER_CERT_FILE"];
    // ETCD_PEER_KEY_FILE=%d/<id> in etcd.service: the key is LoadCredential=<id>:<path on the node>.
    let unit = fh.unit("etcd.service");
    let peer_key_id = unit
        .environment
        .iter()
        .find_map(|e| e.strip_prefix("ETCD_PEER_KEY_FILE=%d/"))
        .expect("etcd.service sets ETCD_PEER_KEY_FILE from its credentials");
    let peer_key = unit
        .credentials
        .iter()
        .find(|(id, _)| id == peer_key_id)
        .map(|(_, src)| src.clone())
        .expect("a LoadCredential= for the peer key");
    let (ok, out) = curl(&[
        "--cacert",
        &first.conf["ETCD_PEER_TRUSTED_CA_FILE"],
        "--cert",
        peer_crt,
        "--key",
        &peer_key,
        &format!("{peer}/members"),
    ]);
    if !ok || !out.contains("peerURLs") {
        return Err(format!(
            "the peer port with the node's peer certificate:\n{out}"
        ));
    }
    let (ok, out) = curl(&["-f", "--cacert", ETCD_CA, &format!("{peer}/members")]);
    if ok {
        return Err(format!(
            "the peer port served a client without a certificate:\n{out}"
        ));
    }
    let (ok, out) = curl(&[
        "-f",
        &format!("{}/members", peer.replacen("https://", "http://", 1)),
    ]);
    if ok {
        return Err(format!("the peer port served plain HTTP:\n{out}"));
    }
    // The member says why: its log has a "rejected connection" line per refused TLS client (written
    // when the server finishes the handshake, which may be after the client has given up).
    let whys = [
        "unknown authority",
        "provide a certificate",
        "TLS handshake",
    ];
    let rejected = |lab: &Lab| -> BTreeSet<String> {
        lab.net
            .log(first.proc)
            .lines()
            .filter(|l| l.contains("rejected connection"))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["error"].as_str().map(str::to_string))
            .collect()
    };
    let (logged, _) = poll(
        &format!("{} logs a rejected connection for each refusal", first.name),
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let got = rejected(&lab);
            match whys.iter().find(|w| !got.iter().any(|e| e.contains(*w))) {
                None => Poll::Ok(got),
                Some(w) => Poll::Retry(format!("none for `{w}`: {got:?}")),
            }
        },
    )?;
    refusals.push(format!("{} logged: {logged:?}", first.name));
    r.add(format!(
        "refused: a client certificate from another CA, no client certificate, plain HTTP (client port \
         2379 and peer port 2380); the peer port serves TLS to the node's peer certificate\n      {}",
        refusals.join("\n      ")
    ));

    // One member of three stops: still writable; health notices; restarted it rejoins with the data.
    let mut lab = lab;
    let vi = lab.members.len() - 1;
    let vname = lab.members[vi].name.clone();
    let vep = lab.members[vi].conf["ETCD_ADVERTISE_CLIENT_URLS"].clone();
    lab.net.stop(lab.members[vi].proc, Duration::from_secs(10));
    let (_, wrote) = poll(
        "write with one member stopped",
        FORM,
        Duration::from_millis(200),
        || {
            let (ok, out) = api_etcdctl(&lab, &["put", "/kimage/while-down", "written-while-down"]);
            if ok { Poll::Ok(()) } else { Poll::Retry(out) }
        },
    )?;
    let (ok, out) = cluster_health(&lab, &lab.members[0].name);
    if ok {
        return Err(format!(
            "endpoint health --cluster did not notice {vname} stopped:\n{out}"
        ));
    }
    let restarted = start_etcd_member(&lab.net, lab.host(&vname))?;
    lab.members[vi].proc = restarted;
    let (_, rejoined) = poll(
        "the restarted member has the write it missed",
        FORM,
        Duration::from_millis(200),
        || {
            if let Some(d) = lab.dead_member() {
                return Poll::Fatal(d);
            }
            let (ok, out) = etcdctl(
                lab.host(&vname),
                &vep,
                ETCD_CA,
                Some((HC_CERT, HC_KEY)),
                &[
                    "get",
                    "/kimage/while-down",
                    "--print-value-only",
                    "--consistency=s",
                ],
            );
            if ok && out.trim() == "written-while-down" {
                Poll::Ok(())
            } else {
                Poll::Retry(out)
            }
        },
    )?;
    wait_healthy(&lab, "all healthy after the restart")?;
    let (ok, out) = api_etcdctl(&lab, &["member", "list", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let after: BTreeMap<String, u64> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["ID"].as_u64().unwrap(),
            )
        })
        .collect();
    if !ok || after != ids {
        return Err(format!(
            "members changed across the restart: {ids:?} → {after:?}"
        ));
    }
    let log = lab.net.log(restarted);
    if !log.contains("restarting local member") {
        return Err(format!(
            "{vname} did not restart from its data directory:\n{}",
            lab.net.tail(restarted, 30)
        ));
    }
    r.add(format!(
        "{vname} stopped: written through the others {} later; restarted: it served the missed write from \
         its own data {} later (same member ID, \"restarting local member\"), all healthy again",
        secs(wrote),
        secs(rejoined)
    ));

    // etcd understood every rendered ETCD_* variable (it warns about unknown ones).
    for m in &lab.members {
        let log = lab.net.log(m.proc);
        if let Some(l) = log
            .lines()
            .find(|l| l.contains("unrecognized environment variable"))
        {
            return Err(format!("etcd {} on {}: {l}", etcd_version(), m.name));
        }
    }
    r.add(format!(
        "etcd {} took every ETCD_* variable of etcd.conf and etcd.service (no \"unrecognized environment \
         variable\")",
        etcd_version()
    ));
    for n in lab.net.notes() {
        r.add(format!("note: {n}"));
    }
    Ok(r)
}

/// The version an etcd binary reports.
fn etcd_version_of(binary: &str) -> String {
    let (_, out) = run(std::process::Command::new(binary).arg("--version"));
    out.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("etcd Version: ")
        .to_string()
}

/// The pinned etcd the members run.
fn etcd_version() -> String {
    etcd_version_of(&real::program(&real::etcd(), "etcd"))
}

#[test]
fn stacked_etcd_forms_a_tls_cluster() {
    timed("stacked_etcd_forms_a_tls_cluster", || {
        scenario("stacked-haproxy", |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
    });
}

#[test]
fn external_etcd_forms_a_tls_cluster() {
    timed("external_etcd_forms_a_tls_cluster", || {
        scenario("external-nginx", |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
    });
}

/// Expects the scenario to fail, with `why` in the message.
fn expect_failure(fixture: &str, why: &[&str], tamper: impl FnOnce(&Built, &Trees)) -> String {
    failed_as_expected(scenario(fixture, tamper).map(|r| r.text()), why)
}

#[test]
fn companion_wrong_initial_cluster_entry_is_caught() {
    // As if the model had derived a wrong address for cp-3: every member's ETCD_INITIAL_CLUSTER says so.
    timed("companion_wrong_initial_cluster_entry_is_caught", || {
        expect_failure(
            "stacked-haproxy",
            &["but missing from --initial-advertise-peer-urls"],
            |b, t| {
                let cp3 = b.node("cp-3").address.to_string();
                for m in ["cp-1", "cp-2", "cp-3"] {
                    t.edit(
                        m,
                        "/etc/etcd/etcd.conf",
                        &format!("cp-3=https://{cp3}:2380"),
                        "cp-3=https://10.77.0.99:2380",
                    );
                }
            },
        )
    });
}

#[test]
fn companion_other_etcd_ca_is_caught() {
    // etcd-3 trusts another CA for its clients and peers.
    timed("companion_other_etcd_ca_is_caught", || {
        expect_failure(
            "external-nginx",
            &[
                "unknown ca",
                "unable to get local issuer certificate",
                "unknown authority",
            ],
            |_, t| {
                let dir = t.dir.path().join("swap");
                let (_, crt) = openssl_ca(&dir, "ca", "etcd-ca");
                std::fs::copy(crt, t.file("etcd-3", ETCD_CA)).unwrap();
            },
        )
    });
}

#[test]
fn companion_client_auth_only_server_cert_is_caught() {
    // cp-2's etcd server certificate: same key, same SANs, same CA, but clientAuth only.
    timed("companion_client_auth_only_server_cert_is_caught", || {
        expect_failure(
            "stacked-haproxy",
            &["unsuitable certificate purpose", "incompatible key usage"],
            |b, t| {
                let dir = t.dir.path().join("eku");
                std::fs::create_dir_all(&dir).unwrap();
                let (ca_crt, ca_key) = b.state_pem("etcd-ca");
                let (cak, cac) = (dir.join("etcd-ca.key"), dir.join("etcd-ca.crt"));
                std::fs::write(&cak, ca_key).unwrap();
                std::fs::write(&cac, ca_crt).unwrap();
                let server = t.file("cp-2", "/etc/kubernetes/pki/etcd/server.crt");
                let (_, sans) = run(std::process::Command::new(OPENSSL).args([
                    "x509",
                    "-noout",
                    "-ext",
                    "subjectAltName",
                    "-in",
                    server.to_str().unwrap(),
                ]));
                let sans = sans
                    .lines()
                    .nth(1)
                    .unwrap()
                    .trim()
                    .replace("IP Address:", "IP:");
                let crt = openssl_leaf(
                    &dir,
                    "server",
                    "/CN=cp-2",
                    &t.file("cp-2", "/etc/kubernetes/pki/etcd/server.key"),
                    (&cak, &cac),
                    &format!(
                        "[v3]\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                         extendedKeyUsage=clientAuth\nsubjectAltName={sans}\n"
                    ),
                );
                std::fs::copy(crt, server).unwrap();
            },
        )
    });
}

// ---------------------------------------------------------------------------------------------------
// 3.4 here, 3.6 pinned

fn yaml_strings(v: &serde_yaml_ng::Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|x| match x {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Mapping(m) => m
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// The portable 3.4–3.6 subset as flag names (`client-transport-security{cert-file,...}` → --cert-file,
/// `peer-transport-security{...}` → --peer-cert-file, annotations dropped).
fn portable_flags(reference: &serde_yaml_ng::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for k in yaml_strings(&reference["portable_subset_3_4_to_3_6"]["keys"]) {
        let (name, note) = match k.split_once(" (") {
            Some((n, note)) => (n.to_string(), note.trim_end_matches(')').to_string()),
            None => (k.clone(), String::new()),
        };
        if let Some((block, inner)) = name.split_once('{') {
            let prefix = if block.starts_with("peer") {
                "peer-"
            } else {
                ""
            };
            for f in inner.trim_end_matches('}').split(',') {
                out.insert(format!("--{prefix}{f}"), format!("{block}.{f}"));
            }
        } else {
            out.insert(format!("--{name}"), note);
        }
    }
    out
}

/// The first string value under `key` anywhere in a TOML document.
fn find_key(v: &toml::Value, key: &str) -> Option<toml::Value> {
    match v {
        toml::Value::Table(t) => t
            .get(key)
            .filter(|x| x.is_str())
            .cloned()
            .or_else(|| t.values().find_map(|x| find_key(x, key))),
        toml::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

#[test]
fn etcd_settings_against_3_4_and_3_6() {
    let t = Instant::now();
    require(ETCD_3_4);
    let reference: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/etcd.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut flags36: BTreeSet<String> = yaml_strings(&reference["flags_v3_6"]["embed_flags"])
        .into_iter()
        .collect();
    flags36.extend(yaml_strings(&reference["flags_v3_6"]["etcdmain_flags"]));
    let not_in_34: BTreeSet<String> =
        yaml_strings(&reference["version_differences"]["v3_4_vs_v3_5"]["flags_not_in_3_4"])
            .into_iter()
            .collect();
    let removed_36: BTreeSet<String> =
        yaml_strings(&reference["version_differences"]["v3_5_vs_v3_6"]["flags_removed"])
            .into_iter()
            .collect();
    let renamed_36: BTreeSet<String> =
        reference["version_differences"]["v3_5_vs_v3_6"]["renamed_experimental"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| format!("--{}", k.as_str().unwrap()))
            .collect();
    let mut default_changes: BTreeMap<String, String> = BTreeMap::new();
    for section in ["v3_4_vs_v3_5", "v3_5_vs_v3_6"] {
        for c in reference["version_differences"][section]["default_changes"]
            .as_sequence()
            .unwrap()
        {
            let m = c.as_mapping().unwrap();
            let vals: Vec<String> = m
                .iter()
                .filter(|(k, _)| k.as_str() != Some("flag"))
                .map(|(k, v)| format!("{}: {}", k.as_str().unwrap(), v.as_str().unwrap_or("?")))
                .collect();
            default_changes.insert(c["flag"].as_str().unwrap().to_string(), vals.join(", "));
        }
    }
    let portable = portable_flags(&reference);
    let (_, help34) = run(std::process::Command::new(ETCD_3_4).arg("--help"));
    let version = etcd_version_of(ETCD_3_4);
    // The real 3.6 judges: its own --help, not only the reference's flag list.
    let etcd36 = real::program(&real::etcd(), "etcd");
    let (_, help36) = run(std::process::Command::new(&etcd36).arg("--help"));
    let version36 = etcd_version_of(&etcd36);

    let mut text = String::new();
    let mut problems = Vec::new();
    let mut pinned = String::new();
    for fixture in ["stacked-haproxy", "external-nginx"] {
        let built = Built::shared(fixture);
        let member = built
            .nodes
            .iter()
            .find(|n| {
                n.role == "etcd" || (fixture.starts_with("stacked") && n.role == "control-plane")
            })
            .unwrap()
            .name
            .clone();
        let lock: toml::Value =
            toml::from_str(&std::fs::read_to_string(built.dir.path().join("kimage.lock")).unwrap())
                .unwrap();
        let v = find_key(&lock, "etcd")
            .and_then(|v| v.as_str().map(str::to_string))
            .expect("kimage.lock names the etcd version");
        assert!(
            v.starts_with("v3.6."),
            "the fixtures pin etcd 3.6, the lock says {v}"
        );
        pinned = v;
        let trees = Trees::unpack(&built, &[&member]);
        let unit = Unit::parse(
            "etcd.service",
            &trees.read(&member, "/etc/systemd/system/etcd.service"),
        );
        // Every setting the member gets: etcd.conf, Environment= of the unit, ExecStart flags.
        let mut settings: Vec<(String, String, &str)> = Vec::new();
        for (k, v) in env_file(&trees.read(&member, "/etc/etcd/etcd.conf")) {
            settings.push((k, v, "etcd.conf"));
        }
        for e in &unit.environment {
            let (k, v) = e.split_once('=').unwrap();
            settings.push((k.to_string(), v.to_string(), "Environment="));
        }
        for a in &unit.command()[1..] {
            let (k, v) = a.split_once('=').unwrap_or((a, "true"));
            settings.push((k.to_string(), v.to_string(), "ExecStart"));
        }
        text.push_str(&format!(
            "  {fixture} ({member}): {} settings\n    {:<36} {:<34} {:<10} {:<10} {:<12} {:<10} note\n",
            settings.len(),
            "setting",
            "flag",
            version36.as_str(),
            "3.6 (ref.)",
            "3.4–3.6",
            version.as_str()
        ));
        for (k, _v, from) in &settings {
            let flag = match k.strip_prefix("ETCD_") {
                Some(rest) => format!("--{}", rest.to_lowercase().replace('_', "-")),
                None => k.clone(),
            };
            let in36 = flags36.contains(&flag) && !removed_36.contains(&flag);
            let in_real36 =
                help36.contains(&format!("{flag} ")) || help36.contains(&format!("{flag}\n"));
            let in_portable = portable.contains_key(&flag);
            let in34 =
                help34.contains(&format!("{flag} ")) || help34.contains(&format!("{flag}\n"));
            let mut note = Vec::new();
            if let Some(d) = default_changes.get(&flag) {
                note.push(format!("default differs ({d}): set explicitly"));
            }
            if let Some(n) = portable
                .get(&flag)
                .filter(|n| !n.is_empty() && !default_changes.contains_key(&flag))
            {
                note.push(n.clone());
            }
            if renamed_36.contains(&flag) {
                note.push("renamed in 3.6".into());
            }
            if not_in_34.contains(&flag) {
                note.push("not in 3.4".into());
            }
            text.push_str(&format!(
                "    {:<36} {:<34} {:<10} {:<10} {:<12} {:<10} {}\n",
                format!("{k} ({from})"),
                flag,
                if in_real36 { "yes" } else { "NO" },
                if in36 { "yes" } else { "NO" },
                if in_portable { "yes" } else { "no" },
                if in34 { "yes" } else { "NO" },
                note.join("; ")
            ));
            if !in36 {
                problems.push(format!(
                    "{fixture}: {k} ({flag}) is not an etcd 3.6 flag (reference)"
                ));
            }
            if !in_real36 {
                problems.push(format!(
                    "{fixture}: {k} ({flag}) is not in etcd {version36}'s own --help"
                ));
            }
            if !in34 || not_in_34.contains(&flag) {
                problems.push(format!(
                    "{fixture}: {k} ({flag}) is not an etcd {version} flag"
                ));
            }
            if renamed_36.contains(&flag) {
                problems.push(format!("{fixture}: {k} ({flag}) is renamed in 3.6"));
            }
        }
        let outside: Vec<&str> = settings
            .iter()
            .map(|(k, _, _)| k.as_str())
            .filter(|k| {
                let flag = match k.strip_prefix("ETCD_") {
                    Some(rest) => format!("--{}", rest.to_lowercase().replace('_', "-")),
                    None => k.to_string(),
                };
                !portable.contains_key(&flag)
            })
            .collect();
        text.push_str(&format!(
            "    outside the reference's portable 3.4–3.6 subset: {}\n",
            if outside.is_empty() {
                "none".to_string()
            } else {
                outside.join(", ")
            }
        ));
    }
    text.push_str(&format!(
        "  what differs between {version} (run here) and {pinned} (pinned in kimage.lock) for these \
         settings: only the defaults the table notes, which the rendered files set explicitly; no \
         setting is missing in either or renamed in 3.6\n"
    ));
    report(&format!(
        "[netns] etcd_settings_against_3_4_and_3_6: {}\n{text}",
        secs(t.elapsed())
    ));
    assert!(problems.is_empty(), "{}\n{text}", problems.join("\n"));
}
