//! The image-layers catalog and what `render_node` produces: embedding, determinism, scopes, modes,
//! PKI paths, no private material, per-role file lists and start order.

mod render_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kimage::pki::spec;
use kimage::render::{self, Scope, StartAction};
use render_support::*;

fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, base, out);
        } else {
            out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn embedded_list_matches_image_layers() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("image-layers");
    let mut on_disk = BTreeSet::new();
    // boot/ holds the user-data's scripts, embedded by src/userdata; the render catalog is the layers.
    for layer in render::LAYERS {
        walk(&base.join(layer), &base, &mut on_disk);
    }
    let embedded: BTreeSet<String> = render::embedded_files()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(
        on_disk, embedded,
        "src/render/embedded.rs must list exactly the files in image-layers/"
    );
    for (p, content) in render::embedded_files() {
        assert_eq!(
            std::fs::read_to_string(base.join(p)).unwrap(),
            *content,
            "{p} differs from its embedded copy"
        );
    }
}

#[test]
fn every_layer_file_is_used() {
    // A template no manifest lists would silently never ship.
    let mut listed = BTreeSet::new();
    for (p, content) in render::embedded_files() {
        if let Some(layer) = p.strip_suffix("/layer.yaml") {
            let m: serde_yaml_ng::Value = serde_yaml_ng::from_str(content).unwrap();
            for f in m["files"].as_sequence().unwrap() {
                listed.insert(format!("{layer}/{}", f["src"].as_str().unwrap()));
            }
            listed.insert(p.to_string());
        }
    }
    let all: BTreeSet<String> = render::embedded_files()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(all, listed);
}

#[test]
fn rendering_twice_is_byte_identical() {
    for fx in FIXTURES {
        let c = cluster(fx);
        let a = render::render_cluster(&c).unwrap();
        let b = render::render_cluster(&cluster(fx)).unwrap();
        assert_eq!(a, b, "{fx}");
        for n in &c.nodes {
            assert_eq!(
                render::start_plan(&c, n).unwrap(),
                render::start_plan(&c, n).unwrap()
            );
        }
    }
}

#[test]
fn shared_files_are_identical_on_every_node_of_their_layer() {
    for fx in FIXTURES {
        let c = cluster(fx);
        let mut seen: BTreeMap<(String, String), (String, Vec<u8>)> = BTreeMap::new();
        let mut checked = 0;
        for n in &c.nodes {
            for f in render(&c, n)
                .into_iter()
                .filter(|f| f.scope == Scope::Shared)
            {
                let key = (f.layer.clone(), f.path.clone());
                match seen.get(&key) {
                    Some((first, content)) => {
                        checked += 1;
                        assert_eq!(
                            content.as_slice(),
                            &f.content[..],
                            "{fx}: shared {} differs between {first} and {}",
                            f.path,
                            n.name
                        )
                    }
                    None => {
                        seen.insert(key, (n.name.to_string(), f.content.to_vec()));
                    }
                }
            }
        }
        assert!(
            checked > 20,
            "{fx}: too few shared files compared ({checked})"
        );
    }
}

#[test]
fn files_are_absolute_root_owned_and_private_where_cis_says() {
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            for f in render(&c, n) {
                assert!(f.path.starts_with('/'), "{}", f.path);
                assert_eq!(
                    (f.uid, f.gid, f.owner.as_str(), f.group.as_str()),
                    (0, 0, "root", "root"),
                    "{}",
                    f.path
                );
                assert_eq!(f.mode & 0o022, 0, "{} is group/world-writable", f.path);
                let cis_private = f.path.starts_with("/etc/systemd/system/kube")
                    || f.path == "/etc/systemd/system/etcd.service"
                    || f.path == "/etc/etcd/etcd.conf"
                    || f.path.starts_with("/var/lib/kubelet/")
                    || f.path.starts_with("/etc/kubernetes/");
                if cis_private {
                    assert_eq!(f.mode, 0o600, "{} should be 0600", f.path);
                }
                let exec = f.mode & 0o111 != 0;
                assert_eq!(
                    exec,
                    f.path == "/etc/keepalived/kimage-check-proxy"
                        || f.path.starts_with("/usr/local/bin/kimage-"),
                    "{} executable bit",
                    f.path
                );
            }
        }
    }
}

#[test]
fn no_private_material_and_pki_paths_come_from_the_spec() {
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            let files = render(&c, n);
            let pki: BTreeSet<String> =
                spec::pki_files(&c, n).into_iter().map(|f| f.path).collect();
            let rendered: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            let mut referenced = 0;
            for f in &files {
                assert!(
                    !pki.contains(&f.path),
                    "{} is PKI material, which comes with the user-data",
                    f.path
                );
                let t = String::from_utf8(f.content.to_vec()).unwrap();
                for marker in [
                    "PRIVATE KEY",
                    "BEGIN CERTIFICATE",
                    "client-key-data",
                    "auth_pass",
                ] {
                    assert!(
                        !t.contains(marker),
                        "{} on {} contains {marker}",
                        f.path,
                        n.name
                    );
                }
                // Every certificate, key or kubeconfig a file names is one the PKI spec puts on this node.
                for tok in t.split(|ch: char| ch.is_whitespace() || "=,:\"'".contains(ch)) {
                    let pki_like = [
                        "/etc/kubernetes/",
                        "/var/lib/kubelet/pki/",
                        "/var/lib/kube-proxy/",
                    ]
                    .iter()
                    .any(|d| tok.starts_with(d))
                        && [".crt", ".key", ".pub", ".conf"]
                            .iter()
                            .any(|e| tok.ends_with(e));
                    if pki_like && !rendered.contains(tok) {
                        referenced += 1;
                        assert!(
                            pki.contains(tok),
                            "{} on {} names {tok}, which pki::spec does not give this node",
                            f.path,
                            n.name
                        );
                    }
                }
            }
            if n.runs_kubelet || n.etcd_member {
                assert!(referenced > 0, "{}: no PKI path referenced at all", n.name);
            }
        }
    }
}

fn paths(files: &[render::RenderedFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn file_lists_per_role() {
    let c = cluster("stacked-haproxy");
    let common = [
        "/etc/chrony/sources.d/kimage.sources",
        "/etc/hosts",
        "/etc/modules-load.d/kimage.conf",
        "/etc/security/limits.d/90-kimage.conf",
        "/etc/sysctl.d/90-kimage-kubernetes.conf",
        "/etc/sysctl.d/91-kimage-profile.conf",
        "/etc/systemd/system/kimage-swapoff.service",
        "/etc/systemd/timesyncd.conf.d/kimage.conf",
    ];
    let etcd = [
        "/etc/etcd/etcd.conf",
        "/etc/systemd/system/etcd.service",
        "/etc/systemd/system/kimage-etcd-setup.service",
        "/etc/sysusers.d/kimage-etcd.conf",
        "/etc/tmpfiles.d/kimage-etcd.conf",
    ];
    // Every control-plane node marks its own Node (self.list, kimage-bootstrap).
    let control_plane = [
        "/etc/kimage/bootstrap/self.list",
        "/etc/kubernetes/audit-policy.yaml",
        "/etc/kubernetes/kube-scheduler.yaml",
        "/etc/systemd/system/kimage-bootstrap.service",
        "/etc/systemd/system/kube-apiserver.service",
        "/etc/systemd/system/kube-controller-manager.service",
        "/etc/systemd/system/kube-scheduler.service",
        "/usr/local/bin/kimage-bootstrap",
    ];
    let worker = [
        "/etc/containerd/config.toml",
        "/etc/crictl.yaml",
        "/etc/systemd/system/containerd.service",
        "/etc/systemd/system/kube-proxy.service",
        "/etc/systemd/system/kubelet.service",
        "/etc/tmpfiles.d/kimage-cni.conf",
        "/var/lib/kube-proxy/config.conf",
        "/var/lib/kubelet/config.yaml",
    ];
    // The bootstrap control-plane node (the first one) applies the cluster's objects.
    let bootstrap = [
        "/etc/kimage/bootstrap/00-cluster-admins.yaml",
        "/etc/kimage/bootstrap/10-rbac.yaml",
        "/etc/kimage/bootstrap/40-coredns.yaml",
        "/etc/kimage/bootstrap/50-flannel.yaml",
        "/etc/kimage/bootstrap/nodes.list",
    ];
    let lb = [
        "/etc/haproxy/kimage.cfg",
        "/etc/keepalived/kimage-check-proxy",
        "/etc/keepalived/kimage.conf",
        "/etc/systemd/system/haproxy.service",
        "/etc/systemd/system/keepalived.service",
    ];
    fn sorted<'a>(groups: &[&[&'a str]]) -> Vec<&'a str> {
        let mut v: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
        v.sort();
        v
    }
    assert_eq!(
        paths(&render(&c, node(&c, "master-1"))),
        sorted(&[&common, &etcd, &control_plane, &worker, &bootstrap])
    );
    assert_eq!(
        paths(&render(&c, node(&c, "master-2"))),
        sorted(&[&common, &etcd, &control_plane, &worker])
    );
    assert_eq!(
        paths(&render(&c, node(&c, "node-1"))),
        sorted(&[&common, &worker])
    );
    assert_eq!(
        paths(&render(&c, node(&c, "lb-1"))),
        sorted(&[&common, &lb])
    );

    // External etcd, nginx without a VIP, no NTP servers, swap left on, no extra sysctls.
    let e = cluster("external-nginx");
    let common_e = [
        "/etc/hosts",
        "/etc/modules-load.d/kimage.conf",
        "/etc/security/limits.d/90-kimage.conf",
        "/etc/sysctl.d/90-kimage-kubernetes.conf",
    ];
    assert_eq!(
        paths(&render(&e, node(&e, "etcd-0"))),
        sorted(&[&common_e, &etcd])
    );
    assert_eq!(
        paths(&render(&e, node(&e, "master-1"))),
        sorted(&[&common_e, &control_plane, &worker, &bootstrap])
    );
    assert_eq!(
        paths(&render(&e, node(&e, "nginx"))),
        sorted(&[
            &common_e,
            &[
                "/etc/nginx/kimage.conf",
                "/etc/systemd/system/nginx.service"
            ]
        ])
    );
}

#[test]
fn start_order_per_role() {
    let c = cluster("stacked-haproxy");
    // Never systemd-tmpfiles-setup.service: restarting it empties /tmp.
    let boot = ["systemd-modules-load.service", "systemd-sysctl.service"];
    let plan = render::start_plan(&c, node(&c, "master-1")).unwrap();
    let restarts: Vec<&str> = plan
        .iter()
        .filter(|s| s.action == StartAction::Restart)
        .map(|s| s.unit.as_str())
        .collect();
    assert_eq!(restarts, boot);
    let tries: Vec<&str> = plan
        .iter()
        .filter(|s| s.action == StartAction::TryRestart)
        .map(|s| s.unit.as_str())
        .collect();
    assert_eq!(tries, ["chrony.service", "systemd-timesyncd.service"]);
    // Restarts come first: modules before sysctl (bridge keys need br_netfilter).
    assert!(plan[..2].iter().all(|s| s.action == StartAction::Restart));
    assert_eq!(
        render::units_to_start(&c, node(&c, "master-1")).unwrap(),
        [
            "kimage-swapoff.service",
            "etcd.service",
            "kube-apiserver.service",
            "kube-controller-manager.service",
            "kube-scheduler.service",
            "kimage-bootstrap.service",
            "containerd.service",
            "kubelet.service",
            "kube-proxy.service"
        ]
    );
    assert_eq!(
        render::units_to_start(&c, node(&c, "node-2")).unwrap(),
        [
            "kimage-swapoff.service",
            "containerd.service",
            "kubelet.service",
            "kube-proxy.service"
        ]
    );
    assert_eq!(
        render::units_to_start(&c, node(&c, "lb-2")).unwrap(),
        [
            "kimage-swapoff.service",
            "haproxy.service",
            "keepalived.service"
        ]
    );
    let e = cluster("external-nginx");
    assert_eq!(
        render::units_to_start(&e, node(&e, "etcd-2")).unwrap(),
        ["etcd.service"]
    );
    assert_eq!(
        render::units_to_start(&e, node(&e, "nginx")).unwrap(),
        ["nginx.service"]
    );
    assert_eq!(
        render::units_to_start(&e, node(&e, "master-2")).unwrap(),
        [
            "kube-apiserver.service",
            "kube-controller-manager.service",
            "kube-scheduler.service",
            "kimage-bootstrap.service",
            "containerd.service",
            "kubelet.service",
            "kube-proxy.service"
        ]
    );
    // Every unit a node starts is one of its rendered files (or a boot-time system unit).
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            let files = render(&c, n);
            for u in render::units_to_start(&c, n).unwrap() {
                file(&files, &format!("/etc/systemd/system/{u}"));
            }
        }
    }
}

#[test]
fn keepalived_only_with_a_vip_and_vrrp_per_node() {
    let c = cluster("stacked-haproxy");
    let lb1 = text(&render(&c, node(&c, "lb-1")), "/etc/keepalived/kimage.conf");
    let lb2 = text(&render(&c, node(&c, "lb-2")), "/etc/keepalived/kimage.conf");
    assert!(
        lb1.contains("state MASTER") && lb1.contains("priority 150"),
        "{lb1}"
    );
    assert!(
        lb2.contains("state BACKUP") && lb2.contains("priority 140"),
        "{lb2}"
    );
    assert!(
        lb1.contains("unicast_src_ip 192.168.31.76") && lb1.contains("        192.168.31.77\n")
    );
    assert!(
        lb2.contains("unicast_src_ip 192.168.31.77") && lb2.contains("        192.168.31.76\n")
    );
    assert!(lb1.contains("192.168.31.75/24 dev ens3") && lb1.contains("virtual_router_id 61"));

    // Same cluster without the VIP: no keepalived at all.
    let text_profile = std::fs::read_to_string(fixture_path("stacked-haproxy"))
        .unwrap()
        .replace("  vip: 192.168.31.75\n", "")
        .replace(
            "endpoint: 192.168.31.75:6443",
            "endpoint: 192.168.31.76:6443",
        );
    let novip = cluster_from_str(&text_profile);
    let files = render(&novip, node(&novip, "lb-1"));
    assert!(
        files.iter().all(|f| !f.path.contains("keepalived")),
        "{:?}",
        paths(&files)
    );
    assert!(
        !render::units_to_start(&novip, node(&novip, "lb-1"))
            .unwrap()
            .contains(&"keepalived.service".to_string())
    );
}

#[test]
fn kubelet_settings_follow_the_profile() {
    let c = cluster("stacked-haproxy");
    let n1 = render(&c, node(&c, "node-1"));
    let unit = text(&n1, "/etc/systemd/system/kubelet.service");
    // NodeRestriction forbids node-role labels from the kubelet; the kubelet would not even start.
    assert!(unit.contains("--node-labels=disktype=ssd\n"), "{unit}");
    assert!(!unit.contains("node-role"), "{unit}");
    let cfg: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text(&n1, "/var/lib/kubelet/config.yaml")).unwrap();
    assert_eq!(cfg["failSwapOn"], serde_yaml_ng::Value::Bool(true));
    assert!(cfg.get("registerWithTaints").is_none());
    assert_eq!(cfg["clusterDNS"][0].as_str(), Some("10.96.0.10"));

    let m1 = render(&c, node(&c, "master-1"));
    let cfg: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text(&m1, "/var/lib/kubelet/config.yaml")).unwrap();
    assert_eq!(
        cfg["registerWithTaints"][0]["key"].as_str(),
        Some("node-role.kubernetes.io/control-plane")
    );
    assert_eq!(
        cfg["registerWithTaints"][0]["effect"].as_str(),
        Some("NoSchedule")
    );

    let e = cluster("external-nginx");
    let m2 = render(&e, node(&e, "master-2"));
    let cfg: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text(&m2, "/var/lib/kubelet/config.yaml")).unwrap();
    assert_eq!(cfg["failSwapOn"], serde_yaml_ng::Value::Bool(false));
    assert_eq!(cfg["memorySwap"]["swapBehavior"].as_str(), Some("NoSwap"));
    assert_eq!(cfg["clusterDomain"].as_str(), Some("k8s.example"));
    let taints = cfg["registerWithTaints"].as_sequence().unwrap();
    assert_eq!(taints.len(), 2);
    assert_eq!(taints[1]["value"].as_str(), Some("infra"));
    assert_eq!(taints[1]["effect"].as_str(), Some("NoExecute"));
    assert!(!text(&m2, "/etc/systemd/system/kubelet.service").contains("kimage-swapoff"));
    let w = render(&e, node(&e, "node-1"));
    assert!(
        text(&w, "/etc/systemd/system/kubelet.service")
            .contains("--node-labels=topology.kubernetes.io/zone=a\n")
    );
}

#[test]
fn os_settings_follow_the_profile() {
    let c = cluster("stacked-haproxy");
    let f = render(&c, node(&c, "node-2"));
    let modules = text(&f, "/etc/modules-load.d/kimage.conf");
    let listed: Vec<&str> = modules
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(
        listed,
        [
            "overlay",
            "br_netfilter",
            "nf_conntrack",
            "ip_vs",
            "ip_vs_rr",
            "ip_vs_wrr",
            "ip_vs_sh",
            "ip_set"
        ]
    );
    let sysctl = text(&f, "/etc/sysctl.d/90-kimage-kubernetes.conf");
    let keys: BTreeMap<&str, &str> = sysctl
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_once(" = ").unwrap())
        .collect();
    for (k, v) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.bridge.bridge-nf-call-iptables", "1"),
        ("net.bridge.bridge-nf-call-ip6tables", "1"),
        // The kubelet's protectKernelDefaults values.
        ("vm.overcommit_memory", "1"),
        ("vm.panic_on_oom", "0"),
        ("kernel.panic", "10"),
        ("kernel.panic_on_oops", "1"),
        ("kernel.keys.root_maxkeys", "1000000"),
        ("kernel.keys.root_maxbytes", "25000000"),
    ] {
        assert_eq!(keys.get(k), Some(&v), "{k}");
    }
    for gone in [
        "fs.may_detach_mounts",
        "net.ipv4.ip_conntrack_max",
        "net.ipv4.tcp_timestamps",
    ] {
        assert!(!keys.contains_key(gone), "{gone}");
    }
    // Every key exists on the kernel running this test (a key the kernel lacks makes systemd-sysctl
    // fail); the bridge and conntrack keys need their modules, which may not be loadable here.
    for k in keys.keys() {
        let p = Path::new("/proc/sys").join(k.replace('.', "/"));
        let module_key = k.starts_with("net.bridge.") || k.starts_with("net.netfilter.");
        assert!(
            p.exists() || module_key,
            "{k} does not exist on this kernel"
        );
    }
    assert_eq!(
        text(&f, "/etc/sysctl.d/91-kimage-profile.conf")
            .lines()
            .last(),
        Some("net.core.netdev_max_backlog = 16384")
    );
    let limits = text(&f, "/etc/security/limits.d/90-kimage.conf");
    assert!(
        limits.contains("*     hard  nofile   655360")
            && limits.contains("root  soft  memlock  unlimited")
    );
    assert!(text(&f, "/etc/systemd/system/kubelet.service").contains("LimitNOFILE=655360\n"));
    let hosts = text(&f, "/etc/hosts");
    assert!(hosts.contains("127.0.0.1\tlocalhost\n") && hosts.contains("192.168.31.77\tlb-2\n"));
    assert_eq!(
        text(&f, "/etc/systemd/timesyncd.conf.d/kimage.conf")
            .lines()
            .last(),
        Some("NTP=ntp.aliyun.com 210.72.145.44")
    );
    assert!(
        text(&f, "/etc/chrony/sources.d/kimage.sources").contains("server 210.72.145.44 iburst\n")
    );

    let e = cluster("external-nginx");
    let f = render(&e, node(&e, "node-1"));
    assert!(!text(&f, "/etc/modules-load.d/kimage.conf").contains("ip_vs"));
}

#[test]
fn containerd_and_crictl_configs_parse() {
    let c = cluster("stacked-haproxy");
    let f = render(&c, node(&c, "node-1"));
    let t: toml::Table = text(&f, "/etc/containerd/config.toml")
        .parse()
        .expect("config.toml is TOML");
    assert_eq!(t["version"].as_integer(), Some(3));
    let plugins = t["plugins"].as_table().unwrap();
    let images = plugins["io.containerd.cri.v1.images"].as_table().unwrap();
    assert_eq!(
        images["pinned_images"]["sandbox"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    let runtime = plugins["io.containerd.cri.v1.runtime"].as_table().unwrap();
    let runc = &runtime["containerd"]["runtimes"]["runc"];
    assert_eq!(runc["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
    assert_eq!(runc["options"]["SystemdCgroup"].as_bool(), Some(true));
    assert_eq!(
        runc["options"]["BinaryName"].as_str(),
        Some("/usr/local/bin/runc")
    );
    assert_eq!(runtime["cni"]["bin_dirs"][0].as_str(), Some("/opt/cni/bin"));
    let crictl: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text(&f, "/etc/crictl.yaml")).unwrap();
    assert_eq!(
        crictl["runtime-endpoint"].as_str(),
        Some("unix:///run/containerd/containerd.sock")
    );
    for p in [
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kube-proxy/config.conf",
    ] {
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text(&f, p))
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    let m = render(&c, node(&c, "master-1"));
    for p in [
        "/etc/kubernetes/kube-scheduler.yaml",
        "/etc/kubernetes/audit-policy.yaml",
    ] {
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text(&m, p))
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

#[test]
fn every_shipped_profile_renders() {
    // The seed profiles in profiles/ cover topologies the fixtures do not (DNS endpoint, single
    // master, co-located etcd members, ...).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut count = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let loaded =
            kimage::profile::load_file(&p).unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
        let c = kimage::model::Cluster::resolve(&loaded.profile);
        for n in &c.nodes {
            let files =
                render::render_node(&c, n).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!files.is_empty());
            render::start_plan(&c, n).unwrap();
            count += 1;
        }
    }
    assert!(count > 20, "{count} nodes rendered");
}

#[test]
fn values_with_line_breaks_are_refused() {
    // A free-form profile value must not inject lines into a sysctl.d file or a unit. The profile
    // loader refuses it first, with its line (tests/bad-profiles/line-break-in-ntp-server.yaml); the
    // renderer still refuses a model that did not come through the loader.
    let profile = std::fs::read_to_string(fixture_path("stacked-haproxy"))
        .unwrap()
        .replace(
            "net.core.netdev_max_backlog: \"16384\"",
            "net.core.netdev_max_backlog: \"1\\nkernel.panic = 0\"",
        );
    assert!(kimage::profile::load_str(&profile, "inline.yaml").is_err());
    let unchecked: kimage::profile::Profile = serde_yaml_ng::from_str(&profile).unwrap();
    let c = kimage::model::Cluster::resolve(&unchecked);
    let err = render::render_node(&c, node(&c, "node-1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cluster.os.sysctl.net.core.netdev_max_backlog") && err.contains("line break"),
        "{err}"
    );
}
