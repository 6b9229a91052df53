//! The node bridge (`skiff0`): made once, with the gateway address, the
//! uplink's MTU and its owner in its alias; checked on every later use.
//! Its kernel calls go through `Links` (links.rs), so making it, and
//! undoing a half-made one, are unit-tested against `FakeLinks`.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::cidr::Ipv4Cidr;
use super::error::NetError;
use super::links::Links;
use super::rtnl::RtnlError;

pub(super) struct Bridge<'a> {
    pub name: &'a str,
    pub cidr: Ipv4Cidr,
    /// The alias that names the root owning the bridge (`owner_tag`).
    pub owner: String,
    /// The MTU a new bridge gets (None: the uplink's). A bridge that
    /// exists keeps its own.
    pub mtu: Option<u32>,
}

impl Bridge<'_> {
    /// The bridge with the gateway address, up; created on first use. A
    /// bridge this call created is deleted again if a later step fails:
    /// left without its address, every later use would refuse it.
    pub(super) fn ensure(&self, links: &mut dyn Links) -> Result<u32, NetError> {
        let existing = links.link_index(self.name)?;
        let addrs = links.addresses()?;
        let alias = match existing {
            Some(_) => links.link_alias(self.name)?,
            None => None,
        };
        self.check(Found {
            index: existing,
            addrs: &addrs,
            alias: alias.as_deref(),
            name_of: &mut |index| link_name(links, index),
        })?;
        if let Some(index) = existing {
            links.set_up(self.name, index)?;
            enable_forwarding(links, self.name)?;
            return Ok(index);
        }
        let mtu = match self.mtu {
            Some(m) => Some(m),
            None => links.uplink_mtu()?,
        };
        let made = match links.add_bridge(self.name, mtu) {
            Ok(()) => true,
            // Another skiff made it at the same moment; it finishes it.
            Err(NetError::Rtnl(e)) if e.errno() == Some(nix::libc::EEXIST) => false,
            Err(e) => return Err(e),
        };
        let result = self.finish(links);
        if let (Err(_), true) = (&result, made) {
            let undo = match links.link_index(self.name) {
                Ok(Some(index)) => links.del_link(self.name, index),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = undo {
                tracing::warn!("{e}");
            }
        }
        result
    }

    /// A new bridge's alias, address, state and sysctls.
    fn finish(&self, links: &mut dyn Links) -> Result<u32, NetError> {
        let index = links.link_index(self.name)?.ok_or_else(|| {
            NetError::Rtnl(RtnlError {
                op: format!("find bridge {}", self.name),
                source: io::Error::from_raw_os_error(nix::libc::ENODEV),
            })
        })?;
        // The kernel ignores an alias given at creation.
        links.set_alias(self.name, index, &self.owner)?;
        links.add_address(index, self.cidr.gateway(), self.cidr.prefix())?;
        links.set_up(self.name, index)?;
        enable_forwarding(links, self.name)?;
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
            // The pod network's VXLAN device holds the subnet's network
            // address as a /32 (net::overlay, as flannel's): the other
            // nodes' traffic comes from it, it steals nothing.
            let overlay_vtep = *prefix == 32
                && *ip == self.cidr.network()
                && (found.name_of)(*index) == crate::net::overlay::VXLAN_DEVICE;
            if net.overlaps(&self.cidr) && !overlay_vtep {
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

fn link_name(links: &mut dyn Links, index: u32) -> String {
    links
        .link_name(index)
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("link {index}"))
}

/// Routing between the bridge and the uplink, and DNAT of localhost to the
/// bridge (published ports reached as 127.0.0.1 on the node).
fn enable_forwarding(links: &mut dyn Links, bridge: &str) -> Result<(), NetError> {
    links.sysctl("net/ipv4/ip_forward", "1")?;
    links.sysctl(&format!("net/ipv4/conf/{bridge}/route_localnet"), "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::links_fake::FakeLinks;

    const ME: &str = "skiff:/var/lib/skiff";

    fn bridge(cidr: &str) -> Bridge<'static> {
        Bridge {
            name: "skiff0",
            cidr: cidr.parse().unwrap(),
            owner: ME.into(),
            mtu: None,
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

    const MADE: &[&str] = &[
        "link_index skiff0",
        "addresses",
        "uplink_mtu",
        "add_bridge skiff0 mtu Some(1500)",
        "link_index skiff0",
        "set_alias skiff0 skiff:/var/lib/skiff",
        "add_address 10.42.0.1/24",
        "set_up skiff0",
        "sysctl net/ipv4/ip_forward=1",
        "sysctl net/ipv4/conf/skiff0/route_localnet=1",
    ];

    #[test]
    fn ensure_makes_the_bridge_once_then_finds_it() {
        let b = bridge("10.42.0.0/24");
        let mut l = FakeLinks::default();
        let index = b.ensure(&mut l).unwrap();
        assert_eq!(l.calls, MADE);
        assert_eq!(l.links.get("skiff0"), Some(&index));
        assert_eq!(l.aliases.get("skiff0").map(String::as_str), Some(ME));
        assert_eq!(l.addrs, [(index, Ipv4Addr::new(10, 42, 0, 1), 24)]);
        assert_eq!(l.sysctls.len(), 2);

        l.calls.clear();
        assert_eq!(b.ensure(&mut l).unwrap(), index);
        assert_eq!(
            l.calls,
            [
                "link_index skiff0",
                "addresses",
                "link_alias skiff0",
                "set_up skiff0",
                "sysctl net/ipv4/ip_forward=1",
                "sysctl net/ipv4/conf/skiff0/route_localnet=1",
            ]
        );
    }

    /// A bridge left without its alias or address (a step after its
    /// creation failed) was refused by every later use ("has no IPv4
    /// address") until removed by hand. FakeLinks makes the step fail: the
    /// kernel has no way to fail it on demand.
    #[test]
    fn a_bridge_whose_setup_fails_is_deleted_and_made_again_next_time() {
        let b = bridge("10.42.0.0/24");
        // From the alias on (the lookup after creation reads as the one
        // before it, which FakeLinks would fail instead).
        for step in &MADE[5..] {
            let mut l = FakeLinks::default();
            l.fail = Some(step.to_string());
            b.ensure(&mut l).expect_err(step);
            let left = l.links.contains_key("skiff0");
            let undo = l.calls[l.calls.len() - 2..].to_vec();
            b.ensure(&mut l)
                .unwrap_or_else(|e| panic!("{step}, then: {e}"));
            assert!(!left, "{step}: bridge left");
            assert_eq!(undo, ["link_index skiff0", "del_link skiff0"], "{step}");
        }
    }

    #[test]
    fn a_bridge_that_was_there_is_not_deleted_when_its_use_fails() {
        let b = bridge("10.42.0.0/24");
        let mut l = FakeLinks::default();
        b.ensure(&mut l).unwrap();
        l.fail = Some("sysctl net/ipv4/ip_forward=1".into());
        b.ensure(&mut l).unwrap_err();
        assert!(l.links.contains_key("skiff0"));
        assert!(!l.calls.iter().any(|c| c.starts_with("del_link")));
    }
}
