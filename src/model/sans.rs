//! The apiserver certificate's subject alternative names: the one place they are chosen.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::profile::{self, Endpoint, Host, Profile, San};

/// Subject alternative names, in a fixed order without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sans {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Sans {
    pub fn add_dns(&mut self, name: impl Into<String>) {
        let name = name.into();
        if !self.dns.contains(&name) {
            self.dns.push(name);
        }
    }
    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }
    pub fn add_host(&mut self, host: &Host) {
        match host {
            Host::Ip(ip) => self.add_ip(*ip),
            Host::Dns(n) => self.add_dns(n.clone()),
        }
    }
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip)
    }
}

/// One control-plane node's kube-apiserver SANs, as kubeadm issues them: the `kubernetes` Service
/// names, localhost, the node's own name and address, the first service IP, the endpoint, the VIP (or,
/// without one, the load-balancer nodes' addresses) and `controlPlane.extraSANs`. Not the other
/// control-plane nodes': a client that dials one apiserver by its address verifies that apiserver's
/// certificate, and every other client dials the endpoint, so adding or removing a control-plane node
/// leaves every other node's certificate as it was.
pub(super) fn apiserver_sans(
    p: &Profile,
    node: &profile::Node,
    lb_nodes: &[&profile::Node],
    endpoint: &Endpoint,
    domain: &str,
    first_service_ip: IpAddr,
) -> Sans {
    let mut sans = Sans::default();
    for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc"] {
        sans.add_dns(name);
    }
    sans.add_dns(format!("kubernetes.default.svc.{domain}"));
    sans.add_dns("localhost");
    sans.add_dns(node.name.as_str());
    sans.add_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    sans.add_ip(first_service_ip);
    sans.add_ip(node.address.0);
    sans.add_host(&endpoint.host);
    match p.load_balancer.as_ref().map(|lb| lb.vip) {
        Some(Some(vip)) => sans.add_ip(vip.0),
        // Without a VIP the load-balancer node's own address serves the API (seed 003's k8s-master-lb).
        Some(None) => lb_nodes.iter().for_each(|n| sans.add_ip(n.address.0)),
        None => {}
    }
    for s in &p.control_plane.extra_sans {
        match s {
            San::Ip(ip) => sans.add_ip(*ip),
            San::Dns(n) => sans.add_dns(n.clone()),
        }
    }
    sans
}
