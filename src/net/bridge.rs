//! The node bridge (`skiff0`): made once, with the gateway address, the
//! uplink's MTU and its owner in its alias; checked on every later use.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec};

use super::cidr::Ipv4Cidr;
use super::error::{io_err, NetError};
use super::rtnl::{Rtnl, RtnlError};

pub(super) struct Bridge<'a> {
    pub name: &'a str,
    pub cidr: Ipv4Cidr,
    /// The alias that names the root owning the bridge (`owner_tag`).
    pub owner: String,
}

impl Bridge<'_> {
    /// The bridge with the gateway address, up; created on first use.
    pub(super) fn ensure(&self, rtnl: &mut Rtnl) -> Result<u32, NetError> {
        let existing = rtnl.link_index(self.name)?;
        let addrs = rtnl.addresses()?;
        let alias = match existing {
            Some(_) => rtnl.link(self.name)?.and_then(|l| {
                l.attributes.into_iter().find_map(|a| match a {
                    netlink_packet_route::link::LinkAttribute::IfAlias(s) => Some(s),
                    _ => None,
                })
            }),
            None => None,
        };
        self.check(Found {
            index: existing,
            addrs: &addrs,
            alias: alias.as_deref(),
            name_of: &mut |index| link_name(rtnl, index),
        })?;
        let gateway = self.cidr.gateway();
        if let Some(index) = existing {
            rtnl.set_up(self.name, index)?;
            enable_forwarding(self.name)?;
            return Ok(index);
        }
        let mut bridge = LinkBridge::new(self.name);
        if let Some(mtu) = rtnl.uplink_mtu()? {
            bridge = bridge.mtu(mtu);
        }
        match rtnl.add_link(&format!("bridge {}", self.name), bridge.build()) {
            Ok(()) => {}
            // Another skiff made it at the same moment.
            Err(e) if e.errno() == Some(nix::libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let index = rtnl.link_index(self.name)?.ok_or_else(|| {
            NetError::Rtnl(RtnlError {
                op: format!("find bridge {}", self.name),
                source: io::Error::from_raw_os_error(nix::libc::ENODEV),
            })
        })?;
        // The kernel ignores an alias given at creation.
        rtnl.set_link(
            &format!("{} alias", self.name),
            LinkMessageBuilder::<LinkUnspec>::new()
                .index(index)
                .alias(self.owner.clone())
                .build(),
        )?;
        rtnl.add_address(index, gateway, self.cidr.prefix())?;
        rtnl.set_up(self.name, index)?;
        enable_forwarding(self.name)?;
        Ok(index)
    }
    /// Whether the node's links allow this bridge: the pod network overlaps
    /// no address the node has, and an existing bridge is this root's, with
    /// the gateway address. Pure, so every refusal is unit-tested.
    fn check(&self, found: Found<'_>) -> Result<(), NetError> {
        let gateway = self.cidr.gateway();
        // A pod network that overlaps an address the node already has would
        // steal its traffic.
        for (index, ip, prefix) in found.addrs {
            if ip.is_loopback() || Some(*index) == found.index {
                continue;
            }
            let net = Ipv4Cidr::new(*ip, *prefix).map_err(|e| NetError::Corrupt {
                path: PathBuf::from("/proc/net"),
                why: e.to_string(),
            })?;
            if net.overlaps(&self.cidr) {
                return Err(NetError::Overlap {
                    cidr: self.cidr,
                    addr: *ip,
                    prefix: *prefix,
                    link: (found.name_of)(*index),
                });
            }
        }
        let Some(index) = found.index else {
            return Ok(());
        };
        // The bridge's alias names the root that made it: a second root in
        // the same namespace would hand out the same addresses and replace
        // the first one's rules.
        if let Some(owner) = found.alias.filter(|o| *o != self.owner) {
            return Err(NetError::BridgeOwner {
                bridge: self.name.to_string(),
                owner: owner.strip_prefix("skiff:").unwrap_or(owner).to_string(),
            });
        }
        let mine: Vec<_> = found.addrs.iter().filter(|(i, _, _)| *i == index).collect();
        if !mine
            .iter()
            .any(|(_, ip, p)| *ip == gateway && *p == self.cidr.prefix())
        {
            return Err(NetError::BridgeMismatch {
                bridge: self.name.to_string(),
                found: if mine.is_empty() {
                    "no IPv4 address".into()
                } else {
                    mine.iter()
                        .map(|(_, ip, p)| format!("{ip}/{p}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                expected: format!("{gateway}/{}", self.cidr.prefix()),
            });
        }
        Ok(())
    }
}

/// What the node has, as `Bridge::check` needs it.
struct Found<'a> {
    /// The bridge's link index, if it exists.
    index: Option<u32>,
    /// Every IPv4 address: (link index, address, prefix).
    addrs: &'a [(u32, Ipv4Addr, u8)],
    /// The bridge's alias.
    alias: Option<&'a str>,
    /// A link's name, for messages.
    name_of: &'a mut dyn FnMut(u32) -> String,
}

/// What the bridge's alias says: `skiff:<root>`.
pub(super) fn owner_tag(state: &Path) -> String {
    let root = state.parent().unwrap_or(state);
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let tag = format!("skiff:{}", root.display());
    // An interface alias holds at most 255 bytes.
    if tag.len() <= 255 {
        return tag;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("skiff:sha256:{hex}")
}

fn link_name(rtnl: &mut Rtnl, index: u32) -> String {
    rtnl.link_name(index)
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("link {index}"))
}

/// Routing between the bridge and the uplink, and DNAT of localhost to the
/// bridge (published ports reached as 127.0.0.1 on the node).
fn enable_forwarding(bridge: &str) -> Result<(), NetError> {
    for (path, value) in [
        ("/proc/sys/net/ipv4/ip_forward".to_string(), "1"),
        (
            format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
            "1",
        ),
    ] {
        let current = fs::read_to_string(&path).map_err(io_err(Path::new(&path)))?;
        if current.trim() != value {
            fs::write(&path, value).map_err(io_err(Path::new(&path)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "skiff:/var/lib/skiff";

    fn bridge(cidr: &str) -> Bridge<'static> {
        Bridge {
            name: "skiff0",
            cidr: cidr.parse().unwrap(),
            owner: ME.into(),
        }
    }

    fn check(
        b: &Bridge<'_>,
        index: Option<u32>,
        addrs: &[(u32, [u8; 4], u8)],
        alias: Option<&str>,
    ) -> Result<(), NetError> {
        let addrs: Vec<_> = addrs
            .iter()
            .map(|(i, ip, p)| (*i, Ipv4Addr::from(*ip), *p))
            .collect();
        b.check(Found {
            index,
            addrs: &addrs,
            alias,
            name_of: &mut |i| format!("link{i}"),
        })
    }

    #[test]
    fn a_new_bridge_needs_a_subnet_no_link_has() {
        let b = bridge("10.42.0.0/24");
        let lo = (1, [127, 0, 0, 1], 8);
        check(&b, None, &[lo, (2, [192, 168, 1, 5], 24)], None).unwrap();
        for (addr, prefix) in [
            ([10, 42, 0, 9], 24),
            ([10, 0, 0, 1], 8),
            ([10, 42, 0, 130], 25),
        ] {
            let e = check(&b, None, &[lo, (2, addr, prefix)], None).unwrap_err();
            assert!(matches!(e, NetError::Overlap { .. }), "{e}");
            let s = e.to_string();
            assert!(s.contains("link2") && s.contains("--node-cidr"), "{s}");
        }
    }

    #[test]
    fn an_existing_bridge_must_be_ours_with_the_gateway() {
        let b = bridge("10.42.0.0/24");
        let gw = (3, [10, 42, 0, 1], 24);
        // Its own address is no overlap.
        check(&b, Some(3), &[gw], Some(ME)).unwrap();
        // Made before aliases were set: taken as ours.
        check(&b, Some(3), &[gw], None).unwrap();
        let e = check(&b, Some(3), &[gw], Some("skiff:/srv/other")).unwrap_err();
        assert!(e.to_string().contains("--root /srv/other"), "{e}");
        for (addrs, found) in [
            (vec![], "no IPv4 address"),
            (vec![(3, [10, 42, 0, 1], 16)], "10.42.0.1/16"),
            (vec![(3, [10, 42, 0, 2], 24)], "10.42.0.2/24"),
        ] {
            let e = check(&b, Some(3), &addrs, Some(ME)).unwrap_err();
            assert!(matches!(e, NetError::BridgeMismatch { .. }), "{e}");
            assert!(e.to_string().contains(found), "{e}");
        }
    }
}
