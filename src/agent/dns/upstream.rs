//! The node's resolv.conf (`--resolv-conf`, the host's by default), read
//! once for both its users: pods of dnsPolicy Default (and the search
//! domains of ClusterFirst ones) get it, and the cluster DNS forwards the
//! names outside the cluster to its usable name servers (loopback ones
//! skipped: a stub such as systemd-resolved's 127.0.0.53 would send pods'
//! queries back to the node's own cache, and from a pod it is not
//! reachable anyway). When it lists only such stubs, systemd-resolved's own
//! file is read instead, as kubelet and k3s do.

use std::net::IpAddr;
use std::path::Path;

/// systemd-resolved's list of the servers it uses itself.
pub const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";
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
        let only_stubs = |h: &HostDns| !h.servers.is_empty() && h.upstreams().is_empty();
        let host = read(path)?;
        if only_stubs(&host) {
            let resolved = read(Path::new(RESOLVED_UPSTREAMS));
            if let Some(r) = resolved.filter(|r| !r.upstreams().is_empty()) {
                return Some(r);
            }
        }
        Some(host)
    }

    /// Its servers a pod or the cluster DNS can use: not loopback (a stub
    /// such as systemd-resolved's sends back to the node's own cache, and
    /// a pod does not reach it), not unspecified; each once.
    pub fn upstreams(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in &self.servers {
            if !ip.is_loopback() && !ip.is_unspecified() && !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }
}

/// `option` (`name` or `name:value`) into `options`, replacing one of the
/// same name.
pub fn merge_option(options: &mut Vec<String>, option: String) {
    let name = option.split(':').next().unwrap_or("").to_string();
    options.retain(|t| t.split(':').next() != Some(name.as_str()));
    options.push(option);
}

/// The upstreams from `path` (or systemd-resolved's list when `path` names
/// only loopback stubs); none when it cannot be read.
pub fn from_file(path: &Path) -> Vec<IpAddr> {
    HostDns::read(path)
        .map(|h| h.upstreams())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usable name servers of a resolv.conf text, and whether an unusable
    /// one (a loopback stub) was skipped.
    fn parse(text: &str) -> (Vec<IpAddr>, bool) {
        let h = HostDns::parse(text);
        let usable = h.upstreams();
        let skipped = h.servers.iter().any(|ip| !usable.contains(ip));
        (usable, skipped)
    }

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
