//! The profile sections the model carries as the user wrote them (`os`, `network`, `pki`, `layers`,
//! `container_runtime`), serialized in the model's naming: templates and conditions see snake_case
//! everywhere (`cluster.os.swap_off`, as `cluster.etcd.data_dir`), while the profile keeps its camelCase
//! on both ways in and out.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::profile::{self, Address, LayersFrom, Limits, Url, Version};

pub(super) fn os<S: Serializer>(v: &profile::Os, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Os<'a> {
        hosts_file: bool,
        hosts_workers: bool,
        swap_off: bool,
        ntp_servers: &'a [String],
        sysctl: &'a BTreeMap<String, String>,
        modules: &'a [String],
        limits: &'a Limits,
        timezone: &'a Option<String>,
    }
    Os {
        hosts_file: v.hosts_file,
        hosts_workers: v.hosts_workers,
        swap_off: v.swap_off,
        ntp_servers: &v.ntp_servers,
        sysctl: &v.sysctl,
        modules: &v.modules,
        limits: &v.limits,
        timezone: &v.timezone,
    }
    .serialize(s)
}

pub(super) fn network<S: Serializer>(v: &profile::Network, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Network<'a> {
        interface: &'a str,
        prefix_length: u8,
        gateway: &'a Option<Address>,
        nameservers: &'a [Address],
    }
    Network {
        interface: &v.interface,
        prefix_length: v.prefix_length,
        gateway: &v.gateway,
        nameservers: &v.nameservers,
    }
    .serialize(s)
}

pub(super) fn container_runtime<S: Serializer>(
    v: &profile::ContainerRuntime,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct ContainerRuntime<'a> {
        containerd: &'a Version,
        runc: &'a Version,
        crictl: &'a Version,
        cni_plugins: &'a Version,
        sandbox_image: &'a str,
    }
    ContainerRuntime {
        containerd: &v.containerd,
        runc: &v.runc,
        crictl: &v.crictl,
        cni_plugins: &v.cni_plugins,
        sandbox_image: v.sandbox_image.as_str(),
    }
    .serialize(s)
}

pub(super) fn layers<S: Serializer>(v: &profile::Layers, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Layers<'a> {
        from: LayersFrom,
        base_url: &'a Option<Url>,
    }
    Layers {
        from: v.from,
        base_url: &v.base_url,
    }
    .serialize(s)
}

pub(super) fn pki<S: Serializer>(v: &profile::Pki, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Pki<'a> {
        algorithm: &'a profile::KeyAlgorithm,
        ca_validity: &'a profile::Duration,
        validity: &'a profile::Duration,
        etcd_ca_key_on_control_plane: bool,
        front_proxy_ca_key_on_control_plane: bool,
        encryption_at_rest: &'a profile::EncryptionAtRest,
    }
    Pki {
        algorithm: &v.algorithm,
        ca_validity: &v.ca_validity,
        validity: &v.validity,
        etcd_ca_key_on_control_plane: v.etcd_ca_key_on_control_plane,
        front_proxy_ca_key_on_control_plane: v.front_proxy_ca_key_on_control_plane,
        encryption_at_rest: &v.encryption_at_rest,
    }
    .serialize(s)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    fn snake(camel: &str) -> String {
        match camel {
            "baseURL" => "base_url".into(),
            c => c
                .chars()
                .flat_map(|ch| match ch.is_ascii_uppercase() {
                    true => vec!['_', ch.to_ascii_lowercase()],
                    false => vec![ch],
                })
                .collect(),
        }
    }

    /// A field added to one of these profile sections must reach the templates too.
    #[test]
    fn every_field_of_the_carried_sections_is_serialized_in_snake_case() {
        let (name, text) = crate::profile::templates::TEMPLATES[0];
        let loaded = crate::profile::load_str(text, name).unwrap();
        let profile = serde_json::to_value(&loaded.profile).unwrap();
        let model = serde_json::to_value(super::super::Cluster::resolve(&loaded.profile)).unwrap();
        for (in_profile, in_model) in [
            ("os", "os"),
            ("network", "network"),
            ("pki", "pki"),
            ("layers", "layers"),
            ("containerRuntime", "container_runtime"),
        ] {
            let want: Vec<String> = {
                let mut k: Vec<String> = keys(&profile[in_profile])
                    .iter()
                    .map(|k| snake(k))
                    .collect();
                k.sort();
                k
            };
            assert_eq!(keys(&model[in_model]), want, "{in_profile}");
        }
    }
}
