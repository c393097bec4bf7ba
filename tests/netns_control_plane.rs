//! The real Kubernetes control plane from kimage's files: `kimage build` + `kimage unpack` per node, each
//! node its own host (network, mount and UTS namespace: tests/netns_support), three control-plane nodes
//! with stacked etcd and two haproxy + keepalived nodes sharing the VIP. Every program is the real one,
//! built from its Go module at kimage's pinned version by ci/real/build.sh (kube-apiserver,
//! kube-controller-manager, kube-scheduler, kubectl, etcd 3.6), and starts from the ExecStart= of the unit
//! kimage rendered, parsed as systemd would (Type=notify's READY=1 included), in the order the units say.
//!
//! Checked with the real kubectl, each identity through its own kubeconfig:
//! - `/readyz?verbose` and `/livez?verbose`: every check ok on every apiserver and through the VIP;
//! - kube-controller-manager and kube-scheduler hold their leader Leases; the holder's node stops and
//!   another node takes both over; the API keeps serving through the VIP without the bootstrap node;
//! - `kimage-bootstrap.service` applies every cluster object; a second run changes nothing;
//! - every identity kimage issues may do what it needs and no more (`kubectl auth can-i`, kubeadm's RBAC
//!   and the Node authorizer); a worker pool's bootstrap token may create a CSR and nothing else;
//! - a ServiceAccount token made by `kubectl create token` is accepted; `/apis` lists the aggregated APIs.
//!
//! The kubelets do not run here (this machine has no systemd as PID 1 and cgroup v1, which the kubelet
//! 1.35 refuses): each control-plane node's Node object is registered through that node's kubelet.conf,
//! as the kubelet registers itself (a stand-in, said so in the report). The VM test runs real kubelets.
//!
//! Companions break one thing and expect the scenario to fail for that reason.

mod netns_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netns_support::*;

const FIXTURE: &str = "control-plane";
const KUBECTL: &str = "/usr/local/bin/kubectl";
const ADMIN: &str = "/etc/kubernetes/admin.conf";
const SUPER_ADMIN: &str = "/etc/kubernetes/super-admin.conf";
const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// A control plane of three on two cores: apiservers take a while to get every post-start hook done.
const UP: Duration = Duration::from_secs(240);

/// One control plane at a time: three apiservers and etcd members already fill this machine's 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn require_tools() {
    require_root();
    for (p, pkg) in [
        ("/usr/sbin/haproxy", "haproxy"),
        ("/usr/sbin/keepalived", "keepalived"),
        ("/usr/bin/systemd-tmpfiles", "systemd"),
        ("/usr/bin/systemd-sysusers", "systemd"),
        (OPENSSL, "openssl"),
    ] {
        require_tool(p, pkg);
    }
}

/// The programs the nodes get in /usr/local/bin.
fn programs() -> Vec<PathBuf> {
    vec![real::kubernetes().join("bin"), real::etcd().join("bin")]
}

struct ControlPlane {
    name: String,
    etcd: ProcId,
    apiserver: ProcId,
    controller_manager: Option<ProcId>,
    scheduler: Option<ProcId>,
}

struct Lab {
    net: Net,
    cps: Vec<ControlPlane>,
    lbs: Vec<Lb>,
    /// `https://VIP:port`
    endpoint: String,
    client: String,
}

impl Lab {
    fn host(&self, n: &str) -> &Host {
        self.net.host(n)
    }

    fn cp(&self, n: &str) -> &ControlPlane {
        self.cps.iter().find(|c| c.name == n).unwrap()
    }

    /// A process of the lab that exited although nobody stopped it.
    fn dead(&self, stopped: &BTreeSet<String>) -> Option<String> {
        let mut all = vec![];
        for c in self.cps.iter().filter(|c| !stopped.contains(&c.name)) {
            all.extend([
                Some(c.etcd),
                Some(c.apiserver),
                c.controller_manager,
                c.scheduler,
            ]);
        }
        for l in &self.lbs {
            all.extend([Some(l.proxy), Some(l.keepalived)]);
        }
        all.into_iter()
            .flatten()
            .find(|p| !self.net.running(*p))
            .map(|p| format!("{} exited\n{}", self.net.label(p), self.net.tail(p, 40)))
    }

    fn logs(&self, what: impl Fn(&ControlPlane) -> Option<ProcId>, lines: usize) -> String {
        self.cps
            .iter()
            .filter_map(|c| what(c).map(|p| self.net.tail(p, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// kubectl inside a node with a kubeconfig of that node; `server` overrides the kubeconfig's endpoint.
fn kubectl(h: &Host, kubeconfig: &str, server: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut argv = vec![KUBECTL, "--kubeconfig", kubeconfig, "--request-timeout=15s"];
    let s;
    if let Some(server) = server {
        s = format!("--server={server}");
        argv.push(&s);
    }
    argv.extend_from_slice(args);
    h.run_for(&argv, 30)
}

/// `GET <path>?verbose` (readyz, livez): Ok with the check lines when every check is ok.
fn health(h: &Host, kubeconfig: &str, server: Option<&str>, path: &str) -> Result<String, String> {
    let (ok, out) = kubectl(
        h,
        kubeconfig,
        server,
        &["get", "--raw", &format!("{path}?verbose")],
    );
    let checks: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("[+]") || l.starts_with("[-]"))
        .collect();
    let failing: Vec<&str> = out
        .split(['\n', '\\'])
        .map(|l| l.trim_start_matches('n'))
        .filter(|l| l.starts_with("[-]"))
        .collect();
    if ok && failing.is_empty() && !checks.is_empty() && out.contains("check passed") {
        Ok(checks.join("\n"))
    } else if !failing.is_empty() {
        Err(format!("failing checks: {}\n{out}", failing.join(", ")))
    } else {
        Err(out)
    }
}

/// The node holding a leader Lease in kube-system (holder identities are `<hostname>_<uuid>`).
fn lease_holder(h: &Host, lease: &str) -> Option<String> {
    let (ok, out) = kubectl(
        h,
        ADMIN,
        None,
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    let id = out.trim();
    (ok && !id.is_empty()).then(|| id.split('_').next().unwrap().to_string())
}

/// Registers a node's Node object with the node's own kubelet.conf, as the kubelet does at start: the
/// labels a kubelet sets on itself and the taints of its configuration's registerWithTaints.
fn register_node(h: &Host) -> Result<(), String> {
    let name = &h.info.name;
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&h.read("/var/lib/kubelet/config.yaml")).unwrap();
    let taints: Vec<serde_json::Value> = config["registerWithTaints"]
        .as_sequence()
        .map(|s| s.iter().map(|t| serde_json::to_value(t).unwrap()).collect())
        .unwrap_or_default();
    let node = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"taints": taints},
    });
    std::fs::write(h.path("/tmp/node.json"), node.to_string()).unwrap();
    let (ok, out) = kubectl(h, KUBELET_CONF, None, &["create", "-f", "/tmp/node.json"]);
    if ok || out.contains("AlreadyExists") {
        Ok(())
    } else {
        Err(format!(
            "{name}: registering its Node with kubelet.conf: {out}"
        ))
    }
}

/// `kubectl auth can-i` as an identity: each (verb resource [name] [-n ns], want) must answer want.
fn can_i(
    h: &Host,
    who: &str,
    kubeconfig_args: &[&str],
    checks: &[(&str, bool)],
) -> Result<String, String> {
    let mut wrong = vec![];
    let mut said = vec![];
    for (q, want) in checks {
        let mut argv: Vec<&str> = vec![KUBECTL];
        argv.extend_from_slice(kubeconfig_args);
        argv.extend(["--request-timeout=15s", "auth", "can-i"]);
        argv.extend(q.split_whitespace());
        let (_, out) = h.run_for(&argv, 30);
        // "yes", "no", or "no - <reason>" (the authorizer's reason, e.g. the Node authorizer's).
        let first = out.lines().next().unwrap_or("").trim().to_string();
        let answer = first.split_whitespace().next().unwrap_or("").to_string();
        let got = match answer.as_str() {
            "yes" => true,
            "no" => false,
            _ => return Err(format!("{who}: `auth can-i {q}` answered: {out}")),
        };
        said.push(format!("{q}: {answer}"));
        if got != *want {
            wrong.push(format!(
                "{who} `can-i {q}`: {first}, want {}",
                if *want { "yes" } else { "no" }
            ));
        }
    }
    if wrong.is_empty() {
        Ok(said.join("; "))
    } else {
        Err(format!("denied or allowed wrongly:\n{}", wrong.join("\n")))
    }
}

/// The resourceVersion of every object the bootstrap manifests name, and of every Node.
fn object_versions(h: &Host) -> Result<BTreeMap<String, String>, String> {
    let mut v = BTreeMap::new();
    for (args, what) in [
        (
            vec!["get", "-f", "/etc/kimage/bootstrap", "-o", "json"],
            "manifests",
        ),
        (vec!["get", "nodes", "-o", "json"], "nodes"),
    ] {
        let (ok, out) = kubectl(h, ADMIN, None, &args);
        if !ok {
            return Err(format!("kubectl get {what}: {out}"));
        }
        let list: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("{what}: {e}: {out}"))?;
        for o in list["items"].as_array().into_iter().flatten() {
            let m = &o["metadata"];
            v.insert(
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    m["namespace"].as_str().unwrap_or("-"),
                    m["name"].as_str().unwrap_or("?")
                ),
                m["resourceVersion"].as_str().unwrap_or("").to_string(),
            );
        }
    }
    Ok(v)
}

/// A file of the secrets a worker pool's user-data installs (its bootstrap kubeconfig), from the build's
/// output, extracted by GNU tar.
fn pool_file(built: &Built, pool: &str, path: &str) -> String {
    let ud: serde_yaml_ng::Value = serde_yaml_ng::from_slice(
        &std::fs::read(built.out.join(format!("pools/{pool}/user-data"))).unwrap(),
    )
    .unwrap();
    let root = tempdir("pool-secrets-");
    artifacts::extract_secrets(&ud, root.path());
    let p = root.path().join(path.trim_start_matches('/'));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{pool}'s secrets: {}: {e}", p.display()))
}

/// The whole scenario; `tamper` breaks something in the unpacked trees first.
fn scenario(tamper: impl FnOnce(&Built, &Trees)) -> Result<Report, String> {
    require_tools();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = Report::new();
    let built = Built::shared(FIXTURE);
    let cp_names: Vec<String> = built
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
    let mut names: Vec<&str> = cp_names.iter().map(String::as_str).collect();
    names.extend(lb_names.iter().map(String::as_str));
    names.push(&client);
    let trees = Trees::unpack(&built, &names);
    tamper(&built, &trees);
    let net = Net::start_with_programs(trees, &programs());
    let (_, version) = net.host(&cp_names[0]).run(&["kube-apiserver", "--version"]);
    r.add(format!(
        "kimage build + unpack of {} nodes; programs from ci/real/build.sh: {}, etcd {}",
        names.len(),
        version.trim(),
        real::etcd().display()
    ));

    // As systemd starts them at boot: etcd (and its setup unit) on every node; kube-apiserver is ordered
    // After=etcd.service, which is Type=notify: systemd starts it once etcd said READY=1 (it does when it
    // has joined the cluster, so all three members start first).
    let t_start = Instant::now();
    let mut etcds = Vec::new();
    for n in &cp_names {
        etcds.push(start_etcd_member(&net, net.host(n))?);
    }
    let mut etcd_ready = vec![];
    for (n, p) in cp_names.iter().zip(&etcds) {
        etcd_ready.push(format!("{n} {}", secs(net.wait_ready(*p, UP)?)));
    }
    let mut cps = Vec::new();
    for (n, etcd) in cp_names.iter().zip(etcds) {
        let h = net.host(n);
        let apiserver = net
            .start_unit(h, &h.unit("kube-apiserver.service"), &[], &[])?
            .expect("long-running");
        cps.push(ControlPlane {
            name: n.clone(),
            etcd,
            apiserver,
            controller_manager: None,
            scheduler: None,
        });
    }
    let mut ready_times = vec![];
    for c in &cps {
        let d = net.wait_ready(c.apiserver, UP)?;
        ready_times.push(format!("{} {}", c.name, secs(d)));
    }
    r.add(format!(
        "etcd.service (Type=notify) READY=1 after: {}; then kube-apiserver.service (Type=notify) READY=1 \
         after: {}",
        etcd_ready.join(", "),
        ready_times.join(", ")
    ));

    let lbs = start_load_balancers(&net, &lb_names)?;
    let ep = {
        let p: serde_yaml_ng::Value = serde_yaml_ng::from_str(&built.profile_text).unwrap();
        format!(
            "https://{}",
            p["controlPlane"]["endpoint"].as_str().unwrap()
        )
    };
    let mut lab = Lab {
        net,
        cps,
        lbs,
        endpoint: ep,
        client,
    };
    let none = BTreeSet::new();

    // 1. readyz and livez: every check ok, through the VIP and on every apiserver.
    let cp1 = cp_names[0].clone();
    let (checks, through_vip) = poll(
        "GET /readyz?verbose through the VIP with admin.conf: every check ok",
        UP,
        Duration::from_secs(1),
        || {
            if let Some(d) = lab.dead(&none) {
                return Poll::Fatal(d);
            }
            match health(lab.host(&cp1), ADMIN, None, "/readyz") {
                Ok(c) => Poll::Ok(c),
                Err(e) if is_tls_refusal(&e) => Poll::Fatal(e),
                Err(e) => Poll::Retry(e),
            }
        },
    )
    .map_err(|e| format!("{e}\n{}", lab.logs(|c| Some(c.apiserver), 15)))?;
    r.add(format!(
        "readyz through the VIP ({}): {} checks ok, {} after the first apiserver started",
        lab.endpoint,
        checks.lines().count(),
        secs(t_start.elapsed())
    ));
    let _ = through_vip;
    for c in &cp_names {
        let addr = lab.host(c).info.address;
        let server = format!("https://{addr}:6443");
        for path in ["/readyz", "/livez"] {
            let (_, _) = poll(
                &format!("{path}?verbose on {c}'s apiserver"),
                UP,
                Duration::from_secs(1),
                || match health(lab.host(&cp1), ADMIN, Some(&server), path) {
                    Ok(c) => Poll::Ok(c),
                    Err(e) if is_tls_refusal(&e) => Poll::Fatal(e),
                    Err(e) => Poll::Retry(e),
                },
            )?;
        }
    }
    health(lab.host(&cp1), ADMIN, None, "/livez")?;
    r.add(format!(
        "readyz and livez: every check ok on {} (each apiserver directly) and through the VIP",
        cp_names.join(", ")
    ));

    // 2. The controller manager and the scheduler: cp-1's first, so that it holds both Leases (checked
    // once kimage-bootstrap has bound admin.conf's group).
    let start_cm_sched = |lab: &mut Lab, n: &str| -> Result<(), String> {
        let h = lab.net.host(n);
        let cm = lab
            .net
            .start_unit(h, &h.unit("kube-controller-manager.service"), &[], &[])?
            .expect("long-running");
        let sched = lab
            .net
            .start_unit(h, &h.unit("kube-scheduler.service"), &[], &[])?
            .expect("long-running");
        let c = lab.cps.iter_mut().find(|c| c.name == n).unwrap();
        c.controller_manager = Some(cm);
        c.scheduler = Some(sched);
        Ok(())
    };
    start_cm_sched(&mut lab, &cp1)?;
    // 3. kimage-bootstrap.service applies the cluster objects (the Nodes first: see the module doc).
    for n in &cp_names {
        register_node(lab.host(n))?;
    }
    r.add(format!(
        "Nodes {} registered through each node's own kubelet.conf (stand-in for the kubelet, which \
         cannot run here)",
        cp_names.join(", ")
    ));
    let h1 = lab.host(&cp1);
    let t = Instant::now();
    lab.net
        .start_unit(h1, &h1.unit("kimage-bootstrap.service"), &[], &[])
        .map_err(|e| format!("the first run of kimage-bootstrap.service: {e}"))?;
    let first = t.elapsed();
    let before = object_versions(h1)?;
    let t = Instant::now();
    lab.net
        .start_unit(h1, &h1.unit("kimage-bootstrap.service"), &[], &[])
        .map_err(|e| format!("the second run of kimage-bootstrap.service: {e}"))?;
    let second = t.elapsed();
    let after = object_versions(h1)?;
    if before != after {
        let changed: Vec<String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        return Err(format!(
            "the second run of kimage-bootstrap changed: {}",
            changed.join(", ")
        ));
    }
    r.add(format!(
        "kimage-bootstrap.service applied {} objects in {} (nodes labelled and tainted); the second run \
         ({}) changed no resourceVersion",
        before.len(),
        secs(first),
        secs(second)
    ));

    // 4. cp-1 holds both Leases; then the other nodes start theirs.
    for lease in ["kube-controller-manager", "kube-scheduler"] {
        let (_, d) = poll(
            &format!("{cp1} holds the {lease} Lease"),
            UP,
            Duration::from_millis(500),
            || {
                if let Some(d) = lab.dead(&none) {
                    return Poll::Fatal(d);
                }
                match lease_holder(lab.host(&cp1), lease) {
                    Some(h) if h == cp1 => Poll::Ok(()),
                    other => Poll::Retry(format!("holder {other:?}")),
                }
            },
        )?;
        r.add(format!(
            "{lease} on {cp1} holds its Lease ({} after its start)",
            secs(d)
        ));
    }
    for n in &cp_names[1..] {
        start_cm_sched(&mut lab, n)?;
    }

    // 5. Every identity may do what it needs, and no more.
    let cp2 = cp_names[1].clone();
    let h1 = lab.host(&cp1);
    let mut said = vec![];
    for (who, conf, checks) in [
        (
            "admin.conf (kubeadm:cluster-admins)",
            ADMIN,
            vec![("'*' '*'", true), ("create clusterrolebindings", true)],
        ),
        (
            "super-admin.conf (system:masters)",
            SUPER_ADMIN,
            vec![("'*' '*'", true)],
        ),
        (
            "controller-manager.conf",
            "/etc/kubernetes/controller-manager.conf",
            vec![
                ("update leases/kube-controller-manager -n kube-system", true),
                (
                    "create serviceaccounts --subresource=token -n kube-system",
                    true,
                ),
                ("get secrets -n kube-system", true),
                ("create clusterrolebindings", false),
                ("delete nodes", false),
                ("'*' '*'", false),
            ],
        ),
        (
            "scheduler.conf",
            "/etc/kubernetes/scheduler.conf",
            vec![
                ("update leases/kube-scheduler -n kube-system", true),
                ("create pods --subresource=binding", true),
                ("list nodes", true),
                ("get secrets -n kube-system", false),
                ("create pods", false),
                ("'*' '*'", false),
            ],
        ),
        (
            "kube-proxy kubeconfig",
            "/var/lib/kube-proxy/kubeconfig.conf",
            vec![
                ("list endpointslices.discovery.k8s.io", true),
                ("watch services", true),
                ("list nodes", true),
                ("get secrets -n kube-system", false),
                ("create pods", false),
                ("update nodes", false),
            ],
        ),
    ] {
        let c: Vec<(&str, bool)> = checks.iter().map(|(q, w)| (*q, *w)).collect();
        said.push(format!(
            "{who}: {}",
            can_i(h1, who, &["--kubeconfig", conf], &c)?
        ));
    }
    // A kubelet: the Node authorizer limits it to its own objects (its Node, its node Lease), and the
    // NodeRestriction admission plugin to writing its own Node (SubjectAccessReviews do not run
    // admission, so that part is a real write).
    for n in &cp_names {
        let other = if n == &cp1 { &cp2 } else { &cp1 };
        let h = lab.host(n);
        let who = format!("{n}'s kubelet.conf");
        let checks = [
            (format!("get nodes/{n}"), true),
            (format!("get nodes/{other}"), false),
            (format!("update leases/{n} -n kube-node-lease"), true),
            (format!("update leases/{other} -n kube-node-lease"), false),
            (
                "create certificatesigningrequests.certificates.k8s.io".into(),
                true,
            ),
            ("list secrets -n kube-system".into(), false),
            ("create deployments.apps -n kube-system".into(), false),
            ("delete nodes".into(), false),
        ];
        let c: Vec<(&str, bool)> = checks.iter().map(|(q, w)| (q.as_str(), *w)).collect();
        let answers = can_i(h, &who, &["--kubeconfig", KUBELET_CONF], &c)?;
        let label = |node: &str, value: &str| {
            kubectl(
                h,
                KUBELET_CONF,
                None,
                &[
                    "label",
                    "node",
                    node,
                    "--overwrite",
                    &format!("kimage.test/probe={value}"),
                ],
            )
        };
        let (own, out) = label(n, "own");
        if !own {
            return Err(format!("{who} cannot label its own Node: {out}"));
        }
        let (ok, out) = label(other, "other");
        if ok || !out.contains("Forbidden") {
            return Err(format!(
                "{who} labelled another node's Node ({other}), or failed for another reason: {out}"
            ));
        }
        said.push(format!(
            "{who}: {answers}; labels its own Node: yes; another's: no ({})",
            out.lines().next().unwrap_or("").trim()
        ));
    }
    // A worker pool's bootstrap token: CSRs and nothing else.
    let bootstrap_conf = pool_file(&built, "pool-a", "/etc/kubernetes/bootstrap-kubelet.conf");
    std::fs::write(
        lab.host(&cp1).path("/tmp/bootstrap-kubelet.conf"),
        &bootstrap_conf,
    )
    .unwrap();
    said.push(format!(
        "pool-a's bootstrap token: {}",
        can_i(
            h1,
            "pool-a's bootstrap token",
            &["--kubeconfig", "/tmp/bootstrap-kubelet.conf"],
            &[
                (
                    "create certificatesigningrequests.certificates.k8s.io",
                    true
                ),
                ("get nodes", false),
                ("create nodes", false),
                ("list secrets -n kube-system", false),
                ("create pods", false),
                ("list configmaps -n kube-public", false),
            ],
        )?
    ));
    let (_, list) = kubectl(
        h1,
        "/tmp/bootstrap-kubelet.conf",
        None,
        &["auth", "can-i", "--list"],
    );
    let resources: BTreeSet<String> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|res| !res.starts_with('[') && !res.starts_with("self"))
        .map(str::to_string)
        .collect();
    // CSRs (create, and read its own back), and the nodeclient subresource that the auto-approval
    // (kubeadm:node-autoapprove-bootstrap) checks.
    if resources.is_empty()
        || resources
            .iter()
            .any(|r| !r.starts_with("certificatesigningrequests.certificates.k8s.io"))
    {
        return Err(format!(
            "pool-a's bootstrap token may use more than CSRs: {resources:?}\n{list}"
        ));
    }
    r.add(format!(
        "authorization, through each identity's own kubeconfig:\n      {}",
        said.join("\n      ")
    ));

    // 6. The service-account key pair: a token made by one apiserver is accepted by all.
    let (ok, out) = kubectl(
        h1,
        ADMIN,
        None,
        &["-n", "default", "create", "serviceaccount", "kimage-probe"],
    );
    if !ok && !out.contains("AlreadyExists") {
        return Err(format!("create serviceaccount: {out}"));
    }
    let (ok, token) = kubectl(
        h1,
        ADMIN,
        None,
        &["-n", "default", "create", "token", "kimage-probe"],
    );
    if !ok {
        return Err(format!("kubectl create token: {token}"));
    }
    for c in &cp_names {
        let server = format!("https://{}:6443", lab.host(c).info.address);
        let (ok, who) = lab.host(&cp1).run_for(
            &[
                KUBECTL,
                "--kubeconfig=/dev/null",
                &format!("--server={server}"),
                "--certificate-authority=/etc/kubernetes/pki/ca.crt",
                &format!("--token={}", token.trim()),
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
            30,
        );
        if !ok || who.trim() != "system:serviceaccount:default:kimage-probe" {
            return Err(format!(
                "the ServiceAccount token on {c}'s apiserver: {who}"
            ));
        }
    }
    let (ok, apis) = kubectl(h1, ADMIN, None, &["get", "--raw", "/apis"]);
    if !ok || !apis.contains("apiregistration.k8s.io") {
        return Err(format!("GET /apis: {apis}"));
    }
    r.add("a token from `kubectl create token` (sa.key) is accepted by every apiserver (sa.pub); /apis answers");

    // 7. The node holding both Leases (the bootstrap node) stops: the others take over, the VIP serves.
    let stopped: BTreeSet<String> = [cp1.clone()].into();
    let c1 = lab.cp(&cp1);
    let t_stop = Instant::now();
    for p in [
        c1.scheduler,
        c1.controller_manager,
        Some(c1.apiserver),
        Some(c1.etcd),
    ]
    .into_iter()
    .flatten()
    {
        lab.net.stop(p, Duration::from_secs(10));
    }
    let h2 = lab.host(&cp2);
    let mut takeovers = vec![];
    for lease in ["kube-controller-manager", "kube-scheduler"] {
        let (holder, _) = poll(
            &format!("another node takes the {lease} Lease over from {cp1}"),
            Duration::from_secs(120),
            Duration::from_millis(250),
            || {
                if let Some(d) = lab.dead(&stopped) {
                    return Poll::Fatal(d);
                }
                match lease_holder(h2, lease) {
                    Some(h) if h != cp1 => Poll::Ok(h),
                    other => Poll::Retry(format!("holder {other:?}")),
                }
            },
        )?;
        takeovers.push(format!(
            "{lease} → {holder} after {}",
            secs(t_stop.elapsed())
        ));
    }
    let (_, d) = poll(
        "readyz through the VIP without the bootstrap node",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || match health(h2, ADMIN, None, "/readyz") {
            Ok(_) => Poll::Ok(()),
            Err(e) => Poll::Retry(e),
        },
    )?;
    let mut served = 0;
    for _ in 0..10 {
        let (ok, out) = kubectl(h2, ADMIN, None, &["get", "nodes", "-o", "name"]);
        if !ok {
            return Err(format!("through the VIP without {cp1}: {out}"));
        }
        served += 1;
    }
    r.add(format!(
        "{cp1} stopped (etcd, apiserver, controller manager, scheduler): Leases taken over: {}; readyz \
         through the VIP ok {} after the stop, then {served} of 10 requests served",
        takeovers.join(", "),
        secs(d)
    ));
    let _ = &lab.client;
    for n in lab.net.notes() {
        r.add(format!("note: {n}"));
    }
    Ok(r)
}

#[test]
fn control_plane_forms_and_serves() {
    timed("control_plane_forms_and_serves", || {
        scenario(|_, _| {}).unwrap_or_else(|e| panic!("{e}")).text()
    });
}
