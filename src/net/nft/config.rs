//! What the caller asks for, and the checks made before the kernel sees it.

use std::net::Ipv4Addr;

use super::error::NftError;
use crate::net::cidr::Ipv4Cidr;

/// Interface names are at most IFNAMSIZ bytes including the trailing NUL.
pub(crate) const IFNAMSIZ: usize = 16;

/// Everything table `ip skiff` is built from; `apply` turns it into the
/// whole table, so the caller always passes the complete wanted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The node's pod subnet, e.g. 10.42.0.0/24 (host bits are ignored).
    pub pod_cidr: Ipv4Cidr,
    /// The pod bridge, e.g. `skiff0`.
    pub bridge: String,
    /// The pod subnets of the whole cluster when this node is one of a
    /// cluster's: traffic between pods of different nodes keeps its
    /// addresses, and only what leaves the cluster is masqueraded. None:
    /// only the node's own subnet is spared.
    pub cluster_cidr: Option<Ipv4Cidr>,
    pub ports: Vec<PortMapping>,
}

/// A published port: traffic to the host's `host_ip:host_port` goes to
/// `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// `None` (or 0.0.0.0) publishes on every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub proto: Proto,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    /// Service ports only: the engine publishes tcp and udp.
    Sctp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number, as `meta l4proto` sees it.
    pub(crate) fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }
}

impl PortMapping {
    /// The address the rule matches on; 0.0.0.0 means any, as for Docker.
    pub(crate) fn match_ip(&self) -> Option<Ipv4Addr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }

    fn describe(&self) -> String {
        let host = self
            .match_ip()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "*".into());
        format!(
            "{host}:{}/{} -> {}:{}",
            self.host_port,
            self.proto.name(),
            self.container_ip,
            self.container_port
        )
    }
}

/// Rejects what the kernel would take but get wrong, and what it would
/// refuse with an errno that does not say which field was bad.
pub(crate) fn validate(cfg: &Config) -> Result<(), NftError> {
    let bad = |msg: String| Err(NftError::InvalidConfig(msg));
    if cfg.pod_cidr.prefix() == 0 {
        return bad(format!(
            "pod CIDR {} covers every address; masquerade rules would never match",
            cfg.pod_cidr
        ));
    }
    validate_ifname(&cfg.bridge)?;
    for (i, p) in cfg.ports.iter().enumerate() {
        if p.host_port == 0 || p.container_port == 0 {
            return bad(format!("port mapping {}: port 0", p.describe()));
        }
        if p.container_ip.is_unspecified() || p.container_ip.is_broadcast() {
            return bad(format!(
                "port mapping {}: {} is not a container address",
                p.describe(),
                p.container_ip
            ));
        }
        // A wildcard and a specific address on one port would both claim the
        // same packets; the first rule would silently win.
        for q in &cfg.ports[..i] {
            let same_port = q.host_port == p.host_port && q.proto == p.proto;
            let overlap = match (q.match_ip(), p.match_ip()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if same_port && overlap {
                return bad(format!(
                    "port mappings {} and {} publish the same host port",
                    q.describe(),
                    p.describe()
                ));
            }
        }
    }
    Ok(())
}

/// The kernel's dev_valid_name(): at most IFNAMSIZ-1 bytes, not "." or "..",
/// no '/', ':' or whitespace.
fn validate_ifname(name: &str) -> Result<(), NftError> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name.len() >= IFNAMSIZ {
        Some("is longer than 15 bytes (IFNAMSIZ)")
    } else if name == "." || name == ".." {
        Some("is not a valid interface name")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        Some("contains '/', ':', NUL or whitespace")
    } else {
        None
    };
    match why {
        Some(why) => Err(NftError::InvalidConfig(format!(
            "bridge name {name:?} {why}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            pod_cidr: "10.42.0.0/24".parse().unwrap(),
            cluster_cidr: None,
            bridge: "skiff0".into(),
            ports: vec![],
        }
    }

    fn port(host_ip: Option<[u8; 4]>, host_port: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_ip: host_ip.map(Ipv4Addr::from),
            host_port,
            proto,
            container_ip: Ipv4Addr::new(10, 42, 0, 5),
            container_port: 80,
        }
    }

    #[test]
    fn accepts_a_normal_config() {
        let mut c = cfg();
        c.ports = vec![
            port(None, 8080, Proto::Tcp),
            port(None, 8080, Proto::Udp),
            port(Some([192, 168, 1, 2]), 9090, Proto::Tcp),
            port(Some([192, 168, 1, 3]), 9090, Proto::Tcp),
        ];
        validate(&c).unwrap();
    }

    #[test]
    fn rejects_bad_bridge_names() {
        for name in [
            "",
            "sixteen-chars-xx",
            "a/b",
            "a b",
            "a:b",
            ".",
            "..",
            "a\0",
        ] {
            let mut c = cfg();
            c.bridge = name.into();
            let e = validate(&c).unwrap_err();
            assert!(matches!(e, NftError::InvalidConfig(_)), "{name:?}: {e}");
        }
        let mut c = cfg();
        c.bridge = "fifteen-chars-x".into();
        validate(&c).unwrap();
    }

    #[test]
    fn rejects_overlapping_ports() {
        for (a, b) in [
            (None, None),
            (None, Some([1, 2, 3, 4])),
            (Some([1, 2, 3, 4]), None),
            (Some([1, 2, 3, 4]), Some([1, 2, 3, 4])),
            (Some([0, 0, 0, 0]), Some([1, 2, 3, 4])),
        ] {
            let mut c = cfg();
            c.ports = vec![port(a, 80, Proto::Tcp), port(b, 80, Proto::Tcp)];
            assert!(validate(&c).is_err(), "{a:?} {b:?}");
        }
    }

    #[test]
    fn rejects_zero_ports_and_addresses() {
        let mut c = cfg();
        c.ports = vec![port(None, 0, Proto::Tcp)];
        assert!(validate(&c).is_err());
        let mut p = port(None, 80, Proto::Tcp);
        p.container_ip = Ipv4Addr::UNSPECIFIED;
        c.ports = vec![p];
        assert!(validate(&c).is_err());
        let mut c = cfg();
        c.pod_cidr = "0.0.0.0/0".parse().unwrap();
        assert!(validate(&c).is_err());
    }
}
