//! `FakeLinks`: a recording fake of `Links` (links.rs), for testing the
//! steps of bridge.rs and veth.rs without root. It keeps what the steps
//! leave (links per namespace, the node's addresses and aliases, pinned
//! handles, sysctls), records every call, and fails
//! the one call it is told to, once, as the kernel would (nothing done).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::error::NetError;
use super::links::{InNetns, Links, VethPair};
use super::rtnl::RtnlError;

#[derive(Debug, Default)]
pub(crate) struct FakeLinks {
    /// Every call, as `op arg`; inside another namespace prefixed `[ns] `.
    pub calls: Vec<String>,
    /// The call (as recorded) to fail, once.
    pub fail: Option<String>,
    /// The node's links, name to index.
    pub links: BTreeMap<String, u32>,
    /// Pinned namespaces and the links in each.
    pub netns: BTreeMap<PathBuf, BTreeSet<String>>,
    /// The node's IPv4 addresses: (link index, address, prefix).
    pub addrs: Vec<(u32, Ipv4Addr, u8)>,
    /// The node's link aliases, by link name.
    pub aliases: BTreeMap<String, String>,
    /// What was written under /proc/sys (nothing real is).
    pub sysctls: BTreeMap<String, String>,
    /// The namespace calls go to (`in_netns`); none: the node's.
    inside: Option<PathBuf>,
    next_index: u32,
}

impl FakeLinks {
    /// A node with `bridge` on it.
    pub(crate) fn with_bridge(bridge: &str) -> FakeLinks {
        let mut f = FakeLinks::default();
        f.add(None, bridge);
        f
    }

    fn call(&mut self, op: &str, arg: &str) -> Result<(), NetError> {
        let call = match &self.inside {
            Some(_) => format!("[ns] {op} {arg}"),
            None => format!("{op} {arg}"),
        };
        let call = call.trim_end().to_string();
        let fails = self.fail.as_deref() == Some(call.as_str());
        if fails {
            self.fail = None;
        }
        self.calls.push(call);
        if fails {
            return Err(NetError::Rtnl(RtnlError {
                op: format!("FakeLinks: {op} {arg}"),
                source: std::io::Error::from_raw_os_error(nix::libc::EIO),
            }));
        }
        Ok(())
    }

    fn add(&mut self, ns: Option<&Path>, name: &str) {
        self.next_index += 1;
        match ns {
            Some(ns) => {
                self.netns
                    .entry(ns.to_path_buf())
                    .or_default()
                    .insert(name.to_string());
            }
            None => {
                self.links.insert(name.to_string(), self.next_index);
            }
        }
    }

    fn index_of(&self, name: &str) -> Option<u32> {
        match &self.inside {
            // Indexes inside a namespace only need to exist.
            Some(ns) => self.netns.get(ns)?.contains(name).then_some(100),
            None => self.links.get(name).copied(),
        }
    }
}

impl Links for FakeLinks {
    fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        self.call("link_index", name)?;
        Ok(self.index_of(name))
    }

    fn link_mtu(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        self.call("link_mtu", name)?;
        Ok(self.index_of(name).map(|_| 1500))
    }

    fn link_alias(&mut self, name: &str) -> Result<Option<String>, NetError> {
        self.call("link_alias", name)?;
        Ok(self.aliases.get(name).cloned())
    }

    fn link_name(&mut self, index: u32) -> Result<Option<String>, NetError> {
        self.call("link_name", &index.to_string())?;
        Ok(self
            .links
            .iter()
            .find(|(_, i)| **i == index)
            .map(|(n, _)| n.clone()))
    }

    fn addresses(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>, NetError> {
        self.call("addresses", "")?;
        Ok(self.addrs.clone())
    }

    fn uplink_mtu(&mut self) -> Result<Option<u32>, NetError> {
        self.call("uplink_mtu", "")?;
        Ok(Some(1500))
    }

    fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<(), NetError> {
        self.call("add_bridge", &format!("{name} mtu {mtu:?}"))?;
        if self.links.contains_key(name) {
            return Err(NetError::Rtnl(RtnlError {
                op: format!("add bridge {name}"),
                source: std::io::Error::from_raw_os_error(nix::libc::EEXIST),
            }));
        }
        self.add(None, name);
        Ok(())
    }

    fn set_alias(&mut self, name: &str, _index: u32, alias: &str) -> Result<(), NetError> {
        self.call("set_alias", &format!("{name} {alias}"))?;
        self.aliases.insert(name.to_string(), alias.to_string());
        Ok(())
    }

    fn sysctl(&mut self, key: &str, value: &str) -> Result<(), NetError> {
        self.call("sysctl", &format!("{key}={value}"))?;
        self.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn add_veth(&mut self, v: &VethPair<'_>) -> Result<(), NetError> {
        self.call(
            "add_veth",
            &format!(
                "{} master {} mtu {:?}, {} in {}",
                v.host,
                v.master,
                v.mtu,
                v.peer,
                v.netns.display()
            ),
        )?;
        let errno = if self.links.contains_key(v.host) {
            Some(nix::libc::EEXIST)
        } else if !self.netns.contains_key(v.netns) {
            Some(nix::libc::ENOENT)
        } else {
            None
        };
        if let Some(errno) = errno {
            return Err(NetError::Rtnl(RtnlError {
                op: format!("add veth {}", v.host),
                source: std::io::Error::from_raw_os_error(errno),
            }));
        }
        self.add(None, v.host);
        self.add(Some(v.netns), v.peer);
        Ok(())
    }

    fn set_hairpin(&mut self, name: &str, _index: u32) -> Result<(), NetError> {
        self.call("set_hairpin", name)
    }

    fn set_up(&mut self, name: &str, _index: u32) -> Result<(), NetError> {
        self.call("set_up", name)
    }

    fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        self.call("add_address", &format!("{ip}/{prefix}"))?;
        if self.inside.is_none() {
            self.addrs.push((index, ip, prefix));
        }
        Ok(())
    }

    fn add_default_route(&mut self, _index: u32, gateway: Ipv4Addr) -> Result<(), NetError> {
        self.call("add_default_route", &gateway.to_string())
    }

    fn del_link(&mut self, name: &str, _index: u32) -> Result<(), NetError> {
        self.call("del_link", name)?;
        let Some(index) = self.links.remove(name) else {
            return Ok(());
        };
        // Its addresses and alias go with it, and a veth's peer.
        self.addrs.retain(|(i, _, _)| *i != index);
        self.aliases.remove(name);
        if name.starts_with("veth") {
            for links in self.netns.values_mut() {
                links.remove("eth0");
            }
        }
        Ok(())
    }

    fn create_netns(&mut self, handle: &Path) -> Result<(), NetError> {
        self.call("create_netns", &handle.display().to_string())?;
        self.netns
            .insert(handle.to_path_buf(), BTreeSet::from(["lo".to_string()]));
        Ok(())
    }

    fn remove_netns(&mut self, handle: &Path) -> Result<(), NetError> {
        self.call("remove_netns", &handle.display().to_string())?;
        self.netns.remove(handle);
        Ok(())
    }

    fn in_netns(&mut self, handle: &Path, f: &mut InNetns<'_>) -> Result<(), NetError> {
        self.call("in_netns", &handle.display().to_string())?;
        if !self.netns.contains_key(handle) {
            return Err(NetError::Rtnl(RtnlError {
                op: format!("setns {}", handle.display()),
                source: std::io::Error::from_raw_os_error(nix::libc::ENOENT),
            }));
        }
        self.inside = Some(handle.to_path_buf());
        let result = f(self);
        self.inside = None;
        result
    }
}
