//! The pure core of the overlay: what the kernel should hold for a set of
//! peers, what of the kernel's tables is skiff's, and the changes from one
//! to the other. No I/O, so every rule here is unit-tested without root.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::Ipv4Addr;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use netlink_packet_route::AddressFamily;

use super::{Backend, Local, Peer, PROTOCOL, VNI, VXLAN_PORT};
use crate::net::cidr::Ipv4Cidr;

pub type Mac = [u8; 6];

/// Where the route to a peer's pods leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// host-gw: the peer's node address, on a link both nodes share.
    Node(Ipv4Addr),
    /// vxlan: the peer's pod network address, declared on-link through the
    /// vxlan device (no such host exists; the neighbour entry gives it the
    /// peer's VTEP MAC, the FDB entry the node behind that MAC).
    Vtep(Ipv4Addr),
}

/// The entries of the kernel's tables the overlay owns, each as
/// (key, value): a key the kernel holds once, a value a change replaces.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub routes: Vec<(Ipv4Cidr, Via)>,
    pub neighs: Vec<(Ipv4Addr, Mac)>,
    pub fdb: Vec<(Mac, Ipv4Addr)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change<K, V> {
    Add(K, V),
    /// The key is held with another value (a peer's node address or VTEP
    /// MAC changed): overwrite it in place, so traffic never finds it gone.
    Replace(K, V),
    Remove(K, V),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub routes: Vec<Change<Ipv4Cidr, Via>>,
    pub neighs: Vec<Change<Ipv4Addr, Mac>>,
    pub fdb: Vec<Change<Mac, Ipv4Addr>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.neighs.is_empty() && self.fdb.is_empty()
    }
}

/// The MAC of this node's vxlan device: fixed by the node address, so a
/// restarted agent (or a device made again) keeps the one peers know.
/// 0x0e: locally administered and unicast, so no vendor's MAC is taken.
pub fn vtep_mac(node_ip: Ipv4Addr) -> Mac {
    let [a, b, c, d] = node_ip.octets();
    [0x0e, 0x5f, a, b, c, d]
}

/// What the kernel should hold for `peers`, and the names of the peers left
/// out (with why, for the log).
pub(crate) fn desired(
    backend: Backend,
    local: &Local,
    peers: &[Peer],
) -> (State, Vec<(String, &'static str)>) {
    let mut state = State::default();
    let mut skipped = Vec::new();
    for p in peers {
        if p.pod_cidr == local.pod_cidr || p.node_ip == local.node_ip {
            // This node itself, as the node list includes it.
            continue;
        }
        if !inside(local.cluster_cidr, p.pod_cidr) {
            // A route outside the cluster network could never be removed
            // again (removal is confined to it), so none is made.
            skipped.push((p.name.clone(), "pod CIDR outside the cluster CIDR"));
            continue;
        }
        if p.pod_cidr.overlaps(&local.pod_cidr) {
            skipped.push((p.name.clone(), "pod CIDR overlaps this node's"));
            continue;
        }
        if state
            .routes
            .iter()
            .any(|(dst, _)| dst.overlaps(&p.pod_cidr))
        {
            skipped.push((p.name.clone(), "pod CIDR overlaps another peer's"));
            continue;
        }
        match backend {
            Backend::HostGw => state.routes.push((p.pod_cidr, Via::Node(p.node_ip))),
            Backend::Vxlan => {
                let Some(mac) = p.vtep_mac else {
                    skipped.push((p.name.clone(), "no VTEP MAC published yet"));
                    continue;
                };
                if state.fdb.iter().any(|(m, _)| *m == mac) {
                    skipped.push((p.name.clone(), "VTEP MAC used by another peer"));
                    continue;
                }
                let vtep = p.pod_cidr.network();
                state.routes.push((p.pod_cidr, Via::Vtep(vtep)));
                state.neighs.push((vtep, mac));
                state.fdb.push((mac, p.node_ip));
            }
        }
    }
    (state, skipped)
}

/// The changes that turn `observed` into `desired`.
pub(crate) fn plan(desired: &State, observed: &State) -> Plan {
    Plan {
        routes: diff(&desired.routes, &observed.routes),
        neighs: diff(&desired.neighs, &observed.neighs),
        fdb: diff(&desired.fdb, &observed.fdb),
    }
}

/// Observed entries are kept when wanted as they are (one per key),
/// replaced when their key is wanted with another value and no entry has it
/// already, removed otherwise; wanted keys not seen are added. Removals come
/// first, so a replacement never lands on an entry about to be removed.
pub(crate) fn diff<K, V>(desired: &[(K, V)], observed: &[(K, V)]) -> Vec<Change<K, V>>
where
    K: Copy + Eq + Hash,
    V: Copy + Eq,
{
    let want: HashMap<K, V> = desired.iter().copied().collect();
    let exact: HashSet<K> = observed
        .iter()
        .filter(|(k, v)| want.get(k) == Some(v))
        .map(|(k, _)| *k)
        .collect();
    let mut settled = HashSet::new();
    let (mut removes, mut replaces) = (Vec::new(), Vec::new());
    for (k, v) in observed {
        match want.get(k) {
            Some(w) if w == v && settled.insert(*k) => {}
            Some(w) if !exact.contains(k) && settled.insert(*k) => {
                replaces.push(Change::Replace(*k, *w))
            }
            _ => removes.push(Change::Remove(*k, *v)),
        }
    }
    let adds = desired
        .iter()
        .filter(|(k, _)| settled.insert(*k))
        .map(|(k, v)| Change::Add(*k, *v));
    removes.into_iter().chain(replaces).chain(adds).collect()
}

/// Whether `net` lies wholly inside `cluster`.
pub(crate) fn inside(cluster: Ipv4Cidr, net: Ipv4Cidr) -> bool {
    net.prefix() >= cluster.prefix() && cluster.contains(net.network())
}

/// A route of the main table that skiff made (its protocol) inside the
/// cluster network, as (destination, where it leads); `vxlan` is the index
/// of skiff's vxlan device, if there is one. A route of skiff's without a
/// gateway (not one this module makes) reads as via 0.0.0.0, never wanted.
pub(crate) fn owned_route(
    r: &RouteMessage,
    cluster: Ipv4Cidr,
    vxlan: Option<u32>,
) -> Option<(Ipv4Cidr, Via)> {
    let h = &r.header;
    if h.address_family != AddressFamily::Inet || h.protocol != RouteProtocol::Other(PROTOCOL) {
        return None;
    }
    let mut table = u32::from(h.table);
    let (mut dst, mut gateway, mut oif) = (None, Ipv4Addr::UNSPECIFIED, None);
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = *ip,
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let dst = Ipv4Cidr::new(
        dst.unwrap_or(Ipv4Addr::UNSPECIFIED),
        h.destination_prefix_length,
    )
    .ok()
    .filter(|d| inside(cluster, *d))?;
    let via = if oif.is_some() && oif == vxlan {
        Via::Vtep(gateway)
    } else {
        Via::Node(gateway)
    };
    Some((dst, via))
}

/// A permanent neighbour entry on skiff's vxlan device (learning is off,
/// so every permanent one there was made by skiff).
pub(crate) fn owned_neigh(n: &NeighbourMessage, vxlan: u32) -> Option<(Ipv4Addr, Mac)> {
    let h = &n.header;
    if h.family != AddressFamily::Inet || h.ifindex != vxlan || h.state != NeighbourState::Permanent
    {
        return None;
    }
    let ip = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })?;
    Some((ip, lladdr(n)?))
}

/// A permanent FDB entry of skiff's vxlan device itself (NTF_SELF), as
/// (MAC, the node it tunnels to).
pub(crate) fn owned_fdb(n: &NeighbourMessage, vxlan: u32) -> Option<(Mac, Ipv4Addr)> {
    let h = &n.header;
    if h.family != AddressFamily::Bridge
        || h.ifindex != vxlan
        || h.state != NeighbourState::Permanent
        || !h.flags.contains(NeighbourFlags::Own)
    {
        return None;
    }
    // The bridge family's NDA_DST is raw bytes to the parser.
    let dst = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
            <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
        }
        _ => None,
    })?;
    // The all-zeros entry is a default destination, which skiff never sets.
    let mac = lladdr(n).filter(|m| *m != [0; 6])?;
    Some((mac, dst))
}

fn lladdr(n: &NeighbourMessage) -> Option<Mac> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => Mac::try_from(b.as_slice()).ok(),
        _ => None,
    })
}

/// The vxlan device skiff wants: set at creation, so one that differs is
/// made again rather than changed (the kernel refuses most changes to a
/// vxlan device that is up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    pub link: u32,
    pub local: Ipv4Addr,
    pub mac: Mac,
}

/// Whether `link` is a vxlan device at all (a foreign link of skiff's name
/// is not skiff's to delete).
pub(crate) fn is_vxlan(link: &netlink_packet_route::link::LinkMessage) -> bool {
    vxlan_info(link).is_some()
}

/// Whether the existing vxlan device is the one wanted.
pub(crate) fn device_matches(
    link: &netlink_packet_route::link::LinkMessage,
    want: &Device,
) -> bool {
    let Some(info) = vxlan_info(link) else {
        return false;
    };
    let has = |x: &InfoVxlan| info.contains(x);
    let mac = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.as_slice()),
        _ => None,
    });
    has(&InfoVxlan::Id(VNI))
        && has(&InfoVxlan::Port(VXLAN_PORT))
        && has(&InfoVxlan::Local(want.local))
        && has(&InfoVxlan::Link(want.link))
        && has(&InfoVxlan::Learning(false))
        && mac == Some(want.mac.as_slice())
}

/// The vxlan attributes of `link`, if it is a vxlan device (empty if the
/// kernel sent none, which then matches no device skiff wants).
fn vxlan_info(link: &netlink_packet_route::link::LinkMessage) -> Option<&[InfoVxlan]> {
    let infos = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    })?;
    if !infos.contains(&LinkInfo::Kind(InfoKind::Vxlan)) {
        return None;
    }
    let data = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(v)) => Some(v.as_slice()),
        _ => None,
    });
    Some(data.unwrap_or(&[]))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
