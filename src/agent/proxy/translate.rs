//! A Service and its EndpointSlices → what the proxy table is asked for
//! (`nft::svc::ServiceRules`). Pure: the endpoint choice is upstream's
//! (pkg/proxy/topology.go, CategorizeEndpoints):
//! - ready endpoints; when none is, those serving while terminating (so a
//!   rolling update's last pods still take traffic);
//! - with topology hints usable (the node has a zone, every chosen endpoint
//!   has hints, and one of them is for this zone), only the endpoints
//!   hinted for this zone;
//! - the Local policies take this node's endpoints, chosen the same way
//!   among them.
//!
//! IPv4 only: the pod network is IPv4 (DESIGN.md). Slices of another
//! address type, IPv6 cluster IPs and malformed addresses are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::health::HealthCheck;
use crate::net::nft::svc::{Endpoint, PortRules, ServiceRules};
use crate::net::nft::Proto;

/// The label that ties a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// A Service with this label belongs to another service proxy.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// The Service ClientIP affinity timeout when none is given (3 hours).
const DEFAULT_AFFINITY_SECS: u32 = 10800;

/// Where the proxy runs.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    pub name: String,
    /// `topology.kubernetes.io/zone` of the node.
    pub zone: Option<String>,
}

/// One endpoint of a slice, for one port.
#[derive(Debug, Clone)]
struct Candidate {
    ep: Endpoint,
    ready: bool,
    serving: bool,
    terminating: bool,
    local: bool,
    zones: Option<BTreeSet<String>>,
}

fn protocol(p: Option<&str>) -> Option<Proto> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(Proto::Tcp),
        "UDP" => Some(Proto::Udp),
        "SCTP" => Some(Proto::Sctp),
        _ => None,
    }
}

fn ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// The rules for `svc` given its slices; `None` when it has none (an
/// ExternalName Service, or a headless one with nothing external).
pub fn rules(svc: &Service, slices: &[&EndpointSlice], node: &NodeView) -> Option<ServiceRules> {
    let spec = svc.spec.as_ref()?;
    // Another proxy's (upstream's service-proxy-name): not ours to program.
    if svc
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME))
    {
        return None;
    }
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    if ty == "ExternalName" {
        return None;
    }
    let cluster_ip = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| *ip != "None")
        .and_then(ipv4);
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| ipv4(s))
        .collect();
    if ty == "LoadBalancer" {
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref().and_then(ipv4)),
        );
    }
    external_ips.sort();
    external_ips.dedup();
    let with_node_ports = matches!(ty, "NodePort" | "LoadBalancer");
    let prefer_close = spec.traffic_distribution.as_deref() == Some("PreferClose")
        || svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("service.kubernetes.io/topology-mode"))
            .is_some_and(|m| m.eq_ignore_ascii_case("auto"));

    let mut ports = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let Some(proto) = protocol(sp.protocol.as_deref()) else {
            continue;
        };
        let Ok(port) = u16::try_from(sp.port) else {
            continue;
        };
        let node_port = with_node_ports
            .then_some(sp.node_port)
            .flatten()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let candidates = candidates(slices, sp.name.as_deref().unwrap_or(""), proto, node);
        let cluster = choose(&candidates, prefer_close, node, false);
        let local = choose(&candidates, false, node, true);
        ports.push(PortRules {
            proto,
            port,
            node_port,
            cluster,
            local,
        });
    }
    if cluster_ip.is_none()
        && external_ips.is_empty()
        && ports.iter().all(|p| p.node_port.is_none())
    {
        return None;
    }
    let affinity_secs = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_SECS)
    });
    Some(ServiceRules {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        cluster_ip,
        external_ips,
        ports,
        external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        affinity_secs,
    })
}

/// The health check `svc` needs on this node: for a LoadBalancer Service
/// with `externalTrafficPolicy: Local` and a healthCheckNodePort, the
/// number of its ready endpoints here (distinct addresses, as upstream
/// counts them).
pub fn health_check(
    svc: &Service,
    slices: &[&EndpointSlice],
    node: &NodeView,
) -> Option<HealthCheck> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer")
        || spec.external_traffic_policy.as_deref() != Some("Local")
        || svc
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME))
    {
        return None;
    }
    let port = spec
        .health_check_node_port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)?;
    let local: BTreeSet<&str> = slices
        .iter()
        .filter(|s| s.address_type == "IPv4")
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.node_name.as_deref() == Some(node.name.as_str()))
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.addresses.first().map(String::as_str))
        .collect();
    Some(HealthCheck {
        port,
        local_endpoints: local.len(),
    })
}

/// Every endpoint of the slices for the port named `name` with `proto`,
/// once per address and port.
fn candidates(
    slices: &[&EndpointSlice],
    name: &str,
    proto: Proto,
    node: &NodeView,
) -> Vec<Candidate> {
    let mut out: BTreeMap<Endpoint, Candidate> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == name
                && protocol(p.protocol.as_deref()) == Some(proto)
        });
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for e in &slice.endpoints {
            // Upstream uses an endpoint's first address.
            let Some(ip) = e.addresses.first().and_then(|a| ipv4(a)) else {
                continue;
            };
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let candidate = Candidate {
                ep: Endpoint { ip, port },
                ready,
                // Unset serving means ready's value; unset terminating, false.
                serving: c.and_then(|c| c.serving).unwrap_or(ready),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                local: e.node_name.as_deref() == Some(node.name.as_str()),
                zones: e
                    .hints
                    .as_ref()
                    .and_then(|h| h.for_zones.as_ref())
                    .map(|z| z.iter().map(|z| z.name.clone()).collect()),
            };
            // A pod in two slices (one being replaced): the readier wins.
            match out.get(&candidate.ep) {
                Some(had) if had.ready || !candidate.ready => {}
                _ => {
                    out.insert(candidate.ep, candidate);
                }
            }
        }
    }
    out.into_values().collect()
}

/// The endpoints traffic goes to: ready ones, else serving-terminating
/// ones; only this node's for `local`; narrowed to this zone's hints when
/// they can be used.
fn choose(all: &[Candidate], topology: bool, node: &NodeView, local: bool) -> Vec<Endpoint> {
    let pool: Vec<&Candidate> = all.iter().filter(|c| !local || c.local).collect();
    let ready: Vec<&Candidate> = pool.iter().copied().filter(|c| c.ready).collect();
    let usable = if ready.is_empty() {
        pool.into_iter()
            .filter(|c| c.serving && c.terminating)
            .collect()
    } else {
        ready
    };
    let zoned = topology
        .then_some(node.zone.as_deref())
        .flatten()
        .filter(|zone| {
            usable.iter().all(|c| c.zones.is_some())
                && usable
                    .iter()
                    .any(|c| c.zones.as_ref().is_some_and(|z| z.contains(*zone)))
        });
    usable
        .into_iter()
        .filter(|c| match zoned {
            Some(zone) => c.zones.as_ref().is_some_and(|z| z.contains(zone)),
            None => true,
        })
        .map(|c| c.ep)
        .collect()
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
