//! A container's side of the bridge: its namespace, the veth pair (host end
//! on the bridge, `eth0` inside), address and default route.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::attachment::Attachment;
use super::error::{io_err, NetError};
use super::netns;
use super::rtnl::{Rtnl, RtnlError};

/// Namespace, veth pair (host end on the bridge, `eth0` inside), address
/// and default route.
pub(super) fn plumb(
    rtnl: &mut Rtnl,
    bridge: &str,
    bridge_index: u32,
    a: &Attachment,
) -> Result<(), NetError> {
    netns::create(&a.netns)?;
    let ns = fs::File::open(&a.netns).map_err(io_err(&a.netns))?;
    let mtu = rtnl.link(bridge)?.and_then(|l| {
        l.attributes.iter().find_map(|x| match x {
            netlink_packet_route::link::LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
    });
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name("eth0".to_string())
        .setns_by_fd(ns.as_raw_fd());
    let mut host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(a.host_veth.clone())
        .controller(bridge_index);
    if let Some(mtu) = mtu {
        peer = peer.mtu(mtu);
        host = host.mtu(mtu);
    }
    let msg = host
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .up()
        .build();
    rtnl.add_link(&format!("veth {}", a.host_veth), msg)?;
    // Hairpin: a container reaching its own published port comes back
    // out of the port it came in by. With br_netfilter loaded the DNAT
    // happens while bridging, so the bridge must allow that (as Docker
    // sets it without its userland proxy).
    let port = rtnl.link_index(&a.host_veth)?.ok_or_else(|| RtnlError {
        op: format!("find {}", a.host_veth),
        source: io::Error::from_raw_os_error(nix::libc::ENODEV),
    })?;
    rtnl.change_link(
        &format!("{} hairpin", a.host_veth),
        LinkBridgePort::new(port).hairpin(true).build(),
    )?;
    let (ip, prefix, gateway) = (a.ip, a.prefix, a.gateway);
    netns::run_in(&a.netns, move || -> Result<(), RtnlError> {
        let mut inner = Rtnl::open()?;
        if let Some(lo) = inner.link_index("lo")? {
            inner.set_up("lo", lo)?;
        }
        let eth0 = inner.link_index("eth0")?.ok_or_else(|| RtnlError {
            op: "find eth0".into(),
            source: io::Error::from_raw_os_error(nix::libc::ENODEV),
        })?;
        inner.add_address(eth0, ip, prefix)?;
        inner.set_up("eth0", eth0)?;
        inner.add_default_route(eth0, gateway)
    })??;
    Ok(())
}

/// Best effort: remove the host veth (its peer goes with it) and the
/// namespace handle.
pub(super) fn unplumb(rtnl: &mut Rtnl, a: &Attachment) {
    match rtnl.link_index(&a.host_veth) {
        Ok(Some(index)) => {
            if let Err(e) = rtnl.del_link(&a.host_veth, index) {
                tracing::warn!("{e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    if let Err(e) = netns::remove(&a.netns) {
        tracing::warn!("{e}");
    }
}

/// `veth` + 11 characters of the id: unique enough, within IFNAMSIZ.
pub(super) fn host_veth_name(id: &str) -> String {
    let short: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(11)
        .collect();
    format!("veth{short}")
}
