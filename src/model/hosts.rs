//! /etc/hosts entries.

use std::net::IpAddr;

use serde::Serialize;

use super::etcd::is_etcd_member;
use super::load_balancer::LoadBalancerModel;
use crate::profile::{Endpoint, Host, Profile, Role};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostsEntry {
    pub address: IpAddr,
    pub names: Vec<String>,
}

/// The nodes by name (when `os.hostsFile`): control-plane, load-balancer and etcd nodes (and workers
/// that run an etcd member), workers only with `os.hostsWorkers`, so that adding a worker leaves every
/// other node's files as they were; plus a DNS endpoint served by kimage's own load balancer, as in
/// seed 003.
pub(super) fn hosts(
    p: &Profile,
    endpoint: &Endpoint,
    load_balancer: Option<&LoadBalancerModel>,
) -> Vec<HostsEntry> {
    let mut hosts = Vec::new();
    if !p.os.hosts_file {
        return hosts;
    }
    for n in &p.nodes {
        let member = is_etcd_member(n.role, n.etcd_member, p.etcd.topology);
        if n.role == Role::Worker && !member && !p.os.hosts_workers {
            continue;
        }
        hosts.push(HostsEntry {
            address: n.address.0,
            names: vec![n.name.as_str().to_string()],
        });
    }
    if let Host::Dns(name) = &endpoint.host
        && let Some(lb) = load_balancer
        && let Some(addr) = lb.vip.or_else(|| lb.members.first().map(|m| m.address))
    {
        match hosts.iter_mut().find(|h| h.address == addr) {
            Some(h) if h.names.contains(name) => {}
            Some(h) => h.names.push(name.clone()),
            None => hosts.push(HostsEntry {
                address: addr,
                names: vec![name.clone()],
            }),
        }
    }
    hosts
}
