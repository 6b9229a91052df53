//! IPv4 networks in CIDR notation (`10.42.0.0/24`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid IPv4 CIDR {0:?}: expected ADDRESS/PREFIX such as 10.42.0.0/24")]
pub struct CidrError(String);

impl Ipv4Cidr {
    /// 127.0.0.0/8.
    pub const LOOPBACK: Ipv4Cidr = Ipv4Cidr {
        addr: Ipv4Addr::new(127, 0, 0, 0),
        prefix: 8,
    };

    /// The network `addr/prefix` (host bits cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Cidr, CidrError> {
        if prefix > 32 {
            return Err(CidrError(format!("{addr}/{prefix}")));
        }
        Ok(Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// `new` for constants: a prefix past 32 is taken as 32.
    pub const fn from_parts(addr: Ipv4Addr, prefix: u8) -> Ipv4Cidr {
        let prefix = if prefix > 32 { 32 } else { prefix };
        Ipv4Cidr {
            addr: Ipv4Addr::from_bits(addr.to_bits() & mask(prefix)),
            prefix,
        }
    }

    pub const fn network(&self) -> Ipv4Addr {
        self.addr
    }

    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask (255.255.255.0 for /24).
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `n`th address of the network (0 is the network address itself).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// Number of addresses, including network and broadcast.
    pub fn size(&self) -> u32 {
        if self.prefix == 0 {
            u32::MAX
        } else {
            1u32 << (32 - self.prefix)
        }
    }

    /// The first usable address: the bridge's gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }
}

const fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ipv4Cidr::new(addr, prefix)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(c: Ipv4Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let c: Ipv4Cidr = "10.42.0.7/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.42.0.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 0, 1));
        assert_eq!(c.size(), 256);
        assert!(c.contains(Ipv4Addr::new(10, 42, 0, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 42, 1, 0)));
        for bad in ["10.42.0.0", "10.42.0.0/33", "x/24", "10.42.0.0/-1", ""] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap() {
        let a: Ipv4Cidr = "10.42.0.0/24".parse().unwrap();
        let b: Ipv4Cidr = "10.0.0.0/8".parse().unwrap();
        let c: Ipv4Cidr = "10.43.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
