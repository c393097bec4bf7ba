//! The shipped profiles (profiles/*.yaml), embedded so `kimage init` works anywhere and the docs can
//! show what each topology gets.

/// The shipped profiles, embedded so `kimage init` works anywhere.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("quickstart", include_str!("../../profiles/quickstart.yaml")),
    (
        "000-single-master",
        include_str!("../../profiles/000-single-master.yaml"),
    ),
    (
        "000-ha-nginx-keepalived",
        include_str!("../../profiles/000-ha-nginx-keepalived.yaml"),
    ),
    (
        "001-minimal",
        include_str!("../../profiles/001-minimal.yaml"),
    ),
    (
        "002-external-etcd-nginx",
        include_str!("../../profiles/002-external-etcd-nginx.yaml"),
    ),
    (
        "003-stacked-ha-ipvs",
        include_str!("../../profiles/003-stacked-ha-ipvs.yaml"),
    ),
    (
        "004-ha-haproxy",
        include_str!("../../profiles/004-ha-haproxy.yaml"),
    ),
];
