//! Every file under `image-layers/`, compiled into the binary so one kimage version always renders
//! the same bytes. `include_str!` makes cargo rebuild when a file changes; the test
//! `embedded_list_matches_image_layers` fails when a file is added to the directory but not here.

macro_rules! layer_files {
    ($($path:literal),* $(,)?) => {
        /// `(path below image-layers/, content)`, sorted by path.
        pub const FILES: &[(&str, &str)] = &[
            $(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/image-layers/", $path)))),*
        ];
    };
}

layer_files![
    "bootstrap/00-cluster-admins.yaml",
    "bootstrap/10-rbac.yaml",
    "bootstrap/40-coredns.yaml.hbs",
    "bootstrap/50-flannel.yaml.hbs",
    "bootstrap/layer.yaml",
    "bootstrap/nodes.list.hbs",
    "common/chrony.sources.hbs",
    "common/hosts.hbs",
    "common/kimage-swapoff.service",
    "common/layer.yaml",
    "common/limits.conf.hbs",
    "common/modules-load.conf.hbs",
    "common/sysctl-kubernetes.conf.hbs",
    "common/sysctl-profile.conf.hbs",
    "common/timesyncd.conf.hbs",
    "control-plane/audit-policy.yaml",
    "control-plane/kimage-bootstrap.service",
    "control-plane/kimage-bootstrap.sh",
    "control-plane/kube-apiserver.service.hbs",
    "control-plane/kube-controller-manager.service.hbs",
    "control-plane/kube-scheduler.service.hbs",
    "control-plane/kimage-csr-approver.service",
    "control-plane/kimage-csr-approver.sh",
    "control-plane/kimage-csr-approver.timer",
    "control-plane/kube-scheduler.yaml.hbs",
    "control-plane/layer.yaml",
    "control-plane/self.list.hbs",
    "etcd/etcd-join.conf.hbs",
    "etcd/etcd-join.dropin.conf",
    "etcd/etcd.conf.hbs",
    "etcd/etcd.service.hbs",
    "etcd/kimage-etcd-join",
    "etcd/kimage-etcd-join.service.hbs",
    "etcd/kimage-etcd-promote.service",
    "etcd/kimage-etcd-setup.service",
    "etcd/layer.yaml",
    "etcd/sysusers.conf.hbs",
    "etcd/tmpfiles.conf.hbs",
    "load-balancer/check-proxy.hbs",
    "load-balancer/haproxy.cfg.hbs",
    "load-balancer/haproxy.service",
    "load-balancer/keepalived.conf.hbs",
    "load-balancer/keepalived.service",
    "load-balancer/layer.yaml",
    "load-balancer/nginx.conf.hbs",
    "load-balancer/nginx.service",
    "pool/kimage-pool-setup.service",
    "pool/kimage-pool-setup.sh",
    "pool/layer.yaml",
    "worker/containerd-config.toml.hbs",
    "worker/containerd.service.hbs",
    "worker/crictl.yaml",
    "worker/hosts-mirror.toml.hbs",
    "worker/kimage-images-import.sh",
    "worker/kimage-images.service",
    "worker/kube-proxy-config.yaml.hbs",
    "worker/kube-proxy.service.hbs",
    "worker/kubelet-config.yaml.hbs",
    "worker/kubelet.service.hbs",
    "worker/layer.yaml",
    "worker/tmpfiles-cni.conf",
];

/// The layers in the order their files and units are laid out.
pub const LAYERS: &[&str] = &[
    "common",
    "etcd",
    "control-plane",
    "worker",
    "load-balancer",
    "bootstrap",
    "pool",
];

/// The embedded text of `image-layers/<path>`.
pub fn get(path: &str) -> Option<&'static str> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, c)| *c)
}
