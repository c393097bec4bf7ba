//! Every kubeconfig loads in real kubectl (each version on the machine) and names the endpoint.

#[path = "support/pki.rs"]
mod support;

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use support::*;

#[test]
fn kubectl_config_view_reads_every_kubeconfig() {
    let tmp = tempdir();
    let c = seed003("ecdsa-p256");
    let (m, _) = ensure(&c, &tmp.path().join("state"));
    let ids: Vec<&str> = m.kubeconfig_ids().collect();
    // admin x3, super-admin, controller-manager x3, scheduler x3, kubelet x6, kube-proxy x6.
    assert_eq!(ids.len(), 22, "{ids:?}");
    for kubectl in kubectls() {
        for id in &ids {
            let file = write(
                tmp.path(),
                &format!("{id}.conf"),
                &m.kubeconfig(id).unwrap(),
            );
            let out = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&file)
                .args(["config", "view", "--raw", "-o", "json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} config view {id}: {}",
                kubectl.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let cert = m.cert(id).unwrap();
            assert_eq!(
                v["clusters"][0]["cluster"]["server"], "https://k8s-master-lb:6443",
                "{id}"
            );
            assert_eq!(v["clusters"][0]["name"], "seed-003");
            assert_eq!(v["users"][0]["name"], cert.spec.common_name.as_str());
            assert_eq!(
                v["current-context"],
                format!("{}@seed-003", cert.spec.common_name)
            );
            assert_eq!(
                v["contexts"][0]["context"]["user"],
                cert.spec.common_name.as_str()
            );
            let decode = |f: &serde_json::Value| {
                String::from_utf8(STANDARD.decode(f.as_str().unwrap()).unwrap()).unwrap()
            };
            assert_eq!(
                decode(&v["users"][0]["user"]["client-certificate-data"]),
                cert.cert_pem
            );
            assert_eq!(
                decode(&v["users"][0]["user"]["client-key-data"]),
                cert.key_pem()
            );
            assert_eq!(
                decode(&v["clusters"][0]["cluster"]["certificate-authority-data"]),
                m.cert_pem("ca").unwrap()
            );
        }
        // kubectl resolves the current context to the endpoint.
        let admin = write(
            tmp.path(),
            "admin.conf",
            &m.kubeconfig("admin@k8s-master-1").unwrap(),
        );
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&admin)
            .args([
                "config",
                "view",
                "--minify",
                "-o",
                "jsonpath={.clusters[0].cluster.server}",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "https://k8s-master-lb:6443"
        );
    }
}

#[test]
fn kubeconfig_text_is_deterministic_and_quotes_what_yaml_needs() {
    let tmp = tempdir();
    let yaml = "apiVersion: kimage/v1alpha1
kind: Cluster
name: v6
controlPlane:
  endpoint: \"[fd00::10]:6443\"
nodes:
  - {name: cp-1, role: control-plane, address: \"fd00::11\"}
";
    let c = cluster(yaml);
    let (m, _) = ensure(&c, tmp.path());
    let (again, _) = ensure(&c, tmp.path());
    let kc = m.kubeconfig("admin@cp-1").unwrap();
    assert_eq!(kc, again.kubeconfig("admin@cp-1").unwrap());
    assert!(
        kc.contains("    server: \"https://[fd00::10]:6443\"\n"),
        "{kc}"
    );
    let file = write(tmp.path(), "admin.conf", &kc);
    let out = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(&file)
        .args([
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "https://[fd00::10]:6443",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
