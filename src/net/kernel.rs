//! The kernel edge of the host bridge: one method per step that host.rs
//! composes (the bridge, a container's plumbing, links, namespace handles,
//! the engine's nftables table, host ports). host.rs decides what to do and
//! what to undo; `System` does it through bridge.rs, veth.rs, rtnl.rs,
//! netns.rs and nft/, and the recording fake (kernel_fake.rs, tests only)
//! lets attach, release and their rollback be tested without root. The
//! plumbing steps inside `plumb` have a finer seam of their own (links.rs).

use std::path::Path;

use super::attachment::Attachment;
use super::bridge::Bridge;
use super::error::NetError;
use super::ports::{self, PublishedPort};
use super::rtnl::Rtnl;
use super::rules::{self, Rules};
use super::{netns, veth};

pub(crate) trait Kernel {
    /// The bridge, up with its gateway address (made on first use, checked
    /// after); its link index.
    fn ensure_bridge(&mut self, b: &Bridge<'_>) -> Result<u32, NetError>;
    /// Namespace handle, veth pair, address and default route for `a`. On
    /// failure nothing of it is left (veth.rs undoes its own steps).
    fn plumb(&mut self, bridge: &str, bridge_index: u32, a: &Attachment) -> Result<(), NetError>;
    /// Best effort: `a`'s host veth and namespace handle go.
    fn unplumb(&mut self, a: &Attachment);
    /// Delete link `name`; one that is gone already is fine.
    fn remove_link(&mut self, name: &str) -> Result<(), NetError>;
    fn netns_pinned(&self, handle: &Path) -> bool;
    fn remove_netns(&mut self, handle: &Path) -> Result<(), NetError>;
    /// The engine's nftables table for `r.after` (rules.rs); on failure it
    /// is as it was.
    fn sync_rules(&mut self, r: &Rules<'_>) -> Result<(), NetError>;
    /// Remove the engine's nftables table.
    fn delete_rules(&mut self) -> Result<(), NetError>;
    /// Whether `p`'s host address and port can be bound now.
    fn port_free(&self, p: &PublishedPort) -> bool;
}

/// The real kernel, in the calling thread's network namespace. The
/// rtnetlink socket is opened on first use, so a step that needs none
/// (nothing to reconcile) opens none.
#[derive(Default)]
pub(crate) struct System {
    rtnl: Option<Rtnl>,
}

impl System {
    fn rtnl(&mut self) -> Result<&mut Rtnl, NetError> {
        if self.rtnl.is_none() {
            self.rtnl = Some(Rtnl::open()?);
        }
        match self.rtnl.as_mut() {
            Some(r) => Ok(r),
            None => unreachable!("opened above"),
        }
    }
}

impl Kernel for System {
    fn ensure_bridge(&mut self, b: &Bridge<'_>) -> Result<u32, NetError> {
        b.ensure(self.rtnl()?)
    }

    fn plumb(&mut self, bridge: &str, bridge_index: u32, a: &Attachment) -> Result<(), NetError> {
        veth::plumb(self.rtnl()?, bridge, bridge_index, a)
    }

    fn unplumb(&mut self, a: &Attachment) {
        match self.rtnl() {
            Ok(rtnl) => veth::unplumb(rtnl, a),
            Err(e) => {
                tracing::warn!("{e}");
                if let Err(e) = netns::remove(&a.netns) {
                    tracing::warn!("{e}");
                }
            }
        }
    }

    fn remove_link(&mut self, name: &str) -> Result<(), NetError> {
        let rtnl = self.rtnl()?;
        let result = match rtnl.link_index(name)? {
            Some(index) => rtnl.del_link(name, index),
            None => Ok(()),
        };
        match result {
            // Deleted by someone else in between.
            Err(e) if e.errno() == Some(nix::libc::ENODEV) => Ok(()),
            other => Ok(other?),
        }
    }

    fn netns_pinned(&self, handle: &Path) -> bool {
        netns::is_pinned(handle)
    }

    fn remove_netns(&mut self, handle: &Path) -> Result<(), NetError> {
        Ok(netns::remove(handle)?)
    }

    fn sync_rules(&mut self, r: &Rules<'_>) -> Result<(), NetError> {
        rules::apply(r)
    }

    fn delete_rules(&mut self) -> Result<(), NetError> {
        super::nft::delete().map_err(|e| NetError::Rules(e.to_string()))
    }

    fn port_free(&self, p: &PublishedPort) -> bool {
        ports::bindable(p)
    }
}
