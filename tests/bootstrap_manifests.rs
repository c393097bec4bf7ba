//! The manifests kimage-bootstrap applies, judged by real tools and by the reference facts:
//! - every manifest passes real kubectl's client-side apply (`apply --dry-run=client --validate=false`)
//!   and `create --dry-run=client -o yaml` round-trips it with the same objects, with both kubectl
//!   versions of this machine, against a loopback stand-in for the apiserver's discovery;
//! - every object passes the Kubernetes v1.35 JSON schemas in strict mode (kubernetes-validate, PyPI);
//! - the RBAC and the bootstrap token Secrets are what kubeadm creates (tests/reference/
//!   k8s-pki-requirements.yaml); CoreDNS, cluster-info and flannel carry the model's addresses.

mod bootstrap_support;

use std::collections::BTreeMap;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bootstrap_support::*;
use kimage::model::images;
use serde_yaml_ng::Value;

fn write_manifests(files: &BTreeMap<String, Vec<u8>>, dir: &std::path::Path) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn kubectl_checks(
    kubectl: &std::path::Path,
    conf: &std::path::Path,
    file: &std::path::Path,
) -> (bool, String) {
    let out = Command::new(kubectl)
        .env("HOME", conf.parent().unwrap())
        .arg(format!("--kubeconfig={}", conf.display()))
        .args(["apply", "--dry-run=client", "--validate=false", "-f"])
        .arg(file)
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

#[test]
fn manifests_pass_kubectl_client_side_apply_and_round_trip() {
    let srv = FakeApiserver::start();
    let tmp = tempdir();
    let conf = srv.kubeconfig(tmp.path());
    let c = pools_cluster();
    let m = pki(&c, tmp.path());
    let files = manifests(&c, &m);
    assert!(files.len() >= 7, "{:?}", files.keys());
    write_manifests(&files, tmp.path());
    let expected = objects(&files);
    for kubectl in kubectls() {
        for (name, bytes) in &files {
            let path = tmp.path().join(name);
            let (ok, out) = kubectl_checks(&kubectl, &conf, &path);
            assert!(
                ok,
                "{} apply --dry-run=client {name}:\n{out}",
                kubectl.display()
            );
            let created = out
                .lines()
                .filter(|l| l.ends_with("created (dry run)"))
                .count();
            assert_eq!(
                created,
                docs(bytes).len(),
                "{} {name}: one `created (dry run)` per object:\n{out}",
                kubectl.display()
            );
            // create -o yaml prints what kubectl decoded: the same objects come back.
            let out = Command::new(&kubectl)
                .env("HOME", tmp.path())
                .arg(format!("--kubeconfig={}", conf.display()))
                .args([
                    "create",
                    "--dry-run=client",
                    "--validate=false",
                    "-o",
                    "yaml",
                    "-f",
                ])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} create --dry-run=client {name}: {}",
                kubectl.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let items: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
                .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
                .filter(|v| !v.is_null())
                .collect();
            assert_eq!(
                items.len(),
                docs(bytes).len(),
                "{name}: kubectl printed every object"
            );
            for item in items {
                let k = key(&item);
                let want = &expected[&k];
                for field in ["data", "spec", "roleRef", "subjects", "rules", "type"] {
                    assert_eq!(
                        item.get(field),
                        want.get(field),
                        "{name}: {k:?}.{field} changed in kubectl's round trip"
                    );
                }
            }
        }
    }
    let log = srv.log();
    assert!(
        log.iter()
            .any(|l| l == "GET /apis/rbac.authorization.k8s.io/v1"),
        "kubectl used the fake discovery: {log:?}"
    );
}

#[test]
fn kubectl_check_can_fail() {
    // The check above must be able to fail: an object of a kind the apiserver does not serve.
    let srv = FakeApiserver::start();
    let tmp = tempdir();
    let conf = srv.kubeconfig(tmp.path());
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBindng\nmetadata:\n  name: x\n",
    )
    .unwrap();
    for kubectl in kubectls() {
        let (ok, out) = kubectl_checks(&kubectl, &conf, &bad);
        assert!(!ok, "{}: a misspelt kind passed:\n{out}", kubectl.display());
    }
}

/// The pools profile as an IPv6 cluster: service and pod networks and node addresses alike (an IPv6
/// cluster with IPv4 nodes is refused: the apiserver's advertise address must be in the service family).
fn ipv6_profile() -> String {
    POOLS_PROFILE
        .replace(
            "podCIDR: 10.244.0.0/16\n  serviceCIDR: 10.96.0.0/12",
            "podCIDR: fd00:10:244::/56\n  serviceCIDR: fd00:10:96::/112",
        )
        .replace("address: 10.0.0.", "address: fd00::")
}

#[test]
fn manifests_pass_the_v1_35_schemas_strictly() {
    require("kubernetes-validate");
    let tmp = tempdir();
    for c in [pools_cluster(), cluster(&ipv6_profile())] {
        let m = pki(&c, tmp.path());
        let files = manifests(&c, &m);
        let dir = tmp
            .path()
            .join(format!("m-{}", c.kubernetes.pod_cidr.0.addr()));
        std::fs::create_dir_all(&dir).unwrap();
        write_manifests(&files, &dir);
        let out = Command::new("kubernetes-validate")
            .args(["-k", "1.35.0", "--strict"])
            .args(files.keys().map(|f| dir.join(f)))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubernetes-validate --strict:\n{text}"
        );
        let objects = objects(&files).len();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("INFO") && l.contains(" passed for resource "))
                .count(),
            objects,
            "every object validated:\n{text}"
        );
    }
}

#[test]
fn schema_check_can_fail() {
    require("kubernetes-validate");
    let tmp = tempdir();
    let bad = tmp.path().join("bad.yaml");
    // A field CoreDNS's Service does not have, and a port as a string.
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: kube-dns\n  namespace: kube-system\nspec:\n  clusterIp: 10.96.0.10\n  ports:\n    - port: \"53\"\n",
    )
    .unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["-k", "1.35.0", "--strict"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt field passed the schemas");
}

fn subject(v: &Value) -> String {
    format!(
        "{} {}",
        v["kind"].as_str().unwrap(),
        v["name"].as_str().unwrap()
    )
}

#[test]
fn rbac_is_what_kubeadm_creates() {
    let reference: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("tests/reference/k8s-pki-requirements.yaml")).unwrap(),
    )
    .unwrap();
    let tmp = tempdir();
    let c = pools_cluster();
    let m = pki(&c, tmp.path());
    let objs = objects(&manifests(&c, &m));
    let listed = reference["rbac_objects_kubeadm_creates"]
        .as_sequence()
        .unwrap();
    assert_eq!(listed.len(), 5, "the reference lists five bindings");
    for r in listed {
        let name = r["name"].as_str().unwrap();
        let kind = r["kind"].as_str().unwrap();
        let o = objs
            .get(&(kind.to_string(), String::new(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {name}"));
        assert_eq!(o["roleRef"]["kind"], "ClusterRole", "{name}");
        assert_eq!(
            o["roleRef"]["apiGroup"], "rbac.authorization.k8s.io",
            "{name}"
        );
        assert_eq!(o["roleRef"]["name"], r["role"], "{name}");
        let subjects = o["subjects"].as_sequence().unwrap();
        assert_eq!(subjects.len(), 1, "{name}: exactly one subject");
        assert_eq!(
            subject(&subjects[0]),
            r["subject"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            subjects[0]["apiGroup"], "rbac.authorization.k8s.io",
            "{name}"
        );
    }
    // The group bootstrap tokens authenticate in is the one the reference gives bootstrap-kubelet.conf.
    let bootstrap = reference["kubeconfigs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|k| k["file"] == "bootstrap-kubelet.conf")
        .unwrap();
    assert!(
        bootstrap["auth"]
            .as_str()
            .unwrap()
            .contains(kimage::pki::token::AUTH_EXTRA_GROUP)
    );
    // admin.conf's group is the one kubeadm:cluster-admins binds, and super-admin's is system:masters.
    let admin = m.cert("admin@master-1").unwrap();
    assert_eq!(admin.spec.organizations, ["kubeadm:cluster-admins"]);
    assert_eq!(
        m.cert("super-admin@master-1").unwrap().spec.organizations,
        ["system:masters"]
    );
    // The apiserver's kubelet client certificate is the user kubeadm:apiserver-kubelet-client names.
    assert_eq!(
        m.cert("apiserver-kubelet-client@master-1")
            .unwrap()
            .spec
            .common_name,
        "kube-apiserver-kubelet-client"
    );
}

#[test]
fn token_secrets_are_kubeadms() {
    let tmp = tempdir();
    let c = pools_cluster();
    let m = pki(&c, tmp.path());
    let files = manifests(&c, &m);
    let objs = objects(&files);
    for pool in ["gpu", "general"] {
        let rec = m.bootstrap_token(pool).unwrap();
        assert!(kimage::pki::token::valid(&rec.id, &rec.secret));
        let s = &objs[&(
            "Secret".to_string(),
            "kube-system".to_string(),
            format!("bootstrap-token-{}", rec.id),
        )];
        assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
        let data: BTreeMap<String, String> = s["data"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_string(),
                    String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap(),
                )
            })
            .collect();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "auth-extra-groups",
                "description",
                "expiration",
                "token-id",
                "token-secret",
                "usage-bootstrap-authentication",
                "usage-bootstrap-signing"
            ]
        );
        assert_eq!(data["token-id"], rec.id);
        assert_eq!(data["token-secret"], rec.secret);
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert_eq!(data["usage-bootstrap-signing"], "true");
        assert_eq!(
            data["auth-extra-groups"],
            "system:bootstrappers:kubeadm:default-node-token"
        );
        let exp = time::OffsetDateTime::parse(
            &data["expiration"],
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(exp, rec.expires_at);
        assert!(
            data["expiration"].ends_with('Z'),
            "UTC: {}",
            data["expiration"]
        );
        let ttl = c.pool(pool).unwrap().token_ttl_secs as i64;
        assert_eq!((rec.expires_at - rec.issued_at).whole_seconds(), ttl);
        // The Secret file is private: user-data only, mode 0600.
        let f = m
            .node_bundle(&c, "master-1")
            .unwrap()
            .into_iter()
            .find(|f| f.path.ends_with(&format!("70-bootstrap-token-{pool}.yaml")))
            .unwrap();
        assert_eq!(f.mode, 0o600);
        assert!(f.is_secret());
    }
    // gpu's tokenTTL is 48h, general's the default 24h.
    let gpu = m.bootstrap_token("gpu").unwrap();
    assert_eq!((gpu.expires_at - gpu.issued_at).whole_hours(), 48);
    let general = m.bootstrap_token("general").unwrap();
    assert_eq!((general.expires_at - general.issued_at).whole_hours(), 24);
}

#[test]
fn addons_follow_the_model() {
    let tmp = tempdir();
    let c = pools_cluster();
    let m = pki(&c, tmp.path());
    let objs = objects(&manifests(&c, &m));
    let get = |kind: &str, ns: &str, name: &str| {
        objs.get(&(kind.to_string(), ns.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {ns}/{name}"))
            .clone()
    };
    let svc = get("Service", "kube-system", "kube-dns");
    assert_eq!(
        svc["spec"]["clusterIP"].as_str().unwrap(),
        c.kubernetes.cluster_dns_ip.to_string()
    );
    assert_eq!(svc["spec"]["selector"]["k8s-app"], "kube-dns");
    let corefile = get("ConfigMap", "kube-system", "coredns")["data"]["Corefile"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(corefile.contains("kubernetes cluster.local in-addr.arpa ip6.arpa {"));
    let dep = get("Deployment", "kube-system", "coredns");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        images::COREDNS
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["serviceAccountName"],
        "coredns"
    );
    get("ClusterRole", "", "system:coredns");
    get("ClusterRoleBinding", "", "system:coredns");
    // flannel: the pod network, the pinned images.
    let cfg = get("ConfigMap", "kube-flannel", "kube-flannel-cfg");
    let net: serde_json::Value =
        serde_json::from_str(cfg["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net["Network"], c.kubernetes.pod_cidr.to_string());
    let _: serde_json::Value =
        serde_json::from_str(cfg["data"]["cni-conf.json"].as_str().unwrap()).unwrap();
    let ds = get("DaemonSet", "kube-flannel", "kube-flannel-ds");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["image"], images::FLANNEL);
    assert_eq!(
        spec["initContainers"][0]["image"],
        images::FLANNEL_CNI_PLUGIN
    );
    // cluster-info: the endpoint and the CA, nothing else.
    let ci = get("ConfigMap", "kube-public", "cluster-info");
    let kc: Value = serde_yaml_ng::from_str(ci["data"]["kubeconfig"].as_str().unwrap()).unwrap();
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"].as_str().unwrap(),
        c.endpoint_url
    );
    let ca = STANDARD
        .decode(
            kc["clusters"][0]["cluster"]["certificate-authority-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(ca, m.cert_pem("ca").unwrap().as_bytes());
    assert!(kc["users"].is_null() && kc["contexts"].is_null());

    // kubernetes.cni: none leaves the pod network to the user.
    let none = cluster(&POOLS_PROFILE.replace(
        "  clusterDomain: cluster.local\n",
        "  clusterDomain: cluster.local\n  cni: none\n",
    ));
    let files = manifests(&none, &pki(&none, &tmp.path().join("none")));
    assert!(!files.contains_key("50-flannel.yaml"), "{:?}", files.keys());
    assert!(files.contains_key("40-coredns.yaml"));

    // IPv6 pod network: flannel's IPv6 keys.
    let v6 = cluster(&ipv6_profile());
    let objs6 = objects(&manifests(&v6, &pki(&v6, &tmp.path().join("v6"))));
    let cfg6 = &objs6[&(
        "ConfigMap".to_string(),
        "kube-flannel".to_string(),
        "kube-flannel-cfg".to_string(),
    )];
    let net6: serde_json::Value =
        serde_json::from_str(cfg6["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net6["IPv6Network"], "fd00:10:244::/56");
    assert_eq!(net6["EnableIPv4"], false);
    assert!(net6.get("Network").is_none());
    let svc6 = &objs6[&(
        "Service".to_string(),
        "kube-system".to_string(),
        "kube-dns".to_string(),
    )];
    assert_eq!(svc6["spec"]["clusterIP"], "fd00:10:96::a");
}

/// The bootstrap node's nodes.list names the workers' labels and taints; each control-plane node's
/// self.list its own (it marks its own Node, so no node's files list the other control-plane nodes).
#[test]
fn nodes_list_names_what_kubelets_may_not_set() {
    let tmp = tempdir();
    let c = pools_cluster();
    let m = pki(&c, tmp.path());
    let entries = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let files = bootstrap_files(&c, &m);
    let list = String::from_utf8(files["nodes.list"].clone()).unwrap();
    assert_eq!(
        entries(&list),
        [
            // disktype is set by the kubelet itself (--node-labels).
            "node-1 node-role.kubernetes.io/worker= -",
        ]
    );
    let mut all = list.clone();
    for cp in c.control_planes() {
        let own = kimage::render::render_node(&c, cp)
            .unwrap()
            .into_iter()
            .find(|f| f.path == "/etc/kimage/bootstrap/self.list")
            .unwrap_or_else(|| panic!("{} has no self.list", cp.name));
        let own = String::from_utf8(own.content.to_vec()).unwrap();
        assert_eq!(
            entries(&own),
            [format!(
                "{} node-role.kubernetes.io/control-plane= node-role.kubernetes.io/control-plane:NoSchedule",
                cp.name
            )]
        );
        all.push_str(&own);
    }
    for n in &c.nodes {
        for k in n.api_labels.keys() {
            assert!(!kimage::model::kubelet_may_set_label(k));
            assert!(all.contains(&format!("{k}=")), "{k}");
        }
    }
}
