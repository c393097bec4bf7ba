//! Whole-cluster validation: problems that only show when the profile is seen as a cluster (duplicate
//! addresses, overlapping networks, an endpoint nothing serves, etcd quorum, version skew…). Every problem
//! is reported at once with its field path, location, value and fix.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::Cluster;
use crate::profile::{
    Cidr, EtcdTopology, Host, LayersFrom, LoadedProfile, Profile, ProxyMode, Role, SourceMap,
};

/// Kubernetes minors kimage renders for (flags and PKI layout checked against v1.35; unchanged since v1.33).
pub const SUPPORTED_KUBERNETES: (u64, u64) = (33, 35);

struct Ctx<'a> {
    src: &'a SourceMap,
    out: Diagnostics,
}

impl Ctx<'_> {
    fn error(
        &mut self,
        path: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::error(path, message, fix).at(self.src.locate(path));
        self.out.push(d);
        self.out.0.last_mut().expect("just pushed")
    }
    fn warning(
        &mut self,
        path: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::warning(path, message, fix).at(self.src.locate(path));
        self.out.push(d);
        self.out.0.last_mut().expect("just pushed")
    }
}

trait WithValue {
    fn value(&mut self, v: impl std::fmt::Display);
}

impl WithValue for &mut Diagnostic {
    fn value(&mut self, v: impl std::fmt::Display) {
        self.value = Some(v.to_string());
    }
}

fn is_private(net: &Cidr) -> bool {
    match net.0 {
        ipnet::IpNet::V4(n) => {
            let private: [ipnet::Ipv4Net; 4] = [
                "10.0.0.0/8".parse().expect("literal"),
                "172.16.0.0/12".parse().expect("literal"),
                "192.168.0.0/16".parse().expect("literal"),
                // Carrier-grade NAT space is not routed on the internet either.
                "100.64.0.0/10".parse().expect("literal"),
            ];
            private.iter().any(|p| p.contains(&n))
        }
        ipnet::IpNet::V6(n) => "fc00::/7"
            .parse::<ipnet::Ipv6Net>()
            .expect("literal")
            .contains(&n),
    }
}

fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    a.0.contains(&b.0.network()) || b.0.contains(&a.0.network())
}

fn quorum_table(n: usize) -> String {
    let mut t = String::from("members  quorum  tolerates\n");
    for m in 1..=n.max(5) {
        let mark = if m == n { "   <- this profile" } else { "" };
        t.push_str(&format!("{m:<9}{:<8}{}{mark}\n", m / 2 + 1, (m - 1) / 2));
    }
    t
}

/// Checks a loaded profile as a whole cluster.
pub fn check(loaded: &LoadedProfile, c: &Cluster) -> Diagnostics {
    let p = &loaded.profile;
    let mut x = Ctx {
        src: &loaded.source,
        out: Diagnostics::default(),
    };
    nodes(&mut x, p);
    networks(&mut x, p, c);
    etcd(&mut x, p, c);
    load_balancer(&mut x, p, c);
    endpoint(&mut x, c);
    bootstrap_node(&mut x, p);
    versions(&mut x, p);
    settings(&mut x, p, c);
    host_values(&mut x, p);
    images(&mut x, p);
    pools(&mut x, p);
    x.out.name_subjects(|list, i| match list {
        "nodes" => p.nodes.get(i).map(|n| n.name.to_string()),
        _ => p.worker_pools.get(i).map(|w| w.name.to_string()),
    });
    x.out.sort();
    x.out
}

fn nodes(x: &mut Ctx, p: &Profile) {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut addrs: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (i, n) in p.nodes.iter().enumerate() {
        if let Some(&first) = names.get(n.name.as_str()) {
            x.error(
                &format!("nodes[{i}].name"),
                format!("is also the name of nodes[{first}]"),
                "give every node a unique name",
            )
            .value(&n.name);
        } else {
            names.insert(n.name.as_str(), i);
        }
        if let Some(&first) = addrs.get(&n.address.0) {
            x.error(
                &format!("nodes[{i}].address"),
                format!(
                    "is also the address of nodes[{first}] `{}`",
                    p.nodes[first].name
                ),
                "give every node its own address",
            )
            .value(n.address);
        } else {
            addrs.insert(n.address.0, i);
        }
        if n.priority.is_some() && n.role != Role::LoadBalancer {
            x.error(
                &format!("nodes[{i}].priority"),
                format!(
                    "priority only applies to load-balancer nodes; `{}` is {}",
                    n.name,
                    n.role.as_str()
                ),
                "remove `priority` from this node",
            );
        }
        if let Some(pr) = n.priority
            && !(1..=254).contains(&pr)
        {
            x.error(
                &format!("nodes[{i}].priority"),
                "is not a usable VRRP priority",
                "use 1-254 (255 is reserved for the address owner)",
            )
            .value(pr);
        }
        match (n.role, n.etcd_member) {
            (Role::Etcd, Some(false)) => {
                x.error(
                    &format!("nodes[{i}].etcdMember"),
                    "an etcd node always runs a member",
                    "remove `etcdMember: false` or change the role",
                );
            }
            (Role::LoadBalancer, Some(true)) => {
                x.error(
                    &format!("nodes[{i}].etcdMember"),
                    "load-balancer nodes cannot run etcd members",
                    "run etcd on control-plane, worker or etcd nodes",
                );
            }
            _ => {}
        }
        if n.role != Role::ControlPlane && n.role != Role::Worker {
            if !n.labels.is_empty() {
                x.error(
                    &format!("nodes[{i}].labels"),
                    format!(
                        "{} nodes are not Kubernetes nodes and cannot carry labels",
                        n.role.as_str()
                    ),
                    "remove `labels` from this node",
                );
            }
            if n.taints.is_some() {
                x.error(
                    &format!("nodes[{i}].taints"),
                    format!(
                        "{} nodes are not Kubernetes nodes and cannot carry taints",
                        n.role.as_str()
                    ),
                    "remove `taints` from this node",
                );
            }
        }
        for key in n.labels.keys() {
            if !valid_qualified_name(key) {
                x.error(
                    &format!("nodes[{i}].labels.{key}"),
                    "is not a valid label key",
                    "use [prefix/]name with letters, digits, '-', '_' and '.', name at most 63 characters",
                )
                .value(key);
            }
        }
        for (key, v) in &n.labels {
            if !valid_label_value(v) {
                x.error(
                    &format!("nodes[{i}].labels.{key}"),
                    "is not a valid label value",
                    "use at most 63 letters, digits, '-', '_' or '.'",
                )
                .value(v);
            }
        }
        taints(x, &format!("nodes[{i}]"), n.taints.iter().flatten());
    }
    if !p.nodes.iter().any(|n| n.role == Role::ControlPlane) {
        x.error(
            "nodes",
            "the cluster has no control-plane node",
            "add a node with `role: control-plane` (three for high availability)",
        );
    }
}

/// Taint keys and values of a node or pool (`owner` is its field path).
fn taints<'a>(x: &mut Ctx, owner: &str, list: impl IntoIterator<Item = &'a crate::profile::Taint>) {
    for (t, taint) in list.into_iter().enumerate() {
        if !valid_qualified_name(&taint.key) {
            x.error(
                &format!("{owner}.taints[{t}].key"),
                "is not a valid taint key",
                "use [prefix/]name with letters, digits, '-', '_' and '.'",
            )
            .value(&taint.key);
        }
        if let Some(v) = &taint.value
            && !valid_label_value(v)
        {
            x.error(
                &format!("{owner}.taints[{t}].value"),
                "is not a valid taint value",
                "use at most 63 letters, digits, '-', '_' or '.'",
            )
            .value(v);
        }
    }
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Worker pools: unique names, labels their kubelets may set themselves (nothing can label machines
/// kimage does not know by name), valid taints, a token that outlives a slow first boot.
fn pools(x: &mut Ctx, p: &Profile) {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, wp) in p.worker_pools.iter().enumerate() {
        if let Some(&first) = names.get(wp.name.as_str()) {
            x.error(
                &format!("workerPools[{i}].name"),
                format!("is also the name of workerPools[{first}]"),
                "give every worker pool a unique name",
            )
            .value(&wp.name);
        } else {
            names.insert(wp.name.as_str(), i);
        }
        for (key, v) in &wp.labels {
            let path = format!("workerPools[{i}].labels.{key}");
            if !valid_qualified_name(key) {
                x.error(
                    &path,
                    "is not a valid label key",
                    "use [prefix/]name with letters, digits, '-', '_' and '.', name at most 63 characters",
                )
                .value(key);
            } else if !crate::model::kubelet_may_set_label(key) {
                x.error(
                    &path,
                    "is a label a kubelet may not set on its own Node, and pool machines have no names kimage could label them by",
                    "use a key outside kubernetes.io and k8s.io (e.g. example.com/pool) or under node.kubernetes.io/",
                )
                .value(key);
            }
            if !valid_label_value(v) {
                x.error(
                    &path,
                    "is not a valid label value",
                    "use at most 63 letters, digits, '-', '_' or '.'",
                )
                .value(v);
            }
        }
        taints(x, &format!("workerPools[{i}]"), &wp.taints);
        if wp.token_ttl.as_secs() < 3600 {
            x.warning(
                &format!("workerPools[{i}].tokenTTL"),
                "is under an hour: a machine that boots late or slowly (image pulls, binaries fetched at boot) finds the token expired and never joins",
                "use 24h (the default) or longer",
            )
            .value(wp.token_ttl);
        }
    }
}

fn valid_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    name_ok && prefix_ok
}

fn networks(x: &mut Ctx, p: &Profile, c: &Cluster) {
    let k = &p.kubernetes;
    if overlaps(&k.service_cidr, &k.pod_cidr) {
        x.error(
            "kubernetes.podCIDR",
            format!("overlaps the service network {}", k.service_cidr),
            "choose pod and service networks that do not overlap, e.g. serviceCIDR 10.96.0.0/12 and podCIDR 10.244.0.0/16",
        )
        .value(k.pod_cidr);
    }
    for (field, net) in [("serviceCIDR", &k.service_cidr), ("podCIDR", &k.pod_cidr)] {
        if !is_private(net) {
            x.warning(
                &format!("kubernetes.{field}"),
                "is a public (non-RFC 1918) range: addresses in it that exist on the internet become unreachable from pods",
                "use a private range such as 10.96.0.0/12 (services) or 10.244.0.0/16 (pods); seed 003's 196.16.0.0/16 is this mistake",
            )
            .value(net);
        }
    }
    match k.service_cidr.0 {
        ipnet::IpNet::V4(n) if n.prefix_len() < 12 => {
            x.error(
                "kubernetes.serviceCIDR",
                "is too large: kube-apiserver accepts at most a /12 for IPv4 service networks",
                "use a /12 or smaller network, e.g. 10.96.0.0/12",
            )
            .value(k.service_cidr);
        }
        ipnet::IpNet::V4(n) if n.prefix_len() > 28 => {
            x.error(
                "kubernetes.serviceCIDR",
                "is too small: cluster DNS takes its tenth address",
                "use a /28 or larger network, e.g. 10.96.0.0/12",
            )
            .value(k.service_cidr);
        }
        ipnet::IpNet::V6(n) if n.prefix_len() < 108 => {
            x.error(
                "kubernetes.serviceCIDR",
                "is too large: kube-apiserver accepts at most a /108 for IPv6 service networks",
                "use a /108 or smaller network",
            )
            .value(k.service_cidr);
        }
        _ => {}
    }
    // kube-controller-manager hands each node a /24 (IPv4) or /64 (IPv6) out of the pod network.
    let node_mask = if k.pod_cidr.0.addr().is_ipv4() {
        24
    } else {
        64
    };
    let kubelets = c.nodes.iter().filter(|n| n.runs_kubelet).count() as u32;
    let prefix = u32::from(k.pod_cidr.0.prefix_len());
    if prefix > node_mask {
        x.error(
            "kubernetes.podCIDR",
            format!("is smaller than the /{node_mask} block each node gets"),
            format!(
                "use a /{} or larger network, e.g. 10.244.0.0/16",
                node_mask.saturating_sub(8)
            ),
        )
        .value(k.pod_cidr);
    } else if node_mask - prefix < 32 && (1u64 << (node_mask - prefix)) < u64::from(kubelets) {
        x.error(
            "kubernetes.podCIDR",
            format!("has room for {} node blocks of /{node_mask} but the cluster has {kubelets} kubelets", 1u64 << (node_mask - prefix)),
            "use a larger pod network",
        )
        .value(k.pod_cidr);
    }
    for (i, n) in p.nodes.iter().enumerate() {
        for (field, net) in [("serviceCIDR", &k.service_cidr), ("podCIDR", &k.pod_cidr)] {
            if net.0.contains(&n.address.0) {
                x.error(
                    &format!("nodes[{i}].address"),
                    format!("lies inside kubernetes.{field} {net}; traffic to this node would be captured by the cluster network"),
                    format!("move the node out of {net} or choose a {field} that does not contain node addresses"),
                )
                .value(n.address);
            }
        }
        if p.network.prefix_length > if n.address.0.is_ipv4() { 32 } else { 128 } {
            x.error(
                "network.prefixLength",
                "is longer than the address family allows",
                "use e.g. 24 for IPv4 or 64 for IPv6",
            )
            .value(p.network.prefix_length);
        }
    }
}

fn etcd(x: &mut Ctx, p: &Profile, c: &Cluster) {
    let n = c.etcd.members.len();
    let etcd_nodes: Vec<usize> = p
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.role == Role::Etcd)
        .map(|(i, _)| i)
        .collect();
    match p.etcd.topology {
        EtcdTopology::External if etcd_nodes.is_empty() && n == 0 => {
            x.error(
                "etcd.topology",
                "needs etcd nodes, but no node has `role: etcd`",
                "add etcd nodes (three for high availability) or use `topology: stacked`",
            )
            .value("external");
        }
        EtcdTopology::Stacked => {
            for i in etcd_nodes {
                x.error(
                    &format!("nodes[{i}].role"),
                    "is `etcd`, which needs `etcd.topology: external`; with `stacked`, members run on control-plane nodes",
                    "set `etcd.topology: external`, or make this node a control-plane node",
                );
            }
        }
        _ => {}
    }
    if n == 0 && !(p.etcd.topology == EtcdTopology::External && etcd_nodes_empty(p)) {
        x.error(
            "nodes",
            "no node runs an etcd member",
            "run members on control-plane nodes (stacked) or on etcd nodes (external)",
        );
    } else if n > 0 && n.is_multiple_of(2) {
        x.warning(
            "nodes",
            format!(
                "etcd has {n} members; an even number tolerates no more failures than {} member{} and needs a larger quorum",
                n - 1,
                if n - 1 == 1 { "" } else { "s" }
            ),
            format!("use an odd number of members (3 or 5)\n{}", quorum_table(n).trim_end()),
        );
    }
    if p.etcd.election_timeout < 5 * p.etcd.heartbeat_interval {
        x.error(
            "etcd.electionTimeout",
            format!(
                "must be at least 5 × heartbeatInterval ({} ms); etcd refuses to start otherwise",
                5 * p.etcd.heartbeat_interval
            ),
            format!(
                "set electionTimeout to {} or more",
                5 * p.etcd.heartbeat_interval
            ),
        )
        .value(p.etcd.election_timeout);
    }
    if p.etcd.election_timeout > 50_000 {
        x.error(
            "etcd.electionTimeout",
            "is above etcd's limit of 50000 ms",
            "use at most 50000",
        )
        .value(p.etcd.election_timeout);
    }
    if !p.etcd.data_dir.starts_with('/') {
        x.error(
            "etcd.dataDir",
            "must be an absolute path",
            "write e.g. /var/lib/etcd",
        )
        .value(&p.etcd.data_dir);
    }
}

fn etcd_nodes_empty(p: &Profile) -> bool {
    !p.nodes.iter().any(|n| n.role == Role::Etcd)
}

fn load_balancer(x: &mut Ctx, p: &Profile, c: &Cluster) {
    let lb_nodes: Vec<(usize, &crate::profile::Node)> = p
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.role == Role::LoadBalancer)
        .collect();
    let Some(lb) = &p.load_balancer else {
        if let Some((i, _)) = lb_nodes.first() {
            x.error(
                &format!("nodes[{i}].role"),
                "is `load-balancer`, but the profile has no `loadBalancer` settings",
                "add `loadBalancer: {kind: haproxy, vip: <address>}` (nginx works too)",
            );
        }
        return;
    };
    if lb_nodes.is_empty() {
        x.error(
            "loadBalancer",
            "is set but no node has `role: load-balancer`",
            "add load-balancer nodes, or remove `loadBalancer` (an external load balancer only needs `controlPlane.endpoint`)",
        );
        return;
    }
    match lb.vip {
        None if lb_nodes.len() > 1 => {
            x.error(
                "loadBalancer.vip",
                format!(
                    "{} load-balancer nodes need a VIP for clients to reach whichever one is up",
                    lb_nodes.len()
                ),
                "add `vip:` with a free address on the load-balancer nodes' network",
            );
        }
        Some(vip) => {
            if let Some((i, n)) = p.nodes.iter().enumerate().find(|(_, n)| n.address == vip) {
                x.error(
                    "loadBalancer.vip",
                    format!("is the address of node `{}` (nodes[{i}]); keepalived needs an address no node owns", n.name),
                    "choose a free address on the same network for the VIP",
                )
                .value(vip);
            }
            for (field, net) in [
                ("serviceCIDR", &p.kubernetes.service_cidr),
                ("podCIDR", &p.kubernetes.pod_cidr),
            ] {
                if net.0.contains(&vip.0) {
                    x.error(
                        "loadBalancer.vip",
                        format!("lies inside kubernetes.{field} {net}"),
                        "choose a VIP on the load-balancer nodes' network",
                    )
                    .value(vip);
                }
            }
            let prefix = p.network.prefix_length;
            for (_, n) in &lb_nodes {
                if let Ok(net) = ipnet::IpNet::new(n.address.0, prefix)
                    && !net.trunc().contains(&vip.0)
                {
                    x.error(
                        "loadBalancer.vip",
                        format!(
                            "is not on the network of load-balancer node `{}` ({}/{prefix}); keepalived can only hold a VIP on its own segment",
                            n.name, n.address
                        ),
                        format!("choose a VIP inside {}", net.trunc()),
                    )
                    .value(vip);
                    break;
                }
            }
        }
        None => {}
    }
    let mut prios: BTreeMap<u8, &str> = BTreeMap::new();
    if let Some(m) = &c.load_balancer {
        for member in &m.members {
            if let Some(other) = prios.insert(member.priority, member.name.as_str()) {
                let i = p
                    .nodes
                    .iter()
                    .position(|n| n.name == member.name)
                    .unwrap_or(0);
                x.error(
                    &format!("nodes[{i}].priority"),
                    format!("equals the priority of `{other}`; VRRP needs distinct priorities to pick one holder"),
                    "give each load-balancer node a different priority",
                )
                .value(member.priority);
            }
        }
    }
    if lb.virtual_router_id == 0 {
        x.error(
            "loadBalancer.virtualRouterId",
            "must be 1-255",
            "use e.g. 51",
        )
        .value(0);
    }
    if lb.advert_interval == 0 {
        x.error(
            "loadBalancer.advertInterval",
            "must be at least 1 second",
            "use 1",
        )
        .value(0);
    }
}

fn bootstrap_node(x: &mut Ctx, p: &Profile) {
    let Some(name) = &p.control_plane.bootstrap_node else {
        return;
    };
    let cps: Vec<&str> = p
        .nodes
        .iter()
        .filter(|n| n.role == Role::ControlPlane)
        .map(|n| n.name.as_str())
        .collect();
    if !cps.contains(&name.as_str()) {
        x.error(
            "controlPlane.bootstrapNode",
            "is not a control-plane node of the profile",
            format!("name one of: {}", cps.join(", ")),
        )
        .value(name);
    }
}

fn endpoint(x: &mut Ctx, c: &Cluster) {
    let ep = &c.endpoint;
    let path = "controlPlane.endpoint";
    let written = x.src.written(path);
    let cps: Vec<&crate::model::NodeModel> = c.control_planes().collect();
    match &ep.host {
        Host::Ip(ip) => {
            let lb = c.load_balancer.as_ref();
            let served_by_lb = lb.is_some_and(|lb| {
                lb.vip == Some(*ip)
                    || (lb.vip.is_none() && lb.members.iter().any(|m| m.address == *ip))
            });
            let cp = cps.iter().find(|n| n.address == *ip);
            if served_by_lb {
                let port = lb.map(|l| l.port).unwrap_or(ep.port);
                if port != ep.port {
                    x.error(
                        "loadBalancer.port",
                        format!("is where the load balancer listens, but clients dial {ep}"),
                        format!(
                            "set loadBalancer.port to {} or change the endpoint's port",
                            ep.port
                        ),
                    )
                    .value(port);
                }
            } else if let Some(cp) = cp {
                if ep.port != c.apiserver_port {
                    x.error(
                        path,
                        format!("points at control-plane node `{}`, whose kube-apiserver listens on {}, not {}", cp.name, c.apiserver_port, ep.port),
                        format!("use port {} or put a load balancer in front", c.apiserver_port),
                    )
                    .value(ep);
                }
                if lb.is_some() && written {
                    x.warning(
                        path,
                        format!("points at control-plane node `{}` directly although load-balancer nodes exist; clients lose the API when it is down", cp.name),
                        match lb.and_then(|l| l.vip) {
                            Some(vip) => format!("use the VIP: `{vip}:{}`", lb.map(|l| l.port).unwrap_or(ep.port)),
                            None => "point the endpoint at the load balancer".to_string(),
                        },
                    )
                    .value(ep);
                }
            } else if written && lb.is_none() {
                // A load balancer outside the profile (a cloud's, a hardware one): kimage cannot see
                // it, only say what it must do. The apiserver certificates name the endpoint.
                let backends: Vec<String> = cps
                    .iter()
                    .map(|n| format!("{}:{}", n.address, c.apiserver_port))
                    .collect();
                x.warning(
                    path,
                    "is an address no node of this profile serves: kimage takes it for an external load balancer (a cloud's or a hardware one) and cannot check it",
                    format!(
                        "make it pass TCP through (no TLS termination) to {}; or point the endpoint at a control-plane node",
                        backends.join(", ")
                    ),
                )
                .value(ep);
            } else if written {
                let mut fix = String::from("point the endpoint at ");
                match lb {
                    Some(l) => match l.vip {
                        Some(vip) => fix.push_str(&format!("the VIP `{vip}:{}`", l.port)),
                        None => fix.push_str(&format!(
                            "the load-balancer node `{}:{}`",
                            l.members
                                .first()
                                .map(|m| m.address.to_string())
                                .unwrap_or_default(),
                            l.port
                        )),
                    },
                    None => match cps.first() {
                        Some(n) => fix.push_str(&format!(
                            "a control-plane node, e.g. `{}:{}`, or add a load balancer",
                            n.address, c.apiserver_port
                        )),
                        None => fix.push_str("a control-plane node or a load balancer"),
                    },
                }
                x.error(
                    path,
                    "is an address that nothing in this cluster serves (not a control-plane node, not the VIP, not a load-balancer node)",
                    fix,
                )
                .value(ep);
            }
        }
        Host::Dns(name) => {
            if !c.hosts.iter().any(|h| h.names.contains(name)) {
                x.warning(
                    path,
                    format!("kimage cannot check that `{name}` resolves to the load balancer or a control-plane node"),
                    "make sure DNS resolves it to the VIP or an apiserver, or let kimage write it to /etc/hosts by adding load-balancer nodes",
                )
                .value(ep);
            }
        }
    }
}

fn versions(x: &mut Ctx, p: &Profile) {
    let k = &p.kubernetes.version;
    let (lo, hi) = SUPPORTED_KUBERNETES;
    if k.0.major != 1 || k.0.minor < lo || k.0.minor > hi {
        x.error(
            "kubernetes.version",
            format!("is outside the Kubernetes releases kimage renders for (v1.{lo} to v1.{hi})"),
            format!("use a v1.{hi}.x release"),
        )
        .value(k);
    }
    if !k.0.pre.is_empty() {
        x.warning(
            "kubernetes.version",
            "is a pre-release",
            "use a released version for clusters you keep",
        )
        .value(k);
    }
    let e = &p.etcd.version;
    if e.0.major != 3 {
        x.error(
            "etcd.version",
            "is not an etcd v3 release",
            "use v3.6.x (or v3.5.x)",
        )
        .value(e);
    } else if e.0.minor < 5 {
        x.warning(
            "etcd.version",
            format!("is older than the etcd releases Kubernetes v1.{} supports (v3.5, v3.6)", k.0.minor),
            "use v3.6.x for production; v3.4 only where no newer build is available (e.g. Debian 12's package in tests)",
        )
        .value(e);
    } else if e.0.minor > 6 {
        x.warning(
            "etcd.version",
            "is newer than the etcd releases kimage renders for (v3.5, v3.6)",
            "use v3.6.x",
        )
        .value(e);
    }
    let crictl = &p.container_runtime.crictl;
    let supported = k.0.major == 1 && (lo..=hi).contains(&k.0.minor);
    if supported && crictl.minor() != k.minor() {
        x.warning(
            "containerRuntime.crictl",
            format!(
                "minor differs from Kubernetes {k}; cri-tools releases track Kubernetes minors"
            ),
            format!("use v{}.{}.x", k.0.major, k.0.minor),
        )
        .value(crictl);
    }
    let ctrd = &p.container_runtime.containerd;
    if ctrd.0.major < 1 || (ctrd.0.major == 1 && ctrd.0.minor < 6) {
        x.error(
            "containerRuntime.containerd",
            "is older than containerd 1.6, the first release with the CRI v1 API every supported kubelet requires",
            "use v2.2.x",
        )
        .value(ctrd);
    } else if ctrd.0.major == 1 && ctrd.0.minor == 6 {
        x.warning(
            "containerRuntime.containerd",
            "is end of life; Kubernetes v1.35 supports containerd 1.7 and 2.x",
            "use v2.2.x (v1.6 only where no newer build is available, e.g. Debian 12's package in tests)",
        )
        .value(ctrd);
    } else if ctrd.0.major == 1 {
        x.warning(
            "containerRuntime.containerd",
            "is a containerd 1.x release; Kubernetes v1.35 is the last to support it",
            "use v2.2.x",
        )
        .value(ctrd);
    }
}

/// IANA time zone names (zones and links).
const TIMEZONES: &str = include_str!("profile/timezones.txt");

/// Why `ip` cannot be a host's address, if it cannot.
fn not_a_host(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_unspecified() => Some("is the unspecified address, not a host"),
        _ if ip.is_loopback() => Some("is a loopback address, which every machine has for itself"),
        _ if ip.is_multicast() => Some("is a multicast address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("is the broadcast address"),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            Some("is an IPv4-mapped IPv6 address, the same host as its IPv4 form")
        }
        _ => None,
    }
}

/// The network and broadcast address of `ip`'s subnet, when the prefix leaves room for both.
fn subnet_ends(ip: IpAddr, prefix: u8) -> Option<(IpAddr, Option<IpAddr>)> {
    let net = ipnet::IpNet::new(ip, prefix).ok()?;
    match net {
        ipnet::IpNet::V4(n) if prefix <= 30 => {
            Some((n.network().into(), Some(n.broadcast().into())))
        }
        ipnet::IpNet::V6(n) if prefix <= 126 => Some((n.network().into(), None)),
        _ => None,
    }
}

/// Values that end up as addresses, paths and names on the nodes: each must be one a host can use.
/// Container images: a mirror to pull through when nodes are told to, each image listed once.
fn images(x: &mut Ctx, p: &Profile) {
    let Some(images) = &p.images else { return };
    if images.delivery == crate::profile::ImageDelivery::Mirror && images.mirror.is_none() {
        x.error(
            "images.delivery",
            "needs images.mirror, which is not set: nodes would have no mirror to pull through",
            "set images.mirror to your registry mirror (http://10.0.0.1:5000), or use delivery: embed",
        )
        .value("mirror");
    }
    let mut seen = BTreeMap::new();
    for (i, r) in images.extra.iter().enumerate() {
        if let Some(first) = seen.insert(r.name(), i) {
            x.error(
                &format!("images.extra[{i}]"),
                format!("names the same image as images.extra[{first}]"),
                "list each image once",
            )
            .value(r);
        }
    }
}

fn host_values(x: &mut Ctx, p: &Profile) {
    let v4 = p.kubernetes.service_cidr.0.addr().is_ipv4();
    let family = if v4 { "IPv4" } else { "IPv6" };
    let prefix = p.network.prefix_length;
    let max_prefix = if v4 { 32 } else { 128 };
    let prefix_ok = (1..=max_prefix).contains(&prefix);
    let mut macs: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in p.nodes.iter().enumerate() {
        let ip = n.address.0;
        let field = format!("nodes[{i}].address");
        if let Some(why) = not_a_host(ip) {
            let fix = match ip {
                IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
                    format!("write it as {}", a.to_ipv4_mapped().expect("checked"))
                }
                _ => "give the node's own unicast address".to_string(),
            };
            x.error(&field, why, fix).value(ip);
            continue;
        }
        if ip.is_ipv4() != v4 {
            x.error(
                &field,
                format!("is not an {family} address, and the cluster is {family} (kubernetes.serviceCIDR)"),
                format!("give the node its {family} address"),
            )
            .value(ip);
            continue;
        }
        if prefix_ok && let Some((net, bcast)) = subnet_ends(ip, prefix) {
            if ip == net {
                x.error(
                    &field,
                    format!("is the network address of its /{prefix} subnet"),
                    "give the node a host address of the subnet",
                )
                .value(ip);
            } else if Some(ip) == bcast {
                x.error(
                    &field,
                    format!("is the broadcast address of its /{prefix} subnet"),
                    "give the node a host address of the subnet",
                )
                .value(ip);
            }
        }
        if let Some(mac) = &n.mac {
            let mac = mac.as_str();
            match macs.get(mac) {
                Some(&first) => {
                    x.error(
                        &format!("nodes[{i}].mac"),
                        format!(
                            "is also the MAC address of nodes[{first}] `{}`",
                            p.nodes[first].name
                        ),
                        "give every node its own MAC address",
                    )
                    .value(mac);
                }
                None => {
                    macs.insert(mac, i);
                }
            }
        }
    }
    if let Some(gw) = p.network.gateway {
        let gw = gw.0;
        if let Some(why) = not_a_host(gw) {
            x.error(
                "network.gateway",
                why,
                "give the router's address on the nodes' subnet",
            )
            .value(gw);
        } else if gw.is_ipv4() != v4 {
            x.error(
                "network.gateway",
                format!("is not an {family} address, and the cluster is {family}"),
                "give the router's address on the nodes' subnet",
            )
            .value(gw);
        } else if let Some((i, n)) = p.nodes.iter().enumerate().find(|(_, n)| n.address.0 == gw) {
            x.error(
                "network.gateway",
                format!("is the address of nodes[{i}] `{}`", n.name),
                "give the router's address, not a node's",
            )
            .value(gw);
        } else if prefix_ok
            && let Some(n) = p.nodes.iter().find(|n| {
                n.address.0.is_ipv4() == gw.is_ipv4()
                    && not_a_host(n.address.0).is_none()
                    && ipnet::IpNet::new(n.address.0, prefix).is_ok_and(|net| !net.contains(&gw))
            })
        {
            x.error(
                "network.gateway",
                format!(
                    "is outside the /{prefix} subnet of node `{}` ({}), so that node cannot reach it",
                    n.name, n.address
                ),
                "give the router's address on the nodes' subnet, or correct network.prefixLength",
            )
            .value(gw);
        }
    }
    // Other addresses the nodes use: the VIP they announce and the resolvers they ask.
    let others = p
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.vip)
        .map(|v| ("loadBalancer.vip".to_string(), v.0))
        .into_iter()
        .chain(
            p.network
                .nameservers
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("network.nameservers[{i}]"), a.0)),
        );
    for (field, ip) in others {
        // A resolver on the node itself (systemd-resolved's 127.0.0.53) is one a host can use.
        let local_resolver = field.starts_with("network.nameservers") && ip.is_loopback();
        if let Some(why) = not_a_host(ip).filter(|_| !local_resolver) {
            x.error(&field, why, "give a unicast address the nodes can reach")
                .value(ip);
        } else if ip.is_ipv4() != v4 && !field.starts_with("network.nameservers") {
            x.error(
                &field,
                format!("is not an {family} address, and the cluster is {family}"),
                format!("give an {family} address"),
            )
            .value(ip);
        }
    }
    let dir = p.etcd.data_dir.as_str();
    let system = [
        "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
        "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib",
    ];
    let normalized = dir.starts_with('/')
        && !dir.ends_with('/')
        && dir[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if !normalized || system.contains(&dir) {
        x.error(
            "etcd.dataDir",
            "is not a directory of its own: kimage creates it for the etcd user (mode 0700, owned by etcd), so it must be an absolute, normalized path that is not / or a system directory such as /var/lib",
            "use e.g. /var/lib/etcd",
        )
        .value(dir);
    }
    if let Some(tz) = &p.os.timezone
        && !TIMEZONES.lines().any(|l| l == tz)
    {
        x.error(
            "os.timezone",
            "is not an IANA time zone name",
            "use a name such as Asia/Shanghai or UTC (see timedatectl list-timezones)",
        )
        .value(tz);
    }
}

fn settings(x: &mut Ctx, p: &Profile, c: &Cluster) {
    if p.kubernetes.proxy_mode == ProxyMode::Ipvs {
        x.warning(
            "kubernetes.proxyMode",
            "is deprecated in Kubernetes v1.35",
            "use `nftables` (GA since v1.33) or `iptables`",
        )
        .value("ipvs");
    }
    match (p.layers.from, &p.layers.base_url) {
        (LayersFrom::Url, None) => {
            x.error(
                "layers.baseURL",
                "is required when `layers.from` is `url`",
                "set baseURL to where out/layers is served",
            );
        }
        (from, Some(_)) if from != LayersFrom::Url => {
            x.warning(
                "layers.baseURL",
                "is ignored unless `layers.from` is `url`",
                "remove it or set `from: url`",
            );
        }
        _ => {}
    }
    for key in p.os.sysctl.keys() {
        let ok = !key.is_empty()
            && key.split(['.', '/']).all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch))
            });
        if !ok {
            x.error(
                &format!("os.sysctl.{key}"),
                "is not a sysctl key",
                "write keys like net.ipv4.ip_forward",
            )
            .value(key);
        }
    }
    for (i, m) in p.os.modules.iter().enumerate() {
        if m.is_empty()
            || !m
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch))
        {
            x.error(
                &format!("os.modules[{i}]"),
                "is not a kernel module name",
                "write names like br_netfilter",
            )
            .value(m);
        }
    }
    let memlock = &p.os.limits.memlock;
    if memlock != "unlimited" && memlock.parse::<u64>().is_err() {
        x.error(
            "os.limits.memlock",
            "is neither `unlimited` nor a number",
            "write `unlimited` or a size in KiB",
        )
        .value(memlock);
    }
    if p.network.interface.is_empty()
        || p.network.interface.len() > 15
        || p.network.interface.contains(['/', ' '])
    {
        x.error(
            "network.interface",
            "is not a Linux interface name",
            "use e.g. eth0",
        )
        .value(&p.network.interface);
    }
    let kubelet_nodes: Vec<_> = c
        .nodes
        .iter()
        .chain(c.pools.iter().map(|p| &p.node))
        .filter(|n| n.runs_kubelet)
        .collect();
    // Found by the real kube-proxy (tests/netns_control_plane.rs): a packet a node sends to a Service
    // cluster IP is routed before kube-proxy's rules rewrite it, so without a route there is "network is
    // unreachable". Pool machines take their routes from DHCP.
    if p.network.gateway.is_none() && c.nodes.iter().any(|n| n.runs_kubelet) {
        x.warning(
            "network.gateway",
            format!(
                "is not set, so the nodes get no default route and cannot reach Service cluster IPs \
                 (such as {}, the kubernetes Service) from their own network namespace: kube-proxy \
                 rewrites that traffic only after the kernel found a route; host-network pods such as \
                 flannel then cannot reach the API",
                c.kubernetes.first_service_ip
            ),
            "set network.gateway to the subnet's router",
        );
    }
    if !kubelet_nodes.is_empty()
        && kubelet_nodes.iter().all(|n| {
            n.taints
                .iter()
                .any(|t| t.effect != crate::profile::TaintEffect::PreferNoSchedule)
        })
    {
        x.warning(
            "nodes",
            "every node that runs pods is tainted, so CoreDNS and other ordinary pods cannot be scheduled",
            "add a worker node, or give a control-plane node `taints: []`",
        );
    }
}
