//! Published ports (`-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`).

use std::fmt;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    /// Only this host address; None: every address of the node.
    pub host_ip: Option<Ipv4Addr>,
    /// 0 until a free one is picked for `-p CONTAINER_PORT` (`pick_free`).
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("invalid port mapping {spec:?}: {why} (expected [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/tcp|udp])")]
    Invalid { spec: String, why: String },
}

impl PublishedPort {
    pub fn parse(spec: &str) -> Result<PublishedPort, PortError> {
        let bad = |why: &str| PortError::Invalid {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let (ports, proto) = match spec.rsplit_once('/') {
            Some((p, "tcp")) => (p, Proto::Tcp),
            Some((p, "udp")) => (p, Proto::Udp),
            Some((_, other)) => return Err(bad(&format!("unknown protocol {other:?}"))),
            None => (spec, Proto::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, container_port) = match parts.as_slice() {
            // Docker's `-p 80`: any free host port.
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?;
                (Some(ip).filter(|ip| !ip.is_unspecified()), Some(*h), *c)
            }
            _ => return Err(bad("too many ':'")),
        };
        let port = |s: &str, what: &str| -> Result<u16, PortError> {
            match s.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(bad(&format!(
                    "{what} {s:?} is not a port number between 1 and 65535"
                ))),
            }
        };
        Ok(PublishedPort {
            host_ip,
            host_port: host_port
                .map(|h| port(h, "host port"))
                .transpose()?
                .unwrap_or(0),
            container_port: port(container_port, "container port")?,
            proto,
        })
    }

    /// Whether both would claim the same packets.
    pub fn conflicts(&self, other: &PublishedPort) -> bool {
        self.host_port != 0
            && self.proto == other.proto
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// The host ports picked for `-p CONTAINER_PORT`, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    /// Docker's range for ports it picks (Linux's default ephemeral range).
    pub const EPHEMERAL: PortRange = PortRange {
        from: 32768,
        to: 60999,
    };
}

/// A free host port for `p` (whose host port is 0): one in `range` that no
/// port in `taken` claims and that `host_free` says nothing on this node
/// holds now ([`bindable`] asks the kernel), tried from a random point of
/// the range so that two engines rarely race for the same.
pub fn pick_free(
    p: &PublishedPort,
    taken: &[PublishedPort],
    range: PortRange,
    host_free: impl Fn(&PublishedPort) -> bool,
) -> Option<u16> {
    if range.from > range.to {
        return None;
    }
    let span = u32::from(range.to - range.from) + 1;
    let start = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u32;
    (0..span)
        .map(|i| range.from + ((start + i) % span) as u16)
        .find(|&port| {
            let candidate = PublishedPort {
                host_port: port,
                ..p.clone()
            };
            !taken.iter().any(|t| t.conflicts(&candidate)) && host_free(&candidate)
        })
}

/// Whether `p`'s host address and port can be bound now.
pub fn bindable(p: &PublishedPort) -> bool {
    let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    match p.proto {
        Proto::Tcp => std::net::TcpListener::bind((ip, p.host_port)).is_ok(),
        Proto::Udp => std::net::UdpSocket::bind((ip, p.host_port)).is_ok(),
    }
}

impl fmt::Display for PublishedPort {
    /// Docker's `ps` form: `0.0.0.0:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port,
            self.container_port,
            self.proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms() {
        let p = PublishedPort::parse("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.proto),
            (None, 8080, 80, Proto::Tcp)
        );
        let p = PublishedPort::parse("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.proto, Proto::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:53->5353/udp");
        assert_eq!(PublishedPort::parse("0.0.0.0:1:2").unwrap().host_ip, None);
        let any = PublishedPort::parse("8080").unwrap();
        assert_eq!((any.host_port, any.container_port), (0, 8080));
        for bad in [
            "0:80",
            "70000:80",
            "8080:80/sctp",
            "a:b",
            "1:2:3:4",
            "x.y:1:2",
            "8080:-1",
        ] {
            let e = PublishedPort::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn conflicts() {
        let any = PublishedPort::parse("8080:80").unwrap();
        let lo = PublishedPort::parse("127.0.0.1:8080:81").unwrap();
        let other = PublishedPort::parse("10.0.0.1:8080:81").unwrap();
        let udp = PublishedPort::parse("8080:80/udp").unwrap();
        assert!(any.conflicts(&lo) && lo.conflicts(&any));
        assert!(!lo.conflicts(&other));
        assert!(!any.conflicts(&udp));
        // An unpicked port conflicts with nothing yet.
        let unpicked = PublishedPort::parse("80").unwrap();
        assert!(!unpicked.conflicts(&any) && !any.conflicts(&unpicked));
    }

    const R: PortRange = PortRange::EPHEMERAL;

    #[test]
    fn picks_a_free_port_in_range_avoiding_taken_ones() {
        let want = PublishedPort::parse("127.0.0.1:0:80").err();
        assert!(want.is_some(), "an explicit 0 is refused");
        let p = PublishedPort::parse("80").unwrap();
        let first = pick_free(&p, &[], R, bindable).unwrap();
        assert!((R.from..=R.to).contains(&first));
        let taken = PublishedPort {
            host_port: first,
            ..p.clone()
        };
        for _ in 0..20 {
            let again = pick_free(&p, std::slice::from_ref(&taken), R, bindable).unwrap();
            assert_ne!(again, first);
        }
    }

    fn on(ip: Option<[u8; 4]>, port: u16, proto: Proto) -> PublishedPort {
        PublishedPort {
            host_ip: ip.map(Ipv4Addr::from),
            host_port: port,
            container_port: 80,
            proto,
        }
    }

    #[test]
    fn picking_honours_the_range_and_every_conflict() {
        let small = PortRange {
            from: 5000,
            to: 5003,
        };
        let want = on(Some([127, 0, 0, 1]), 0, Proto::Tcp);
        let taken = [
            on(None, 5000, Proto::Tcp),                 // wildcard: conflicts
            on(Some([127, 0, 0, 1]), 5001, Proto::Tcp), // same address
            on(Some([10, 0, 0, 1]), 5002, Proto::Tcp),  // another address: free
            on(None, 5003, Proto::Udp),                 // another protocol: free
        ];
        for _ in 0..50 {
            let got = pick_free(&want, &taken, small, |_| true).unwrap();
            assert!(got == 5002 || got == 5003, "{got}");
        }
        // What the host holds counts too.
        let got = pick_free(&want, &taken, small, |c| c.host_port != 5002);
        assert_eq!(got, Some(5003));
    }

    #[test]
    fn an_exhausted_range_picks_nothing() {
        let want = on(None, 0, Proto::Tcp);
        let small = PortRange {
            from: 6000,
            to: 6001,
        };
        let taken = [on(None, 6000, Proto::Tcp), on(None, 6001, Proto::Tcp)];
        assert_eq!(pick_free(&want, &taken, small, |_| true), None);
        assert_eq!(pick_free(&want, &[], small, |_| false), None);
        let one = PortRange {
            from: 7000,
            to: 7000,
        };
        assert_eq!(pick_free(&want, &[], one, |_| true), Some(7000));
        let empty = PortRange {
            from: 7001,
            to: 7000,
        };
        assert_eq!(pick_free(&want, &[], empty, |_| true), None);
        let whole = PortRange {
            from: 1,
            to: u16::MAX,
        };
        assert!(pick_free(&want, &[], whole, |c| c.host_port == u16::MAX).is_some());
    }
}
