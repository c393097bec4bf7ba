//! The container images nodes that run pods need (`images` in the profile): the pod sandbox image,
//! CoreDNS, the CNI's images and the profile's extra ones, each once, with what needs it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::profile::{self, Cni, ImageDelivery, ImageRef, Url};

#[derive(Debug, Clone, Serialize)]
pub struct ImagesModel {
    pub delivery: ImageDelivery,
    /// Layers carry the images and nodes import them (`delivery: embed`).
    pub embedded: bool,
    pub mirror: Option<Url>,
    /// Every image, by reference text (sorted, so the lock and the layer list them in one order).
    pub needed: BTreeMap<String, ImageNeed>,
    /// The registries those images come from (containerd gets a hosts.toml for each with `mirror`).
    pub registries: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageNeed {
    pub reference: ImageRef,
    /// What needs it: `sandbox`, `coredns`, `flannel`, `flannel-cni-plugin`, `extra`.
    pub needed_by: BTreeSet<&'static str>,
}

impl ImagesModel {
    pub fn new(p: &profile::Profile, addons: &super::AddonImages) -> Option<ImagesModel> {
        let images = p.images.as_ref()?;
        let mut needed: BTreeMap<String, ImageNeed> = BTreeMap::new();
        let mut add = |r: ImageRef, why: &'static str| {
            needed
                .entry(r.as_str().to_string())
                .or_insert_with(|| ImageNeed {
                    reference: r,
                    needed_by: BTreeSet::new(),
                })
                .needed_by
                .insert(why);
        };
        let builtin = |s: &str| {
            s.parse::<ImageRef>()
                .expect("kimage's own image references parse")
        };
        add(p.container_runtime.sandbox_image.clone(), "sandbox");
        add(builtin(addons.coredns), "coredns");
        if p.kubernetes.cni == Cni::Flannel {
            add(builtin(addons.flannel), "flannel");
            add(builtin(addons.flannel_cni_plugin), "flannel-cni-plugin");
        }
        for r in &images.extra {
            add(r.clone(), "extra");
        }
        let registries = needed
            .values()
            .map(|n| n.reference.registry().to_string())
            .collect();
        Some(ImagesModel {
            delivery: images.delivery,
            embedded: images.delivery == ImageDelivery::Embed,
            mirror: images.mirror.clone(),
            needed,
            registries,
        })
    }
}
