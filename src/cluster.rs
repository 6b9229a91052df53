//! The cluster's address plan: one value shared by the server (service IP
//! and NodePort allocation, the serving certificate's names), the network
//! and, later, the agent and cluster DNS. No I/O; flags that change it will
//! build a [`ClusterConfig`] instead of the defaults.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

/// Pod addresses of the whole cluster; each node takes a /24 of it (k3s's
/// default).
pub const CLUSTER_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 42, 0, 0), 16);
/// Service ClusterIPs (k3s's default).
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 43, 0, 0), 16);
/// The `kubernetes` Service: the first address of the service range, as
/// upstream's apiserver takes it.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::from_bits(SERVICE_CIDR.0.to_bits() + 1);
/// Cluster DNS: the tenth address of the service range (k3s's 10.43.0.10).
pub const CLUSTER_DNS_IP: Ipv4Addr = Ipv4Addr::from_bits(SERVICE_CIDR.0.to_bits() + 10);
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Ports a NodePort Service may take (the apiserver's default range).
pub const NODE_PORTS: RangeInclusive<u16> = 30000..=32767;

/// The address plan of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub cluster_cidr: (Ipv4Addr, u8),
    pub service_cidr: (Ipv4Addr, u8),
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    pub node_ports: RangeInclusive<u16>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cluster_cidr: CLUSTER_CIDR,
            service_cidr: SERVICE_CIDR,
            cluster_dns: CLUSTER_DNS_IP,
            cluster_domain: CLUSTER_DOMAIN.to_string(),
            node_ports: NODE_PORTS,
        }
    }
}

impl ClusterConfig {
    /// The `kubernetes` Service's ClusterIP: the service range's first host.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.service_cidr.0.to_bits() + 1)
    }

    /// The in-cluster names of the API server, shortest first.
    pub fn kubernetes_service_names(&self) -> [String; 4] {
        [
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            format!("kubernetes.default.svc.{}", self.cluster_domain),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_k3s_addresses() {
        let c = ClusterConfig::default();
        assert_eq!(c.kubernetes_service_ip(), KUBERNETES_SERVICE_IP);
        assert_eq!(KUBERNETES_SERVICE_IP.to_string(), "10.43.0.1");
        assert_eq!(CLUSTER_DNS_IP.to_string(), "10.43.0.10");
        assert_eq!(
            c.kubernetes_service_names()[3],
            "kubernetes.default.svc.cluster.local"
        );
        assert_eq!(*c.node_ports.start(), 30000);
        assert_eq!(*c.node_ports.end(), 32767);
    }
}
