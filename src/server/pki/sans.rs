//! Subject alternative names of the serving certificate.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::PkiError;

/// The ClusterIP of the `kubernetes` service (kept here for its users).
pub use crate::cluster::KUBERNETES_SERVICE_IP;

/// SANs every serving certificate carries: this host's name (from `gethostname`,
/// no NSS), every non-loopback address of its interfaces (IPv6 link-local
/// addresses are left out: they need a zone and cannot be matched), loopback,
/// `localhost`, the in-cluster names of the `kubernetes` service and its IP,
/// and the address of the pods' bridge.
pub fn default_sans(cluster: &crate::cluster::ClusterConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    if let Ok(host) = nix::unistd::gethostname() {
        if let Some(h) = host.to_str() {
            let h = h.trim().to_ascii_lowercase();
            if valid_dns_name(&h) {
                push(h);
            }
        }
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(sa) = ifa.address else { continue };
            let ip = if let Some(v4) = sa.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            if usable_host_ip(&ip) {
                push(ip.to_string());
            }
        }
    }
    for fixed in ["127.0.0.1", "::1", "localhost"] {
        push(fixed.to_string());
    }
    for name in cluster.kubernetes_service_names() {
        push(name);
    }
    push(cluster.kubernetes_service_ip().to_string());
    // The node's bridge: pods reach the API there when the node has no
    // other address than loopback (agent::service_env).
    push(cluster.first_node_cidr().gateway().to_string());
    out
}

fn usable_host_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// A set of SANs, IPs and DNS names kept apart (names compared lower-case).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct SanSet {
    pub ips: BTreeSet<IpAddr>,
    pub dns: BTreeSet<String>,
}

impl SanSet {
    /// Parses the wanted SANs; an entry that is neither an IP nor a DNS name is an error.
    pub fn parse(entries: &[String]) -> Result<SanSet, PkiError> {
        let mut set = SanSet::default();
        for raw in entries {
            let s = raw.trim();
            if let Ok(ip) = s.parse::<IpAddr>() {
                set.ips.insert(ip);
            } else if valid_dns_name(s) {
                set.dns.insert(s.to_ascii_lowercase());
            } else {
                return Err(PkiError::InvalidSan(raw.clone()));
            }
        }
        Ok(set)
    }

    /// Whether every entry of `wanted` is in `self`.
    pub fn covers(&self, wanted: &SanSet) -> bool {
        wanted.ips.is_subset(&self.ips) && wanted.dns.is_subset(&self.dns)
    }

    /// The entries as strings (IPs first), for rcgen.
    pub fn to_strings(&self) -> Vec<String> {
        self.ips
            .iter()
            .map(|ip| ip.to_string())
            .chain(self.dns.iter().cloned())
            .collect()
    }

    /// The SANs of a parsed certificate.
    pub fn from_cert(cert: &x509_parser::certificate::X509Certificate<'_>) -> SanSet {
        use x509_parser::extensions::GeneralName;
        let mut set = SanSet::default();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => {
                        set.dns.insert(d.to_ascii_lowercase());
                    }
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            set.ips.insert(IpAddr::V4(Ipv4Addr::from(a)));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            set.ips.insert(IpAddr::V6(Ipv6Addr::from(a)));
                        }
                    }
                    _ => {}
                }
            }
        }
        set
    }
}

/// Hostname syntax, leniently: labels of letters, digits, `-` and `_`
/// (plus a leading `*.` wildcard), 1–63 characters each, 253 in all.
fn valid_dns_name(s: &str) -> bool {
    let body = s.strip_prefix("*.").unwrap_or(s);
    !body.is_empty()
        && s.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
