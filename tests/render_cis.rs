//! CIS Kubernetes Benchmark v2.0 checks, evaluated the way kube-bench (cfg/cis-2.0) evaluates them,
//! against what kimage puts on each node:
//!
//! - flags: the process arguments, i.e. the unit's ExecStart (kube-bench runs `ps -ef`);
//! - etcd: arguments, then ETCD_* variables (EnvironmentFile= and Environment= of etcd.service);
//! - kubelet: its arguments, then /var/lib/kubelet/config.yaml (kube-bench's `path` lookups);
//! - files: mode and owner of the rendered files, and of the PKI files as `pki::spec::pki_files`
//!   declares them (the user-data writes them as root).
//!
//! kube-bench's operators are reproduced: `set`, `eq`, `noteq`, `has` (substring), `nothave`, `gte`,
//! `bitmask` (no permission beyond the given mode), `valid_elements`; a check with several test items
//! combines them with its `bin_op`. `NOT_PASSING` lists the checks kimage leaves failing, and why.
//! 1.2.28 reads the providers of the EncryptionConfiguration that 1.2.27's flag names: that file holds
//! the Secrets encryption key, PKI material the rendered files do not hold, so tests/pki_encryption.rs
//! checks its providers (secretbox or aescbc first, identity last) and kube-bench judges it live in
//! tests/netns_control_plane.rs.

mod render_support;

use std::collections::BTreeMap;

use kimage::model::{Cluster, NodeModel};
use kimage::pki::spec;
use kimage::render::RenderedFile;
use render_support::*;
use serde_yaml_ng::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// kube-bench `master` and `controlplane` targets: control-plane nodes.
    Master,
    /// `etcd` target and the etcd checks of `master`: nodes running an etcd member.
    Etcd,
    /// `node` target: every node running a kubelet.
    Node,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    /// A flag of the component's process (`kube-apiserver`, `kube-controller-manager`, `kube-scheduler`).
    Flag(&'static str, &'static str),
    /// An etcd flag, or its ETCD_* variable.
    EtcdFlag(&'static str),
    /// A kubelet flag, or the field at this path of /var/lib/kubelet/config.yaml.
    Kubelet(&'static str, &'static str),
    /// A kube-proxy flag, or the field in its config.
    Proxy(&'static str, &'static str),
    /// `stat -c %a` of a file on the node.
    Mode(&'static str),
    /// `stat -c %U:%G` of a file on the node.
    Owner(&'static str),
    /// The etcd data directory as kube-bench finds it (--data-dir in the arguments): mode, owner.
    EtcdDataDirMode,
    EtcdDataDirOwner,
    /// Every file below /etc/kubernetes/pki: owner, or mode of those ending in the suffix.
    PkiOwners,
    PkiModes(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Set,
    NotSet,
    Eq(&'static str),
    NotEq(&'static str),
    Has(&'static str),
    NotHave(&'static str),
    Gte(i64),
    Bitmask(u32),
    ValidElements(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum BinOp {
    And,
    Or,
}

struct Check {
    id: &'static str,
    text: &'static str,
    automated: bool,
    target: Target,
    bin_op: BinOp,
    items: &'static [(Source, Op)],
}

use BinOp::*;
use Op::*;
use Source::*;
use Target::*;

const STRONG_CIPHERS_KUBELET: &str = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
const STRONG_CIPHERS_APISERVER: &str = "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";

const API: &str = "kube-apiserver";
const KCM: &str = "kube-controller-manager";
const SCHED: &str = "kube-scheduler";

macro_rules! check {
    ($id:literal, $auto:literal, $target:expr, $text:literal, $op:expr, [$($item:expr),* $(,)?]) => {
        Check { id: $id, text: $text, automated: $auto, target: $target, bin_op: $op, items: &[$($item),*] }
    };
}

/// The checks kimage implements, as cfg/cis-2.0 of kube-bench states them. `automated: false` are
/// the benchmark's manual checks that kimage still satisfies.
#[rustfmt::skip]
const CHECKS: &[Check] = &[
    check!("1.1.7", true, Etcd, "etcd configuration file permissions 600", And, [(Mode("/etc/etcd/etcd.conf"), Bitmask(0o600))]),
    check!("1.1.8", true, Etcd, "etcd configuration file owner root:root", And, [(Owner("/etc/etcd/etcd.conf"), Eq("root:root"))]),
    check!("1.1.11", true, Etcd, "etcd data directory permissions 700", And, [(EtcdDataDirMode, Bitmask(0o700))]),
    check!("1.1.12", true, Etcd, "etcd data directory owner etcd:etcd", And, [(EtcdDataDirOwner, Eq("etcd:etcd"))]),
    check!("1.1.13", true, Master, "admin.conf and super-admin.conf permissions 600", And, [(Mode("/etc/kubernetes/admin.conf"), Bitmask(0o600)), (Mode("/etc/kubernetes/super-admin.conf"), Bitmask(0o600))]),
    check!("1.1.14", true, Master, "admin.conf and super-admin.conf owner root:root", And, [(Owner("/etc/kubernetes/admin.conf"), Eq("root:root")), (Owner("/etc/kubernetes/super-admin.conf"), Eq("root:root"))]),
    check!("1.1.15", true, Master, "scheduler.conf permissions 600", And, [(Mode("/etc/kubernetes/scheduler.conf"), Bitmask(0o600))]),
    check!("1.1.16", true, Master, "scheduler.conf owner root:root", And, [(Owner("/etc/kubernetes/scheduler.conf"), Eq("root:root"))]),
    check!("1.1.17", true, Master, "controller-manager.conf permissions 600", And, [(Mode("/etc/kubernetes/controller-manager.conf"), Bitmask(0o600))]),
    check!("1.1.18", true, Master, "controller-manager.conf owner root:root", And, [(Owner("/etc/kubernetes/controller-manager.conf"), Eq("root:root"))]),
    check!("1.1.19", true, Master, "PKI directory and files owned by root:root", And, [(PkiOwners, Eq("root:root"))]),
    check!("1.1.20", false, Master, "PKI certificates 644 or stricter", And, [(PkiModes(".crt"), Bitmask(0o644))]),
    check!("1.1.21", false, Master, "PKI keys 600", And, [(PkiModes(".key"), Bitmask(0o600))]),
    check!("1.2.1", false, Master, "--anonymous-auth=false", And, [(Flag(API, "--anonymous-auth"), Eq("false"))]),
    check!("1.2.2", true, Master, "--token-auth-file not set", And, [(Flag(API, "--token-auth-file"), NotSet)]),
    check!("1.2.3", false, Master, "DenyServiceExternalIPs admission plugin", Or, [(Flag(API, "--enable-admission-plugins"), Has("DenyServiceExternalIPs"))]),
    check!("1.2.4", true, Master, "--kubelet-client-certificate and --kubelet-client-key", And, [(Flag(API, "--kubelet-client-certificate"), Set), (Flag(API, "--kubelet-client-key"), Set)]),
    check!("1.2.5", true, Master, "--kubelet-certificate-authority", And, [(Flag(API, "--kubelet-certificate-authority"), Set)]),
    check!("1.2.6", true, Master, "--authorization-mode not AlwaysAllow", And, [(Flag(API, "--authorization-mode"), NotHave("AlwaysAllow"))]),
    check!("1.2.7", true, Master, "--authorization-mode includes Node", And, [(Flag(API, "--authorization-mode"), Has("Node"))]),
    check!("1.2.8", true, Master, "--authorization-mode includes RBAC", And, [(Flag(API, "--authorization-mode"), Has("RBAC"))]),
    check!("1.2.10", true, Master, "AlwaysAdmit admission plugin not set", Or, [(Flag(API, "--enable-admission-plugins"), NotHave("AlwaysAdmit")), (Flag(API, "--enable-admission-plugins"), NotSet)]),
    check!("1.2.12", true, Master, "ServiceAccount admission plugin not disabled", Or, [(Flag(API, "--disable-admission-plugins"), NotHave("ServiceAccount")), (Flag(API, "--disable-admission-plugins"), NotSet)]),
    check!("1.2.13", true, Master, "NamespaceLifecycle admission plugin not disabled", Or, [(Flag(API, "--disable-admission-plugins"), NotHave("NamespaceLifecycle")), (Flag(API, "--disable-admission-plugins"), NotSet)]),
    check!("1.2.14", true, Master, "NodeRestriction admission plugin", And, [(Flag(API, "--enable-admission-plugins"), Has("NodeRestriction"))]),
    check!("1.2.15", true, Master, "apiserver --profiling=false", And, [(Flag(API, "--profiling"), Eq("false"))]),
    check!("1.2.16", true, Master, "--audit-log-path", And, [(Flag(API, "--audit-log-path"), Set)]),
    check!("1.2.17", true, Master, "--audit-log-maxage >= 30", And, [(Flag(API, "--audit-log-maxage"), Gte(30))]),
    check!("1.2.18", true, Master, "--audit-log-maxbackup >= 10", And, [(Flag(API, "--audit-log-maxbackup"), Gte(10))]),
    check!("1.2.19", true, Master, "--audit-log-maxsize >= 100", And, [(Flag(API, "--audit-log-maxsize"), Gte(100))]),
    check!("1.2.21", true, Master, "--service-account-lookup true", Or, [(Flag(API, "--service-account-lookup"), NotSet), (Flag(API, "--service-account-lookup"), Eq("true"))]),
    check!("1.2.22", true, Master, "--service-account-key-file", And, [(Flag(API, "--service-account-key-file"), Set)]),
    check!("1.2.23", true, Master, "--etcd-certfile and --etcd-keyfile", And, [(Flag(API, "--etcd-certfile"), Set), (Flag(API, "--etcd-keyfile"), Set)]),
    check!("1.2.24", true, Master, "--tls-cert-file and --tls-private-key-file", And, [(Flag(API, "--tls-cert-file"), Set), (Flag(API, "--tls-private-key-file"), Set)]),
    check!("1.2.25", true, Master, "--client-ca-file", And, [(Flag(API, "--client-ca-file"), Set)]),
    check!("1.2.26", true, Master, "--etcd-cafile", And, [(Flag(API, "--etcd-cafile"), Set)]),
    check!("1.2.27", false, Master, "--encryption-provider-config", And, [(Flag(API, "--encryption-provider-config"), Set)]),
    check!("1.2.29", false, Master, "strong TLS ciphers only", And, [(Flag(API, "--tls-cipher-suites"), ValidElements(STRONG_CIPHERS_APISERVER))]),
    check!("1.2.30", true, Master, "--service-account-extend-token-expiration=false", And, [(Flag(API, "--service-account-extend-token-expiration"), Eq("false"))]),
    check!("1.3.1", false, Master, "--terminated-pod-gc-threshold", And, [(Flag(KCM, "--terminated-pod-gc-threshold"), Set)]),
    check!("1.3.2", true, Master, "controller-manager --profiling=false", And, [(Flag(KCM, "--profiling"), Eq("false"))]),
    check!("1.3.3", true, Master, "--use-service-account-credentials", And, [(Flag(KCM, "--use-service-account-credentials"), NotEq("false"))]),
    check!("1.3.4", true, Master, "--service-account-private-key-file", And, [(Flag(KCM, "--service-account-private-key-file"), Set)]),
    check!("1.3.5", true, Master, "--root-ca-file", And, [(Flag(KCM, "--root-ca-file"), Set)]),
    check!("1.3.6", true, Master, "RotateKubeletServerCertificate not disabled", Or, [(Flag(KCM, "--feature-gates"), NotHave("RotateKubeletServerCertificate=false")), (Flag(KCM, "--feature-gates"), NotSet)]),
    check!("1.3.7", true, Master, "controller-manager --bind-address=127.0.0.1", Or, [(Flag(KCM, "--bind-address"), Eq("127.0.0.1")), (Flag(KCM, "--bind-address"), NotSet)]),
    check!("1.4.2", true, Master, "scheduler --bind-address=127.0.0.1", Or, [(Flag(SCHED, "--bind-address"), Eq("127.0.0.1")), (Flag(SCHED, "--bind-address"), NotSet)]),
    check!("2.1", true, Etcd, "--cert-file and --key-file", And, [(EtcdFlag("--cert-file"), Set), (EtcdFlag("--key-file"), Set)]),
    check!("2.2", true, Etcd, "--client-cert-auth=true", And, [(EtcdFlag("--client-cert-auth"), Eq("true"))]),
    check!("2.3", true, Etcd, "--auto-tls not true", Or, [(EtcdFlag("--auto-tls"), NotSet), (EtcdFlag("--auto-tls"), Eq("false"))]),
    check!("2.4", true, Etcd, "--peer-cert-file and --peer-key-file", And, [(EtcdFlag("--peer-cert-file"), Set), (EtcdFlag("--peer-key-file"), Set)]),
    check!("2.5", true, Etcd, "--peer-client-cert-auth=true", And, [(EtcdFlag("--peer-client-cert-auth"), Eq("true"))]),
    check!("2.6", true, Etcd, "--peer-auto-tls not true", Or, [(EtcdFlag("--peer-auto-tls"), NotSet), (EtcdFlag("--peer-auto-tls"), Eq("false"))]),
    check!("2.7", false, Etcd, "--trusted-ca-file (a CA of etcd's own)", And, [(EtcdFlag("--trusted-ca-file"), Set)]),
    check!("3.2.1", false, Master, "an audit policy", And, [(Flag(API, "--audit-policy-file"), Set)]),
    check!("4.1.1", true, Node, "kubelet service file permissions 600", And, [(Mode("/etc/systemd/system/kubelet.service"), Bitmask(0o600))]),
    check!("4.1.2", true, Node, "kubelet service file owner root:root", And, [(Owner("/etc/systemd/system/kubelet.service"), Eq("root:root"))]),
    check!("4.1.3", false, Node, "kube-proxy kubeconfig permissions 600", Or, [(Mode("/var/lib/kube-proxy/kubeconfig.conf"), Bitmask(0o600))]),
    check!("4.1.4", false, Node, "kube-proxy kubeconfig owner root:root", Or, [(Owner("/var/lib/kube-proxy/kubeconfig.conf"), Eq("root:root"))]),
    check!("4.1.5", true, Node, "kubelet.conf permissions 600", And, [(Mode("/etc/kubernetes/kubelet.conf"), Bitmask(0o600))]),
    check!("4.1.6", true, Node, "kubelet.conf owner root:root", And, [(Owner("/etc/kubernetes/kubelet.conf"), Eq("root:root"))]),
    check!("4.1.7", false, Node, "client CA file permissions 644", And, [(Mode("/etc/kubernetes/pki/ca.crt"), Bitmask(0o644))]),
    check!("4.1.8", false, Node, "client CA file owner root:root", And, [(Owner("/etc/kubernetes/pki/ca.crt"), Eq("root:root"))]),
    check!("4.1.9", true, Node, "kubelet config.yaml permissions 600", And, [(Mode("/var/lib/kubelet/config.yaml"), Bitmask(0o600))]),
    check!("4.1.10", true, Node, "kubelet config.yaml owner root:root", And, [(Owner("/var/lib/kubelet/config.yaml"), Eq("root:root"))]),
    check!("4.2.1", true, Node, "kubelet anonymous auth off", And, [(Kubelet("--anonymous-auth", "authentication.anonymous.enabled"), Eq("false"))]),
    check!("4.2.2", true, Node, "kubelet authorization not AlwaysAllow", And, [(Kubelet("--authorization-mode", "authorization.mode"), NotHave("AlwaysAllow"))]),
    check!("4.2.3", true, Node, "kubelet client CA file", And, [(Kubelet("--client-ca-file", "authentication.x509.clientCAFile"), Set)]),
    check!("4.2.4", false, Node, "kubelet read-only port 0", Or, [(Kubelet("--read-only-port", "readOnlyPort"), Eq("0")), (Kubelet("--read-only-port", "readOnlyPort"), NotSet)]),
    check!("4.2.5", false, Node, "streaming idle timeout not 0", Or, [(Kubelet("--streaming-connection-idle-timeout", "streamingConnectionIdleTimeout"), NotEq("0")), (Kubelet("--streaming-connection-idle-timeout", "streamingConnectionIdleTimeout"), NotSet)]),
    check!("4.2.6", true, Node, "make-iptables-util-chains true", Or, [(Kubelet("--make-iptables-util-chains", "makeIPTablesUtilChains"), Eq("true")), (Kubelet("--make-iptables-util-chains", "makeIPTablesUtilChains"), NotSet)]),
    check!("4.2.7", false, Node, "--hostname-override not set", And, [(Kubelet("--hostname-override", ""), NotSet)]),
    check!("4.2.8", false, Node, "eventRecordQPS appropriate", Or, [(Kubelet("--event-qps", "eventRecordQPS"), Gte(0)), (Kubelet("--event-qps", "eventRecordQPS"), NotSet)]),
    check!("4.2.9", false, Node, "kubelet serving certificate and key", And, [(Kubelet("--tls-cert-file", "tlsCertFile"), Set), (Kubelet("--tls-private-key-file", "tlsPrivateKeyFile"), Set)]),
    check!("4.2.10", true, Node, "rotate-certificates not false", Or, [(Kubelet("--rotate-certificates", "rotateCertificates"), Eq("true")), (Kubelet("--rotate-certificates", "rotateCertificates"), NotSet)]),
    check!("4.2.11", false, Node, "RotateKubeletServerCertificate not false", Or, [(Kubelet("RotateKubeletServerCertificate", "featureGates.RotateKubeletServerCertificate"), NotHave("false")), (Kubelet("RotateKubeletServerCertificate", "featureGates.RotateKubeletServerCertificate"), NotSet)]),
    check!("4.2.12", false, Node, "kubelet strong ciphers only", And, [(Kubelet("--tls-cipher-suites", "tlsCipherSuites"), ValidElements(STRONG_CIPHERS_KUBELET))]),
    check!("4.2.14", false, Node, "seccomp default", And, [(Kubelet("--seccomp-default", "seccompDefault"), Set)]),
    check!("4.3.1", true, Node, "kube-proxy metrics on localhost", Or, [(Proxy("--metrics-bind-address", "metricsBindAddress"), Has("127.0.0.1")), (Proxy("--metrics-bind-address", "metricsBindAddress"), NotSet)]),
];

/// Checks kimage does not make pass, and why. Each id here must not also be in `CHECKS`.
const NOT_PASSING: &[(&str, &str)] = &[
    (
        "1.1.1-1.1.6",
        "kube-bench stats the static-pod manifests /etc/kubernetes/manifests/kube-{apiserver,controller-manager,scheduler}.yaml, which a systemd install has no use for; the units that take their place are 0600 root:root (checked below), so these pass when kube-bench's config lists /etc/systemd/system/kube-*.service as the components' `confs`",
    ),
    (
        "1.1.7-1.1.8 on control-plane nodes of an external etcd",
        "no etcd runs there; kube-bench treats etcd as optional on masters",
    ),
    (
        "1.1.9-1.1.10 (manual)",
        "the CNI configuration is written by the pod network add-on at run time, not by kimage",
    ),
    (
        "1.2.9 (manual)",
        "EventRateLimit needs an admission configuration sized for the cluster; not set",
    ),
    (
        "1.2.11 (manual)",
        "AlwaysPullImages breaks preloaded and air-gapped images; not set",
    ),
    ("1.2.20 (manual)", "request timeout is left at its default"),
    (
        "1.4.1",
        "kube-scheduler --profiling is deprecated in v1.35 (ignored with --config); kimage sets enableProfiling: false in KubeSchedulerConfiguration instead, which kube-bench does not read (checked below)",
    ),
    (
        "3.1.x, 3.2.2, 5.x (manual)",
        "cluster policy (authentication methods, audit policy review, RBAC, pod security) is not a node file",
    ),
    (
        "4.2.13 (manual)",
        "a per-pod PID limit depends on the workloads; the profile has no setting for it",
    ),
];

/// What kube-bench would see on one node.
struct NodeView {
    files: Vec<RenderedFile>,
    pki: Vec<spec::PkiFile>,
    args: BTreeMap<String, BTreeMap<String, String>>,
    etcd_env: BTreeMap<String, String>,
    kubelet_config: Value,
    proxy_config: Value,
}

impl NodeView {
    fn new(c: &Cluster, n: &NodeModel) -> NodeView {
        let files = render(c, n);
        let mut args = BTreeMap::new();
        let mut etcd_env = BTreeMap::new();
        for comp in [API, KCM, SCHED, "kubelet", "kube-proxy", "etcd"] {
            if let Some(f) = files
                .iter()
                .find(|f| f.path == format!("/etc/systemd/system/{comp}.service"))
            {
                let unit = parse_unit(std::str::from_utf8(&f.content).unwrap());
                args.insert(comp.to_string(), flags(&exec_args(&unit)));
                if comp == "etcd" {
                    etcd_env = env_file(&text(&files, "/etc/etcd/etcd.conf"));
                    for e in unit_values(&unit, "Service", "Environment") {
                        let (k, v) = e.split_once('=').unwrap();
                        etcd_env.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        let yaml = |p: &str| {
            files
                .iter()
                .find(|f| f.path == p)
                .map(|f| serde_yaml_ng::from_slice(&f.content).unwrap())
                .unwrap_or(Value::Null)
        };
        NodeView {
            kubelet_config: yaml("/var/lib/kubelet/config.yaml"),
            proxy_config: yaml("/var/lib/kube-proxy/config.conf"),
            pki: spec::pki_files(c, n),
            files,
            args,
            etcd_env,
        }
    }

    fn flag(&self, comp: &str, flag: &str) -> Option<String> {
        self.args.get(comp).and_then(|a| a.get(flag)).cloned()
    }

    fn config(v: &Value, path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        let v = path.split('.').try_fold(v, |v, seg| v.get(seg))?;
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            // kube-bench joins lists: {range .x[:]}{}{','}{end}
            Value::Sequence(s) => s
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join(","),
            other => panic!("unexpected value at {path}: {other:?}"),
        })
    }

    /// `(mode, owner)` of a file as it will be on the node.
    fn stat(&self, path: &str) -> Option<(u32, String)> {
        if let Some(f) = self.files.iter().find(|f| f.path == path) {
            return Some((f.mode, format!("{}:{}", f.owner, f.group)));
        }
        self.pki
            .iter()
            .find(|f| f.path == path)
            .map(|f| (f.mode, "root:root".to_string()))
    }

    /// The values one test item reads (several for the PKI sweeps).
    fn values(&self, src: Source) -> Vec<Option<String>> {
        match src {
            Flag(comp, flag) => vec![self.flag(comp, flag)],
            EtcdFlag(flag) => {
                let env = format!(
                    "ETCD_{}",
                    flag.trim_start_matches("--")
                        .to_uppercase()
                        .replace('-', "_")
                );
                vec![
                    self.flag("etcd", flag)
                        .or_else(|| self.etcd_env.get(&env).cloned()),
                ]
            }
            Kubelet(flag, path) => vec![
                self.flag("kubelet", flag)
                    .or_else(|| Self::config(&self.kubelet_config, path)),
            ],
            Proxy(flag, path) => vec![
                self.flag("kube-proxy", flag)
                    .or_else(|| Self::config(&self.proxy_config, path)),
            ],
            Mode(p) => vec![self.stat(p).map(|(m, _)| format!("{m:o}"))],
            Owner(p) => vec![self.stat(p).map(|(_, o)| o)],
            EtcdDataDirMode | EtcdDataDirOwner => {
                // kube-bench: --data-dir from `ps -ef`; kimage creates it with tmpfiles.d.
                let dir = self
                    .flag("etcd", "--data-dir")
                    .expect("--data-dir is an argument");
                let tmpfiles = text(&self.files, "/etc/tmpfiles.d/kimage-etcd.conf");
                let line = tmpfiles
                    .lines()
                    .find(|l| {
                        l.starts_with("d ") && l.split_whitespace().nth(1) == Some(dir.as_str())
                    })
                    .unwrap_or_else(|| panic!("no tmpfiles entry creates {dir}"));
                let f: Vec<&str> = line.split_whitespace().collect();
                vec![Some(match src {
                    EtcdDataDirMode => f[2].trim_start_matches('0').to_string(),
                    _ => format!("{}:{}", f[3], f[4]),
                })]
            }
            PkiOwners => {
                // No rendered file lives in the PKI directory, and no unit changes owners there.
                assert!(
                    self.files
                        .iter()
                        .all(|f| !f.path.starts_with("/etc/kubernetes/pki/"))
                );
                assert!(
                    self.files
                        .iter()
                        .all(|f| !String::from_utf8_lossy(&f.content).contains("chown"))
                );
                self.pki
                    .iter()
                    .filter(|f| f.path.starts_with("/etc/kubernetes/pki/"))
                    .map(|_| Some("root:root".to_string()))
                    .collect()
            }
            PkiModes(suffix) => self
                .pki
                .iter()
                .filter(|f| f.path.starts_with("/etc/kubernetes/pki/") && f.path.ends_with(suffix))
                .map(|f| Some(format!("{:o}", f.mode)))
                .collect(),
        }
    }
}

fn passes(op: Op, v: &Option<String>) -> bool {
    match (op, v) {
        (Set, v) => v.is_some(),
        (NotSet, v) => v.is_none(),
        (_, None) => false,
        (Eq(want), Some(v)) => v == want,
        (NotEq(want), Some(v)) => v != want,
        (Has(want), Some(v)) => v.contains(want),
        (NotHave(want), Some(v)) => !v.contains(want),
        (Gte(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v >= n),
        (Bitmask(allowed), Some(v)) => u32::from_str_radix(v, 8).is_ok_and(|m| m & !allowed == 0),
        (ValidElements(allowed), Some(v)) => {
            let allowed: Vec<&str> = allowed.split(',').collect();
            !v.is_empty() && v.split(',').all(|e| allowed.contains(&e))
        }
    }
}

fn evaluate(check: &Check, view: &NodeView) -> Result<(), String> {
    let results: Vec<(bool, String)> = check
        .items
        .iter()
        .map(|(src, op)| {
            let vals = view.values(*src);
            let ok = !vals.is_empty() && vals.iter().all(|v| passes(*op, v));
            (ok, format!("{src:?} {op:?} -> {vals:?}"))
        })
        .collect();
    let ok = match check.bin_op {
        And => results.iter().all(|(ok, _)| *ok),
        Or => results.iter().any(|(ok, _)| *ok),
    };
    if ok {
        Ok(())
    } else {
        Err(results
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

fn applies(target: Target, n: &NodeModel) -> bool {
    match target {
        Master => n.role.as_str() == "control-plane",
        Etcd => n.etcd_member,
        Node => n.runs_kubelet,
    }
}

#[test]
fn cis_checks_pass_as_kube_bench_evaluates_them() {
    let mut evaluated: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            let view = NodeView::new(&c, n);
            for check in CHECKS.iter().filter(|ch| applies(ch.target, n)) {
                // super-admin.conf exists only on the bootstrap node; kube-bench stats it "if present".
                if (check.id == "1.1.13" || check.id == "1.1.14") && !n.is_bootstrap {
                    continue;
                }
                *evaluated.entry(check.id).or_default() += 1;
                if let Err(why) = evaluate(check, &view) {
                    failures.push(format!(
                        "{fx}/{} {} {} ({}): {why}",
                        n.name,
                        check.id,
                        check.text,
                        if check.automated {
                            "automated"
                        } else {
                            "manual"
                        }
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "CIS checks fail:\n{}",
        failures.join("\n")
    );
    for check in CHECKS {
        assert!(
            evaluated.get(check.id).copied().unwrap_or(0) > 0,
            "{} never applied to a fixture node",
            check.id
        );
    }
    let automated = CHECKS.iter().filter(|c| c.automated).count();
    assert!(automated >= 50, "{automated} automated checks");
}

#[test]
fn the_evaluator_can_fail() {
    // A view with the insecure defaults the seeds had: every flag check reads it and fails.
    let c = cluster("stacked-haproxy");
    let n = node(&c, "master-1");
    let mut view = NodeView::new(&c, n);
    let api = view.args.get_mut(API).unwrap();
    api.insert("--authorization-mode".into(), "AlwaysAllow".into());
    api.insert("--profiling".into(), "true".into());
    api.remove("--kubelet-certificate-authority");
    api.insert("--audit-log-maxage".into(), "7".into());
    view.etcd_env
        .insert("ETCD_CLIENT_CERT_AUTH".into(), "false".into());
    view.kubelet_config = serde_yaml_ng::from_str(
        "authentication: {anonymous: {enabled: true}}\nreadOnlyPort: 10255",
    )
    .unwrap();
    for id in [
        "1.2.5", "1.2.6", "1.2.15", "1.2.17", "2.2", "4.2.1", "4.2.4",
    ] {
        let check = CHECKS.iter().find(|c| c.id == id).unwrap();
        assert!(
            evaluate(check, &view).is_err(),
            "{id} passed on an insecure view"
        );
    }
    assert!(!passes(Bitmask(0o600), &Some("644".into())));
    assert!(passes(Bitmask(0o644), &Some("600".into())));
    assert!(!passes(ValidElements("A,B"), &Some("A,C".into())));
}

#[test]
fn checks_left_failing_are_covered_another_way() {
    for (id, _) in NOT_PASSING {
        assert!(
            CHECKS.iter().all(|c| c.id != *id),
            "{id} is both implemented and listed as not passing"
        );
    }
    let c = cluster("stacked-haproxy");
    let files = render(&c, node(&c, "master-1"));
    // 1.1.1-1.1.6: the units standing in for the static-pod manifests are 0600 root:root.
    for u in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let f = file(&files, &format!("/etc/systemd/system/{u}.service"));
        assert_eq!(
            (f.mode, f.owner.as_str(), f.group.as_str()),
            (0o600, "root", "root"),
            "{u}"
        );
    }
    // 1.4.1: profiling is off through the scheduler's config file, and the deprecated flag is absent.
    let cfg: Value =
        serde_yaml_ng::from_str(&text(&files, "/etc/kubernetes/kube-scheduler.yaml")).unwrap();
    assert_eq!(cfg["enableProfiling"], Value::Bool(false));
    assert!(!text(&files, "/etc/systemd/system/kube-scheduler.service").contains("--profiling"));
}
