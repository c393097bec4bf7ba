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
//! - `kimage-bootstrap.service` applies every cluster object; a second run changes nothing; on every
//!   other control-plane node it marks that node's own Node;
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
const CC: &str = "/usr/bin/cc";
const ADMIN: &str = "/etc/kubernetes/admin.conf";
const SUPER_ADMIN: &str = "/etc/kubernetes/super-admin.conf";
const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// kube-bench's newest CIS mapping stops at Kubernetes 1.34 (cis-1.12); kimage runs 1.35.
const KUBE_BENCH_BENCHMARK: &str = "cis-1.12";
/// A control plane of three on two cores: apiservers take a while to get every post-start hook done.
const UP: Duration = Duration::from_secs(240);

/// A stand-in extension apiserver for the aggregation layer: serves one API group over TLS, accepts only
/// clients with a certificate from the front-proxy CA (what kube-apiserver's --proxy-client-cert-file must
/// be), and answers who the apiserver says the user is (the --requestheader-* headers).
const EXTENSION_APISERVER: &str = r#"
import http.server, json, socketserver, ssl, sys
bind, port, cert, key, client_ca = sys.argv[1:6]
GV = "/apis/probe.kimage.test/v1"
class H(http.server.BaseHTTPRequestHandler):
    timeout = 10
    def do_GET(self):
        pc = self.connection.getpeercert() or {}
        cn = [v for rdn in pc.get("subject", ()) for (k, v) in rdn if k == "commonName"]
        path = self.path.split("?")[0]
        if path == GV:
            body = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "probe.kimage.test/v1",
                    "resources": [{"name": "whoamis", "singularName": "whoami", "namespaced": False,
                                   "kind": "WhoAmI", "verbs": ["get", "list"]}]}
        elif path == GV + "/whoamis":
            body = {"kind": "WhoAmIList", "apiVersion": "probe.kimage.test/v1", "metadata": {}, "items": [],
                    "user": self.headers.get("X-Remote-User"),
                    "groups": self.headers.get_all("X-Remote-Group") or [],
                    "proxyClient": cn[0] if cn else None}
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    def handle_error(self, request, client_address):
        sys.stderr.write("connection from %s: %s\n" % (client_address, sys.exc_info()[1]))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(client_ca)
srv = S((bind, int(port)), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
print("listening on %s:%s" % (bind, port), flush=True)
srv.serve_forever()
"#;

/// The objects that register it: a Service without selector, its EndpointSlice (the stand-in's host),
/// and the APIService, which the aggregator reaches through the Service's cluster IP (kube-proxy).
fn extension_objects(endpoint: &str, ca_bundle: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: kimage-probe, namespace: kube-system}}
spec:
  ports: [{{name: https, port: 443, targetPort: 8443, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kimage-probe-1
  namespace: kube-system
  labels: {{kubernetes.io/service-name: kimage-probe}}
addressType: IPv4
ports: [{{name: https, port: 8443, protocol: TCP}}]
endpoints: [{{addresses: ["{endpoint}"], conditions: {{ready: true}}}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1.probe.kimage.test}}
spec:
  group: probe.kimage.test
  version: v1
  groupPriorityMinimum: 1000
  versionPriority: 15
  caBundle: {ca_bundle}
  service: {{name: kimage-probe, namespace: kube-system, port: 443}}
"#
    )
}

/// One control plane at a time: three apiservers and etcd members already fill this machine's 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What these tests run besides the netns harness's tools.
const TOOLS: &[&str] = &[
    "/usr/sbin/haproxy",
    "/usr/sbin/keepalived",
    "/usr/bin/systemd-tmpfiles",
    "/usr/bin/systemd-sysusers",
    OPENSSL,
    CC,
    "/usr/sbin/nft",
    "/usr/bin/python3",
    "/usr/bin/curl",
];

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
    kube_proxy: Option<ProcId>,
}

struct Lab {
    net: Net,
    cps: Vec<ControlPlane>,
    lbs: Vec<Lb>,
    /// `https://VIP:port`
    endpoint: String,
    client: String,
    /// The stand-in extension apiserver on the client host.
    extension: Option<ProcId>,
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
        all.push(self.extension);
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
fn kubectl_on(h: &Host, kubeconfig: &str, server: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut argv = vec![KUBECTL, "--kubeconfig", kubeconfig, "--request-timeout=15s"];
    let s;
    if let Some(server) = server {
        s = format!("--server={server}");
        argv.push(&s);
    }
    argv.extend_from_slice(args);
    h.run_for(&argv, 30)
}

/// The raw value etcd holds under `key`, read on `h` with etcdctl and the apiserver's etcd client
/// certificate; Ok when it carries kube-apiserver's encryption prefix `k8s:enc:<provider>:v1:<key>:`
/// (and not `plaintext`), Err otherwise.
fn etcd_value_encrypted(h: &Host, key: &str, plaintext: &str) -> Result<String, String> {
    let endpoint = format!("--endpoints=https://{}:2379", h.info.address);
    let (ok, raw) = h.run(&[
        "/usr/local/bin/etcdctl",
        &endpoint,
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
        "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "--key=/etc/kubernetes/pki/apiserver-etcd-client.key",
        "get",
        key,
        "--print-value-only",
    ]);
    let shown = |s: &str| {
        s.chars()
            .take(40)
            .collect::<String>()
            .escape_debug()
            .to_string()
    };
    if !ok || raw.trim().is_empty() {
        return Err(format!("etcdctl get {key}: {raw}"));
    }
    let Some(rest) = raw.strip_prefix("k8s:enc:") else {
        return Err(format!("{key} is stored unencrypted: {}", shown(&raw)));
    };
    let prefix: String = rest.splitn(4, ':').take(3).collect::<Vec<_>>().join(":");
    if raw.contains(plaintext) {
        return Err(format!(
            "{key} holds the plaintext despite k8s:enc:{prefix}:"
        ));
    }
    Ok(format!("k8s:enc:{prefix}:"))
}

/// Encryption at rest: a Secret created with kubectl reaches etcd encrypted with the state's key
/// (`k8s:enc:secretbox:v1:key-1:`) and reads back as plaintext through the API; the companion that
/// must fail is the same check on a ConfigMap with the same data, which is not encrypted.
fn secrets_encrypted_in_etcd(h: &Host) -> Result<String, String> {
    use base64::Engine;
    let (name, plaintext) = ("kimage-encryption-probe", "plaintext-4f1c9e2a");
    let literal = format!("--from-literal=probe={plaintext}");
    for kind in ["secret generic", "configmap"] {
        let mut args = vec!["create"];
        args.extend(kind.split(' '));
        args.extend([name, "-n", "default", literal.as_str()]);
        let (ok, out) = kubectl_on(h, ADMIN, None, &args);
        if !ok {
            return Err(format!("kubectl create {kind}: {out}"));
        }
    }
    let (ok, out) = kubectl_on(
        h,
        ADMIN,
        None,
        &[
            "get",
            "secret",
            name,
            "-n",
            "default",
            "-o",
            "jsonpath={.data.probe}",
        ],
    );
    let read = base64::engine::general_purpose::STANDARD
        .decode(out.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    if !ok || read.as_deref() != Some(plaintext) {
        return Err(format!("kubectl get secret {name}: {out}"));
    }
    let prefix = etcd_value_encrypted(h, &format!("/registry/secrets/default/{name}"), plaintext)?;
    if prefix != "k8s:enc:secretbox:v1:key-1:" {
        return Err(format!(
            "the Secret is encrypted as {prefix}, not with key-1 of secretbox"
        ));
    }
    let companion = match etcd_value_encrypted(
        h,
        &format!("/registry/configmaps/default/{name}"),
        plaintext,
    ) {
        Ok(p) => {
            return Err(format!(
                "the check passed a ConfigMap, which is not encrypted ({p})"
            ));
        }
        Err(e) => e,
    };
    Ok(format!(
        "encryption at rest: Secret {name} is {prefix}... in etcd and reads back as plaintext through kubectl; \
         companion: the same check on ConfigMap {name} fails ({companion})"
    ))
}

/// `GET <path>?verbose` (readyz, livez): Ok with the check lines when every check is ok.
fn health(h: &Host, kubeconfig: &str, server: Option<&str>, path: &str) -> Result<String, String> {
    let (ok, out) = kubectl_on(
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
    let (ok, out) = kubectl_on(
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
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&h.read("/var/lib/kubelet/config.yaml")).unwrap();
    let taints: Vec<serde_json::Value> = config["registerWithTaints"]
        .as_sequence()
        .map(|s| s.iter().map(|t| serde_json::to_value(t).unwrap()).collect())
        .unwrap_or_default();
    register_as(
        h,
        KUBELET_CONF,
        &h.info.name,
        &h.info.address.to_string(),
        taints,
    )
}

/// Creates Node `name` through `kubeconfig` (run on `h`) as a kubelet registers itself: its own labels,
/// its taints, its addresses (kube-proxy reads them) and the capacity it reports (the scheduler counts
/// pods against it).
fn register_as(
    h: &Host,
    kubeconfig: &str,
    name: &str,
    address: &str,
    taints: Vec<serde_json::Value>,
) -> Result<(), String> {
    let resources = serde_json::json!({"cpu": "2", "memory": "4Gi", "pods": "110"});
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
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "capacity": resources,
            "allocatable": resources,
        },
    });
    let file = format!("/tmp/node-{name}.json");
    std::fs::write(h.path(&file), node.to_string()).unwrap();
    let (ok, out) = kubectl_on(h, kubeconfig, None, &["create", "-f", &file]);
    if !ok && !out.contains("AlreadyExists") {
        return Err(format!(
            "{}: registering Node {name} with {kubeconfig}: {out}",
            h.info.name
        ));
    }
    Ok(())
}

/// A key and a certificate signing request (PEM) made by openssl for `subj`, with `san` if given.
fn openssl_csr(
    dir: &std::path::Path,
    base: &str,
    subj: &str,
    san: Option<&str>,
) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(format!("{base}.key"));
    let csr = dir.join(format!("{base}.csr"));
    let mut args: Vec<String> = vec![
        "req".into(),
        "-new".into(),
        "-newkey".into(),
        "ec".into(),
        "-pkeyopt".into(),
        "ec_paramgen_curve:P-256".into(),
        "-nodes".into(),
        "-keyout".into(),
        key.display().to_string(),
        "-subj".into(),
        subj.into(),
        "-out".into(),
        csr.display().to_string(),
    ];
    if let Some(san) = san {
        args.extend(["-addext".into(), format!("subjectAltName={san}")]);
    }
    let (ok, out) = run(std::process::Command::new(OPENSSL).args(&args));
    assert!(ok, "openssl {args:?}: {out}");
    (key, std::fs::read_to_string(csr).unwrap())
}

/// A CertificateSigningRequest object for a PEM request.
fn csr_object(name: &str, pem: &str, signer: &str, usages: &[&str]) -> String {
    use base64::Engine;
    serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": signer,
            "usages": usages,
        },
    })
    .to_string()
}

/// Waits for a CSR's certificate (approved and signed); returns it as PEM.
fn issued(h: &Host, name: &str) -> Result<String, String> {
    use base64::Engine;
    let (pem, _) = poll(
        &format!("CSR {name} approved and signed"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let (ok, out) = kubectl_on(
                h,
                ADMIN,
                None,
                &["get", "csr", name, "-o", "jsonpath={.status.certificate}"],
            );
            match (ok, out.trim()) {
                (true, b64) if !b64.is_empty() => {
                    match base64::engine::general_purpose::STANDARD.decode(b64) {
                        Ok(pem) => Poll::Ok(String::from_utf8_lossy(&pem).into_owned()),
                        Err(e) => Poll::Fatal(format!("{e}: {b64}")),
                    }
                }
                _ => {
                    let (_, status) =
                        kubectl_on(h, ADMIN, None, &["get", "csr", name, "-o", "json"]);
                    Poll::Retry(status)
                }
            }
        },
    )?;
    Ok(pem)
}

/// A worker-pool machine joins as its kubelet does with TLS bootstrapping: with the pool's bootstrap
/// token it requests a client certificate, which the real controller manager approves
/// (kubeadm:node-autoapprove-bootstrap) and signs; with that certificate it registers its Node and
/// requests a serving certificate, which kimage-csr-approver.service (run on `cp`) approves, while a
/// request naming an address that is not the node's stays pending.
fn pool_machine_joins(lab: &Lab, built: &Built, cp: &str) -> Result<String, String> {
    let h = lab.host(cp);
    let name = "pool-a-machine-1";
    let address = "10.78.0.41";
    let dir = lab.net.trees.dir.path().join("pool-machine");
    let conf = pool_file(built, "pool-a", "/etc/kubernetes/bootstrap-kubelet.conf");
    std::fs::write(h.path("/tmp/bootstrap-kubelet.conf"), conf).unwrap();
    // 1. The client certificate, through the bootstrap token.
    let (key, pem) = openssl_csr(
        &dir,
        "client",
        &format!("/O=system:nodes/CN=system:node:{name}"),
        None,
    );
    std::fs::write(
        h.path("/tmp/csr-client.json"),
        csr_object(
            "kimage-pool-client",
            &pem,
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["digital signature", "client auth"],
        ),
    )
    .unwrap();
    let (ok, out) = kubectl_on(
        h,
        "/tmp/bootstrap-kubelet.conf",
        None,
        &["create", "-f", "/tmp/csr-client.json"],
    );
    if !ok {
        return Err(format!("the bootstrap token creating a client CSR: {out}"));
    }
    let t = Instant::now();
    let cert = issued(h, "kimage-pool-client")?;
    let signed_in = t.elapsed();
    let crt = dir.join("client.crt");
    std::fs::write(&crt, &cert).unwrap();
    std::fs::write(h.path("/tmp/pool-client.crt"), &cert).unwrap();
    std::fs::copy(&key, h.path("/tmp/pool-client.key")).unwrap();
    let (ok, out) = run(std::process::Command::new(OPENSSL).args([
        "verify",
        "-CAfile",
        h.path("/etc/kubernetes/pki/ca.crt").to_str().unwrap(),
        crt.to_str().unwrap(),
    ]));
    if !ok {
        return Err(format!(
            "the signed client certificate against the cluster CA: {out}"
        ));
    }
    // 2. As the node: its Node object.
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
         certificate-authority: /etc/kubernetes/pki/ca.crt\nusers:\n- name: u\n  user:\n    \
         client-certificate: /tmp/pool-client.crt\n    client-key: /tmp/pool-client.key\ncontexts:\n\
         - name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        lab.endpoint
    );
    std::fs::write(h.path("/tmp/pool-node.conf"), kubeconfig).unwrap();
    register_as(h, "/tmp/pool-node.conf", name, address, vec![])?;
    // 3. Serving certificates: one for the node's own name and address, one naming another address.
    for (csr, san) in [
        ("kimage-pool-serving", format!("DNS:{name},IP:{address}")),
        (
            "kimage-pool-serving-foreign-ip",
            format!("DNS:{name},IP:10.78.0.99"),
        ),
    ] {
        let (_, pem) = openssl_csr(
            &dir,
            csr,
            &format!("/O=system:nodes/CN=system:node:{name}"),
            Some(&san),
        );
        let file = format!("/tmp/{csr}.json");
        std::fs::write(
            h.path(&file),
            csr_object(
                csr,
                &pem,
                "kubernetes.io/kubelet-serving",
                &["digital signature", "server auth"],
            ),
        )
        .unwrap();
        let (ok, out) = kubectl_on(h, "/tmp/pool-node.conf", None, &["create", "-f", &file]);
        if !ok {
            return Err(format!("{name} creating its serving CSR {csr}: {out}"));
        }
    }
    lab.net
        .start_unit(h, &h.unit("kimage-csr-approver.service"), &[], &[])
        .map_err(|e| format!("kimage-csr-approver.service: {e}"))?;
    issued(h, "kimage-pool-serving")?;
    let (_, conditions) = kubectl_on(
        h,
        ADMIN,
        None,
        &[
            "get",
            "csr",
            "kimage-pool-serving-foreign-ip",
            "-o",
            "jsonpath={.status.conditions}",
        ],
    );
    if !conditions.trim().is_empty() {
        return Err(format!(
            "kimage-csr-approver decided on a serving CSR naming another node's address: {conditions}"
        ));
    }
    Ok(format!(
        "worker pool pool-a: a machine's client CSR through the bootstrap token was approved and signed \
         by the controller manager in {} (verifies against ca.crt); as system:node:{name} it registered \
         its Node; kimage-csr-approver.service approved its serving CSR and left the one naming \
         10.78.0.99 pending",
        secs(signed_in)
    ))
}

/// A Deployment's pod is created by the controller manager and bound to a node by the scheduler (no
/// kubelet runs it here). Returns the node.
fn schedule_a_pod(h: &Host) -> Result<String, String> {
    let deployment = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: kimage-probe, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: kimage-probe}}
  template:
    metadata: {labels: {app: kimage-probe}}
    spec:
      tolerations: [{operator: Exists}]
      containers: [{name: pause, image: registry.k8s.io/pause:3.10.1}]
"#;
    std::fs::write(h.path("/tmp/deployment.yaml"), deployment).unwrap();
    let (ok, out) = kubectl_on(h, ADMIN, None, &["apply", "-f", "/tmp/deployment.yaml"]);
    if !ok {
        return Err(format!("the test Deployment: {out}"));
    }
    let (node, _) = poll(
        "the Deployment's pod bound to a node",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let (_, out) = kubectl_on(
                h,
                ADMIN,
                None,
                &[
                    "-n",
                    "default",
                    "get",
                    "pods",
                    "-l",
                    "app=kimage-probe",
                    "-o",
                    "jsonpath={.items[*].spec.nodeName}",
                ],
            );
            if out.trim().is_empty() || out.contains("rror") {
                let (_, events) = kubectl_on(h, ADMIN, None, &["-n", "default", "get", "events"]);
                Poll::Retry(format!("{out}\n{events}"))
            } else {
                Poll::Ok(out.trim().to_string())
            }
        },
    )?;
    Ok(node)
}

/// kube-apiserver's audit log on a node, judged against what the audit policy promises: Secrets at
/// Metadata (never their content). Returns (events, events on Secrets, pod creations).
fn audit_log(h: &Host) -> Result<(usize, usize, usize), String> {
    let flags = h.unit("kube-apiserver.service").flags();
    let path = &flags["--audit-log-path"];
    let text = std::fs::read_to_string(h.path(path))
        .map_err(|e| format!("{}: {path}: {e}", h.info.name))?;
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{path}: {e}: {l}")))
        .collect::<Result<_, _>>()?;
    let secrets: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["objectRef"]["resource"] == "secrets")
        .collect();
    if let Some(e) = secrets.iter().find(|e| {
        e["level"] != "Metadata"
            || e.get("requestObject").is_some()
            || e.get("responseObject").is_some()
    }) {
        return Err(format!(
            "{}: {path}: a Secret request beyond Metadata: {e}",
            h.info.name
        ));
    }
    let pod_creates = events
        .iter()
        .filter(|e| {
            e["objectRef"]["resource"] == "pods"
                && e["verb"] == "create"
                && e["objectRef"]["subresource"].is_null()
                && e["level"] == "Request"
                && e.get("requestObject").is_some()
        })
        .count();
    Ok((events.len(), secrets.len(), pod_creates))
}

/// kube-proxy raises nf_conntrack_max (from conntrack.maxPerCore), a sysctl only the host's initial network
/// namespace may write; on a node it runs there. In a test node's namespace the node's copy of its
/// configuration leaves the limit alone (maxPerCore 0, kube-proxy's own "do not touch"), and the report
/// says so.
fn fit_kube_proxy_conntrack(net: &Net, h: &Host) {
    let path = "/var/lib/kube-proxy/config.conf";
    let conf = h.read(path);
    assert!(
        !conf.contains("conntrack:"),
        "{path} sets conntrack itself: adapt the test"
    );
    std::fs::write(h.path(path), format!("{conf}conntrack:\n  maxPerCore: 0\n")).unwrap();
    net.note(
        "kube-proxy: conntrack.maxPerCore 0 in the nodes' copies (nf_conntrack_max can only be set from \
         the host's initial network namespace; on a node kube-proxy sets it)"
            .into(),
    );
}

/// kube-bench's configuration for a systemd control plane: its own config.yaml with kimage's unit files
/// first in each component's `confs`/`svc` (kube-bench takes the first that exists), in a copy of its
/// cfg/ directory the node can read.
fn kube_bench_config(net: &Net) -> PathBuf {
    let src = real::kube_bench().join("cfg");
    let dst = net.trees.dir.path().join("kube-bench-cfg");
    let (ok, out) = run(std::process::Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dst));
    assert!(ok, "copying {}: {out}", src.display());
    let path = dst.join("config.yaml");
    let mut cfg: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let unit = |name: &str| format!("/etc/systemd/system/{name}.service");
    let prepend =
        |cfg: &mut serde_yaml_ng::Value, section: &str, comp: &str, key: &str, path: String| {
            let list = cfg[section][comp][key]
                .as_sequence_mut()
                .unwrap_or_else(|| panic!("kube-bench config has no {section}.{comp}.{key}"));
            list.insert(0, path.into());
        };
    prepend(
        &mut cfg,
        "master",
        "apiserver",
        "confs",
        unit("kube-apiserver"),
    );
    prepend(
        &mut cfg,
        "master",
        "controllermanager",
        "confs",
        unit("kube-controller-manager"),
    );
    prepend(
        &mut cfg,
        "master",
        "scheduler",
        "confs",
        unit("kube-scheduler"),
    );
    prepend(&mut cfg, "master", "etcd", "confs", unit("etcd"));
    prepend(&mut cfg, "etcd", "etcd", "confs", unit("etcd"));
    prepend(
        &mut cfg,
        "node",
        "proxy",
        "confs",
        "/var/lib/kube-proxy/config.conf".into(),
    );
    prepend(
        &mut cfg,
        "node",
        "proxy",
        "kubeconfig",
        "/var/lib/kube-proxy/kubeconfig.conf".into(),
    );
    prepend(&mut cfg, "node", "proxy", "svc", unit("kube-proxy"));
    std::fs::write(&path, serde_yaml_ng::to_string(&cfg).unwrap()).unwrap();
    dst
}

/// A process kube-bench takes for the kubelet: named `kubelet` (kube-bench matches the process name
/// and the first word of its command line) and doing nothing with its arguments. A C program, since a
/// script's first word would be its interpreter.
fn kubelet_standin(dir: &std::path::Path) -> PathBuf {
    let d = dir.join("kubelet-standin");
    std::fs::create_dir_all(&d).unwrap();
    let src = d.join("standin.c");
    std::fs::write(
        &src,
        "/* kimage test stand-in: a process named kubelet; its arguments are kubelet.service's */\n\
         #include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
    )
    .unwrap();
    let bin = d.join("kubelet");
    let (ok, out) = run(std::process::Command::new(CC).arg("-o").arg(&bin).arg(&src));
    assert!(ok, "{CC} {}: {out}", src.display());
    bin
}

/// kube-bench's verdicts of one run.
struct Bench {
    /// One line per section: its counts.
    summary: Vec<String>,
    /// `(id, description, what kube-bench saw)` of every FAIL.
    fails: Vec<(String, String, String)>,
    /// Ids of the WARNs (manual checks, mostly).
    warns: Vec<String>,
}

/// Runs kube-bench on a node for `targets` (`master,controlplane,etcd,policies` or `node`).
fn kube_bench(net: &Net, h: &Host, targets: &str) -> Result<Bench, String> {
    let cfg = kube_bench_config(net);
    let bin = real::program(&real::kube_bench(), "kube-bench");
    let out_file = format!("/tmp/kube-bench-{}.json", targets.replace(',', "-"));
    let (ok, out) = h.run_for(
        &[
            &bin,
            "run",
            "--targets",
            targets,
            "--benchmark",
            KUBE_BENCH_BENCHMARK,
            "--config-dir",
            cfg.to_str().unwrap(),
            "--config",
            cfg.join("config.yaml").to_str().unwrap(),
            "--json",
            "--outputfile",
            &out_file,
        ],
        300,
    );
    let json = std::fs::read_to_string(h.path(&out_file))
        .map_err(|e| format!("kube-bench wrote no {out_file} ({e}): ok={ok}\n{out}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("kube-bench's JSON: {e}\n{json}"))?;
    let mut b = Bench {
        summary: vec![],
        fails: vec![],
        warns: vec![],
    };
    for c in v["Controls"].as_array().into_iter().flatten() {
        b.summary.push(format!(
            "{} ({}): {} pass, {} fail, {} warn, {} info",
            c["text"].as_str().unwrap_or("?"),
            c["node_type"].as_str().unwrap_or("?"),
            c["total_pass"],
            c["total_fail"],
            c["total_warn"],
            c["total_info"]
        ));
        for t in c["tests"].as_array().into_iter().flatten() {
            for res in t["results"].as_array().into_iter().flatten() {
                let id = res["test_number"].as_str().unwrap_or("?").to_string();
                match res["status"].as_str() {
                    Some("FAIL") => b.fails.push((
                        id,
                        res["test_desc"].as_str().unwrap_or("?").to_string(),
                        res["actual_value"]
                            .as_str()
                            .unwrap_or("")
                            .trim()
                            .to_string(),
                    )),
                    Some("WARN") => b.warns.push(id),
                    _ => {}
                }
            }
        }
    }
    if b.summary.is_empty() {
        return Err(format!(
            "kube-bench reported no controls for {targets}:\n{out}\n{json}"
        ));
    }
    Ok(b)
}

/// The FAILs kube-bench reports on kimage's control plane that README.md explains (they are not
/// defects): each id must be listed in README's CIS section.
const EXPLAINED_CIS_FAILS: &[(&str, &str)] = &[(
    "1.4.1",
    "kube-scheduler's --profiling flag is deprecated and ignored with --config; kimage sets \
     enableProfiling: false in the scheduler configuration, which kube-bench does not read",
)];

/// Every FAIL is one README explains; returns the report lines.
fn judge_bench(what: &str, b: &Bench) -> Result<String, String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let cis = readme
        .split("## CIS Kubernetes Benchmark")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a CIS Kubernetes Benchmark section");
    let mut lines = b.summary.clone();
    let mut unexplained = vec![];
    for (id, desc, actual) in &b.fails {
        let known = EXPLAINED_CIS_FAILS.iter().any(|(k, _)| k == id);
        if known && cis.contains(&format!("{id}:")) {
            lines.push(format!("FAIL {id} (explained in README): {desc}"));
        } else {
            unexplained.push(format!("FAIL {id} {desc}\n  kube-bench saw: {actual}"));
        }
    }
    lines.push(format!("WARN: {}", b.warns.join(" ")));
    if !unexplained.is_empty() {
        return Err(format!(
            "kube-bench {KUBE_BENCH_BENCHMARK} ({what}) fails checks that kimage neither fixes nor \
             explains in README.md:\n{}",
            unexplained.join("\n")
        ));
    }
    Ok(format!(
        "kube-bench {KUBE_BENCH_BENCHMARK} ({what}):\n      {}",
        lines.join("\n      ")
    ))
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

/// What kimage-bootstrap writes with: its server-side apply field manager, and kubectl label/taint.
const BOOTSTRAP_MANAGERS: &[&str] = &["kimage", "kubectl-label", "kubectl-taint"];

/// One object as the idempotency check compares it: its resourceVersion, and each field manager's
/// entry (operation, subresource, time, fields) split into kimage-bootstrap's and the others'.
#[derive(PartialEq)]
struct Written {
    version: String,
    ours: Vec<String>,
    theirs: Vec<String>,
}

/// Every object the bootstrap manifests name, and every Node.
fn bootstrap_objects(h: &Host) -> Result<BTreeMap<String, Written>, String> {
    let mut v = BTreeMap::new();
    for (args, what) in [
        (
            vec!["get", "-f", "/etc/kimage/bootstrap", "-o", "json"],
            "manifests",
        ),
        (vec!["get", "nodes", "-o", "json"], "nodes"),
    ] {
        let (ok, out) = kubectl_on(h, ADMIN, None, &args);
        if !ok {
            return Err(format!("kubectl get {what}: {out}"));
        }
        let list: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("{what}: {e}: {out}"))?;
        for o in list["items"].as_array().into_iter().flatten() {
            let m = &o["metadata"];
            let (mut ours, mut theirs) = (vec![], vec![]);
            for f in m["managedFields"].as_array().into_iter().flatten() {
                let manager = f["manager"].as_str().unwrap_or("");
                if BOOTSTRAP_MANAGERS.contains(&manager) {
                    ours.push(f.to_string());
                } else {
                    theirs.push(f.to_string());
                }
            }
            v.insert(
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    m["namespace"].as_str().unwrap_or("-"),
                    m["name"].as_str().unwrap_or("?")
                ),
                Written {
                    version: m["resourceVersion"].as_str().unwrap_or("").to_string(),
                    ours,
                    theirs,
                },
            );
        }
    }
    Ok(v)
}

/// The objects kimage-bootstrap changed between two looks. The controller manager keeps writing
/// some of them (it signs cluster-info, marks Nodes without a kubelet not ready): a change counts as
/// the bootstrap's when its field managers' entries changed, or when the object changed and no other
/// manager's entry did.
fn changed_by_bootstrap(
    before: &BTreeMap<String, Written>,
    after: &BTreeMap<String, Written>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, a)| match before.get(*k) {
            None => true,
            Some(b) => a.ours != b.ours || (a.version != b.version && a.theirs == b.theirs),
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// A file of the secrets a worker pool's user-data installs (its bootstrap kubeconfig), from the build's
/// output, extracted by GNU tar.
fn pool_file(built: &Built, pool: &str, path: &str) -> String {
    let ud: serde_yaml_ng::Value = serde_yaml_ng::from_slice(
        &std::fs::read(built.out.join(format!("pools/{pool}/user-data"))).unwrap(),
    )
    .unwrap();
    let root = tempdir_in(std::path::Path::new(NODES_SEE), "pool-secrets-");
    artifacts::extract_secrets(&ud, root.path());
    let p = root.path().join(path.trim_start_matches('/'));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{pool}'s secrets: {}: {e}", p.display()))
}

/// The whole scenario; `tamper` breaks something in the unpacked trees first.
fn scenario(tamper: impl FnOnce(&Built, &Trees)) -> Result<Report, String> {
    require_netns(TOOLS);
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
            kube_proxy: None,
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
        extension: None,
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
    let before = bootstrap_objects(h1)?;
    let t = Instant::now();
    lab.net
        .start_unit(h1, &h1.unit("kimage-bootstrap.service"), &[], &[])
        .map_err(|e| format!("the second run of kimage-bootstrap.service: {e}"))?;
    let second = t.elapsed();
    let after = bootstrap_objects(h1)?;
    let changed = changed_by_bootstrap(&before, &after);
    if !changed.is_empty() {
        return Err(format!(
            "the second run of kimage-bootstrap changed: {}",
            changed.join(", ")
        ));
    }
    r.add(format!(
        "kimage-bootstrap.service applied {} objects in {} (nodes labelled and tainted); the second run \
         ({}) changed none of them (field managers kimage, kubectl-label, kubectl-taint)",
        before.len(),
        secs(first),
        secs(second)
    ));

    // 3b. Every other control-plane node marks its own Node (self.list) with its own admin.conf, as
    // `kubeadm join` does: the bootstrap node's nodes.list names no control-plane node.
    for n in cp_names.iter().filter(|n| **n != cp1) {
        let h = lab.host(n);
        lab.net
            .start_unit(h, &h.unit("kimage-bootstrap.service"), &[], &[])
            .map_err(|e| format!("kimage-bootstrap.service on {n}: {e}"))?;
    }
    for n in &cp_names {
        let (ok, out) = kubectl_on(
            lab.host(&cp1),
            ADMIN,
            None,
            &[
                "get",
                "node",
                n,
                "-o",
                "go-template={{range $k, $v := .metadata.labels}}{{$k}} {{end}}{{range .spec.taints}}{{.key}}:{{.effect}} {{end}}",
            ],
        );
        let want = [
            "node-role.kubernetes.io/control-plane",
            "node-role.kubernetes.io/control-plane:NoSchedule",
        ];
        if !ok || !want.iter().all(|w| out.split_whitespace().any(|x| x == *w)) {
            return Err(format!(
                "Node {n} lacks the control-plane label or taint after its own kimage-bootstrap: {out}"
            ));
        }
    }
    r.add(format!(
        "{} marked their own Nodes (control-plane label and taint) with their own admin.conf",
        cp_names
            .iter()
            .filter(|n| **n != cp1)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // 4. cp-1 holds both Leases; then the other nodes start theirs.
    for lease in ["kube-controller-manager", "kube-scheduler"] {
        poll(
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
    }
    r.add(format!(
        "kube-controller-manager and kube-scheduler on {cp1} hold their Leases (kube-system/\
         kube-controller-manager, kube-system/kube-scheduler)"
    ));
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
            kubectl_on(
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
    let (_, list) = kubectl_on(
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
    let (ok, out) = kubectl_on(
        h1,
        ADMIN,
        None,
        &["-n", "default", "create", "serviceaccount", "kimage-probe"],
    );
    if !ok && !out.contains("AlreadyExists") {
        return Err(format!("create serviceaccount: {out}"));
    }
    let (ok, token) = kubectl_on(
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
    let (ok, apis) = kubectl_on(h1, ADMIN, None, &["get", "--raw", "/apis"]);
    if !ok || !apis.contains("apiregistration.k8s.io") {
        return Err(format!("GET /apis: {apis}"));
    }
    r.add("a token from `kubectl create token` (sa.key) is accepted by every apiserver (sa.pub); /apis answers");

    // 6b. A worker-pool machine joins through TLS bootstrapping; a Deployment's pod is scheduled; the
    // audit log says what the policy promises.
    r.add(pool_machine_joins(&lab, &built, &cp1)?);
    let node = schedule_a_pod(lab.host(&cp1))?;
    r.add(format!(
        "a Deployment's pod created by the controller manager and bound to {node} by the scheduler"
    ));
    // Every apiserver audits what it serves; the pod was created through one of them.
    let (mut events, mut secrets, mut pods) = (0, 0, 0);
    for n in &cp_names {
        let (e, s, p) = audit_log(lab.host(n))?;
        (events, secrets, pods) = (events + e, secrets + s, pods + p);
    }
    if secrets == 0 || pods == 0 {
        return Err(format!(
            "the audit logs record {secrets} requests on Secrets and {pods} pod creations at Request \
             level ({events} events): the audit policy promises both"
        ));
    }
    r.add(format!(
        "audit logs of the three apiservers: {events} events; {secrets} on Secrets, all at Metadata \
         without content; {pods} pod creations at Request level with the pod"
    ));

    // 7. kube-proxy on every control-plane node (nftables mode, as the profile says): the kubernetes
    // Service's cluster IP reaches the apiservers.
    let cluster_ip = {
        let (ok, out) = kubectl_on(
            lab.host(&cp1),
            ADMIN,
            None,
            &[
                "get",
                "service",
                "kubernetes",
                "-o",
                "jsonpath={.spec.clusterIP}",
            ],
        );
        if !ok {
            return Err(format!("the kubernetes Service: {out}"));
        }
        out.trim().to_string()
    };
    for n in &cp_names {
        let h = lab.net.host(n);
        fit_kube_proxy_conntrack(&lab.net, h);
        let p = lab
            .net
            .start_unit(h, &h.unit("kube-proxy.service"), &[], &[])?
            .expect("long-running");
        lab.cps
            .iter_mut()
            .find(|c| &c.name == n)
            .unwrap()
            .kube_proxy = Some(p);
    }
    let mut synced = vec![];
    for n in &cp_names {
        let h = lab.host(n);
        let p = lab.cp(n).kube_proxy.unwrap();
        let healthz = format!("http://{}:10256/healthz", h.info.address);
        let (_, d) = poll(
            &format!("kube-proxy on {n}: {healthz} and the kubernetes Service's cluster IP"),
            UP,
            Duration::from_millis(500),
            || {
                if !lab.net.running(p) {
                    return Poll::Fatal(lab.net.tail(p, 30));
                }
                let (ok, out) = h.run_for(&["curl", "-fsS", "--max-time", "2", &healthz], 10);
                if !ok {
                    return Poll::Retry(format!("{out}\n{}", lab.net.tail(p, 10)));
                }
                match health(
                    h,
                    ADMIN,
                    Some(&format!("https://{cluster_ip}:443")),
                    "/readyz",
                ) {
                    Ok(_) => Poll::Ok(()),
                    Err(e) => Poll::Retry(format!("{e}\n{}", lab.net.tail(p, 10))),
                }
            },
        )?;
        synced.push(format!("{n} {}", secs(d)));
    }
    let (_, rules) = lab
        .host(&cp2)
        .run(&["nft", "list", "table", "ip", "kube-proxy"]);
    if !rules.contains(&cluster_ip) {
        return Err(format!(
            "kube-proxy's nftables table has no rule for {cluster_ip}:\n{rules}"
        ));
    }
    r.add(format!(
        "kube-proxy.service (mode nftables) healthy and https://{cluster_ip}:443 (the kubernetes Service) \
         serving readyz through its rules on every node: {}",
        synced.join(", ")
    ));

    // 8. The aggregation layer: an APIService served by a stand-in on the client host, reached through
    // kube-proxy, which accepts the apiservers only with the front-proxy client certificate.
    {
        let certs = lab.net.trees.dir.path().join("extension");
        let (ca_key, ca_crt) = openssl_ca(&certs, "ca", "kimage-probe-ca");
        let key = certs.join("server.key");
        let crt = openssl_leaf(
            &certs,
            "server",
            "/CN=kimage-probe.kube-system.svc",
            &key,
            (&ca_key, &ca_crt),
            "[v3]\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:kimage-probe.kube-system.svc\n",
        );
        let front_proxy_ca = certs.join("front-proxy-ca.crt");
        std::fs::write(
            &front_proxy_ca,
            lab.host(&cp1)
                .read("/etc/kubernetes/pki/front-proxy-ca.crt"),
        )
        .unwrap();
        let script = certs.join("extension.py");
        std::fs::write(&script, EXTENSION_APISERVER).unwrap();
        let ch = lab.net.host(&lab.client);
        let addr = ch.info.address.to_string();
        let p = lab.net.spawn(
            ch,
            "extension-apiserver",
            ch.command(&[
                "/usr/bin/python3",
                "-u",
                script.to_str().unwrap(),
                &addr,
                "8443",
                crt.to_str().unwrap(),
                key.to_str().unwrap(),
                front_proxy_ca.to_str().unwrap(),
            ]),
        );
        lab.extension = Some(p);
        use base64::Engine;
        let bundle =
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(&ca_crt).unwrap());
        let h1 = lab.host(&cp1);
        std::fs::write(
            h1.path("/tmp/extension.yaml"),
            extension_objects(&addr, &bundle),
        )
        .unwrap();
        let (ok, out) = kubectl_on(h1, ADMIN, None, &["apply", "-f", "/tmp/extension.yaml"]);
        if !ok {
            return Err(format!("registering the APIService: {out}"));
        }
        let (_, d) = poll(
            "APIService v1.probe.kimage.test Available",
            Duration::from_secs(90),
            Duration::from_millis(500),
            || {
                if !lab.net.running(p) {
                    return Poll::Fatal(lab.net.tail(p, 30));
                }
                let (_, out) = kubectl_on(
                    h1,
                    ADMIN,
                    None,
                    &[
                        "get",
                        "apiservice",
                        "v1.probe.kimage.test",
                        "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Available\")]}",
                    ],
                );
                if out.contains("\"status\":\"True\"") {
                    Poll::Ok(())
                } else {
                    Poll::Retry(format!("{out}\n{}", lab.net.tail(p, 10)))
                }
            },
        )?;
        let (ok, apis) = kubectl_on(h1, ADMIN, None, &["get", "--raw", "/apis"]);
        if !ok || !apis.contains("probe.kimage.test") {
            return Err(format!(
                "GET /apis does not list the aggregated group: {apis}"
            ));
        }
        let mut seen = vec![];
        for c in &cp_names {
            let server = format!("https://{}:6443", lab.host(c).info.address);
            let (ok, out) = kubectl_on(
                h1,
                ADMIN,
                Some(&server),
                &["get", "--raw", "/apis/probe.kimage.test/v1/whoamis"],
            );
            let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
            if !ok || v["proxyClient"] != "front-proxy-client" || v["user"] != "kubernetes-admin" {
                return Err(format!(
                    "the aggregated API through {c}'s apiserver: {out}\n{}",
                    lab.net.tail(p, 10)
                ));
            }
            seen.push(format!("{c}: user {} groups {}", v["user"], v["groups"]));
        }
        r.add(format!(
            "aggregation layer: APIService Available {} after it was created; /apis lists it; through each \
             apiserver the extension saw the front-proxy-client certificate and the caller ({})",
            secs(d),
            seen.join("; ")
        ));
    }

    // Encryption at rest of Secrets, read back from etcd.
    r.add(secrets_encrypted_in_etcd(lab.host(&cp1))?);

    // 9. kube-bench on cp-1 while the control plane runs, configured with kimage's unit files as the
    // components' configuration.
    let master = kube_bench(
        &lab.net,
        lab.host(&cp1),
        "master,controlplane,etcd,policies",
    )?;
    r.add(judge_bench(
        &format!("{cp1}: master, controlplane, etcd, policies"),
        &master,
    )?);
    // The node checks read the kubelet's command line from the process table and the files it names.
    // The kubelet cannot run here (cgroup v1, no systemd): a stand-in process named kubelet carries
    // kubelet.service's exact ExecStart arguments; the files are kimage's. The VM test runs the real one.
    let standin_bin = kubelet_standin(lab.net.trees.dir.path());
    let h1 = lab.host(&cp1);
    let kubelet = lab
        .net
        .start_unit(
            h1,
            &h1.unit("kubelet.service"),
            &[("/usr/local/bin/kubelet", standin_bin.to_str().unwrap())],
            &[],
        )?
        .expect("long-running");
    let node = kube_bench(&lab.net, h1, "node");
    lab.net.stop(kubelet, Duration::from_secs(5));
    r.add(judge_bench(
        &format!("{cp1}: node, kubelet command line from a stand-in process"),
        &node?,
    )?);

    // 10. The node holding both Leases (the bootstrap node) stops: the others take over, the VIP serves.
    let stopped: BTreeSet<String> = [cp1.clone()].into();
    // All of its units at once, as when the machine shuts down or is lost: the clock starts with the
    // signal (a controller manager does not give its Lease up when stopped; the others wait it out).
    let c1 = lab.cp(&cp1);
    let c1_procs: Vec<ProcId> = [
        c1.scheduler,
        c1.controller_manager,
        Some(c1.apiserver),
        Some(c1.etcd),
        c1.kube_proxy,
    ]
    .into_iter()
    .flatten()
    .collect();
    let t_stop = Instant::now();
    for p in &c1_procs {
        lab.net.signal(*p, "-TERM");
    }
    // Until both Leases moved: one request through the VIP per round (cp-2's admin.conf), counted.
    let h2 = lab.host(&cp2);
    let mut holders: BTreeMap<&str, (String, Duration)> = BTreeMap::new();
    let (mut served, mut failed, mut last_failure) = (0, 0, None);
    poll(
        &format!("another node takes both Leases over from {cp1}"),
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            if let Some(d) = lab.dead(&stopped) {
                return Poll::Fatal(d);
            }
            match kubectl_on(h2, ADMIN, None, &["get", "--raw", "/readyz"]) {
                (true, _) => served += 1,
                (false, out) => {
                    failed += 1;
                    last_failure = Some((t_stop.elapsed(), out));
                }
            }
            for lease in ["kube-controller-manager", "kube-scheduler"] {
                if holders.contains_key(lease) {
                    continue;
                }
                if let Some(h) = lease_holder(h2, lease).filter(|h| *h != cp1) {
                    holders.insert(lease, (h, t_stop.elapsed()));
                }
            }
            if holders.len() == 2 {
                Poll::Ok(())
            } else {
                Poll::Retry(format!("new holders so far: {holders:?}"))
            }
        },
    )?;
    // haproxy marks a backend down after `fall` failed checks `inter` apart (3 × 2 s): until then a
    // request may reach the stopped node; after that none may fail.
    if let Some((at, out)) = &last_failure
        && *at > Duration::from_secs(10)
    {
        return Err(format!(
            "a request through the VIP failed {} after {cp1} stopped: {out}",
            secs(*at)
        ));
    }
    for p in &c1_procs {
        lab.net.stop(*p, Duration::from_secs(30));
    }
    let stopped_after = t_stop.elapsed();
    let (_, d) = poll(
        "readyz?verbose through the VIP without the bootstrap node: every check ok",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || match health(h2, ADMIN, None, "/readyz") {
            Ok(_) => Poll::Ok(()),
            Err(e) => Poll::Retry(e),
        },
    )?;
    let cm_flags = lab
        .host(&cp2)
        .unit("kube-controller-manager.service")
        .flags();
    r.add(format!(
        "{cp1} (the bootstrap node, holder of both Leases) stopped (SIGTERM to every unit; all exited \
         within {}): {}; configured lease duration {} (default: 15s); \
         through the VIP meanwhile {served} requests served, {failed} failed{}; readyz?verbose through \
         the VIP all ok again {} later",
        secs(stopped_after),
        holders
            .iter()
            .map(|(l, (h, at))| format!("{l} taken over by {h} {} after the stop began", secs(*at)))
            .collect::<Vec<_>>()
            .join(", "),
        cm_flags
            .get("--leader-elect-lease-duration")
            .cloned()
            .unwrap_or_else(|| "15s".into()),
        last_failure
            .as_ref()
            .map(|(at, _)| format!(" (the last {} after the stop began)", secs(*at)))
            .unwrap_or_default(),
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

/// Expects the scenario to fail, with one of `why` in the message.
fn expect_failure(why: &[&str], tamper: impl FnOnce(&Built, &Trees)) -> String {
    failed_as_expected(scenario(tamper).map(|r| r.text()), why)
}

/// The cluster CA of the build as files openssl can sign with.
fn cluster_ca(b: &Built, t: &Trees, id: &str) -> (PathBuf, PathBuf) {
    let dir = t.dir.path().join(format!("state-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = b.state_pem(id);
    let (k, c) = (dir.join("ca.key"), dir.join("ca.crt"));
    std::fs::write(&k, key).unwrap();
    std::fs::write(&c, crt).unwrap();
    (k, c)
}

#[test]
fn companion_apiserver_cert_without_vip_san_is_caught() {
    // Every apiserver serves a certificate for its own address and the service IP, not the VIP that
    // every kubeconfig dials (seed 004's failure).
    timed("companion_apiserver_cert_without_vip_san_is_caught", || {
        expect_failure(&["is valid for", "not 10.78.0.100"], |b, t| {
            let ca = cluster_ca(b, t, "ca");
            for cp in b.with_role("control-plane") {
                let crt = openssl_leaf(
                    &t.dir.path().join("no-vip"),
                    &cp.name,
                    "/CN=kube-apiserver",
                    &t.file(&cp.name, "/etc/kubernetes/pki/apiserver.key"),
                    (&ca.0, &ca.1),
                    &format!(
                        "[v3]\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                         extendedKeyUsage=serverAuth\nsubjectAltName=IP:10.96.0.1,IP:{},\
                         DNS:kubernetes,DNS:kubernetes.default.svc\n",
                        cp.address
                    ),
                );
                std::fs::copy(crt, t.file(&cp.name, "/etc/kubernetes/pki/apiserver.crt")).unwrap();
            }
        })
    });
}

#[test]
fn companion_etcd_client_cert_from_another_ca_is_caught() {
    // cp-1's apiserver presents an etcd client certificate from a CA etcd does not trust. kube-apiserver
    // 1.35 does not come up with a failing etcd check: it cannot create its storage and exits; its log
    // names etcd's refusal.
    timed(
        "companion_etcd_client_cert_from_another_ca_is_caught",
        || {
            expect_failure(&["tls: unknown certificate authority"], |_, t| {
                let dir = t.dir.path().join("other-etcd-ca");
                let ca = openssl_ca(&dir, "ca", "etcd-ca");
                let key = t.file("cp-1", "/etc/kubernetes/pki/apiserver-etcd-client.key");
                let crt = openssl_leaf(
                    &dir,
                    "client",
                    "/O=system:masters/CN=kube-apiserver-etcd-client",
                    &key,
                    (&ca.0, &ca.1),
                    CLIENT_EXT,
                );
                std::fs::copy(
                    crt,
                    t.file("cp-1", "/etc/kubernetes/pki/apiserver-etcd-client.crt"),
                )
                .unwrap();
            })
        },
    );
}

#[test]
fn companion_kubelet_kubeconfig_of_another_node_is_caught() {
    // cp-1 got cp-2's kubelet.conf: registering cp-1's Node as system:node:cp-2 is refused (by the
    // NodeRestriction admission plugin, once the Node authorizer let the request in).
    timed(
        "companion_kubelet_kubeconfig_of_another_node_is_caught",
        || {
            expect_failure(
                &["node \"cp-2\" is not allowed to modify node \"cp-1\""],
                |_, t| {
                    std::fs::copy(
                        t.file("cp-2", "/etc/kubernetes/kubelet.conf"),
                        t.file("cp-1", "/etc/kubernetes/kubelet.conf"),
                    )
                    .unwrap();
                },
            )
        },
    );
}

#[test]
fn the_idempotency_check_can_fail() {
    // kimage-bootstrap's own entry changed, or the object changed with no manager to blame: its
    // change. Only the controller manager's entry changed: not its change.
    let w = |version: &str, ours: &str, theirs: &str| Written {
        version: version.into(),
        ours: vec![ours.into()],
        theirs: vec![theirs.into()],
    };
    let before = BTreeMap::from([
        ("a".to_string(), w("1", "kimage@t1", "kcm@t1")),
        ("b".to_string(), w("1", "kimage@t1", "kcm@t1")),
        ("c".to_string(), w("1", "kimage@t1", "kcm@t1")),
    ]);
    let after = BTreeMap::from([
        ("a".to_string(), w("2", "kimage@t2", "kcm@t1")),
        ("b".to_string(), w("2", "kimage@t1", "kcm@t2")),
        ("c".to_string(), w("2", "kimage@t1", "kcm@t1")),
    ]);
    assert_eq!(changed_by_bootstrap(&before, &after), ["a", "c"]);
    assert!(changed_by_bootstrap(&before, &before).is_empty());
}
