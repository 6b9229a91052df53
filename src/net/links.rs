//! The link, address, route, namespace and sysctl calls the node bridge
//! (bridge.rs) and a container's plumbing (veth.rs) are made of, as a
//! trait: `Rtnl` does them on the kernel, and `FakeLinks` (links_fake.rs,
//! tests only) records them, so the order of the steps and the undoing of a
//! failed one are unit-tested without root.
//!
//! Finer than `Kernel` (kernel.rs) on purpose: `Kernel` is the seam of
//! host.rs (which container has what), this one is the seam of bridge.rs
//! and veth.rs (which link exists where); each fake models only what its
//! caller decides, so a host test does not depend on link details.

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::error::{io_err, NetError};
use super::netns;
use super::rtnl::Rtnl;

/// A veth pair to create: `host` on the bridge (`master`), up; `peer` moved
/// into the namespace pinned at `netns` and named there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VethPair<'a> {
    pub host: &'a str,
    pub peer: &'a str,
    pub master: u32,
    pub mtu: Option<u32>,
    pub netns: &'a Path,
}

/// What runs inside another namespace (`Links::in_netns`).
pub(crate) type InNetns<'a> = dyn FnMut(&mut dyn Links) -> Result<(), NetError> + Send + 'a;

/// Calls on the links of one network namespace (the one the value was
/// opened in), and on namespace handles.
pub(crate) trait Links {
    /// The index of link `name`, if it exists.
    fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError>;
    /// The MTU of link `name`, if it exists and has one.
    fn link_mtu(&mut self, name: &str) -> Result<Option<u32>, NetError>;
    /// The alias of link `name`, if it exists and has one.
    fn link_alias(&mut self, name: &str) -> Result<Option<String>, NetError>;
    /// The name of link `index`, if it exists.
    fn link_name(&mut self, index: u32) -> Result<Option<String>, NetError>;
    /// Every IPv4 address: (link index, address, prefix length).
    fn addresses(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>, NetError>;
    /// The MTU of the link the default route leaves by, if any.
    fn uplink_mtu(&mut self) -> Result<Option<u32>, NetError>;
    /// Create bridge `name`; fails with EEXIST if a link of that name exists.
    fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<(), NetError>;
    fn set_alias(&mut self, name: &str, index: u32, alias: &str) -> Result<(), NetError>;
    /// Write `value` to /proc/sys/`key` unless it holds it already.
    fn sysctl(&mut self, key: &str, value: &str) -> Result<(), NetError>;
    /// Create the pair; fails if `v.host` exists.
    fn add_veth(&mut self, v: &VethPair<'_>) -> Result<(), NetError>;
    /// Let a bridge port send a frame back out of the port it came in by.
    fn set_hairpin(&mut self, name: &str, index: u32) -> Result<(), NetError>;
    fn set_up(&mut self, name: &str, index: u32) -> Result<(), NetError>;
    /// An existing identical address is fine.
    fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), NetError>;
    /// An existing identical route is fine.
    fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), NetError>;
    fn del_link(&mut self, name: &str, index: u32) -> Result<(), NetError>;
    /// A new, empty namespace pinned at `handle`.
    fn create_netns(&mut self, handle: &Path) -> Result<(), NetError>;
    /// Unpin `handle`; missing is fine.
    fn remove_netns(&mut self, handle: &Path) -> Result<(), NetError>;
    /// `f` with the links of the namespace pinned at `handle`.
    fn in_netns(&mut self, handle: &Path, f: &mut InNetns<'_>) -> Result<(), NetError>;
}

impl Links for Rtnl {
    fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        Ok(Rtnl::link_index(self, name)?)
    }

    fn link_mtu(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        Ok(self.link(name)?.and_then(|l| {
            l.attributes.iter().find_map(|x| match x {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        }))
    }

    fn link_alias(&mut self, name: &str) -> Result<Option<String>, NetError> {
        Ok(self.link(name)?.and_then(|l| {
            l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfAlias(s) => Some(s),
                _ => None,
            })
        }))
    }

    fn link_name(&mut self, index: u32) -> Result<Option<String>, NetError> {
        Ok(Rtnl::link_name(self, index)?)
    }

    fn addresses(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>, NetError> {
        Ok(Rtnl::addresses(self)?)
    }

    fn uplink_mtu(&mut self) -> Result<Option<u32>, NetError> {
        Ok(Rtnl::uplink_mtu(self)?)
    }

    fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<(), NetError> {
        let mut bridge = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            bridge = bridge.mtu(mtu);
        }
        Ok(self.add_link(&format!("bridge {name}"), bridge.build())?)
    }

    fn set_alias(&mut self, name: &str, index: u32, alias: &str) -> Result<(), NetError> {
        let msg = LinkMessageBuilder::<LinkUnspec>::new()
            .index(index)
            .alias(alias.to_string())
            .build();
        Ok(self.set_link(&format!("{name} alias"), msg)?)
    }

    fn sysctl(&mut self, key: &str, value: &str) -> Result<(), NetError> {
        let path = Path::new("/proc/sys").join(key);
        let current = fs::read_to_string(&path).map_err(io_err(&path))?;
        if current.trim() != value {
            fs::write(&path, value).map_err(io_err(&path))?;
        }
        Ok(())
    }

    fn add_veth(&mut self, v: &VethPair<'_>) -> Result<(), NetError> {
        let ns = fs::File::open(v.netns).map_err(io_err(v.netns))?;
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(v.peer.to_string())
            .setns_by_fd(ns.as_raw_fd());
        let mut host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(v.host.to_string())
            .controller(v.master);
        if let Some(mtu) = v.mtu {
            peer = peer.mtu(mtu);
            host = host.mtu(mtu);
        }
        let msg = host
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .up()
            .build();
        Ok(self.add_link(&format!("veth {}", v.host), msg)?)
    }

    fn set_hairpin(&mut self, name: &str, index: u32) -> Result<(), NetError> {
        Ok(self.change_link(
            &format!("{name} hairpin"),
            LinkBridgePort::new(index).hairpin(true).build(),
        )?)
    }

    fn set_up(&mut self, name: &str, index: u32) -> Result<(), NetError> {
        Ok(Rtnl::set_up(self, name, index)?)
    }

    fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        Ok(Rtnl::add_address(self, index, ip, prefix)?)
    }

    fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), NetError> {
        Ok(Rtnl::add_default_route(self, index, gateway)?)
    }

    fn del_link(&mut self, name: &str, index: u32) -> Result<(), NetError> {
        Ok(Rtnl::del_link(self, name, index)?)
    }

    fn create_netns(&mut self, handle: &Path) -> Result<(), NetError> {
        Ok(netns::create(handle)?)
    }

    fn remove_netns(&mut self, handle: &Path) -> Result<(), NetError> {
        Ok(netns::remove(handle)?)
    }

    /// A socket stays in the namespace it was opened in, so `f` gets a new
    /// one, opened on a thread that joined `handle`.
    fn in_netns(&mut self, handle: &Path, f: &mut InNetns<'_>) -> Result<(), NetError> {
        netns::run_in(handle, move || -> Result<(), NetError> {
            let mut inner = Rtnl::open()?;
            f(&mut inner)
        })?
    }
}
