//! Every flag and config field kimage renders exists in the reference facts and is neither deprecated
//! nor removed: Kubernetes v1.35 (tests/reference/components-v1.35.yaml) and etcd 3.4-3.6
//! (tests/reference/etcd.yaml, portable subset).

mod render_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml_ng::Value;

use render_support::*;

fn reference(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name);
    serde_yaml_ng::from_str(&std::fs::read_to_string(&p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn seq(v: &Value) -> &Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
}

/// The first word of "name (type)" entries.
fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or_default().to_string()
}

struct Component {
    /// flag -> deprecated
    flags: BTreeMap<String, bool>,
    removed: BTreeSet<String>,
}

fn component(refs: &Value, name: &str) -> Component {
    let c = &refs["components"][name];
    let flags = seq(&c["flags"])
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["deprecated"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let removed = c
        .get("removed_flags")
        .map(seq)
        .into_iter()
        .flatten()
        .filter(|f| f.get("removed_in").is_some() || f["status"].as_str() == Some("removed"))
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect();
    Component { flags, removed }
}

/// A schema node: a map of field names (with their sub-schemas) or a leaf.
#[derive(Debug, Clone)]
enum Schema {
    Leaf,
    Fields(BTreeMap<String, (Schema, bool)>),
}

fn schema_of(v: &Value) -> Schema {
    match v {
        Value::Mapping(m) => Schema::Fields(
            m.iter()
                .filter(|(k, _)| k.as_str() != Some("defaults"))
                .map(|(k, v)| (k.as_str().unwrap().to_string(), (schema_of(v), false)))
                .collect(),
        ),
        Value::Sequence(s) if s.iter().all(|e| e.is_string()) => Schema::Fields(
            s.iter()
                .map(|e| (first_word(e.as_str().unwrap()), (Schema::Leaf, false)))
                .collect(),
        ),
        _ => Schema::Leaf,
    }
}

fn kubelet_schema(refs: &Value) -> Schema {
    let k = &refs["kubelet_configuration"];
    let nested = &k["nested"];
    Schema::Fields(
        seq(&k["top_level_fields"])
            .iter()
            .map(|f| {
                let name = f["name"].as_str().unwrap().to_string();
                let sub = nested
                    .get(name.as_str())
                    .map(schema_of)
                    .unwrap_or(Schema::Leaf);
                let deprecated = f["deprecated"].as_bool().unwrap_or(false);
                (name, (sub, deprecated))
            })
            .collect(),
    )
}

fn proxy_schema(refs: &Value) -> Schema {
    let k = &refs["kube_proxy_configuration"];
    Schema::Fields(
        seq(&k["top_level_fields"])
            .iter()
            .map(|f| {
                let name = first_word(f.as_str().unwrap());
                let sub = k["nested"]
                    .get(name.as_str())
                    .map(schema_of)
                    .unwrap_or(Schema::Leaf);
                (name, (sub, false))
            })
            .collect(),
    )
}

fn scheduler_schema(refs: &Value) -> Schema {
    let k = &refs["components"]["kube-scheduler"]["config"];
    Schema::Fields(
        seq(&k["top_level_fields"])
            .iter()
            .map(|f| {
                let name = f["name"].as_str().unwrap().to_string();
                let sub = f.get("fields").map(schema_of).unwrap_or(Schema::Leaf);
                (name, (sub, false))
            })
            .collect(),
    )
}

/// Walks a rendered config against the schema; returns the dotted paths it checked.
fn walk(v: &Value, schema: &Schema, path: &str, what: &str, checked: &mut Vec<String>) {
    let (Value::Mapping(m), Schema::Fields(fields)) = (v, schema) else {
        return;
    };
    for (k, sub) in m {
        let k = k.as_str().unwrap();
        if path.is_empty() && (k == "apiVersion" || k == "kind") {
            continue;
        }
        let p = if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        };
        let (s, deprecated) = fields
            .get(k)
            .unwrap_or_else(|| panic!("{what}: field {p} is not in the v1.35 reference"));
        assert!(!deprecated, "{what}: field {p} is deprecated in v1.35");
        checked.push(p.clone());
        walk(sub, s, &p, what, checked);
    }
}

#[test]
fn kubernetes_flags_exist_in_v1_35_and_are_not_deprecated() {
    let refs = reference("components-v1.35.yaml");
    assert_eq!(refs["kubernetes_version"].as_str(), Some("v1.35"));
    let plugins: BTreeSet<&str> =
        seq(&refs["components"]["kube-apiserver"]["admission_plugins"]["all"])
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            for f in render(&c, n) {
                let Some(comp) = [
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                    "kubelet",
                    "kube-proxy",
                ]
                .into_iter()
                .find(|comp| f.path == format!("/etc/systemd/system/{comp}.service")) else {
                    continue;
                };
                let reference = component(&refs, comp);
                let unit = parse_unit(std::str::from_utf8(&f.content).unwrap());
                let args = exec_args(&unit);
                assert_eq!(args[0], format!("/usr/local/bin/{comp}"));
                for (flag, value) in flags(&args) {
                    let deprecated = reference.flags.get(&flag).unwrap_or_else(|| {
                        panic!("{fx}/{}: {comp} {flag} is not a v1.35 flag", n.name)
                    });
                    assert!(
                        !deprecated,
                        "{fx}/{}: {comp} {flag} is deprecated in v1.35",
                        n.name
                    );
                    assert!(
                        !reference.removed.contains(&flag),
                        "{comp} {flag} was removed"
                    );
                    if flag == "--enable-admission-plugins" {
                        for p in value.split(',') {
                            assert!(
                                plugins.contains(p),
                                "admission plugin {p} does not exist in v1.35"
                            );
                        }
                    }
                    seen.entry(comp).or_default().insert(flag);
                }
            }
        }
    }
    // The walk saw every component, and the flags the seeds used that 1.35 no longer has are absent.
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen["kube-apiserver"].len() >= 35);
    for (comp, gone) in [
        ("kube-apiserver", "--insecure-port"),
        ("kube-apiserver", "--etcd_servers"),
        ("kube-controller-manager", "--master"),
        ("kube-scheduler", "--master"),
        ("kubelet", "--pod-infra-container-image"),
        ("kubelet", "--register-with-taints"),
        ("kube-scheduler", "--kubeconfig"),
    ] {
        assert!(!seen[comp].contains(gone), "{comp} {gone}");
    }
}

#[test]
fn component_configs_use_v1_35_fields_only() {
    let refs = reference("components-v1.35.yaml");
    let configs = [
        (
            "/var/lib/kubelet/config.yaml",
            kubelet_schema(&refs),
            refs["kubelet_configuration"]["apiVersion"].clone(),
        ),
        (
            "/var/lib/kube-proxy/config.conf",
            proxy_schema(&refs),
            refs["kube_proxy_configuration"]["apiVersion"].clone(),
        ),
        (
            "/etc/kubernetes/kube-scheduler.yaml",
            scheduler_schema(&refs),
            refs["components"]["kube-scheduler"]["config"]["apiVersion"].clone(),
        ),
    ];
    let mut checked = BTreeMap::new();
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            let files = render(&c, n);
            for (path, schema, api_version) in &configs {
                let Some(f) = files.iter().find(|f| f.path == *path) else {
                    continue;
                };
                let v: Value = serde_yaml_ng::from_slice(&f.content).unwrap();
                assert_eq!(&v["apiVersion"], api_version, "{path}");
                let mut fields = Vec::new();
                walk(
                    &v,
                    schema,
                    "",
                    &format!("{fx}/{} {path}", n.name),
                    &mut fields,
                );
                // core/v1 Taint has key, value, effect (and timeAdded, which a kubelet must not set).
                for t in v.get("registerWithTaints").map(seq).into_iter().flatten() {
                    for k in t.as_mapping().unwrap().keys() {
                        assert!(
                            ["key", "value", "effect"].contains(&k.as_str().unwrap()),
                            "taint field {k:?}"
                        );
                    }
                }
                checked
                    .entry(*path)
                    .or_insert_with(BTreeSet::new)
                    .extend(fields);
            }
        }
    }
    let kubelet = &checked["/var/lib/kubelet/config.yaml"];
    for f in [
        "authentication.anonymous.enabled",
        "authentication.webhook.enabled",
        "authentication.x509.clientCAFile",
        "authorization.mode",
        "memorySwap.swapBehavior",
        "registerWithTaints",
        "tlsCertFile",
        "readOnlyPort",
    ] {
        assert!(kubelet.contains(f), "{f} was not checked: {kubelet:?}");
    }
    assert!(checked["/var/lib/kube-proxy/config.conf"].contains("clientConnection.kubeconfig"));
    assert!(checked["/etc/kubernetes/kube-scheduler.yaml"].contains("leaderElection.leaderElect"));
}

#[test]
fn the_schema_walk_rejects_unknown_and_deprecated_fields() {
    // The walk above can fail.
    let refs = reference("components-v1.35.yaml");
    let schema = kubelet_schema(&refs);
    for bad in [
        "podInfraContainerImage: x",
        "streamingConnectionIdleTimeout: 4h",
        "authentication:\n  x509:\n    caFile: x",
    ] {
        let v: Value = serde_yaml_ng::from_str(bad).unwrap();
        let r = std::panic::catch_unwind(|| walk(&v, &schema, "", "test", &mut Vec::new()));
        assert!(r.is_err(), "{bad} was accepted");
    }
}

fn etcd_flag(env: &str) -> String {
    format!(
        "--{}",
        env.trim_start_matches("ETCD_")
            .to_lowercase()
            .replace('_', "-")
    )
}

#[test]
fn etcd_settings_are_in_the_3_4_to_3_6_portable_subset() {
    let refs = reference("etcd.yaml");
    let mut portable: BTreeSet<String> = BTreeSet::new();
    for k in seq(&refs["portable_subset_3_4_to_3_6"]["keys"]) {
        let k = k.as_str().unwrap();
        if let Some((prefix, inner)) = k.split_once('{') {
            let flag_prefix = if prefix.starts_with("peer") {
                "peer-"
            } else {
                ""
            };
            for key in inner.trim_end_matches('}').split(',') {
                // peer-transport-security's client-cert-auth is --peer-client-cert-auth.
                portable.insert(format!("--{flag_prefix}{key}"));
            }
        } else {
            portable.insert(format!("--{}", first_word(k)));
        }
    }
    let mut v3_6: BTreeSet<String> = seq(&refs["flags_v3_6"]["embed_flags"])
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    v3_6.extend(
        seq(&refs["flags_v3_6"]["etcdmain_flags"])
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string()),
    );
    let not_in_3_4: BTreeSet<String> =
        seq(&refs["version_differences"]["v3_4_vs_v3_5"]["flags_not_in_3_4"])
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
    let removed_3_6: BTreeSet<String> =
        seq(&refs["version_differences"]["v3_5_vs_v3_6"]["flags_removed"])
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
    let deprecated_3_6 = |f: &str| {
        f.starts_with("--experimental-") || f == "--snapshot-count" || f == "--max-snapshots"
    };

    let mut checked = BTreeSet::new();
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in c.nodes.iter().filter(|n| n.etcd_member) {
            let files = render(&c, n);
            let unit = parse_unit(&text(&files, "/etc/systemd/system/etcd.service"));
            let mut settings: Vec<String> = flags(&exec_args(&unit)).into_keys().collect();
            for e in unit_values(&unit, "Service", "Environment") {
                settings.push(etcd_flag(e.split_once('=').unwrap().0));
            }
            assert_eq!(
                unit_values(&unit, "Service", "EnvironmentFile"),
                ["/etc/etcd/etcd.conf"]
            );
            settings.extend(
                env_file(&text(&files, "/etc/etcd/etcd.conf"))
                    .keys()
                    .map(|k| etcd_flag(k)),
            );
            for flag in settings {
                assert_ne!(
                    flag, "--config-file",
                    "etcd would ignore every other setting"
                );
                assert!(
                    portable.contains(&flag),
                    "{flag} is not in the etcd 3.4-3.6 portable subset"
                );
                assert!(v3_6.contains(&flag), "{flag} is not an etcd 3.6 flag");
                assert!(
                    !not_in_3_4.contains(&flag),
                    "{flag} does not exist in etcd 3.4"
                );
                assert!(
                    !removed_3_6.contains(&flag) && !deprecated_3_6(&flag),
                    "{flag} is removed or deprecated in 3.6"
                );
                checked.insert(flag);
            }
        }
    }
    for must in [
        "--logger",
        "--pre-vote",
        "--client-cert-auth",
        "--peer-client-cert-auth",
        "--trusted-ca-file",
        "--data-dir",
    ] {
        assert!(checked.contains(must), "{must} not rendered: {checked:?}");
    }
}
