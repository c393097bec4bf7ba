//! Worker pools end to end through the CLI: `kimage lock`/`fetch` against a fake upstream, `kimage build
//! --all`, then the pool's artifacts as a machine gets them: layers extracted with GNU tar in the order
//! the user-data lists them, the secrets out of the user-data, the user-data through `cloud-init schema`,
//! the CA hash recomputed with openssl, kubeconfigs read by kubectl. Checks that the pool shares its
//! binaries and config layers with the static worker, that rebuilds are byte-identical (the token lives
//! in the state), and that `kimage pki renew bootstrap-token@<pool>` changes only the pool's user-data.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;
use serde_yaml_ng::Value;
use support::artifacts::materialize;
use support::fixtures::{assert_valid_cloud_config, sha256};
use support::http::TestServer;
use support::releases::{FakeUpstream, Versions, fetch, lock, profile_yaml};
use support::tools::require;

const BIN: &str = env!("CARGO_BIN_EXE_kimage");

fn kimage(profile: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("KIMAGE_CACHE", cache)
        .arg("--profile")
        .arg(profile)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output, what: &str) -> String {
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}:\n{text}");
    text
}

struct Built {
    _srv: TestServer,
    up: FakeUpstream,
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    profile: PathBuf,
}

impl Built {
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    fn manifest(&self) -> Json {
        serde_json::from_slice(&std::fs::read(self.out().join("manifest.json")).unwrap()).unwrap()
    }
    fn build(&self) -> String {
        ok(
            kimage(&self.profile, self.cache.path(), &["build", "--all"]),
            "kimage build --all",
        )
    }
}

fn setup() -> Built {
    let v = Versions::uncatalogued();
    let up = FakeUpstream::new(&v, "amd64");
    let srv = TestServer::start();
    up.serve(&srv, "/m");
    // The shared profile's etcd node needs the external topology; this cluster is stacked.
    let text = profile_yaml(&v, "amd64", &format!("  mirror: {}/m", srv.url())).replace(
        "  - {name: etcd-1,   role: etcd,          address: 192.168.31.81}\n",
        "",
    ) + "workerPools:\n  - name: gpu\n    labels: {example.com/accelerator: nvidia}\n    taints: [{key: nvidia.com/gpu, effect: NoSchedule}]\n  - name: batch\n    tokenTTL: 72h\n";
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("cluster.yaml");
    std::fs::write(&profile, text).unwrap();
    lock(
        &profile,
        &kimage::release::command::LockArgs {
            image_mirror: None,
            mirror_checksums: false,
            offline: false,
            mirror: None,
            refresh: false,
            net: Default::default(),
        },
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    fetch(
        &profile,
        &kimage::release::command::FetchArgs {
            image_mirror: None,
            mirror: None,
            lock: None,
            cache: Some(cache.path().to_path_buf()),
            jobs: 3,
            net: kimage::release::command::NetArgs {
                retries: 2,
                ..Default::default()
            },
            plain: false,
            quiet: true,
        },
    )
    .unwrap();
    let b = Built {
        _srv: srv,
        up,
        dir,
        cache,
        profile,
    };
    b.build();
    b
}

fn layer_names(entry: &Json) -> Vec<(String, String)> {
    entry["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn ca_hash_openssl(ca: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1",
            ca.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    format!("sha256:{}", String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn pools_build_share_layers_carry_the_token_and_rebuild_identically() {
    require("tar");
    require("openssl");
    require("cloud-init");
    let b = setup();
    let out = b.out();
    let m = b.manifest();
    let pools = m["pools"].as_object().expect("manifest.json has pools");
    assert_eq!(pools.keys().collect::<Vec<_>>(), ["batch", "gpu"]);

    // Same binaries and config layer as the static worker; only the node layer is the pool's.
    let worker = layer_names(&m["nodes"]["node-1"]);
    let gpu = layer_names(&m["pools"]["gpu"]);
    assert_eq!(
        gpu.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["binaries-node", "config-worker", "pool-gpu"]
    );
    assert_eq!(gpu[0], worker[0], "binaries layer shared");
    assert_eq!(gpu[1], worker[1], "config layer shared");
    assert_ne!(gpu[2].1, layer_names(&m["pools"]["batch"])[2].1);

    // Every artifact is what the manifest says (sha256sum), secrets are 0600.
    for (name, p) in pools {
        for key in [
            "user_data",
            "meta_data",
            "network_config",
            "seed",
            "bootstrap_token_secret",
        ] {
            let path = out.join(p[key]["path"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                sha256(&bytes),
                p[key]["sha256"].as_str().unwrap(),
                "{name} {key}"
            );
            assert_eq!(bytes.len() as u64, p[key]["bytes"].as_u64().unwrap());
        }
        for key in ["user_data", "bootstrap_token_secret", "seed"] {
            assert_eq!(
                mode(&out.join(p[key]["path"].as_str().unwrap())),
                0o600,
                "{name} {key}"
            );
        }
        for l in p["layers"].as_array().unwrap() {
            assert!(out.join(l["path"].as_str().unwrap()).exists());
        }
    }

    // A machine of pool gpu.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let ud = materialize(&out, &m["pools"]["gpu"], r);
    assert!(
        ud.get("hostname").is_none(),
        "pool machines keep their platform's hostname"
    );
    assert_eq!(
        std::fs::read(r.join("usr/local/bin/kubelet")).unwrap(),
        b.up.program("kubelet")
    );
    assert_eq!(
        mode(&r.join("etc/kubernetes/bootstrap-kubelet.conf")),
        0o600
    );
    let bk: Value = serde_yaml_ng::from_slice(
        &std::fs::read(r.join("etc/kubernetes/bootstrap-kubelet.conf")).unwrap(),
    )
    .unwrap();
    let token = bk["users"][0]["user"]["token"].as_str().unwrap();
    let id = m["pools"]["gpu"]["bootstrap_token_id"].as_str().unwrap();
    assert!(
        token.starts_with(&format!("{id}.")) && token.len() == 23,
        "{token}"
    );
    assert_eq!(bk["users"][0]["name"], "tls-bootstrap-token-user");
    assert_eq!(
        bk["clusters"][0]["cluster"]["server"],
        "https://192.168.31.75:6443"
    );
    // kubectl reads both kubeconfigs.
    for conf in [
        "etc/kubernetes/bootstrap-kubelet.conf",
        "var/lib/kube-proxy/kubeconfig.conf",
    ] {
        let out = Command::new("kubectl")
            .arg("config")
            .arg("view")
            .arg(format!("--kubeconfig={}", r.join(conf).display()))
            .args(["-o", "jsonpath={.clusters[0].cluster.server}"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{conf}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "https://192.168.31.75:6443"
        );
    }
    // No client or serving certificate of its own: TLS bootstrapping gets both.
    assert!(!r.join("etc/kubernetes/kubelet.conf").exists());
    assert!(!r.join("var/lib/kubelet/pki").exists());
    let kc: Value =
        serde_yaml_ng::from_slice(&std::fs::read(r.join("var/lib/kubelet/config.yaml")).unwrap())
            .unwrap();
    assert_eq!(kc["serverTLSBootstrap"], true);
    assert_eq!(kc["rotateCertificates"], true);
    assert!(kc.get("tlsCertFile").is_none());
    assert_eq!(kc["registerWithTaints"][0]["key"], "nvidia.com/gpu");
    let unit = std::fs::read_to_string(r.join("etc/systemd/system/kubelet.service")).unwrap();
    assert!(unit.contains("--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf"));
    assert!(unit.contains("--node-labels=example.com/accelerator=nvidia"));
    assert!(!unit.contains("--node-ip"));
    // The CA the machine has is the one its user-data pins.
    let hash = ca_hash_openssl(&r.join("etc/kubernetes/pki/ca.crt"));
    assert_eq!(hash, m["pools"]["gpu"]["ca_cert_hash"].as_str().unwrap());
    let env = std::fs::read_to_string(r.join("etc/kimage/pool.env")).unwrap();
    assert!(
        env.contains(&format!("KIMAGE_CA_CERT_HASH='{hash}'")),
        "{env}"
    );
    // /etc/hosts lists the cluster's control-plane nodes, no worker (os.hostsWorkers is off) and
    // nothing for pool machines.
    let hosts = std::fs::read_to_string(r.join("etc/hosts")).unwrap();
    assert!(hosts.contains("192.168.31.71\tmaster-1"), "{hosts}");
    assert!(!hosts.contains("node-1"), "{hosts}");
    assert!(!hosts.contains("gpu"));

    // cloud-init 22.4 accepts the user-data and reads the network-config as DHCP.
    assert_valid_cloud_config(&out.join("pools/gpu/user-data"), "pool gpu");
    let net = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import sys, yaml\nfrom cloudinit.net.network_state import parse_net_config_data\nns = parse_net_config_data(yaml.safe_load(open(sys.argv[1])))\nfor i in ns.iter_interfaces():\n    for s in i['subnets']:\n        print(i['name'], s['type'])\n")
        .arg(out.join("pools/gpu/network-config"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&net.stdout).trim(),
        "eth0 dhcp4",
        "{}",
        String::from_utf8_lossy(&net.stderr)
    );
    let md: Value =
        serde_yaml_ng::from_slice(&std::fs::read(out.join("pools/gpu/meta-data")).unwrap())
            .unwrap();
    assert_eq!(
        md.as_mapping().unwrap().len(),
        1,
        "only instance-id: {md:?}"
    );

    // The Secret beside the pool is the one the bootstrap node applies (from its user-data).
    let master = tempfile::tempdir().unwrap();
    materialize(&out, &m["nodes"]["master-1"], master.path());
    assert_eq!(
        std::fs::read(
            master
                .path()
                .join("etc/kimage/bootstrap/70-bootstrap-token-gpu.yaml")
        )
        .unwrap(),
        std::fs::read(out.join("pools/gpu/bootstrap-token.yaml")).unwrap()
    );
    assert_eq!(
        mode(
            &master
                .path()
                .join("etc/kimage/bootstrap/70-bootstrap-token-gpu.yaml")
        ),
        0o600
    );

    // Rebuilding gives the same bytes: the token and its expiration live in the state.
    let before: BTreeMap<String, String> = artifact_digests(&m);
    // ...and keeps the seeds it can reuse as they are: a pool's seed was rewritten by every build.
    let inode = |rel: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(out.join(rel)).unwrap().ino()
    };
    let seeds = ["pools/gpu/seed.img", "nodes/master-1/seed.img"];
    let inodes: Vec<u64> = seeds.iter().map(|s| inode(s)).collect();
    b.build();
    assert_eq!(artifact_digests(&b.manifest()), before);
    assert_eq!(
        seeds.iter().map(|s| inode(s)).collect::<Vec<_>>(),
        inodes,
        "an unchanged seed was rewritten"
    );

    // A new token for gpu: only the documents that carry it change (gpu's and the bootstrap node's
    // user-data, their seeds and instance-ids, gpu's Secret), no layer.
    let text = ok(
        kimage(
            &b.profile,
            b.cache.path(),
            &["pki", "renew", "bootstrap-token@gpu"],
        ),
        "kimage pki renew bootstrap-token@gpu",
    );
    assert!(
        text.contains("reissued  bootstrap-token@gpu  renewal requested")
            && text.contains("out/pools/gpu/bootstrap-token.yaml"),
        "{text}"
    );
    b.build();
    let m2 = b.manifest();
    assert_ne!(
        m2["pools"]["gpu"]["bootstrap_token_id"],
        m["pools"]["gpu"]["bootstrap_token_id"]
    );
    let after = artifact_digests(&m2);
    let changed: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(
        changed,
        // meta-data's instance-id follows the user-data, so cloud-init runs the new one.
        [
            "node master-1 meta_data",
            "node master-1 seed",
            "node master-1 user_data",
            "pool gpu bootstrap_token_secret",
            "pool gpu meta_data",
            "pool gpu seed",
            "pool gpu user_data",
        ],
        "the renewal changes exactly these (no layer)"
    );
}

/// `<node|pool> <name> <artifact>` → sha256, layers included.
fn artifact_digests(m: &Json) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (kind, map) in [("node", &m["nodes"]), ("pool", &m["pools"])] {
        for (name, e) in map.as_object().unwrap() {
            for (k, v) in e.as_object().unwrap() {
                if let Some(s) = v.get("sha256") {
                    out.insert(
                        format!("{kind} {name} {k}"),
                        s.as_str().unwrap().to_string(),
                    );
                }
            }
            for (i, l) in e["layers"].as_array().unwrap().iter().enumerate() {
                out.insert(
                    format!("{kind} {name} layer{i}"),
                    l["sha256"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    out
}

#[test]
fn pki_status_shows_tokens_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("cluster.yaml");
    std::fs::write(
        &profile,
        "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: t\nnodes:\n  - {name: cp-1, role: control-plane, address: 10.0.0.11}\nworkerPools:\n  - {name: gpu, tokenTTL: 2h}\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let text = ok(kimage(&profile, &cache, &["pki"]), "kimage pki");
    assert!(
        text.lines()
            .any(|l| l.starts_with("issued") && l.contains("bootstrap-token@gpu")),
        "{text}"
    );
    let state: Json = serde_json::from_slice(
        &std::fs::read(dir.path().join("kimage-state/pki/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["format"], 4,
        "states are format 4 (record digests, encryption keys)"
    );
    let rec = &state["bootstrap_tokens"]["gpu"];
    let secret = rec["secret"].as_str().unwrap().to_string();
    let status = ok(
        kimage(&profile, &cache, &["pki", "status"]),
        "kimage pki status",
    );
    let row = status
        .lines()
        .find(|l| l.starts_with("bootstrap-token@gpu"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        row.contains(&format!("bootstrap token {}", rec["id"].as_str().unwrap())),
        "{row}"
    );
    assert!(row.contains(" ok"), "{row}");
    assert!(!status.contains(&secret), "status shows the token secret");
    // A second `kimage pki` keeps the token.
    let text = ok(kimage(&profile, &cache, &["pki"]), "kimage pki");
    assert!(text.contains("(unchanged, nothing written)"), "{text}");
    // Renewal is by id; an unknown pool is refused with the known ids.
    let out = kimage(&profile, &cache, &["pki", "renew", "bootstrap-token@cpu"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bootstrap-token@gpu"));
    // Removing the pool drops its token; the state goes back to format 1.
    std::fs::write(
        &profile,
        "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: t\nnodes:\n  - {name: cp-1, role: control-plane, address: 10.0.0.11}\n",
    )
    .unwrap();
    let text = ok(kimage(&profile, &cache, &["pki"]), "kimage pki");
    assert!(
        text.lines()
            .any(|l| l.starts_with("removed") && l.contains("bootstrap-token@gpu")),
        "{text}"
    );
    let state: Json = serde_json::from_slice(
        &std::fs::read(dir.path().join("kimage-state/pki/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["format"], 4);
    assert!(state.get("bootstrap_tokens").is_none());
}

#[test]
fn pool_labels_a_kubelet_may_not_set_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("cluster.yaml");
    std::fs::write(
        &profile,
        "apiVersion: kimage/v1alpha1\nkind: Cluster\nname: t\nnodes:\n  - {name: cp-1, role: control-plane, address: 10.0.0.11}\nworkerPools:\n  - name: gpu\n    tokenTTL: 15m\n    labels: {node-role.kubernetes.io/worker: \"\"}\n  - name: gpu\n",
    )
    .unwrap();
    let out = kimage(&profile, dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("workerPools[0] (gpu).labels.node-role.kubernetes.io/worker"),
        "{err}"
    );
    assert!(err.contains("workerPools[1] (gpu).name"), "{err}");
    assert!(err.contains("workerPools[0] (gpu).tokenTTL"), "{err}");
}
