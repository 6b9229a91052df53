//! A pod's resolv.conf and /etc/hosts entries, as kubelet's DNS configurer
//! (pkg/kubelet/network/dns): by dnsPolicy, from the cluster DNS and the
//! node's resolv.conf (kubelet's `--resolv-conf`), with the pod's
//! dnsConfig merged in.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::PodSpec;

use super::{parse_ip, SpecError};
use crate::agent::dns::upstream::merge_option;
pub use crate::agent::dns::upstream::HostDns;
use crate::runtime::container::containerspec::EtcFiles;

/// The cluster DNS, as kubelet's `--cluster-dns` and `--cluster-domain`.
#[derive(Debug, Clone)]
pub struct ClusterDns {
    pub server: IpAddr,
    pub domain: String,
}

/// kubelet's limits on a pod's resolv.conf (validation allows no more).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// kubelet's limit on the length of the search line's domains.
const MAX_SEARCH_CHARS: usize = 2048;

/// hostAliases and DNS, as kubelet's DNS configurer:
/// - ClusterFirst (and ClusterFirstWithHostNet) gets the cluster DNS, the
///   namespace's search path followed by the node's search domains, and
///   `ndots:5`;
/// - Default (and ClusterFirst on the host network, or with no cluster
///   DNS) gets the node's resolv.conf (`host`; none: the engine's copy of
///   /etc/resolv.conf), its loopback servers only on the host network;
/// - None takes dnsConfig alone.
///
/// dnsConfig's name servers and searches are appended for every policy
/// and its options merged by name (the pod's winning); then at most 3
/// name servers and 32 search domains of 2,048 characters in all.
pub(super) fn etc_files(
    spec: &PodSpec,
    namespace: &str,
    cluster: Option<&ClusterDns>,
    host: Option<&HostDns>,
) -> Result<EtcFiles, SpecError> {
    let mut hosts = Vec::new();
    for alias in spec.host_aliases.iter().flatten() {
        let ip = parse_ip("hostAliases", &alias.ip)?;
        hosts.extend(alias.hostnames.iter().flatten().map(|h| (h.clone(), ip)));
    }
    let mut etc = EtcFiles {
        hosts,
        ..EtcFiles::default()
    };
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    match (cluster_first, cluster) {
        (true, Some(dns)) => {
            let d = &dns.domain;
            etc.dns_servers.push(dns.server);
            etc.dns_search = vec![
                format!("{namespace}.svc.{d}"),
                format!("svc.{d}"),
                d.clone(),
            ];
            for s in host.iter().flat_map(|h| h.search.iter()) {
                if !etc.dns_search.contains(s) {
                    etc.dns_search.push(s.clone());
                }
            }
            etc.dns_options.push("ndots:5".to_string());
            etc.dns_exact = true;
        }
        _ if policy != "None" => {
            if let Some(h) = host {
                // Loopback servers only where they are reachable.
                etc.dns_servers = h
                    .servers
                    .iter()
                    .filter(|ip| host_network || !ip.is_loopback())
                    .copied()
                    .collect();
                etc.dns_search = h.search.clone();
                etc.dns_options = h.options.clone();
                etc.dns_exact = true;
            }
        }
        _ => etc.dns_exact = true,
    }
    if let Some(config) = &spec.dns_config {
        for ns in config.nameservers.iter().flatten() {
            let ip = parse_ip("dnsConfig.nameservers", ns)?;
            if !etc.dns_servers.contains(&ip) {
                etc.dns_servers.push(ip);
            }
        }
        for s in config.searches.iter().flatten() {
            if !etc.dns_search.contains(s) {
                etc.dns_search.push(s.clone());
            }
        }
        for o in config.options.iter().flatten() {
            let Some(name) = o.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let text = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            merge_option(&mut etc.dns_options, text);
        }
    }
    etc.dns_servers.truncate(MAX_NAMESERVERS);
    // As kubelet: the first domains that fit the count and the length.
    let mut chars = 0;
    let mut kept = 0;
    for s in &etc.dns_search {
        if kept == MAX_SEARCHES || chars + s.len() + usize::from(kept > 0) > MAX_SEARCH_CHARS {
            break;
        }
        chars += s.len() + usize::from(kept > 0);
        kept += 1;
    }
    etc.dns_search.truncate(kept);
    Ok(etc)
}
