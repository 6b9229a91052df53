//! Cross-node pod routes: every node routes every other node's pod CIDR,
//! as flannel does, with one of two backends.
//!
//! - host-gw: `<peer pod cidr> via <peer node ip>`; the nodes share a link.
//! - vxlan: one device, `skiff.vxlan` (VNI 1, UDP 8472, learning off, MTU
//!   50 below the node link's), holding `<own pod network>/32`; per peer a
//!   route `<peer pod cidr> via <peer pod network> dev skiff.vxlan onlink`,
//!   a permanent neighbour entry giving that address the peer's VTEP MAC,
//!   and a permanent FDB entry (NTF_SELF) sending that MAC to the peer's
//!   node address. The peers learn this node's MAC from what `prepare`
//!   returns (published by the caller, as flannel's Node annotation).
//!
//! Layout: this file (the API and its errors), `plan` (the pure core:
//! desired state, what of the kernel's is skiff's, the diff, unit-tested
//! without root) and `kernel` (the thin edge over `rtnl`: the device,
//! reading the tables, applying a plan). Everything works on the network
//! namespace of the calling thread.
//!
//! skiff owns only what it made: its routes carry [`PROTOCOL`] and lie in
//! the cluster network; neighbour and FDB entries are those on its own
//! device. Nothing else is ever removed.

mod kernel;
mod plan;
pub use plan::vtep_mac;

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::cidr::Ipv4Cidr;
use super::rtnl::{Rtnl, RtnlError};

/// The `rtm_protocol` of every route skiff adds, which is how its stale
/// routes are told from everyone else's (and `ip route show proto 95` lists
/// them). 95 (0x5f) is named in neither the kernel's rtnetlink.h nor
/// iproute2's rt_protos, so no routing daemon that keeps to those claims it.
pub const PROTOCOL: u8 = 0x5f;

/// The vxlan device's name (flannel's is flannel.1); at most 15 bytes.
pub const VXLAN_DEVICE: &str = "skiff.vxlan";

/// flannel's VNI and port, so a firewall opened for flannel fits skiff.
pub const VNI: u32 = 1;
pub const VXLAN_PORT: u16 = 8472;

/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
pub const VXLAN_OVERHEAD: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    HostGw,
    Vxlan,
}

impl FromStr for Backend {
    type Err = OverlayError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "host-gw" => Ok(Backend::HostGw),
            "vxlan" => Ok(Backend::Vxlan),
            _ => Err(OverlayError::UnknownBackend(s.to_string())),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::HostGw => "host-gw",
            Backend::Vxlan => "vxlan",
        })
    }
}

/// This node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub pod_cidr: Ipv4Cidr,
    pub node_ip: Ipv4Addr,
    /// The pod network of the whole cluster: only routes inside it are
    /// ever removed, and only peers inside it are routed.
    pub cluster_cidr: Ipv4Cidr,
}

/// Another node, as its Node object tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub pod_cidr: Ipv4Cidr,
    pub node_ip: Ipv4Addr,
    /// The MAC of its vxlan device; vxlan skips the peer until it has one.
    pub vtep_mac: Option<[u8; 6]>,
}

/// What a `sync` changed: routes, neighbour and FDB entries each count one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub replaced: usize,
    pub removed: usize,
    /// Peers not routed (this node itself is not counted): the reason is
    /// logged.
    pub skipped: Vec<String>,
}

impl SyncReport {
    pub fn changed(&self) -> bool {
        self.added + self.replaced + self.removed > 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    Rtnl(#[from] RtnlError),
    #[error("unknown overlay backend {0:?}: use host-gw or vxlan")]
    UnknownBackend(String),
    #[error("no link holds the node address {0}: set --node-ip to an address of this host")]
    NoNodeLink(Ipv4Addr),
    #[error("link {link} (holding the node address) reports no MTU; check it with `ip link show {link}`")]
    NoMtu { link: String },
    #[error("link {link} has MTU {mtu}, too small for vxlan's {VXLAN_OVERHEAD} bytes of headers: raise its MTU or use the host-gw backend")]
    MtuTooSmall { link: String, mtu: u32 },
    #[error("link {VXLAN_DEVICE} exists but is not a vxlan device, so not skiff's: delete it (ip link del {VXLAN_DEVICE}) or free the name")]
    ForeignDevice,
    #[error("the vxlan device {VXLAN_DEVICE} is missing: prepare the vxlan backend before syncing peers")]
    NoDevice,
    #[error("peer {peer}: its node address {node_ip} is not on a link of this node, which host-gw needs: put the nodes on one L2 network or use the vxlan backend")]
    NotOnLink { peer: String, node_ip: Ipv4Addr },
}

/// Make or adjust the vxlan device (idempotent) and return its MAC, to
/// publish for the peers. host-gw removes a device left by vxlan (its routes
/// go with it) and returns None.
pub fn prepare(backend: Backend, local: &Local) -> Result<Option<[u8; 6]>, OverlayError> {
    let mut rtnl = Rtnl::open()?;
    match backend {
        Backend::HostGw => {
            kernel::remove_device(&mut rtnl)?;
            Ok(None)
        }
        Backend::Vxlan => kernel::ensure_device(&mut rtnl, local).map(Some),
    }
}

/// Make the routes (and for vxlan the neighbour and FDB entries) exactly
/// what `peers` need: entries skiff made that are no longer wanted go,
/// nothing else is touched. A peer with this node's pod CIDR or address is
/// this node and is passed over.
pub fn sync(backend: Backend, local: &Local, peers: &[Peer]) -> Result<SyncReport, OverlayError> {
    let (desired, skipped) = plan::desired(backend, local, peers);
    for (peer, why) in &skipped {
        tracing::debug!(%peer, "overlay: peer not routed: {why}");
    }
    let mut rtnl = Rtnl::open()?;
    let vxlan = rtnl.link_index(VXLAN_DEVICE)?;
    if backend == Backend::Vxlan && vxlan.is_none() {
        return Err(OverlayError::NoDevice);
    }
    let observed = kernel::observe(&mut rtnl, local.cluster_cidr, vxlan)?;
    let changes = plan::plan(&desired, &observed);
    let mut report = SyncReport {
        skipped: skipped.into_iter().map(|(p, _)| p).collect(),
        ..SyncReport::default()
    };
    if !changes.is_empty() {
        kernel::apply(&mut rtnl, &changes, vxlan, peers, &mut report)?;
    }
    Ok(report)
}

/// Remove everything skiff made: the vxlan device (its routes, neighbour
/// and FDB entries go with it) and skiff's routes inside `cluster_cidr`.
pub fn teardown(cluster_cidr: Ipv4Cidr) -> Result<(), OverlayError> {
    let mut rtnl = Rtnl::open()?;
    kernel::remove_device(&mut rtnl)?;
    kernel::remove_routes(&mut rtnl, cluster_cidr)
}

/// The MTU pods should use on this node: that of the link holding the node
/// address, less the vxlan headers for vxlan.
pub fn pod_mtu(backend: Backend, node_ip: Ipv4Addr) -> Result<u32, OverlayError> {
    let mut rtnl = Rtnl::open()?;
    let link = kernel::node_link(&mut rtnl, node_ip)?;
    match backend {
        Backend::HostGw => Ok(link.mtu),
        Backend::Vxlan => link.vxlan_mtu(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for b in [Backend::HostGw, Backend::Vxlan] {
            assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
        }
        let e = "udp".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("host-gw or vxlan"), "{e}");
        assert!(VXLAN_DEVICE.len() <= 15);
    }
}
