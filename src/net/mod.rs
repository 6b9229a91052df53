//! Container and pod networking without external binaries: network
//! namespaces, the host bridge, veths, IPAM and (nft/) the nftables tables,
//! all over netlink (see DESIGN.md, Networking).
//!
//! A leaf: nothing here calls into `runtime` or `cli`.
//!
//! Layout: `host` (the host bridge and each container's attachment to it:
//! the only stateful part), `attachment` and `error` (the types callers
//! share), `ports` (parsing and picking published ports), `ipam`, `cidr`,
//! `rules` (attachments to the engine's nftables table), `kernel` (the
//! steps host.rs composes, as a trait with a recording fake for tests), and
//! the kernel edges behind it: `bridge` and `veth` (the node bridge and a
//! container's plumbing, as steps with their undo on `links`, a finer trait
//! with its own recording fake), `rtnl` (links, addresses, routes,
//! neighbour and FDB entries), `netns`, `nft`; and `overlay` (the routes to
//! other nodes' pod networks, host-gw or vxlan, for the cluster).

mod attachment;
mod bridge;
pub mod cidr;
pub mod conntrack;
mod error;
pub mod host;
pub mod ipam;
mod kernel;
#[cfg(test)]
mod kernel_fake;
mod links;
#[cfg(test)]
mod links_fake;
pub mod netns;
pub mod nft;
pub mod overlay;
pub mod ports;
pub mod rtnl;
pub mod rules;
mod veth;

pub use attachment::Attachment;
pub use error::NetError;
pub use host::HostBridge;

/// A new network namespace pinned at `handle` with only `lo`, up, as
/// docker's `--network none` gives. Made here because the container's init
/// lacks CAP_NET_ADMIN to raise it; on failure nothing is left.
pub fn create_isolated(handle: &std::path::Path) -> Result<(), NetError> {
    netns::create(handle)?;
    let up = netns::run_in(handle, || -> Result<(), rtnl::RtnlError> {
        let mut rtnl = rtnl::Rtnl::open()?;
        if let Some(lo) = rtnl.link_index("lo")? {
            rtnl.set_up("lo", lo)?;
        }
        Ok(())
    });
    let result = match up {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => NetError::from(e),
        Err(e) => NetError::from(e),
    };
    let _ = netns::remove(handle);
    Err(result)
}
