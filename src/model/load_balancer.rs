//! What clients dial (the endpoint) and the load balancers in front of the apiservers.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::profile::{self, Endpoint, Host, LoadBalancerKind, NodeName, Profile, Role};

#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancerModel {
    pub kind: LoadBalancerKind,
    pub vip: Option<IpAddr>,
    /// Port the proxy listens on.
    pub port: u16,
    /// Every kube-apiserver, in profile order.
    pub backends: Vec<Backend>,
    /// Load-balancer nodes, in profile order, with their VRRP priority and initial state.
    pub members: Vec<LoadBalancerMember>,
    pub interface: String,
    pub virtual_router_id: u8,
    pub advert_interval: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub name: NodeName,
    pub address: IpAddr,
    pub port: u16,
    /// `address:port`, IPv6 in brackets (haproxy `server` and nginx `server` lines).
    pub host_port: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancerMember {
    pub name: NodeName,
    pub address: IpAddr,
    pub priority: u8,
    /// `MASTER` for the highest priority, `BACKUP` for the others.
    pub state: &'static str,
}

/// keepalived settings of one load-balancer node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeVrrp {
    /// `MASTER` or `BACKUP`.
    pub state: &'static str,
    pub priority: u8,
    /// The other load-balancer nodes: VRRP advertisements go to them by unicast, since multicast is
    /// filtered on many cloud and virtual networks.
    pub unicast_peers: Vec<IpAddr>,
}

/// `controlPlane.endpoint`, or else the VIP (or first load-balancer node) on the load balancer's
/// port, or else the first control-plane node.
pub(super) fn endpoint(
    p: &Profile,
    control_planes: &[&profile::Node],
    lb_nodes: &[&profile::Node],
    apiserver_port: u16,
) -> Endpoint {
    if let Some(e) = &p.control_plane.endpoint {
        return e.clone();
    }
    match (&p.load_balancer, lb_nodes.first()) {
        (Some(lb), Some(first)) => Endpoint {
            host: Host::Ip(lb.vip.map(|v| v.0).unwrap_or(first.address.0)),
            port: lb.port.unwrap_or(apiserver_port),
        },
        _ => Endpoint {
            host: Host::Ip(
                control_planes
                    .first()
                    .map(|n| n.address.0)
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ),
            port: apiserver_port,
        },
    }
}

/// The load balancer: every apiserver as a backend, and the VRRP members with their priorities
/// (given, or 150, 140, … in profile order); the highest starts as MASTER.
pub(super) fn load_balancer(
    p: &Profile,
    control_planes: &[&profile::Node],
    lb_nodes: &[&profile::Node],
    endpoint: &Endpoint,
    apiserver_port: u16,
) -> Option<LoadBalancerModel> {
    let lb = p.load_balancer.as_ref()?;
    let mut members: Vec<LoadBalancerMember> = lb_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| LoadBalancerMember {
            name: n.name.clone(),
            address: n.address.0,
            priority: n
                .priority
                .unwrap_or(150u8.saturating_sub(10 * i.min(14) as u8)),
            state: "BACKUP",
        })
        .collect();
    if let Some(top) = members.iter().map(|m| m.priority).max()
        && let Some(m) = members.iter_mut().find(|m| m.priority == top)
    {
        m.state = "MASTER";
    }
    Some(LoadBalancerModel {
        kind: lb.kind,
        vip: lb.vip.map(|v| v.0),
        port: lb.port.unwrap_or(endpoint.port),
        backends: control_planes
            .iter()
            .map(|n| Backend {
                name: n.name.clone(),
                address: n.address.0,
                port: apiserver_port,
                host_port: std::net::SocketAddr::new(n.address.0, apiserver_port).to_string(),
            })
            .collect(),
        members,
        interface: lb.interface.clone(),
        virtual_router_id: lb.virtual_router_id,
        advert_interval: lb.advert_interval,
    })
}

/// A load-balancer node's keepalived settings, when the cluster has a VIP.
pub(super) fn node_vrrp(lb: Option<&LoadBalancerModel>, n: &profile::Node) -> Option<NodeVrrp> {
    let lb = lb.filter(|lb| lb.vip.is_some() && n.role == Role::LoadBalancer)?;
    let me = lb.members.iter().find(|m| m.name == n.name)?;
    Some(NodeVrrp {
        state: me.state,
        priority: me.priority,
        unicast_peers: lb
            .members
            .iter()
            .filter(|m| m.name != n.name)
            .map(|m| m.address)
            .collect(),
    })
}
