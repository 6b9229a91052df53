//! What the service proxy asks of its table: the node-wide settings, and
//! per Service what its ports lead to. The caller has already chosen the
//! endpoints (ready, else serving-terminating; topology; which are on this
//! node): the table only spreads traffic over what it is given.

use std::net::Ipv4Addr;

use super::super::config::Proto;
use crate::net::cidr::Ipv4Cidr;

/// The table's node-wide settings; changing them restates the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxy's own table (family ip).
    pub table: String,
    /// Pod addresses of the whole cluster: traffic to a ClusterIP from
    /// outside them is masqueraded, so that replies come back through
    /// this node.
    pub cluster_cidr: Ipv4Cidr,
    /// ClusterIPs: an unallocated one is dropped, not routed away.
    pub service_cidr: Ipv4Cidr,
    /// `--nodeport-addresses`: NodePorts only on local addresses inside
    /// these; empty means every local address but loopback.
    pub nodeport_cidrs: Vec<Ipv4Cidr>,
    /// The packet mark bit that asks for masquerading (kube-proxy's
    /// `--masquerade-bit`, 14 by default).
    pub masquerade_bit: u32,
}

/// One endpoint of a Service port: the address and port to DNAT to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRules {
    pub proto: Proto,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Endpoints for traffic under the Cluster policy (anywhere in the
    /// cluster).
    pub cluster: Vec<Endpoint>,
    /// Endpoints on this node, for the Local policies.
    pub local: Vec<Endpoint>,
}

/// One Service, as the proxy programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRules {
    pub namespace: String,
    pub name: String,
    /// None for a headless Service or one of type ExternalName (no rules
    /// for it), which may still have NodePorts or external addresses.
    pub cluster_ip: Option<Ipv4Addr>,
    /// spec.externalIPs and the load balancer's ingress addresses: traffic
    /// to them is external traffic.
    pub external_ips: Vec<Ipv4Addr>,
    pub ports: Vec<PortRules>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `sessionAffinity: ClientIP`, with its timeout in seconds.
    pub affinity_secs: Option<u32>,
}

impl ServiceRules {
    /// `namespace/name`, as the table's chain names carry it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether traffic from outside may reach it (NodePorts, external or
    /// load balancer addresses).
    pub(crate) fn external(&self, p: &PortRules) -> bool {
        p.node_port.is_some() || !self.external_ips.is_empty()
    }
}
