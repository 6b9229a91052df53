//! The cluster's address plan: one value shared by the server (service IP,
//! NodePort and pod CIDR allocation, the serving certificate's names,
//! cluster DNS) and every agent (the pod network, the service proxy, the
//! DNS server, pods' resolv.conf). The server builds it from its flags
//! (`--cluster-cidr`, `--service-cidr`, ...) and hands it to agents at
//! `GET /v1-skiff/config`, so no agent needs them repeated. No I/O.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::net::cidr::Ipv4Cidr;
use crate::net::overlay::Backend;

/// Pod addresses of the whole cluster; each node takes a /24 of it (k3s's
/// default).
pub const CLUSTER_CIDR: Ipv4Cidr = Ipv4Cidr::from_parts(Ipv4Addr::new(10, 42, 0, 0), 16);
/// Service ClusterIPs (k3s's default).
pub const SERVICE_CIDR: Ipv4Cidr = Ipv4Cidr::from_parts(Ipv4Addr::new(10, 43, 0, 0), 16);
/// The `kubernetes` Service: the first address of the service range, as
/// upstream's apiserver takes it.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr =
    Ipv4Addr::from_bits(SERVICE_CIDR.network().to_bits() + 1);
/// Cluster DNS: the tenth address of the service range (k3s's 10.43.0.10).
pub const CLUSTER_DNS_IP: Ipv4Addr = Ipv4Addr::from_bits(SERVICE_CIDR.network().to_bits() + 10);
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Ports a NodePort Service may take (the apiserver's default range).
pub const NODE_PORTS: RangeInclusive<u16> = 30000..=32767;
/// Each node's share of the cluster CIDR (k3s's and upstream's default
/// node mask).
pub const NODE_MASK: u8 = 24;
/// The largest service range upstream's apiserver takes (a /12: its
/// allocation bitmap stays small).
const SERVICE_PREFIX_MIN: u8 = 12;
/// The smallest: the `kubernetes` Service and cluster DNS fit, with room.
const SERVICE_PREFIX_MAX: u8 = 28;
/// The largest cluster CIDR: 65,536 node subnets.
const CLUSTER_PREFIX_MIN: u8 = 8;

/// The address plan of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    pub cluster_cidr: Ipv4Cidr,
    pub service_cidr: Ipv4Cidr,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    #[serde(with = "port_range")]
    pub node_ports: RangeInclusive<u16>,
    /// How pods reach the pods of other nodes (None: they do not); every
    /// node of a cluster uses the same.
    #[serde(with = "backend")]
    pub pod_network: Option<Backend>,
    /// Whether agents serve cluster DNS and point pods at it (off:
    /// `--disable-cluster-dns`, pods use their node's resolvers).
    #[serde(default = "enabled")]
    pub dns: bool,
}

fn enabled() -> bool {
    true
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cluster_cidr: CLUSTER_CIDR,
            service_cidr: SERVICE_CIDR,
            cluster_dns: CLUSTER_DNS_IP,
            cluster_domain: CLUSTER_DOMAIN.to_string(),
            node_ports: NODE_PORTS,
            pod_network: Some(Backend::Vxlan),
            dns: true,
        }
    }
}

/// A plan that cannot work, named by the flag that asked for it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("--cluster-cidr {0}: a cluster CIDR holds /{NODE_MASK}s, one per node: its prefix must be /{CLUSTER_PREFIX_MIN} to /{NODE_MASK}")]
    ClusterSize(Ipv4Cidr),
    #[error("--service-cidr {0}: its prefix must be /{SERVICE_PREFIX_MIN} to /{SERVICE_PREFIX_MAX} (as kube-apiserver's --service-cluster-ip-range)")]
    ServiceSize(Ipv4Cidr),
    #[error("--cluster-cidr {0} and --service-cidr {1} overlap: pod and Service addresses must be apart")]
    Overlap(Ipv4Cidr, Ipv4Cidr),
    #[error("--{0} {1:?} is not a CIDR: expected ADDRESS/PREFIX such as 10.42.0.0/16")]
    Cidr(&'static str, String),
    #[error("--{0} {1} is not a network address (its host bits are set); did you mean {2}?")]
    HostBits(&'static str, String, Ipv4Cidr),
    #[error("--cluster-dns {0} is not a usable address of --service-cidr {1} (not its first, which is the `kubernetes` Service's, nor its network or broadcast address)")]
    Dns(Ipv4Addr, Ipv4Cidr),
    #[error("--cluster-domain {0:?} is not a DNS domain (lowercase letters, digits, '-' and '.')")]
    Domain(String),
    #[error("--service-node-port-range {0:?}: expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535, such as 30000-32767")]
    NodePorts(String),
}

impl ClusterConfig {
    /// A plan from the server's flags, checked; `cluster_dns` None is the
    /// service range's tenth address.
    pub fn new(
        cluster_cidr: &str,
        service_cidr: &str,
        cluster_dns: Option<Ipv4Addr>,
        cluster_domain: &str,
        node_ports: &str,
        pod_network: Option<Backend>,
    ) -> Result<ClusterConfig, PlanError> {
        let cidr = |flag: &'static str, s: &str| -> Result<Ipv4Cidr, PlanError> {
            let parsed: Ipv4Cidr = s
                .parse()
                .map_err(|_| PlanError::Cidr(flag, s.to_string()))?;
            // 10.42.0.1/16 is almost surely a typo for the network: refused
            // rather than silently rounded.
            let given: Option<Ipv4Addr> = s.split_once('/').and_then(|(ip, _)| ip.parse().ok());
            if given != Some(parsed.network()) {
                return Err(PlanError::HostBits(flag, s.to_string(), parsed));
            }
            Ok(parsed)
        };
        let cluster = cidr("cluster-cidr", cluster_cidr)?;
        let service = cidr("service-cidr", service_cidr)?;
        if !(CLUSTER_PREFIX_MIN..=NODE_MASK).contains(&cluster.prefix()) {
            return Err(PlanError::ClusterSize(cluster));
        }
        if !(SERVICE_PREFIX_MIN..=SERVICE_PREFIX_MAX).contains(&service.prefix()) {
            return Err(PlanError::ServiceSize(service));
        }
        if cluster.overlaps(&service) {
            return Err(PlanError::Overlap(cluster, service));
        }
        let dns = match cluster_dns {
            Some(ip) => ip,
            None => service.nth(10).ok_or(PlanError::ServiceSize(service))?,
        };
        let usable = service.contains(dns)
            && dns != service.network()
            && Some(dns) != service.nth(1)
            && Some(dns) != service.nth(service.size() - 1);
        if !usable {
            return Err(PlanError::Dns(dns, service));
        }
        if !crate::agent::config::is_dns_subdomain(cluster_domain) {
            return Err(PlanError::Domain(cluster_domain.to_string()));
        }
        Ok(ClusterConfig {
            cluster_cidr: cluster,
            service_cidr: service,
            cluster_dns: dns,
            cluster_domain: cluster_domain.to_string(),
            node_ports: port_range::parse(node_ports)
                .ok_or_else(|| PlanError::NodePorts(node_ports.to_string()))?,
            pod_network,
            dns: true,
        })
    }

    /// What in `self` differs from `made`, the plan the cluster was made
    /// with, among what cannot change once objects and nodes use it (as
    /// k3s's "critical configuration values"): each as `--flag MADE (now
    /// NEW)`. Whether DNS is served may change.
    pub fn changes_from(&self, made: &ClusterConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |flag: &str, was: String, now: String| {
            if was != now {
                out.push(format!("--{flag} {was} (now {now})"));
            }
        };
        let ports = |r: &RangeInclusive<u16>| format!("{}-{}", r.start(), r.end());
        let net = |b: &Option<Backend>| b.map_or("none".to_string(), |b| b.to_string());
        field(
            "cluster-cidr",
            made.cluster_cidr.to_string(),
            self.cluster_cidr.to_string(),
        );
        field(
            "service-cidr",
            made.service_cidr.to_string(),
            self.service_cidr.to_string(),
        );
        field(
            "cluster-dns",
            made.cluster_dns.to_string(),
            self.cluster_dns.to_string(),
        );
        field(
            "cluster-domain",
            made.cluster_domain.clone(),
            self.cluster_domain.clone(),
        );
        field(
            "service-node-port-range",
            ports(&made.node_ports),
            ports(&self.node_ports),
        );
        field(
            "pod-network",
            net(&made.pod_network),
            net(&self.pod_network),
        );
        out
    }

    /// The `kubernetes` Service's ClusterIP: the service range's first host.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.service_cidr.network().to_bits() + 1)
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

    /// The first node subnet: the bridge address of a cluster's first node
    /// (the serving certificate names it, see `agent::service_env`).
    pub fn first_node_cidr(&self) -> Ipv4Cidr {
        Ipv4Cidr::from_parts(self.cluster_cidr.network(), NODE_MASK)
    }
}

/// `30000-32767`, as kube-apiserver's `--service-node-port-range`.
mod port_range {
    use std::ops::RangeInclusive;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(s: &str) -> Option<RangeInclusive<u16>> {
        let (lo, hi) = s.trim().split_once('-')?;
        let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        (lo >= 1 && lo <= hi).then_some(lo..=hi)
    }

    pub fn serialize<S: Serializer>(r: &RangeInclusive<u16>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}-{}", r.start(), r.end()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RangeInclusive<u16>, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid port range {s:?}")))
    }
}

/// `vxlan`, `host-gw` or `none`, as the flag spells them.
mod backend {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::net::overlay::Backend;

    pub fn serialize<S: Serializer>(b: &Option<Backend>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_str(&b.to_string()),
            None => s.serialize_str("none"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Backend>, D::Error> {
        let s = String::deserialize(d)?;
        if s == "none" {
            return Ok(None);
        }
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cluster: &str, service: &str, dns: Option<&str>) -> Result<ClusterConfig, PlanError> {
        ClusterConfig::new(
            cluster,
            service,
            dns.map(|d| d.parse().unwrap()),
            CLUSTER_DOMAIN,
            "30000-32767",
            Some(Backend::Vxlan),
        )
    }

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
        assert_eq!(plan("10.42.0.0/16", "10.43.0.0/16", None).unwrap(), c);
        assert_eq!(c.first_node_cidr().to_string(), "10.42.0.0/24");
    }

    #[test]
    fn a_plan_from_flags_is_checked() {
        let c = plan("10.60.0.0/14", "172.20.0.0/20", None).unwrap();
        assert_eq!(c.cluster_dns.to_string(), "172.20.0.10");
        assert_eq!(c.kubernetes_service_ip().to_string(), "172.20.0.1");
        assert_eq!(
            plan("10.60.0.0/16", "10.61.0.0/16", Some("10.61.0.53"))
                .unwrap()
                .cluster_dns
                .to_string(),
            "10.61.0.53"
        );
        let err = |c: &str, s: &str, d: Option<&str>| plan(c, s, d).unwrap_err().to_string();
        assert!(err("10.42.0.0/25", "10.43.0.0/16", None).contains("/8 to /24"));
        assert!(err("10.0.0.0/7", "10.43.0.0/16", None).contains("/8 to /24"));
        assert!(err("10.42.0.0/16", "10.32.0.0/11", None).contains("/12 to /28"));
        assert!(err("10.42.0.0/16", "10.43.0.0/29", None).contains("/12 to /28"));
        assert!(err("10.0.0.0/8", "10.43.0.0/16", None).contains("overlap"));
        assert!(err("10.42.0.1/16", "10.43.0.0/16", None).contains("did you mean 10.42.0.0/16"));
        assert!(err("10.42.0.0", "10.43.0.0/16", None).contains("--cluster-cidr"));
        for dns in ["10.43.0.1", "10.43.0.0", "10.43.255.255", "10.44.0.10"] {
            assert!(err("10.42.0.0/16", "10.43.0.0/16", Some(dns)).contains("--cluster-dns"));
        }
        let bad_domain = ClusterConfig::new(
            "10.42.0.0/16",
            "10.43.0.0/16",
            None,
            "Cluster_Local",
            "30000-32767",
            None,
        );
        assert!(matches!(bad_domain, Err(PlanError::Domain(_))));
        for ports in ["32767-30000", "0-10", "30000", "a-b"] {
            let e = ClusterConfig::new("10.42.0.0/16", "10.43.0.0/16", None, "x.y", ports, None);
            assert!(matches!(e, Err(PlanError::NodePorts(_))), "{ports}");
        }
    }

    #[test]
    fn agents_are_given_the_plan_as_json() {
        let c = ClusterConfig::new(
            "10.60.0.0/16",
            "10.61.0.0/16",
            None,
            "edge.test",
            "31000-31999",
            Some(Backend::HostGw),
        )
        .unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["clusterCidr"], "10.60.0.0/16");
        assert_eq!(json["nodePorts"], "31000-31999");
        assert_eq!(json["podNetwork"], "host-gw");
        assert_eq!(serde_json::from_value::<ClusterConfig>(json).unwrap(), c);
        let none = ClusterConfig {
            pod_network: None,
            dns: false,
            ..c.clone()
        };
        let json = serde_json::to_value(&none).unwrap();
        assert_eq!(json["podNetwork"], "none");
        assert_eq!(serde_json::from_value::<ClusterConfig>(json).unwrap(), none);
        // A record from before `dns` was kept: served.
        let mut old = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("dns");
        assert!(serde_json::from_value::<ClusterConfig>(old).unwrap().dns);
    }

    #[test]
    fn what_cannot_change_is_named_with_its_flag() {
        let made = ClusterConfig::default();
        assert!(made.changes_from(&made).is_empty());
        let now = ClusterConfig {
            cluster_dns: "10.43.0.53".parse().unwrap(),
            pod_network: None,
            dns: false,
            ..made.clone()
        };
        assert_eq!(
            now.changes_from(&made),
            [
                "--cluster-dns 10.43.0.10 (now 10.43.0.53)",
                "--pod-network vxlan (now none)"
            ]
        );
    }
}
