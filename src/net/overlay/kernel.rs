//! The thin edge of the overlay over `rtnl`: the vxlan device, reading
//! skiff's entries of the routing, neighbour and FDB tables, and applying a
//! plan (plan.rs decides; nothing here chooses what to keep).

use std::net::Ipv4Addr;

use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope};
use netlink_packet_route::AddressFamily;
use nix::libc::{EEXIST, ENETUNREACH, ENOENT, ESRCH};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use super::plan::{self, Change, Device, Mac, Plan, State, Via};
use super::{
    Local, OverlayError, Peer, SyncReport, PROTOCOL, VNI, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT,
};
use crate::net::cidr::Ipv4Cidr;
use crate::net::rtnl::{Rtnl, RtnlError};

/// The link holding the node address: the vxlan device's underlay.
pub(super) struct NodeLink {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
}

impl NodeLink {
    pub fn vxlan_mtu(&self) -> Result<u32, OverlayError> {
        // 68: the smallest MTU IPv4 allows.
        self.mtu
            .checked_sub(VXLAN_OVERHEAD)
            .filter(|m| *m >= 68)
            .ok_or_else(|| OverlayError::MtuTooSmall {
                link: self.name.clone(),
                mtu: self.mtu,
            })
    }
}

pub(super) fn node_link(rtnl: &mut Rtnl, node_ip: Ipv4Addr) -> Result<NodeLink, OverlayError> {
    let index = rtnl
        .addresses()?
        .into_iter()
        .find_map(|(index, ip, _)| (ip == node_ip).then_some(index))
        .ok_or(OverlayError::NoNodeLink(node_ip))?;
    let link = rtnl
        .link_at(index)?
        .ok_or(OverlayError::NoNodeLink(node_ip))?;
    let name = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| format!("#{index}"));
    let mtu =
        link_mtu(&link.attributes).ok_or_else(|| OverlayError::NoMtu { link: name.clone() })?;
    Ok(NodeLink { index, name, mtu })
}

fn link_mtu(attributes: &[LinkAttribute]) -> Option<u32> {
    attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Make the vxlan device as `local` wants it, or keep the one there if it
/// is that already (only its MTU follows the underlay in place).
pub(super) fn ensure_device(rtnl: &mut Rtnl, local: &Local) -> Result<Mac, OverlayError> {
    let node = node_link(rtnl, local.node_ip)?;
    let mtu = node.vxlan_mtu()?;
    let want = Device {
        link: node.index,
        local: local.node_ip,
        mac: plan::vtep_mac(local.node_ip),
    };
    let address = local.pod_cidr.network();
    if let Some(link) = rtnl.link(VXLAN_DEVICE)? {
        if !plan::is_vxlan(&link) {
            return Err(OverlayError::ForeignDevice);
        }
        let index = link.header.index;
        let addresses: Vec<(Ipv4Addr, u8)> = rtnl
            .addresses()?
            .into_iter()
            .filter(|(i, _, _)| *i == index)
            .map(|(_, ip, prefix)| (ip, prefix))
            .collect();
        if plan::device_matches(&link, &want) && addresses == [(address, 32)] {
            if link_mtu(&link.attributes) != Some(mtu) {
                let msg = LinkMessageBuilder::<LinkUnspec>::new()
                    .index(index)
                    .mtu(mtu)
                    .build();
                rtnl.set_link(&format!("{VXLAN_DEVICE} mtu {mtu}"), msg)?;
            }
            rtnl.set_up(VXLAN_DEVICE, index)?;
            return Ok(want.mac);
        }
        // Another node address, underlay or pod network: the peers' entries
        // on it are wrong too, and go with it.
        tracing::info!("overlay: {VXLAN_DEVICE} is not as wanted; making it again");
        rtnl.del_link(VXLAN_DEVICE, index)?;
    }
    let msg = LinkVxlan::new(VXLAN_DEVICE, VNI)
        .dev(want.link)
        .port(VXLAN_PORT)
        .local(want.local)
        .learning(false)
        .mtu(mtu)
        .address(want.mac.to_vec())
        .build();
    rtnl.add_link(&format!("vxlan device {VXLAN_DEVICE}"), msg)?;
    if let Err(e) = finish_device(rtnl, address) {
        // Leave no half-made device behind.
        if let Ok(Some(index)) = rtnl.link_index(VXLAN_DEVICE) {
            let _ = rtnl.del_link(VXLAN_DEVICE, index);
        }
        return Err(e);
    }
    Ok(want.mac)
}

fn finish_device(rtnl: &mut Rtnl, address: Ipv4Addr) -> Result<(), OverlayError> {
    let index = rtnl
        .link_index(VXLAN_DEVICE)?
        .ok_or(OverlayError::NoDevice)?;
    rtnl.add_address(index, address, 32)?;
    rtnl.set_up(VXLAN_DEVICE, index)?;
    Ok(())
}

/// Delete skiff's vxlan device if there is one; a link of that name that
/// is no vxlan device is not skiff's and stays.
pub(super) fn remove_device(rtnl: &mut Rtnl) -> Result<(), OverlayError> {
    match rtnl.link(VXLAN_DEVICE)? {
        Some(link) if plan::is_vxlan(&link) => {
            rtnl.del_link(VXLAN_DEVICE, link.header.index)?;
        }
        Some(_) => tracing::warn!("{}", OverlayError::ForeignDevice),
        None => {}
    }
    Ok(())
}

/// Delete every route of skiff's inside `cluster`.
pub(super) fn remove_routes(rtnl: &mut Rtnl, cluster: Ipv4Cidr) -> Result<(), OverlayError> {
    for (dst, via) in observe(rtnl, cluster, None)?.routes {
        del_route(rtnl, dst, via)?;
    }
    Ok(())
}

/// skiff's entries as the kernel holds them now.
pub(super) fn observe(
    rtnl: &mut Rtnl,
    cluster: Ipv4Cidr,
    vxlan: Option<u32>,
) -> Result<State, OverlayError> {
    let routes = rtnl
        .routes()?
        .iter()
        .filter_map(|r| plan::owned_route(r, cluster, vxlan))
        .collect();
    let mut state = State {
        routes,
        ..State::default()
    };
    if let Some(dev) = vxlan {
        state.neighs = rtnl
            .neighbours(AddressFamily::Inet)?
            .iter()
            .filter_map(|n| plan::owned_neigh(n, dev))
            .collect();
        state.fdb = rtnl
            .neighbours(AddressFamily::Bridge)?
            .iter()
            .filter_map(|n| plan::owned_fdb(n, dev))
            .collect();
    }
    Ok(state)
}

/// Apply `plan`: stale routes go first, then the neighbour and FDB entries
/// change, and new routes come last, so no route ever leads to a VTEP the
/// kernel cannot reach yet.
pub(super) fn apply(
    rtnl: &mut Rtnl,
    plan: &Plan,
    vxlan: Option<u32>,
    peers: &[Peer],
    report: &mut SyncReport,
) -> Result<(), OverlayError> {
    for change in &plan.routes {
        if let Change::Remove(dst, via) = change {
            del_route(rtnl, *dst, *via)?;
            report.removed += 1;
        }
    }
    // The device exists whenever there are neighbour or FDB entries to
    // change: they were either observed on it or are wanted by vxlan, whose
    // sync checks for it.
    let dev = || vxlan.ok_or(OverlayError::NoDevice);
    for change in &plan.neighs {
        let (ip, mac) = match change {
            Change::Add(ip, mac) | Change::Replace(ip, mac) | Change::Remove(ip, mac) => {
                (*ip, *mac)
            }
        };
        let what = format!("neighbour {ip} on {VXLAN_DEVICE}");
        let msg = neigh_msg(dev()?, ip, mac);
        count(report, change, || match change {
            Change::Remove(..) => absent_ok(rtnl.del_neighbour(&what, msg), ENOENT),
            _ => rtnl.set_neighbour(&what, msg),
        })?;
    }
    for change in &plan.fdb {
        let (mac, dst) = match change {
            Change::Add(m, d) | Change::Replace(m, d) | Change::Remove(m, d) => (*m, *d),
        };
        let what = format!("fdb entry {} on {VXLAN_DEVICE}", show_mac(&mac));
        let msg = fdb_msg(dev()?, mac, dst);
        count(report, change, || match change {
            Change::Remove(..) => absent_ok(rtnl.del_neighbour(&what, msg), ENOENT),
            _ => rtnl.set_neighbour(&what, msg),
        })?;
    }
    for change in &plan.routes {
        let (dst, via, replace) = match change {
            Change::Add(d, v) => (*d, *v, false),
            Change::Replace(d, v) => (*d, *v, true),
            Change::Remove(..) => continue,
        };
        let peer = peers.iter().find(|p| p.pod_cidr == dst);
        let name = || peer.map_or_else(|| dst.to_string(), |p| p.name.clone());
        let msg = route_msg(dst, via, vxlan);
        match rtnl.add_route(&format!("{dst}"), msg, replace) {
            Ok(()) if replace => report.replaced += 1,
            Ok(()) => report.added += 1,
            Err(e) if e.errno() == Some(EEXIST) => {
                // Someone else's route holds the destination: not skiff's to
                // replace.
                tracing::warn!(
                    "overlay: a route to {dst} that skiff did not make exists; peer {} stays unrouted until it is removed",
                    name()
                );
                report.skipped.push(name());
            }
            // One peer the kernel will not route (not on a shared link for
            // host-gw, or an address no route can use) is that peer's
            // problem: the others are still routed.
            Err(e) if e.errno() == Some(ENETUNREACH) => {
                let node_ip = match (peer, via) {
                    (Some(p), _) => p.node_ip,
                    (None, Via::Node(ip) | Via::Vtep(ip)) => ip,
                };
                tracing::warn!(
                    "overlay: {}",
                    OverlayError::NotOnLink {
                        peer: name(),
                        node_ip,
                    }
                );
                report.skipped.push(name());
            }
            Err(e) => {
                tracing::warn!("overlay: the route to {dst} for peer {}: {e}", name());
                report.skipped.push(name());
            }
        }
    }
    Ok(())
}

fn count<K, V>(
    report: &mut SyncReport,
    change: &Change<K, V>,
    f: impl FnOnce() -> Result<(), RtnlError>,
) -> Result<(), OverlayError> {
    f()?;
    match change {
        Change::Add(..) => report.added += 1,
        Change::Replace(..) => report.replaced += 1,
        Change::Remove(..) => report.removed += 1,
    }
    Ok(())
}

/// A delete whose entry is gone already (removed by hand, or with its
/// device) has its effect.
fn absent_ok(result: Result<(), RtnlError>, absent: i32) -> Result<(), RtnlError> {
    match result {
        Err(e) if e.errno() == Some(absent) => Ok(()),
        other => other,
    }
}

fn del_route(rtnl: &mut Rtnl, dst: Ipv4Cidr, via: Via) -> Result<(), OverlayError> {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.network(), dst.prefix())
        .protocol(RouteProtocol::Other(PROTOCOL))
        // Any scope: match on destination, protocol and gateway alone.
        .scope(RouteScope::NoWhere);
    let (Via::Node(gw) | Via::Vtep(gw)) = via;
    if !gw.is_unspecified() {
        b = b.gateway(gw);
    }
    Ok(absent_ok(
        rtnl.del_route(&dst.to_string(), b.build()),
        ESRCH,
    )?)
}

fn route_msg(dst: Ipv4Cidr, via: Via, vxlan: Option<u32>) -> RouteMessage {
    let b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.network(), dst.prefix())
        .protocol(RouteProtocol::Other(PROTOCOL));
    match (via, vxlan) {
        (Via::Node(gw), _) => b.gateway(gw).build(),
        (Via::Vtep(gw), Some(dev)) => b.gateway(gw).output_interface(dev).onlink().build(),
        // Unreachable from sync (vxlan routes are wanted only with the
        // device); without a link the kernel refuses it with ENETUNREACH.
        (Via::Vtep(gw), None) => b.gateway(gw).build(),
    }
}

fn neigh_msg(dev: u32, ip: Ipv4Addr, mac: Mac) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = dev;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)),
        NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
    ];
    msg
}

/// NTF_SELF: the entry is the vxlan device's own (where its frames for
/// `mac` go), not a bridge's it might be a port of.
fn fdb_msg(dev: u32, mac: Mac, dst: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = dev;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes = vec![
        NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)),
    ];
    msg
}

fn show_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
