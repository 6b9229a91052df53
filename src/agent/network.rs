//! The pod network across nodes: this node's routes to every other node's
//! pod subnet (`net::overlay`: host-gw routes, or a VXLAN device with its
//! neighbour and forwarding entries), kept in step with the Nodes.
//!
//! Each node publishes what its peers need to reach it on its own Node:
//! its pod subnet (the server's, `spec.podCIDR`), its InternalIP, and for
//! VXLAN its device's MAC in the [`VTEP_MAC`] annotation. Every agent
//! watches all Nodes and states the whole wanted set at each change (the
//! overlay's sync sends only what differs), and again every
//! [`RESYNC`] in case someone removed a route.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio_util::sync::CancellationToken;

use crate::net::cidr::Ipv4Cidr;
use crate::net::overlay::{self, Backend, Local, Peer};

/// The Node annotation holding its VXLAN device's MAC.
pub const VTEP_MAC: &str = "skiff.io/vxlan-mac";
/// How often the kernel's state is stated again with nothing changed.
const RESYNC: Duration = Duration::from_secs(60);
/// After a failure, the next try.
const RETRY: Duration = Duration::from_secs(2);

/// The node's own address, if the pod network can use it: IPv4, not
/// loopback (a node alone on its box has no peers to reach).
fn usable_ip(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_unspecified() => Some(v4),
        _ => None,
    }
}

/// The MTU pods get on this node: the backend's share of the node link's
/// (None: the uplink's, as without a cluster).
pub fn pod_mtu(config: &super::config::AgentConfig) -> Option<u32> {
    let backend = config.cluster.pod_network?;
    let ip = usable_ip(config.node_ip)?;
    match overlay::pod_mtu(backend, ip) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!("the pod network's MTU: {e}");
            None
        }
    }
}

/// Whether `ip` can be a node's address on the pod network: not loopback,
/// unspecified, multicast or broadcast, and not inside the cluster's own
/// pod or service ranges (a node writes its own addresses; one that names
/// such an address would send every node's traffic for its subnet astray).
fn routable_node_ip(ip: Ipv4Addr, cluster: &crate::cluster::ClusterConfig) -> bool {
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || cluster.cluster_cidr.contains(ip)
        || cluster.service_cidr.contains(ip))
}

/// The peers to route, from the Nodes seen: each must have a routable
/// address and, for VXLAN, the MAC that address gives (a node cannot point
/// its peers' forwarding entries at another node's device); of two Nodes
/// naming one address or one subnet, the older keeps it (a newcomer cannot
/// take over a node's traffic by copying its address).
fn peers_of(nodes: &BTreeMap<String, Node>, cluster: &crate::cluster::ClusterConfig) -> Vec<Peer> {
    let mut by_age: Vec<&Node> = nodes.values().collect();
    by_age.sort_by_key(|n| {
        (
            n.metadata.creation_timestamp.as_ref().map(|t| t.0),
            n.metadata.name.clone(),
        )
    });
    let mut out: Vec<Peer> = Vec::new();
    for node in by_age {
        let Some(mut p) = peer_of(node) else { continue };
        if !routable_node_ip(p.node_ip, cluster) {
            tracing::debug!(node = %p.name, ip = %p.node_ip, "not routing a node whose address cannot be a node's");
            continue;
        }
        if p.vtep_mac
            .is_some_and(|m| m != overlay::vtep_mac(p.node_ip))
        {
            tracing::debug!(node = %p.name, "a node's VXLAN MAC is not its address's: left until it is");
            p.vtep_mac = None;
        }
        if out
            .iter()
            .any(|o| o.node_ip == p.node_ip || o.pod_cidr == p.pod_cidr)
        {
            tracing::warn!(node = %p.name, ip = %p.node_ip, cidr = %p.pod_cidr, "a node names the address or pod subnet of an older node: not routed");
            continue;
        }
        out.push(p);
    }
    out
}

/// What a Node tells its peers.
fn peer_of(node: &Node) -> Option<Peer> {
    let name = node.metadata.name.clone()?;
    let pod_cidr: Ipv4Cidr = node.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?;
    let node_ip = node
        .status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse::<Ipv4Addr>().ok())?;
    let vtep_mac = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VTEP_MAC))
        .and_then(|m| parse_mac(m));
    Some(Peer {
        name,
        pod_cidr,
        node_ip,
        vtep_mac,
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Keep this node's routes to the others until `cancel`; then they stay
/// (pods keep talking while the agent restarts).
pub async fn run(
    client: kube::Client,
    config: super::config::AgentConfig,
    mut pod_cidr: tokio::sync::watch::Receiver<Option<Ipv4Cidr>>,
    cancel: CancellationToken,
) {
    let (Some(backend), Some(node_ip)) = (config.cluster.pod_network, usable_ip(config.node_ip))
    else {
        tracing::info!(node_ip = %config.node_ip, "no pod network across nodes: the node's address is not one other nodes can reach");
        return;
    };
    let cluster_cidr = config.cluster.cluster_cidr;
    let own = loop {
        if let Some(c) = *pod_cidr.borrow_and_update() {
            break c;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = pod_cidr.changed() => if r.is_err() { return },
        }
    };
    let local = Local {
        pod_cidr: own,
        node_ip,
        cluster_cidr,
    };
    let nodes: Api<Node> = Api::all(client);
    // The device first (its MAC is what peers need), published on the Node.
    loop {
        match prepare(backend, &local, &nodes, &config.node_name).await {
            Ok(()) => break,
            Err(e) => tracing::warn!(%backend, "setting up the pod network: {e}; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
    tracing::info!(%backend, pod_cidr = %own, "pod network ready");
    let mut seen: BTreeMap<String, Node> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Node>> = None;
    let mut events = watcher::watcher(nodes, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut resync = tokio::time::interval(RESYNC);
    let mut dirty = false;
    let mut synced = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = resync.tick() => dirty = synced,
            ev = events.next() => match ev {
                None => return,
                Some(Err(e)) => tracing::debug!("watching nodes: {e}"),
                Some(Ok(Event::Init)) => listing = Some(BTreeMap::new()),
                Some(Ok(Event::InitApply(n))) => {
                    if let (Some(l), Some(name)) = (listing.as_mut(), n.metadata.name.clone()) {
                        l.insert(name, n);
                    }
                }
                Some(Ok(Event::InitDone)) => {
                    seen = listing.take().unwrap_or_default();
                    synced = true;
                    dirty = true;
                }
                Some(Ok(Event::Apply(n))) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let before = seen.get(&name).and_then(peer_of).map(|p| peer_key(&p));
                    let now = peer_of(&n).map(|p| peer_key(&p));
                    seen.insert(name, n);
                    dirty |= synced && before != now;
                }
                Some(Ok(Event::Delete(n))) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    dirty |= synced && seen.remove(&name).is_some();
                }
            },
        }
        if !dirty {
            continue;
        }
        // Whatever else arrived meanwhile goes into the same sync.
        let wanted: Vec<Peer> = peers_of(&seen, &config.cluster);
        let l = local.clone();
        let done = tokio::task::spawn_blocking(move || overlay::sync(backend, &l, &wanted)).await;
        match done {
            Ok(Ok(report)) => {
                dirty = false;
                if report.changed() {
                    tracing::info!(
                        added = report.added,
                        replaced = report.replaced,
                        removed = report.removed,
                        "pod network routes updated"
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::warn!("updating the pod network's routes: {e}");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => tracing::warn!("updating the pod network's routes: {e}"),
        }
    }
}

/// What about a peer the kernel's entries depend on.
fn peer_key(p: &Peer) -> (Ipv4Cidr, Ipv4Addr, Option<[u8; 6]>) {
    (p.pod_cidr, p.node_ip, p.vtep_mac)
}

async fn prepare(
    backend: Backend,
    local: &Local,
    nodes: &Api<Node>,
    node: &str,
) -> Result<(), String> {
    let l = local.clone();
    let mac = tokio::task::spawn_blocking(move || overlay::prepare(backend, &l))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    // host-gw: a MAC left from vxlan would send peers down a dead device.
    let value = mac.map(format_mac);
    let patch = serde_json::json!({"metadata": {"annotations": {VTEP_MAC: value}}});
    nodes
        .patch(
            node,
            &PatchParams {
                field_manager: Some(super::node::register::FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| format!("publishing the node's VXLAN MAC: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip() {
        let m = [0x0e, 0x5f, 192, 168, 80, 2];
        assert_eq!(format_mac(m), "0e:5f:c0:a8:50:02");
        assert_eq!(parse_mac(&format_mac(m)), Some(m));
        for bad in [
            "",
            "0e:5f:c0:a8:50",
            "0e:5f:c0:a8:50:02:00",
            "zz:5f:c0:a8:50:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_node_is_a_peer_once_it_has_a_subnet_and_an_address() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b", "annotations": {VTEP_MAC: "0e:5f:c0:a8:50:03"}},
            "spec": {"podCIDR": "10.42.1.0/24"},
            "status": {"addresses": [{"type": "Hostname", "address": "b"}, {"type": "InternalIP", "address": "192.168.80.3"}]}
        }))
        .unwrap();
        let p = peer_of(&node).unwrap();
        assert_eq!(p.pod_cidr.to_string(), "10.42.1.0/24");
        assert_eq!(p.node_ip, Ipv4Addr::new(192, 168, 80, 3));
        assert_eq!(p.vtep_mac, Some([0x0e, 0x5f, 192, 168, 80, 3]));
        let bare: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}})).unwrap();
        assert!(peer_of(&bare).is_none());
    }

    fn node(name: &str, created: &str, ip: &str, cidr: &str, mac: Option<&str>) -> Node {
        let mut annotations = serde_json::Map::new();
        if let Some(m) = mac {
            annotations.insert(VTEP_MAC.into(), serde_json::json!(m));
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
        }))
        .unwrap()
    }

    #[test]
    fn peers_cannot_take_others_traffic() {
        let cluster = crate::cluster::ClusterConfig::default();
        let mac = |ip: &str| format_mac(overlay::vtep_mac(ip.parse().unwrap()));
        let nodes: BTreeMap<String, Node> = [
            node(
                "b",
                "2026-01-01T00:00:00Z",
                "192.168.80.3",
                "10.42.1.0/24",
                Some(&mac("192.168.80.3")),
            ),
            // Younger, copying b's address: not routed.
            node(
                "a-thief",
                "2026-01-02T00:00:00Z",
                "192.168.80.3",
                "10.42.9.0/24",
                Some(&mac("192.168.80.3")),
            ),
            // Younger, copying b's subnet: not routed.
            node(
                "c",
                "2026-01-02T00:00:00Z",
                "192.168.80.4",
                "10.42.1.0/24",
                None,
            ),
            // A MAC that is not its address's: routed without one (vxlan
            // skips it until it is right).
            node(
                "d",
                "2026-01-03T00:00:00Z",
                "192.168.80.5",
                "10.42.3.0/24",
                Some(&mac("192.168.80.3")),
            ),
            // Addresses no node can have.
            node(
                "e",
                "2026-01-03T00:00:00Z",
                "127.0.0.1",
                "10.42.4.0/24",
                None,
            ),
            node(
                "f",
                "2026-01-03T00:00:00Z",
                "10.43.0.1",
                "10.42.5.0/24",
                None,
            ),
            node(
                "g",
                "2026-01-03T00:00:00Z",
                "10.42.7.1",
                "10.42.6.0/24",
                None,
            ),
        ]
        .into_iter()
        .map(|n| (n.metadata.name.clone().unwrap(), n))
        .collect();
        let peers = peers_of(&nodes, &cluster);
        let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["b", "d"], "{peers:?}");
        assert_eq!(
            peers[0].vtep_mac,
            Some(overlay::vtep_mac("192.168.80.3".parse().unwrap()))
        );
        assert_eq!(peers[1].vtep_mac, None);
    }
}
