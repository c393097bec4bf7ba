//! The NoCloud documents for one node: `#cloud-config` user-data, meta-data and network-config v2.
//!
//! The user-data is small and the same shape for every role: it writes a settings file, kimage's apply
//! script and the node's secrets (one gz+b64 tar, 0600), and runs the script, which verifies and extracts
//! the layers, installs the secrets and starts the role's units in order (see image-layers/boot/).

pub mod yaml;

use std::io::Write;

use base64::Engine;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::declared::{self, Generated};
use crate::model::{Cluster, NodeModel};
use crate::profile::{BinarySource, LayersFrom};
use yaml::Y;

/// The apply script every node runs once per instance (image-layers/boot/files.yaml places it).
pub fn apply_script() -> &'static str {
    declared::boot_file("kimage-apply.sh")
}
pub fn apply_path() -> &'static str {
    declared::file_path("kimage-apply.sh")
}
/// The apply script's settings, which the user-data writes.
pub fn boot_env_path() -> &'static str {
    declared::generated_path(Generated::BootEnv)
}
pub const SECRETS_PATH: &str = "/run/kimage/secrets.tar";

/// Common user-data size limits, smallest first (AWS EC2 user data is 16 KiB before base64).
pub const LIMITS: &[(&str, usize)] = &[
    ("AWS EC2", 16 * 1024),
    ("Azure custom data", 64 * 1024),
    ("GCE metadata value", 256 * 1024),
];

/// A layer as the node sees it: where to find it and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerRef {
    /// What the layer holds, e.g. `binaries`, `config-control-plane`, `node-master-1`.
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Everything the user-data of one node refers to.
#[derive(Debug, Clone)]
pub struct BootInputs<'a> {
    /// In the order they are extracted.
    pub layers: &'a [LayerRef],
    /// A tar of the node's private files (modes 0600), gzip-compressed ([`gzip`]), delivered inline.
    pub secrets_gz: &'a [u8],
    /// What to do with which unit, in order: `ACTION:UNIT` words (`restart`, `try-restart`, `enable-now`).
    pub start: &'a str,
}

/// The apply script as the user-data carries it (gz+b64): the same for every node, so made once.
static APPLY_SCRIPT_GZ_B64: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| b64(&gzip(apply_script().as_bytes())));

/// gzip with a fixed header (no name, no time), so the same input always gives the same bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    enc.write_all(data).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The boot settings file the apply script reads (shell variable assignments).
pub fn boot_env(c: &Cluster, n: &NodeModel, inp: &BootInputs) -> String {
    let layers: Vec<String> = inp
        .layers
        .iter()
        .map(|l| format!("{}:{}:{}", l.sha256, l.bytes, l.name))
        .collect();
    let from = match c.layers.from {
        LayersFrom::Seed => "seed",
        LayersFrom::Url => "url",
        LayersFrom::Image => "image",
    };
    let url = c
        .layers
        .base_url
        .as_ref()
        .map(|u| format!("{}/layers", u.base()))
        .unwrap_or_default();
    let fetch = c.binaries.source == BinarySource::FetchAtBoot && !n.binaries.is_empty();
    format!(
        "KIMAGE_NODE='{}'\nKIMAGE_LAYERS_FROM='{from}'\nKIMAGE_LAYERS_URL='{url}'\nKIMAGE_LAYERS='{}'\nKIMAGE_START='{}'\nKIMAGE_FETCH='{}'\n",
        n.name,
        layers.join(" "),
        inp.start,
        u8::from(fetch),
    )
}

/// The `#cloud-config` user-data of one node.
pub fn user_data(c: &Cluster, n: &NodeModel, inp: &BootInputs) -> String {
    let mut doc: Vec<(String, Y)> = Vec::new();
    // Worker-pool machines share one user-data: they keep the hostname their platform gives them.
    if n.pool.is_none() {
        doc.push(("hostname".into(), Y::str(n.name.as_str())));
        doc.push(("preserve_hostname".into(), Y::Bool(false)));
    }
    // kimage writes /etc/hosts itself (every node of the cluster), cloud-init must not replace it.
    doc.push(("manage_etc_hosts".into(), Y::Bool(false)));
    if let Some(tz) = &c.os.timezone {
        doc.push(("timezone".into(), Y::str(tz)));
    }
    if !c.os.ntp_servers.is_empty() {
        doc.push((
            "ntp".into(),
            Y::map([
                ("enabled", Y::Bool(true)),
                ("ntp_client", Y::str("chrony")),
                ("servers", Y::strs(c.os.ntp_servers.iter().cloned())),
            ]),
        ));
    }
    let mut files = vec![
        Y::map([
            ("path", Y::str(boot_env_path())),
            ("owner", Y::str("root:root")),
            ("permissions", Y::str("0644")),
            ("content", Y::str(boot_env(c, n, inp))),
        ]),
        Y::map([
            ("path", Y::str(apply_path())),
            ("owner", Y::str("root:root")),
            ("permissions", Y::str("0755")),
            ("encoding", Y::str("gz+b64")),
            ("content", Y::str(APPLY_SCRIPT_GZ_B64.as_str())),
        ]),
    ];
    if !inp.secrets_gz.is_empty() {
        files.push(Y::map([
            ("path", Y::str(SECRETS_PATH)),
            ("owner", Y::str("root:root")),
            ("permissions", Y::str("0600")),
            ("encoding", Y::str("gz+b64")),
            ("content", Y::str(b64(inp.secrets_gz))),
        ]));
    }
    doc.push(("write_files".into(), Y::Seq(files)));
    doc.push(("runcmd".into(), Y::Seq(vec![Y::strs([apply_path()])])));
    doc.push((
        "final_message".into(),
        Y::str(format!(
            "KIMAGE-FINAL {} cloud-init finished after $UPTIME seconds",
            n.name
        )),
    ));
    let header = match &n.pool {
        Some(pool) => format!(
            "#cloud-config\n# kimage {}: every machine of worker pool {pool} of cluster {}\n",
            env!("CARGO_PKG_VERSION"),
            c.name
        ),
        None => format!(
            "#cloud-config\n# kimage {}: node {} ({}) of cluster {}\n",
            env!("CARGO_PKG_VERSION"),
            n.name,
            n.role.as_str(),
            c.name
        ),
    };
    header + &yaml::to_string(&Y::Map(doc))
}

/// An instance-id that changes whenever any of the node's artifacts change, so cloud-init runs again.
pub fn instance_id(n: &NodeModel, artifact_digests: &[&str]) -> String {
    let mut h = Sha256::new();
    for d in artifact_digests {
        h.update(d.as_bytes());
        h.update(b"\n");
    }
    format!("kimage-{}-{}", n.name, &hex::encode(h.finalize())[..16])
}

pub fn meta_data(n: &NodeModel, instance_id: &str) -> String {
    // A worker pool's seed is shared by its machines: no hostname (see kimage-pool-setup).
    if n.pool.is_some() {
        return yaml::to_string(&Y::map([("instance-id", Y::str(instance_id))]));
    }
    yaml::to_string(&Y::map([
        ("instance-id", Y::str(instance_id)),
        ("local-hostname", Y::str(n.name.as_str())),
    ]))
}

/// NoCloud network-config version 2 with the node's static address.
pub fn network_config(c: &Cluster, n: &NodeModel) -> String {
    let net = &c.network;
    // Worker-pool machines have no address in the profile: DHCP on the profile's interface.
    if n.pool.is_some() {
        let mut eth = vec![("dhcp4".to_string(), Y::Bool(true))];
        if c.kubernetes.ipv6 {
            eth.push(("dhcp6".to_string(), Y::Bool(true)));
        }
        return yaml::to_string(&Y::map([
            ("version", Y::Int(2)),
            (
                "ethernets",
                Y::Map(vec![(net.interface.clone(), Y::Map(eth))]),
            ),
        ]));
    }
    let mut eth: Vec<(String, Y)> = Vec::new();
    if let Some(mac) = &n.mac {
        eth.push(("match".into(), Y::map([("macaddress", Y::str(mac))])));
        eth.push(("set-name".into(), Y::str(&net.interface)));
    }
    eth.push((
        "addresses".into(),
        Y::strs([format!("{}/{}", n.address, net.prefix_length)]),
    ));
    if let Some(gw) = &net.gateway {
        // cloud-init 22.4 rejects `to: default`; the explicit all-zero network works everywhere.
        let to = if gw.0.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        eth.push((
            "routes".into(),
            Y::Seq(vec![Y::map([
                ("to", Y::str(to)),
                ("via", Y::str(gw.to_string())),
            ])]),
        ));
    }
    if !net.nameservers.is_empty() {
        eth.push((
            "nameservers".into(),
            Y::map([(
                "addresses",
                Y::strs(net.nameservers.iter().map(|a| a.to_string())),
            )]),
        ));
    }
    yaml::to_string(&Y::map([
        ("version", Y::Int(2)),
        (
            "ethernets",
            Y::Map(vec![(net.interface.clone(), Y::Map(eth))]),
        ),
    ]))
}
