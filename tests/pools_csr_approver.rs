//! kimage-csr-approver (as rendered for a profile with worker pools) against a fake kubectl serving
//! CSRs made by real openssl: it approves a pool kubelet's serving-certificate request only when the
//! node asks for itself with its own addresses, and leaves everything else pending with the reason.

mod bootstrap_support;

use std::path::Path;
use std::process::Command;

use bootstrap_support::*;

const FAKE: &str = include_str!("bootstrap_support/fake-kubectl-csr.sh");

struct Csr<'a> {
    name: &'a str,
    user: &'a str,
    signer: &'a str,
    usages: &'a [&'a str],
    subject: &'a str,
    sans: &'a str,
}

const SERVING: &str = "kubernetes.io/kubelet-serving";
const USAGES: &[&str] = &["digital signature", "server auth"];

fn make_csr(state: &Path, c: &Csr) {
    let d = state.join("csr").join(c.name);
    std::fs::create_dir_all(&d).unwrap();
    let req = d.join("request");
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(d.join("key"))
        .args([
            "-subj",
            c.subject,
            "-addext",
            &format!("subjectAltName={}", c.sans),
        ])
        .arg("-out")
        .arg(&req)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(d.join("user"), c.user).unwrap();
    std::fs::write(d.join("signer"), c.signer).unwrap();
    let groups = if c.user.starts_with("system:node:") {
        "system:nodes\nsystem:authenticated\n"
    } else {
        "kubeadm:cluster-admins\nsystem:authenticated\n"
    };
    std::fs::write(d.join("groups"), groups).unwrap();
    std::fs::write(d.join("usages"), c.usages.join("\n") + "\n").unwrap();
}

#[test]
fn approves_only_a_nodes_own_serving_certificate() {
    require("openssl");
    let c = pools_cluster();
    let script = kimage::render::render_node(&c, c.node("master-2").unwrap())
        .unwrap()
        .into_iter()
        .find(|f| f.path == "/usr/local/bin/kimage-csr-approver")
        .expect("with worker pools every control-plane node gets the approver");
    let tmp = tempdir();
    let root = tmp.path();
    write_exec(
        &root.join("approver"),
        std::str::from_utf8(&script.content).unwrap(),
    );
    write_exec(&root.join("bin/kubectl"), FAKE);
    let state = root.join("state");
    std::fs::create_dir_all(state.join("nodes")).unwrap();
    std::fs::write(root.join("admin.conf"), "fake").unwrap();
    for (node, addrs) in [
        ("gpu-a", "10.0.0.5\ngpu-a\n"),
        ("gpu-b", "10.0.0.6\ngpu-b\n"),
        ("gpu-c", "10.0.0.7\ngpu-c\n"),
        ("gpu-v6", "fd00::5\ngpu-v6\n"),
    ] {
        std::fs::write(state.join("nodes").join(node), addrs).unwrap();
    }
    let cases = [
        Csr {
            name: "csr-good",
            user: "system:node:gpu-a",
            signer: SERVING,
            usages: USAGES,
            subject: "/O=system:nodes/CN=system:node:gpu-a",
            sans: "DNS:gpu-a,IP:10.0.0.5",
        },
        Csr {
            name: "csr-v6",
            user: "system:node:gpu-v6",
            signer: SERVING,
            usages: &["digital signature", "key encipherment", "server auth"],
            subject: "/O=system:nodes/CN=system:node:gpu-v6",
            sans: "DNS:gpu-v6,IP:fd00:0:0::5",
        },
        Csr {
            name: "csr-foreign-ip",
            user: "system:node:gpu-b",
            signer: SERVING,
            usages: USAGES,
            subject: "/O=system:nodes/CN=system:node:gpu-b",
            sans: "DNS:gpu-b,IP:10.0.0.99",
        },
        Csr {
            name: "csr-other-name",
            user: "system:node:gpu-b",
            signer: SERVING,
            usages: USAGES,
            subject: "/O=system:nodes/CN=system:node:gpu-b",
            sans: "DNS:kubernetes.default,IP:10.0.0.6",
        },
        Csr {
            name: "csr-other-cn",
            user: "system:node:gpu-c",
            signer: SERVING,
            usages: USAGES,
            subject: "/O=system:nodes/CN=system:node:gpu-a",
            sans: "DNS:gpu-c,IP:10.0.0.7",
        },
        Csr {
            name: "csr-not-a-node",
            user: "kubernetes-admin",
            signer: SERVING,
            usages: USAGES,
            subject: "/O=system:nodes/CN=system:node:gpu-a",
            sans: "DNS:gpu-a",
        },
        Csr {
            name: "csr-client-usage",
            user: "system:node:gpu-c",
            signer: SERVING,
            usages: &["digital signature", "server auth", "client auth"],
            subject: "/O=system:nodes/CN=system:node:gpu-c",
            sans: "DNS:gpu-c",
        },
        Csr {
            name: "csr-no-node",
            user: "system:node:gpu-z",
            signer: SERVING,
            usages: USAGES,
            subject: "/O=system:nodes/CN=system:node:gpu-z",
            sans: "DNS:gpu-z",
        },
        Csr {
            name: "csr-email",
            user: "system:node:gpu-c",
            signer: SERVING,
            usages: USAGES,
            subject: "/O=system:nodes/CN=system:node:gpu-c",
            sans: "DNS:gpu-c,email:a@b.c",
        },
        // Client certificates are the controller manager's business (csrapproving), not the approver's.
        Csr {
            name: "csr-client-signer",
            user: "system:node:gpu-a",
            signer: "kubernetes.io/kube-apiserver-client-kubelet",
            usages: &["digital signature", "client auth"],
            subject: "/O=system:nodes/CN=system:node:gpu-a",
            sans: "DNS:gpu-a",
        },
    ];
    for c in &cases {
        make_csr(&state, c);
    }
    let run = || {
        let out = Command::new(root.join("approver"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", root.join("bin").display()),
            )
            .env("FAKE_STATE", &state)
            .env("KIMAGE_ADMIN_KUBECONFIG", root.join("admin.conf"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run();
    assert!(ok, "{text}");
    let events = std::fs::read_to_string(state.join("events")).unwrap_or_default();
    let mut approved: Vec<&str> = events.lines().collect();
    approved.sort();
    assert_eq!(approved, ["APPROVE csr-good", "APPROVE csr-v6"], "{text}");
    for (name, why) in [
        (
            "csr-foreign-ip",
            "IP address 10.0.0.99 is not one of node gpu-b's addresses",
        ),
        (
            "csr-other-name",
            "DNS name kubernetes.default is not node gpu-b's",
        ),
        (
            "csr-other-cn",
            "subject is not CN=system:node:gpu-c, O=system:nodes",
        ),
        (
            "csr-not-a-node",
            "requested by kubernetes-admin, not by a node",
        ),
        ("csr-client-usage", "usage not allowed: client auth"),
        ("csr-no-node", "node gpu-z does not exist"),
        (
            "csr-email",
            "subject alternative name email:a@b.c is not allowed",
        ),
    ] {
        assert!(
            text.lines().any(
                |l| l.starts_with(&format!("kimage-csr-approver: leaving {name} "))
                    && l.ends_with(why)
            ),
            "{name}: expected `{why}` in:\n{text}"
        );
    }
    assert!(!text.contains("csr-client-signer"), "{text}");
    // The next tick approves nothing again.
    std::fs::write(state.join("events"), "").unwrap();
    let (ok, text) = run();
    assert!(ok, "{text}");
    assert_eq!(std::fs::read_to_string(state.join("events")).unwrap(), "");
}

#[test]
fn approver_is_only_where_pools_are() {
    let c = pools_cluster();
    for n in c.control_planes() {
        let plan = kimage::render::units_to_start(&c, n).unwrap();
        assert!(
            plan.contains(&"kimage-csr-approver.timer".to_string()),
            "{}",
            n.name
        );
    }
    let w = kimage::render::units_to_start(&c, c.node("node-1").unwrap()).unwrap();
    assert!(!w.iter().any(|u| u.starts_with("kimage-csr")));
    let without = cluster(POOLS_PROFILE.split("workerPools:").next().unwrap());
    for n in without.control_planes() {
        let files = kimage::render::render_node(&without, n).unwrap();
        assert!(
            !files.iter().any(|f| f.path.contains("csr-approver")),
            "{}",
            n.name
        );
    }
}
