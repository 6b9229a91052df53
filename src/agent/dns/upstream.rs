//! The node's resolvers, which names outside the cluster are forwarded to:
//! the `nameserver` lines of resolv.conf (`--resolv-conf`, the host's by
//! default), loopback ones skipped (a stub such as systemd-resolved's
//! 127.0.0.53 would send pods' queries back to the node's own cache, and
//! from a pod it is not reachable anyway). When only such a stub is
//! listed, systemd-resolved's own list of upstreams is read instead, as
//! kubelet and k3s do.

use std::net::IpAddr;
use std::path::Path;

/// systemd-resolved's list of the servers it uses itself.
pub const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// The non-loopback name servers of a resolv.conf text, and whether a
/// loopback one was skipped.
pub fn parse(text: &str) -> (Vec<IpAddr>, bool) {
    let mut out = Vec::new();
    let mut skipped = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        // An IPv6 address may carry a zone (fe80::1%eth0): not usable here.
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        if ip.is_loopback() || ip.is_unspecified() {
            skipped = true;
        } else if !out.contains(&ip) {
            out.push(ip);
        }
    }
    (out, skipped)
}

/// The upstreams from `path`, falling back to systemd-resolved's list when
/// `path` names only loopback stubs.
pub fn from_file(path: &Path) -> Vec<IpAddr> {
    let (servers, skipped) = parse(&std::fs::read_to_string(path).unwrap_or_default());
    if servers.is_empty() && skipped {
        let (resolved, _) = parse(&std::fs::read_to_string(RESOLVED_UPSTREAMS).unwrap_or_default());
        return resolved;
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_stubs_are_skipped() {
        let (s, skipped) = parse(
            "# generated\nnameserver 127.0.0.53\nsearch lan\nnameserver 192.0.2.1\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\noptions edns0\n",
        );
        assert_eq!(
            s,
            [
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
        assert!(skipped);
        assert_eq!(parse("nameserver ::1\n"), (Vec::new(), true));
        assert_eq!(parse(""), (Vec::new(), false));
    }
}
