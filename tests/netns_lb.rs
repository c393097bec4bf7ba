//! The load balancer and the kubeconfigs from kimage's output, on real programs: `kimage build` +
//! `kimage unpack` per node, each node its own host (tests/netns_support). The two load-balancer nodes run
//! the rendered haproxy.service or nginx.service (ExecStartPre config check included) and
//! keepalived.service; the three control-plane hosts run a stand-in kube-apiserver on the port, with the
//! certificate, key and client CA that kube-apiserver.service names (a threaded python3 ssl server:
//! openssl s_server serves one client at a time, and the proxies' health checks would block it). From the
//! worker host, with the cluster CA the worker has:
//!
//! - the VIP serves TLS verified for the VIP address, and for the endpoint name when the endpoint is one
//!   (openssl s_client -verify_ip / -verify_hostname: the seed 004 failure "certificate is valid for
//!   10.96.0.1, 10.21.22.73, not 10.21.22.101" is exactly what this catches); every backend answers;
//! - the kubeconfigs of admin, controller-manager, scheduler, kubelet and kube-proxy (paths from the units
//!   and configs that use them) load in kubectl, name that endpoint and that CA, and `kubectl get --raw /`
//!   through the VIP reaches a stand-in that verified the kubeconfig's client certificate;
//! - a stopped backend leaves the VIP serving; the proxy dying on the VIP holder moves the VIP (the
//!   rendered vrrp_script) and it comes back when the proxy does; keepalived stopping on the holder moves
//!   the VIP to the backup. Failover times are measured and printed with the configured timers.
//!
//! Companions break one thing in the unpacked trees and expect the scenario to fail.

mod netns_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use netns_support::*;

const CURL: &str = "/usr/bin/curl";
const PYTHON: &str = "/usr/bin/python3";
const CLUSTER_CA: &str = "/etc/kubernetes/pki/ca.crt";
/// Generous bound for the VIP to serve at first (keepalived start, first advertisements).
const UP: Duration = Duration::from_secs(30);

/// The stand-in kube-apiserver: TLS with the node's serving certificate, client certificates verified
/// against --client-ca-file when presented (as kube-apiserver does), answers who it is and who called.
const STANDIN: &str = r#"
import http.server, json, socketserver, ssl, sys
node, bind, port, cert, key, client_ca = sys.argv[1:7]
class H(http.server.BaseHTTPRequestHandler):
    timeout = 10
    def do_GET(self):
        pc = self.connection.getpeercert() or {}
        subject = [v for rdn in pc.get("subject", ()) for (k, v) in rdn if k == "commonName"]
        groups = [v for rdn in pc.get("subject", ()) for (k, v) in rdn if k == "organizationName"]
        body = json.dumps({"standin": node, "user": subject[0] if subject else None,
                           "groups": groups, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    def handle_error(self, request, client_address):
        sys.stderr.write("connection from %s: %s\n" % (client_address, sys.exc_info()[1]))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_OPTIONAL
ctx.load_verify_locations(client_ca)
srv = S((bind, int(port)), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
print("listening on %s:%s" % (bind, port), flush=True)
srv.serve_forever()
"#;

/// What these tests run besides the netns harness's tools.
const TOOLS: &[&str] = &[
    "/usr/sbin/haproxy",
    "/usr/sbin/nginx",
    "/usr/lib/nginx/modules/ngx_stream_module.so",
    "/usr/sbin/keepalived",
    OPENSSL,
    CURL,
    PYTHON,
];

/// What the profile says clients dial.
struct Endpoint {
    host: String,
    port: u16,
    vip: String,
    url: String,
}

impl Endpoint {
    fn is_name(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_err()
    }
}

fn endpoint(built: &Built) -> Endpoint {
    let p: serde_yaml_ng::Value = serde_yaml_ng::from_str(&built.profile_text).unwrap();
    let ep = p["controlPlane"]["endpoint"].as_str().unwrap();
    let (host, port) = ep.rsplit_once(':').unwrap();
    Endpoint {
        host: host.to_string(),
        port: port.parse().unwrap(),
        vip: p["loadBalancer"]["vip"].as_str().unwrap().to_string(),
        url: format!("https://{ep}"),
    }
}

struct Lab {
    net: Net,
    ep: Endpoint,
    client: String,
    cps: Vec<String>,
    /// In VRRP priority order (master first).
    lbs: Vec<Lb>,
    standins: BTreeMap<String, ProcId>,
}

impl Lab {
    fn client(&self) -> &Host {
        self.net.host(&self.client)
    }

    /// The LB nodes that hold the VIP right now.
    fn vip_holders(&self) -> Vec<String> {
        self.lbs
            .iter()
            .filter(|l| self.net.host(&l.node).addresses().contains(&self.ep.vip))
            .map(|l| l.node.clone())
            .collect()
    }

    fn dead(&self) -> Option<String> {
        let mut all: Vec<ProcId> = self.standins.values().copied().collect();
        for l in &self.lbs {
            all.push(l.proxy);
            all.push(l.keepalived);
        }
        all.into_iter()
            .find(|p| !self.net.running(*p))
            .map(|p| format!("{} exited\n{}", self.net.label(p), self.net.tail(p, 30)))
    }
}

/// openssl s_client from the client host: TLS through `connect` verified with the cluster CA for an IP
/// (`-verify_ip`) or a name (`-verify_hostname`, also sent as SNI).
fn verify(client: &Host, connect: &str, ip: Option<&str>, name: Option<&str>) -> (bool, String) {
    let mut argv = vec![
        OPENSSL,
        "s_client",
        "-connect",
        connect,
        "-CAfile",
        CLUSTER_CA,
        "-verify_return_error",
    ];
    if let Some(ip) = ip {
        argv.extend(["-verify_ip", ip]);
    }
    if let Some(n) = name {
        argv.extend(["-verify_hostname", n, "-servername", n]);
    }
    // Short, so that one connection that hangs (a SYN to a VIP holder that just gave it up) leaves the
    // poll time for fresh attempts.
    let (ok, out) = client.run_for(&argv, 5);
    (ok && out.contains("Verify return code: 0 (ok)"), out)
}

/// The verification lines of an s_client transcript.
fn verify_errors(out: &str) -> String {
    out.lines()
        .filter(|l| {
            l.contains("verify error")
                || l.contains("Verify return code")
                || l.contains("s:") && l.contains("CN")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// One HTTPS request through the endpoint from the client, verified with the cluster CA: which stand-in
/// answered.
fn request(lab: &Lab) -> Result<String, String> {
    let (ok, out) = lab.client().run(&[
        CURL,
        "-sS",
        "--http1.1",
        "--max-time",
        "3",
        "--cacert",
        CLUSTER_CA,
        &format!("{}/", lab.ep.url),
    ]);
    if !ok {
        return Err(out);
    }
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    Ok(v["standin"].as_str().unwrap_or_default().to_string())
}

fn host_port(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// Waits until `node`, and no other load balancer, holds the VIP.
fn vip_held_by(lab: &Lab, node: &str, what: &str, deadline: Duration) -> Result<(), String> {
    poll(what, deadline, Duration::from_millis(50), || {
        let h = lab.vip_holders();
        if h == [node.to_string()] {
            Poll::Ok(())
        } else {
            Poll::Retry(format!("VIP on {h:?}"))
        }
    })
    .map(|_| ())
}

/// Fatal conditions while waiting for the VIP: a process died, the proxies have no backend left, a load
/// balancer's health check put it in FAULT.
fn broken(lab: &Lab) -> Option<String> {
    if let Some(d) = lab.dead() {
        return Some(d);
    }
    for Lb {
        node: n,
        unit,
        proxy: p,
        keepalived: k,
        ..
    } in &lab.lbs
    {
        let log = lab.net.log(*p);
        for bad in ["has no server available", "no live upstreams"] {
            if let Some(l) = log.lines().find(|l| l.contains(bad)) {
                return Some(format!("{unit} on {n}: {l}\n{}", lab.net.tail(*p, 15)));
            }
        }
        let klog = lab.net.log(*k);
        if let Some(l) = klog.lines().find(|l| {
            l.contains("Entering FAULT STATE")
                || l.contains("VRRP_Script(") && l.contains(" failed")
        }) {
            return Some(format!(
                "keepalived on {n}: {l} (its check of the proxy failed)\n{}",
                lab.net.tail(*k, 15)
            ));
        }
    }
    None
}

/// The whole scenario on a fixture; `tamper` breaks something in the unpacked trees first.
fn scenario(fixture: &str, tamper: impl FnOnce(&Built, &Trees)) -> Result<Report, String> {
    require_netns(TOOLS);
    let mut r = Report::new();
    let built = Built::shared(fixture);
    let ep = endpoint(&built);
    let cps: Vec<String> = built
        .with_role("control-plane")
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let lb_names: Vec<String> = built
        .with_role("load-balancer")
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let client = built.with_role("worker")[0].name.clone();
    let mut names: Vec<&str> = cps.iter().map(String::as_str).collect();
    names.extend(lb_names.iter().map(String::as_str));
    names.push(&client);
    let trees = Trees::unpack(&built, &names);
    tamper(&built, &trees);
    let net = Net::start(trees);
    r.add(format!(
        "kimage build (once per fixture) + unpack of {} nodes, namespaces up",
        names.len()
    ));

    // Stand-in apiservers with what kube-apiserver.service names.
    let script = net.trees.dir.path().join("standin.py");
    std::fs::write(&script, STANDIN).unwrap();
    let mut standins = BTreeMap::new();
    for cp in &cps {
        let h = net.host(cp);
        let f = h.unit("kube-apiserver.service").flags();
        let bind = f.get("--bind-address").cloned().unwrap_or("0.0.0.0".into());
        let c = h.command(&[
            PYTHON,
            "-u",
            script.to_str().unwrap(),
            cp,
            &bind,
            &f["--secure-port"],
            &f["--tls-cert-file"],
            &f["--tls-private-key-file"],
            &f["--client-ca-file"],
        ]);
        standins.insert(cp.clone(), net.spawn(h, "standin-apiserver", c));
    }
    for (cp, p) in &standins {
        poll(
            &format!("stand-in apiserver on {cp}"),
            UP,
            Duration::from_millis(50),
            || {
                if !net.running(*p) {
                    return Poll::Fatal(net.tail(*p, 20));
                }
                if net.log(*p).contains("listening on") {
                    Poll::Ok(())
                } else {
                    Poll::Retry(net.log(*p))
                }
            },
        )?;
    }

    // The proxies, then keepalived, as the units order them (keepalived.service After= the proxy).
    let lbs = start_load_balancers(&net, &lb_names)?;
    let vrrp_master = Vrrp::parse(&net.host(&lbs[0].node).read("/etc/keepalived/kimage.conf"));
    let vrrp_backup = Vrrp::parse(&net.host(&lbs[1].node).read("/etc/keepalived/kimage.conf"));
    let lab = Lab {
        lbs,
        net,
        ep,
        client,
        cps,
        standins,
    };
    let (master, backup) = (lab.lbs[0].node.clone(), lab.lbs[1].node.clone());
    let proxy_unit = lab.lbs[0].unit.clone();

    // 1. The VIP serves TLS verified for the VIP address (and the endpoint name).
    let vip_port = host_port(&lab.ep.vip, lab.ep.port);
    let (_, up) = poll(
        "the VIP serves the apiserver certificate, verified with the cluster CA for the VIP",
        UP,
        Duration::from_millis(200),
        || {
            if let Some(b) = broken(&lab) {
                return Poll::Fatal(b);
            }
            let (ok, out) = verify(lab.client(), &vip_port, Some(&lab.ep.vip), None);
            if ok {
                Poll::Ok(())
            } else if out.contains("verify error") {
                Poll::Fatal(verify_errors(&out))
            } else {
                // Enough to tell "no VIP holder" from "holder without a working proxy".
                let logs: Vec<String> = lab
                    .lbs
                    .iter()
                    .map(|l| {
                        format!(
                            "{n} proxy:\n{}\n{n} keepalived:\n{}",
                            lab.net.tail(l.proxy, 5),
                            lab.net.tail(l.keepalived, 8),
                            n = l.node
                        )
                    })
                    .collect();
                Poll::Retry(format!(
                    "{out}\nVIP on {:?}\n{}",
                    lab.vip_holders(),
                    logs.join("\n")
                ))
            }
        },
    )?;
    // Both nodes may hold the VIP for an instant at start (the backup's Master_Down_Interval is only
    // the priority skew longer than the master's); VRRP settles it on the higher priority.
    vip_held_by(
        &lab,
        &master,
        &format!("the VIP settles on {master} alone"),
        UP,
    )?;
    let mut verified = vec![format!("{vip_port} (-verify_ip {})", lab.ep.vip)];
    if lab.ep.is_name() {
        let (_, hosts) = lab.client().run(&["getent", "hosts", &lab.ep.host]);
        if !hosts.split_whitespace().any(|a| a == lab.ep.vip) {
            return Err(format!(
                "{} resolves to `{}` on {}, not the VIP",
                lab.ep.host,
                hosts.trim(),
                lab.client
            ));
        }
        let target = host_port(&lab.ep.host, lab.ep.port);
        let (ok, out) = verify(lab.client(), &target, None, Some(&lab.ep.host));
        if !ok {
            return Err(format!(
                "TLS to {target} verified for the name: {}\n{out}",
                verify_errors(&out)
            ));
        }
        verified.push(format!("{target} (-verify_hostname, via /etc/hosts)"));
    }
    r.add(format!(
        "VIP {} on {master} (priority {}), serving {} after keepalived started; verified with the cluster \
         CA: {}",
        lab.ep.vip,
        vrrp_master.priority,
        secs(up),
        verified.join(", ")
    ));

    // 2. Every backend answers through the proxy.
    let mut seen = BTreeSet::new();
    for _ in 0..(3 * lab.cps.len()) {
        seen.insert(request(&lab).map_err(|e| format!("request through {}: {e}", lab.ep.url))?);
    }
    let want: BTreeSet<String> = lab.cps.iter().cloned().collect();
    if seen != want {
        return Err(format!(
            "{proxy_unit} reached stand-ins {seen:?}, want every control-plane node {want:?}"
        ));
    }
    r.add(format!("{proxy_unit} reaches every backend: {seen:?}"));

    // 3. The kubeconfigs.
    kubeconfigs(&lab, &mut r)?;

    // 4. One backend stops: the VIP keeps serving (after the proxy notices).
    let stopped = lab.cps[0].clone();
    lab.net.stop(lab.standins[&stopped], Duration::from_secs(5));
    let mut failed = 0;
    let mut streak = 0;
    let need = 2 * lab.cps.len();
    let (_, steady) = poll(
        &format!("serving without {stopped}"),
        UP,
        Duration::from_millis(100),
        || match request(&lab) {
            Ok(s) if s != stopped => {
                streak += 1;
                if streak >= need {
                    Poll::Ok(())
                } else {
                    Poll::Retry(format!("{streak} in a row"))
                }
            }
            Ok(s) => Poll::Fatal(format!("{s} answered after it was stopped")),
            Err(e) => {
                failed += 1;
                streak = 0;
                Poll::Retry(e)
            }
        },
    )?;
    r.add(format!(
        "stand-in on {stopped} stopped: {need} requests in a row served by the others {} later \
         ({failed} failed meanwhile)",
        secs(steady)
    ));

    // 5. The proxy on the VIP holder dies: the vrrp_script fails and the VIP moves.
    let (mproxy, mka) = (lab.lbs[0].proxy, lab.lbs[0].keepalived);
    let bka = lab.lbs[1].keepalived;
    let t = Instant::now();
    lab.net.signal(mproxy, "-TERM");
    let bound = vrrp_master.fall * vrrp_master.interval + vrrp_backup.skew();
    let moved = wait_vip(
        &lab,
        &backup,
        t,
        Duration::from_secs_f64(bound + vrrp_master.interval + 10.0),
        &format!("{proxy_unit} stopped on {master}"),
    )?;
    r.add(format!(
        "{proxy_unit} stopped on {master}: VIP on {backup} after {}, serving through it after {} \
         (configured: fall {} × interval {}s + backup skew {:.2}s = {bound:.2}s)",
        secs(moved.0),
        secs(moved.1),
        vrrp_master.fall,
        vrrp_master.interval,
        vrrp_backup.skew()
    ));
    lab.net.stop(mproxy, Duration::from_secs(5));
    // The proxy comes back: the master's check rises and it takes the VIP back (preemption).
    let h = lab.net.host(&master);
    let t = Instant::now();
    let mproxy2 = lab
        .net
        .start_unit(h, &h.unit(&proxy_unit), &[], &[])?
        .expect("long-running");
    let back = wait_vip(
        &lab,
        &master,
        t,
        Duration::from_secs_f64(vrrp_master.rise * vrrp_master.interval + 15.0),
        &format!("{proxy_unit} restarted on {master}"),
    )?;
    r.add(format!(
        "{proxy_unit} restarted on {master}: VIP back on {master} after {}, serving after {} (configured: \
         rise {} × interval {}s)",
        secs(back.0),
        secs(back.1),
        vrrp_master.rise,
        vrrp_master.interval
    ));
    let _ = mproxy2;

    // 6. keepalived stops on the holder: the backup takes the VIP.
    let t = Instant::now();
    lab.net.signal(mka, "-TERM");
    let down = vrrp_backup.master_down();
    let moved = wait_vip(
        &lab,
        &backup,
        t,
        Duration::from_secs_f64(down + 10.0),
        &format!("keepalived stopped on {master}"),
    )?;
    lab.net.stop(mka, Duration::from_secs(5));
    let mac = lab.net.host(&backup).mac();
    let seen_mac = lab.client().neighbour(&lab.ep.vip);
    if seen_mac.as_deref() != Some(mac.as_str()) {
        return Err(format!(
            "{} reaches the VIP at {seen_mac:?}, not {backup}'s {mac}",
            lab.client
        ));
    }
    if !lab.net.running(bka) {
        return Err(format!("keepalived on {backup} exited"));
    }
    r.add(format!(
        "keepalived stopped on {master}: VIP on {backup} after {}, serving (client's ARP entry = {backup}'s \
         MAC) after {} (configured: advert_int {}s; a backup takes over at once on the master's priority-0 \
         advertisement, at the latest after Master_Down_Interval {down:.2}s)",
        secs(moved.0),
        secs(moved.1),
        vrrp_backup.advert
    ));
    for n in lab.net.notes() {
        r.add(format!("note: {n}"));
    }
    Ok(r)
}

/// Waits until `to` alone holds the VIP, then until the client is served through it with verified TLS.
/// Returns (VIP moved, serving again), both measured from `since` (when the failure was caused).
fn wait_vip(
    lab: &Lab,
    to: &str,
    since: Instant,
    deadline: Duration,
    what: &str,
) -> Result<(Duration, Duration), String> {
    let t = since;
    vip_held_by(lab, to, &format!("{what}: the VIP moves to {to}"), deadline)?;
    let moved = t.elapsed();
    let vip_port = host_port(&lab.ep.vip, lab.ep.port);
    poll(
        &format!("{what}: serving through {to}"),
        deadline,
        Duration::from_millis(50),
        || {
            let (ok, out) = verify(lab.client(), &vip_port, Some(&lab.ep.vip), None);
            if ok { Poll::Ok(()) } else { Poll::Retry(out) }
        },
    )?;
    Ok((moved, t.elapsed()))
}

/// Each component's kubeconfig, found where the component is told to look.
fn kubeconfig_paths(lab: &Lab) -> Vec<(String, String, String)> {
    let cp = lab.net.host(&lab.cps[1]);
    let w = lab.client();
    // --kubeconfig, else clientConnection.kubeconfig of the --config file (scheduler, kube-proxy).
    let flag = |h: &Host, unit: &str| -> String {
        let f = h.unit(unit).flags();
        if let Some(k) = f.get("--kubeconfig") {
            return k.clone();
        }
        let conf = f
            .get("--config")
            .unwrap_or_else(|| panic!("{unit} on {} has no --kubeconfig or --config", h.info.name));
        let c: serde_yaml_ng::Value = serde_yaml_ng::from_str(&h.read(conf)).unwrap();
        c["clientConnection"]["kubeconfig"]
            .as_str()
            .unwrap_or_else(|| panic!("{conf} on {} names no kubeconfig", h.info.name))
            .to_string()
    };
    let proxy_kc = flag(w, "kube-proxy.service");
    vec![
        (
            cp.info.name.clone(),
            "/etc/kubernetes/admin.conf".into(),
            "kubernetes-admin".into(),
        ),
        (
            cp.info.name.clone(),
            flag(cp, "kube-controller-manager.service"),
            "system:kube-controller-manager".into(),
        ),
        (
            cp.info.name.clone(),
            flag(cp, "kube-scheduler.service"),
            "system:kube-scheduler".into(),
        ),
        (
            cp.info.name.clone(),
            flag(cp, "kubelet.service"),
            format!("system:node:{}", cp.info.name),
        ),
        (
            w.info.name.clone(),
            flag(w, "kubelet.service"),
            format!("system:node:{}", w.info.name),
        ),
        (w.info.name.clone(), proxy_kc, "system:kube-proxy".into()),
    ]
}

fn kubeconfigs(lab: &Lab, r: &mut Report) -> Result<(), String> {
    let kubectl = kubectl().display().to_string();
    // The CA the TLS checks above used.
    let ca = lab.client().read(CLUSTER_CA);
    let mut done = Vec::new();
    for (node, path, user) in kubeconfig_paths(lab) {
        let h = lab.net.host(&node);
        // Through the VIP: kubectl verifies the apiserver certificate with the kubeconfig's CA and
        // presents its client certificate, which the stand-in verifies with --client-ca-file.
        let (ok, out) = h.run(&[&kubectl, "--kubeconfig", &path, "get", "--raw", "/"]);
        if !ok {
            return Err(format!(
                "{node}: kubectl --kubeconfig {path} get --raw /:\n{out}"
            ));
        }
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("{node}: {path}: {e}: {out}"))?;
        if v["user"].as_str() != Some(user.as_str()) {
            return Err(format!(
                "{node}: {path}: the stand-in saw client {:?}, want {user}",
                v["user"]
            ));
        }
        let (ok, out) = h.run(&[
            &kubectl,
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "json",
            "--kubeconfig",
            &path,
        ]);
        if !ok {
            return Err(format!("{node}: kubectl config view {path}:\n{out}"));
        }
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        let cluster = &v["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().unwrap_or_default();
        if server != lab.ep.url {
            return Err(format!(
                "{node}: {path} names {server}, want {}",
                lab.ep.url
            ));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(
                cluster["certificate-authority-data"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .map_err(|e| format!("{node}: {path}: certificate-authority-data: {e}"))?;
        if String::from_utf8_lossy(&data).trim() != ca.trim() {
            return Err(format!(
                "{node}: {path}: its CA is not the {CLUSTER_CA} that verified the VIP"
            ));
        }
        done.push(format!("{node}:{path} ({user})"));
    }
    r.add(format!(
        "kubeconfigs name {} and the CA that verified it; `kubectl get --raw /` through the VIP reached a \
         stand-in that verified each client certificate: {}",
        lab.ep.url,
        done.join(", ")
    ));
    Ok(())
}

#[test]
fn haproxy_keepalived_serve_the_vip() {
    timed("haproxy_keepalived_serve_the_vip", || {
        scenario("stacked-haproxy", |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
    });
}

#[test]
fn nginx_keepalived_serve_the_endpoint_name() {
    timed("nginx_keepalived_serve_the_endpoint_name", || {
        scenario("external-nginx", |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
    });
}

/// Expects the scenario to fail, with one of `why` in the message.
fn expect_failure(fixture: &str, why: &[&str], tamper: impl FnOnce(&Built, &Trees)) -> String {
    failed_as_expected(scenario(fixture, tamper).map(|r| r.text()), why)
}

#[test]
fn companion_apiserver_cert_without_vip_san_is_caught() {
    // Seed 004: each apiserver certificate names the service IP and its own node, not the VIP.
    timed("companion_apiserver_cert_without_vip_san_is_caught", || {
        expect_failure("stacked-haproxy", &["IP address mismatch"], |b, t| {
            let dir = t.dir.path().join("seed004");
            std::fs::create_dir_all(&dir).unwrap();
            let (ca_crt, ca_key) = b.state_pem("ca");
            let (cak, cac) = (dir.join("ca.key"), dir.join("ca.crt"));
            std::fs::write(&cak, ca_key).unwrap();
            std::fs::write(&cac, ca_crt).unwrap();
            for cp in b.with_role("control-plane") {
                let crt = openssl_leaf(
                    &dir,
                    &cp.name,
                    "/CN=kube-apiserver",
                    &t.file(&cp.name, "/etc/kubernetes/pki/apiserver.key"),
                    (&cak, &cac),
                    &format!(
                        "[v3]\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                         extendedKeyUsage=serverAuth\nsubjectAltName=IP:10.96.0.1,IP:{}\n",
                        cp.address
                    ),
                );
                std::fs::copy(crt, t.file(&cp.name, "/etc/kubernetes/pki/apiserver.crt")).unwrap();
            }
        })
    });
}

#[test]
fn companion_wrong_backend_port_is_caught() {
    // haproxy sends every connection to port 6444, where no apiserver listens.
    timed("companion_wrong_backend_port_is_caught", || {
        expect_failure("stacked-haproxy", &["has no server available"], |b, t| {
            for lb in b.with_role("load-balancer") {
                for cp in b.with_role("control-plane") {
                    t.edit(
                        &lb.name,
                        "/etc/haproxy/kimage.cfg",
                        &format!("{}:6443", cp.address),
                        &format!("{}:6444", cp.address),
                    );
                }
            }
        })
    });
}

#[test]
fn companion_wrong_listen_port_is_caught() {
    // nginx listens on 8444 while clients dial 8443.
    timed("companion_wrong_listen_port_is_caught", || {
        expect_failure(
            "external-nginx",
            &["its check of the proxy failed"],
            |b, t| {
                for lb in b.with_role("load-balancer") {
                    t.edit(
                        &lb.name,
                        "/etc/nginx/kimage.conf",
                        "listen 8443;",
                        "listen 8444;",
                    );
                }
            },
        )
    });
}

#[test]
fn companion_kubeconfig_with_another_ca_is_caught() {
    // The worker's kubelet.conf trusts another CA.
    timed("companion_kubeconfig_with_another_ca_is_caught", || {
        expect_failure(
            "stacked-haproxy",
            &["unknown authority", "certificate signed by unknown"],
            |_, t| {
                let (_, crt) = openssl_ca(&t.dir.path().join("other"), "ca", "kubernetes");
                let pem = std::fs::read(crt).unwrap();
                let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
                let path = "/etc/kubernetes/kubelet.conf";
                let text = t.read("worker-1", path);
                let line = text
                    .lines()
                    .find(|l| l.trim_start().starts_with("certificate-authority-data:"))
                    .unwrap()
                    .to_string();
                let indent = &line[..line.len() - line.trim_start().len()];
                t.edit(
                    "worker-1",
                    path,
                    &line,
                    &format!("{indent}certificate-authority-data: {b64}"),
                );
            },
        )
    });
}
