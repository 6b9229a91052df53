//! The node bridge (`skiff0`): made once, with the gateway address, the
//! uplink's MTU and its owner in its alias; checked on every later use.

use std::fs;
use std::io;
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
        let gateway = self.cidr.gateway();
        let existing = rtnl.link_index(self.name)?;
        let addrs = rtnl.addresses()?;
        // A pod network that overlaps an address the node already has would
        // steal its traffic.
        for (index, ip, prefix) in &addrs {
            if ip.is_loopback() || Some(*index) == existing {
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
                    link: link_name(rtnl, *index),
                });
            }
        }
        if let Some(index) = existing {
            // The bridge's alias names the root that made it: a second root
            // in the same namespace would hand out the same addresses and
            // replace the first one's rules.
            let alias = rtnl.link(self.name)?.and_then(|l| {
                l.attributes.into_iter().find_map(|a| match a {
                    netlink_packet_route::link::LinkAttribute::IfAlias(s) => Some(s),
                    _ => None,
                })
            });
            if let Some(owner) = alias.filter(|o| *o != self.owner) {
                return Err(NetError::BridgeOwner {
                    bridge: self.name.to_string(),
                    owner: owner.strip_prefix("skiff:").unwrap_or(&owner).to_string(),
                });
            }
            let mine: Vec<_> = addrs.iter().filter(|(i, _, _)| *i == index).collect();
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
