use std::net::Ipv4Addr;

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteProtocol};
use netlink_packet_route::AddressFamily;
use rtnetlink::{LinkVxlan, RouteMessageBuilder};

use super::*;

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

const MAC_B: Mac = [0x0e, 0x5f, 192, 168, 90, 2];
const MAC_C: Mac = [0x0e, 0x5f, 192, 168, 90, 3];

fn local() -> Local {
    Local {
        pod_cidr: cidr("10.42.1.0/24"),
        node_ip: ip("192.168.90.1"),
        cluster_cidr: cidr("10.42.0.0/16"),
    }
}

fn peer(name: &str, pod: &str, node: &str, mac: Option<Mac>) -> Peer {
    Peer {
        name: name.to_string(),
        pod_cidr: cidr(pod),
        node_ip: ip(node),
        vtep_mac: mac,
    }
}

fn peers() -> Vec<Peer> {
    vec![
        // The node list includes this node itself.
        peer("a", "10.42.1.0/24", "192.168.90.1", Some(MAC_B)),
        peer("b", "10.42.2.0/24", "192.168.90.2", Some(MAC_B)),
        peer("c", "10.42.3.0/24", "192.168.90.3", None),
        peer("outside", "10.99.0.0/24", "192.168.90.4", Some(MAC_C)),
    ]
}

#[test]
fn host_gw_routes_every_other_node_via_its_address() {
    let (state, skipped) = desired(Backend::HostGw, &local(), &peers());
    assert_eq!(
        state,
        State {
            routes: vec![
                (cidr("10.42.2.0/24"), Via::Node(ip("192.168.90.2"))),
                (cidr("10.42.3.0/24"), Via::Node(ip("192.168.90.3"))),
            ],
            ..State::default()
        }
    );
    let names: Vec<_> = skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["outside"]);
}

#[test]
fn vxlan_wants_route_neighbour_and_fdb_and_waits_for_a_mac() {
    let (state, skipped) = desired(Backend::Vxlan, &local(), &peers());
    assert_eq!(
        state,
        State {
            routes: vec![(cidr("10.42.2.0/24"), Via::Vtep(ip("10.42.2.0")))],
            neighs: vec![(ip("10.42.2.0"), MAC_B)],
            fdb: vec![(MAC_B, ip("192.168.90.2"))],
        }
    );
    let names: Vec<_> = skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["c", "outside"]);
}

#[test]
fn a_peer_with_this_nodes_address_is_this_node() {
    let other_cidr_same_ip = peer("a2", "10.42.9.0/24", "192.168.90.1", Some(MAC_C));
    let (state, skipped) = desired(Backend::HostGw, &local(), &[other_cidr_same_ip]);
    assert_eq!(state, State::default());
    assert!(skipped.is_empty());
}

#[test]
fn overlapping_peers_and_shared_macs_are_skipped() {
    let ps = [
        peer("b", "10.42.2.0/24", "192.168.90.2", Some(MAC_B)),
        peer("b-wide", "10.42.0.0/23", "192.168.90.5", Some(MAC_C)),
        peer("d", "10.42.4.0/24", "192.168.90.6", Some(MAC_B)),
    ];
    let (state, skipped) = desired(Backend::Vxlan, &local(), &ps);
    assert_eq!(state.routes.len(), 1);
    let names: Vec<_> = skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["b-wide", "d"]);
}

#[test]
fn diff_adds_removes_replaces_and_keeps() {
    let desired = [(1, 'a'), (2, 'b'), (3, 'c')];
    let observed = [(2, 'b'), (3, 'x'), (4, 'd')];
    assert_eq!(
        diff(&desired, &observed),
        [
            Change::Remove(4, 'd'),
            Change::Replace(3, 'c'),
            Change::Add(1, 'a'),
        ]
    );
    assert!(diff(&desired, &desired).is_empty());
    assert!(diff::<u8, u8>(&[], &[]).is_empty());
    assert_eq!(
        diff(&[], &observed),
        [
            Change::Remove(2, 'b'),
            Change::Remove(3, 'x'),
            Change::Remove(4, 'd')
        ]
    );
}

#[test]
fn diff_keeps_one_entry_per_key() {
    // A stale duplicate before the wanted one: removed, the wanted kept.
    assert_eq!(
        diff(&[(1, 'a')], &[(1, 'x'), (1, 'a'), (1, 'a')]),
        [Change::Remove(1, 'x'), Change::Remove(1, 'a')]
    );
    // Two stale ones: the first replaced, the second removed (first).
    assert_eq!(
        diff(&[(1, 'a')], &[(1, 'x'), (1, 'y')]),
        [Change::Remove(1, 'y'), Change::Replace(1, 'a')]
    );
}

#[test]
fn plan_of_equal_states_is_empty() {
    let (state, _) = desired(Backend::Vxlan, &local(), &peers());
    assert!(plan(&state, &state).is_empty());
    let p = plan(&state, &State::default());
    assert_eq!(p.routes.len() + p.neighs.len() + p.fdb.len(), 3);
}

#[test]
fn a_moved_peer_is_replaced_not_removed_and_added() {
    let (before, _) = desired(Backend::Vxlan, &local(), &peers());
    let moved = [peer("b", "10.42.2.0/24", "192.168.90.7", Some(MAC_C))];
    let (after, _) = desired(Backend::Vxlan, &local(), &moved);
    let p = plan(&after, &before);
    assert!(p.routes.is_empty());
    assert_eq!(p.neighs, [Change::Replace(ip("10.42.2.0"), MAC_C)]);
    // The FDB is keyed by MAC: a new MAC is a new entry.
    assert_eq!(
        p.fdb,
        [
            Change::Remove(MAC_B, ip("192.168.90.2")),
            Change::Add(MAC_C, ip("192.168.90.7"))
        ]
    );
    let (gw, _) = desired(Backend::HostGw, &local(), &moved);
    assert_eq!(
        plan(&gw, &before).routes,
        [Change::Replace(
            cidr("10.42.2.0/24"),
            Via::Node(ip("192.168.90.7"))
        )]
    );
}

fn route(dst: &str, gw: &str, protocol: u8, oif: u32) -> RouteMessage {
    let dst = cidr(dst);
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.network(), dst.prefix())
        .gateway(ip(gw))
        .output_interface(oif)
        .protocol(RouteProtocol::from(protocol))
        .build()
}

#[test]
fn only_skiffs_routes_inside_the_cluster_are_its_own() {
    let cluster = cidr("10.42.0.0/16");
    let vx = Some(9);
    assert_eq!(
        owned_route(
            &route("10.42.2.0/24", "192.168.90.2", PROTOCOL, 3),
            cluster,
            vx
        ),
        Some((cidr("10.42.2.0/24"), Via::Node(ip("192.168.90.2"))))
    );
    assert_eq!(
        owned_route(
            &route("10.42.2.0/24", "10.42.2.0", PROTOCOL, 9),
            cluster,
            vx
        ),
        Some((cidr("10.42.2.0/24"), Via::Vtep(ip("10.42.2.0"))))
    );
    // Another protocol (static, boot), outside the cluster, or wider than it.
    for r in [
        route("10.42.2.0/24", "192.168.90.2", 4, 3),
        route("10.42.2.0/24", "192.168.90.2", 3, 3),
        route("10.43.2.0/24", "192.168.90.2", PROTOCOL, 3),
        route("10.0.0.0/8", "192.168.90.2", PROTOCOL, 3),
    ] {
        assert_eq!(owned_route(&r, cluster, vx), None, "{r:?}");
    }
    // Another table.
    let mut other = route("10.42.2.0/24", "192.168.90.2", PROTOCOL, 3);
    other.header.table = 100;
    assert_eq!(owned_route(&other, cluster, vx), None);
    other.header.table = 252;
    other.attributes.push(RouteAttribute::Table(1000));
    assert_eq!(owned_route(&other, cluster, vx), None);
}

fn neigh(family: AddressFamily, dev: u32, state: NeighbourState, self_: bool) -> NeighbourMessage {
    let mut n = NeighbourMessage::default();
    n.header.family = family;
    n.header.ifindex = dev;
    n.header.state = state;
    if self_ {
        n.header.flags = NeighbourFlags::Own;
    }
    n.attributes
        .push(NeighbourAttribute::LinkLayerAddress(MAC_B.to_vec()));
    n.attributes
        .push(NeighbourAttribute::Destination(match family {
            AddressFamily::Inet => NeighbourAddress::Inet(ip("10.42.2.0")),
            _ => NeighbourAddress::Other(vec![192, 168, 90, 2]),
        }));
    n
}

#[test]
fn neighbour_and_fdb_entries_are_the_permanent_ones_on_the_device() {
    use NeighbourState::{Permanent, Reachable};
    let inet = AddressFamily::Inet;
    let bridge = AddressFamily::Bridge;
    assert_eq!(
        owned_neigh(&neigh(inet, 9, Permanent, false), 9),
        Some((ip("10.42.2.0"), MAC_B))
    );
    assert_eq!(owned_neigh(&neigh(inet, 9, Reachable, false), 9), None);
    assert_eq!(owned_neigh(&neigh(inet, 3, Permanent, false), 9), None);
    assert_eq!(
        owned_fdb(&neigh(bridge, 9, Permanent, true), 9),
        Some((MAC_B, ip("192.168.90.2")))
    );
    assert_eq!(owned_fdb(&neigh(bridge, 9, Permanent, false), 9), None);
    assert_eq!(owned_fdb(&neigh(bridge, 3, Permanent, true), 9), None);
    let mut zeros = neigh(bridge, 9, Permanent, true);
    zeros.attributes[0] = NeighbourAttribute::LinkLayerAddress(vec![0; 6]);
    assert_eq!(owned_fdb(&zeros, 9), None);
}

#[test]
fn the_vtep_mac_is_fixed_by_the_node_address() {
    let a = vtep_mac(ip("192.168.90.1"));
    assert_eq!(a, vtep_mac(ip("192.168.90.1")));
    assert_ne!(a, vtep_mac(ip("192.168.90.2")));
    assert_eq!(a[0] & 1, 0, "unicast");
    assert_eq!(a[0] & 2, 2, "locally administered");
}

#[test]
fn the_device_is_kept_only_as_made() {
    let want = Device {
        link: 2,
        local: ip("192.168.90.1"),
        mac: vtep_mac(ip("192.168.90.1")),
    };
    let build = |local: &str, mac: Mac, learning: bool| {
        LinkVxlan::new(super::super::VXLAN_DEVICE, VNI)
            .dev(2)
            .port(VXLAN_PORT)
            .local(ip(local))
            .learning(learning)
            .address(mac.to_vec())
            .build()
    };
    assert!(device_matches(
        &build("192.168.90.1", want.mac, false),
        &want
    ));
    assert!(is_vxlan(&build("192.168.90.1", want.mac, false)));
    assert!(!device_matches(
        &build("192.168.90.9", want.mac, false),
        &want
    ));
    assert!(!device_matches(&build("192.168.90.1", MAC_C, false), &want));
    assert!(!device_matches(
        &build("192.168.90.1", want.mac, true),
        &want
    ));
    let bridge = rtnetlink::LinkBridge::new(super::super::VXLAN_DEVICE).build();
    assert!(!is_vxlan(&bridge));
}
