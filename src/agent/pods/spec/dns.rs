//! A pod's resolv.conf and /etc/hosts entries, as kubelet's DNS configurer
//! (pkg/kubelet/network/dns): by dnsPolicy, from the cluster DNS and the
//! node's resolv.conf (kubelet's `--resolv-conf`), with the pod's
//! dnsConfig merged in.

use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::PodSpec;

use super::{parse_ip, SpecError};
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
/// A resolv.conf bigger than this is not a resolv.conf: read no more.
const MAX_RESOLV_CONF: u64 = 64 * 1024;

/// The node's resolv.conf, as pods of dnsPolicy Default get it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDns {
    /// Its name servers, loopback ones included (a host-network pod
    /// reaches them; others skip them).
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl HostDns {
    /// Parsed as kubelet does: `nameserver` lines, the last `search` line
    /// (trailing dots trimmed, `.` dropped; `domain` lines are not read),
    /// `options` lines merged by name, the later winning.
    pub fn parse(text: &str) -> HostDns {
        let mut out = HostDns::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        out.servers.push(ip);
                    }
                }
                Some("search") => {
                    out.search = words
                        .filter(|w| *w != ".")
                        .map(|w| w.trim_end_matches('.').to_string())
                        .collect()
                }
                Some("options") => {
                    for o in words {
                        merge_option(&mut out.options, o.to_string());
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The file at `path`; None when it cannot be read (the engine's copy
    /// of /etc/resolv.conf is used then). When it lists only loopback
    /// servers (systemd-resolved's stub), systemd-resolved's own file is
    /// used instead if it has real ones, as k3s points kubelet at it.
    pub fn read(path: &Path) -> Option<HostDns> {
        let read = |p: &Path| {
            use std::io::Read;
            let mut text = String::new();
            std::fs::File::open(p)
                .ok()?
                .take(MAX_RESOLV_CONF)
                .read_to_string(&mut text)
                .ok()?;
            Some(HostDns::parse(&text))
        };
        let only_stubs =
            |h: &HostDns| !h.servers.is_empty() && h.servers.iter().all(|s| s.is_loopback());
        let host = read(path)?;
        if only_stubs(&host) {
            let resolved = read(Path::new(crate::agent::dns::upstream::RESOLVED_UPSTREAMS));
            if let Some(r) = resolved.filter(|r| !r.servers.is_empty() && !only_stubs(r)) {
                return Some(r);
            }
        }
        Some(host)
    }
}

/// `option` (`name` or `name:value`) into `options`, replacing one of the
/// same name.
fn merge_option(options: &mut Vec<String>, option: String) {
    let name = option.split(':').next().unwrap_or("").to_string();
    options.retain(|t| t.split(':').next() != Some(name.as_str()));
    options.push(option);
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_resolv_conf_as_the_resolver_reads_it() {
        let h = HostDns::parse(
            "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1 # first\nnameserver ::1\nnameserver 2001:db8::1\ndomain old.example\nsearch corp.example lab.example\noptions edns0\noptions trust-ad timeout:2\n",
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            h.servers,
            [
                ip("127.0.0.53"),
                ip("192.0.2.1"),
                ip("::1"),
                ip("2001:db8::1")
            ]
        );
        assert_eq!(h.search, ["corp.example", "lab.example"]);
        assert_eq!(h.options, ["edns0", "trust-ad", "timeout:2"]);
        // systemd-resolved's stub file: "." dropped, trailing dots trimmed,
        // options merged by name.
        let stub = HostDns::parse(
            "nameserver 127.0.0.53\nsearch . lan.\noptions timeout:1 edns0\noptions timeout:3\n",
        );
        assert_eq!(stub.search, ["lan"]);
        assert_eq!(stub.options, ["edns0", "timeout:3"]);
    }
}
