//! The overlay (skiff::net::overlay) on the real kernel, between "nodes"
//! that are network namespaces this test makes (never the host's own):
//!
//! one link (host-gw and vxlan)            a router between (vxlan only)
//!   A up0 192.168.90.1/24                   A up0 192.168.91.2/24
//!     |  veth                                 |  veth
//!   B up0 192.168.90.2/24                   R a0 192.168.91.1, b0 192.168.92.1
//!                                             |  veth
//!                                           B up0 192.168.92.2/24
//!
//! Each node holds its pod network on a bridge `skiff0` (10.42.1.1/24 on A,
//! 10.42.2.1/24 on B); a ping from A's pod address to B's shows the routes
//! work. The overlay runs on a thread that joined the node's namespace, as
//! the agent will.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use skiff::net::cidr::Ipv4Cidr;
use skiff::net::netns;
use skiff::net::overlay::{self, Backend, Local, OverlayError, Peer, SyncReport};

const CLUSTER: &str = "10.42.0.0/16";

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace of this test's, deleted when the value goes (also
/// when a test panics).
struct Ns {
    name: String,
}

impl Ns {
    fn new() -> Ns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("skiff-ov-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME args…`, which must succeed; its output.
    fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    fn fdb(&self) -> String {
        run_ok(Command::new("bridge").args(["-n", &self.name, "fdb", "show", "dev", "skiff.vxlan"]))
    }

    /// `f` on a thread inside this namespace.
    fn enter<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, OverlayError> + Send,
    ) -> Result<T, OverlayError> {
        let path = PathBuf::from("/run/netns").join(&self.name);
        netns::run_in(&path, f).expect("enter the test namespace")
    }

    /// Whether one of three pings from `from` to `to` is answered.
    fn ping(&self, from: &str, to: &str) -> bool {
        (0..3).any(|_| {
            run(Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.name))
                .args(["--", "busybox", "ping", "-c1", "-W2", "-I", from, to]))
            .status
            .success()
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "delete", &self.name]));
    }
}

/// A node: its namespace and what the overlay is told about it.
struct Node {
    ns: Ns,
    name: &'static str,
    local: Local,
    mac: Option<[u8; 6]>,
}

impl Node {
    fn new(name: &'static str, node_ip: &str, pod_cidr: &str) -> Node {
        let ns = Ns::new();
        let pod: Ipv4Cidr = pod_cidr.parse().unwrap();
        ns.ip(&["link", "add", "skiff0", "type", "bridge"]);
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/{}", pod.gateway(), pod.prefix()),
            "dev",
            "skiff0",
        ]);
        ns.ip(&["link", "set", "skiff0", "up"]);
        Node {
            ns,
            name,
            local: Local {
                pod_cidr: pod,
                node_ip: node_ip.parse().unwrap(),
                cluster_cidr: CLUSTER.parse().unwrap(),
            },
            mac: None,
        }
    }

    /// This node as the others see it.
    fn peer(&self) -> Peer {
        Peer {
            name: self.name.to_string(),
            pod_cidr: self.local.pod_cidr,
            node_ip: self.local.node_ip,
            vtep_mac: self.mac,
        }
    }

    /// Whether this node's pod address reaches `other`'s.
    fn reaches(&self, other: &Node) -> bool {
        let ip = |n: &Node| n.local.pod_cidr.gateway().to_string();
        self.ns.ping(&ip(self), &ip(other))
    }

    fn prepare(&mut self, backend: Backend) -> Option<[u8; 6]> {
        let local = &self.local;
        self.mac = self
            .ns
            .enter(|| overlay::prepare(backend, local))
            .expect("prepare");
        self.mac
    }

    fn sync(&self, backend: Backend, peers: &[Peer]) -> Result<SyncReport, OverlayError> {
        self.ns.enter(|| overlay::sync(backend, &self.local, peers))
    }

    fn teardown(&self) {
        let cluster = self.local.cluster_cidr;
        self.ns
            .enter(|| overlay::teardown(cluster))
            .expect("teardown");
    }

    fn pod_mtu(&self, backend: Backend) -> u32 {
        self.ns
            .enter(|| overlay::pod_mtu(backend, self.local.node_ip))
            .expect("pod_mtu")
    }

    /// skiff's routes, as `ip route` shows them.
    fn skiff_routes(&self) -> String {
        self.ns.ip(&["route", "show", "proto", "95"])
    }
}

/// A veth pair between two namespaces: (namespace, link name, address) at
/// each end.
fn link((a, a_if, a_addr): (&Ns, &str, &str), (b, b_if, b_addr): (&Ns, &str, &str)) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// Two nodes on one link.
fn one_link() -> (Node, Node) {
    let a = Node::new("node-a", "192.168.90.1", "10.42.1.0/24");
    let b = Node::new("node-b", "192.168.90.2", "10.42.2.0/24");
    link(
        (&a.ns, "up0", "192.168.90.1/24"),
        (&b.ns, "up0", "192.168.90.2/24"),
    );
    (a, b)
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Sync both nodes with the whole node list (each includes itself).
fn sync_both(backend: Backend, a: &Node, b: &Node) -> (SyncReport, SyncReport) {
    let all = [a.peer(), b.peer()];
    (
        a.sync(backend, &all).expect("sync A"),
        b.sync(backend, &all).expect("sync B"),
    )
}

#[test]
fn host_gw_routes_pods_between_nodes_on_one_link() {
    let (mut a, mut b) = one_link();
    assert_eq!(a.prepare(Backend::HostGw), None);
    assert_eq!(b.prepare(Backend::HostGw), None);
    assert_eq!(a.pod_mtu(Backend::HostGw), 1500);

    let (ra, rb) = sync_both(Backend::HostGw, &a, &b);
    assert_eq!((ra.added, rb.added), (1, 1), "{ra:?} {rb:?}");
    let routes = a.skiff_routes();
    assert!(
        routes.contains("10.42.2.0/24 via 192.168.90.2 dev up0"),
        "{routes}"
    );
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(a.reaches(&b), "A's pod address cannot reach B's");

    // Another's route inside the cluster network, and a second sync.
    a.ns.ip(&[
        "route",
        "add",
        "10.42.7.0/24",
        "via",
        "192.168.90.2",
        "proto",
        "static",
    ]);
    let (ra, rb) = sync_both(Backend::HostGw, &a, &b);
    assert!(!ra.changed() && !rb.changed(), "{ra:?} {rb:?}");

    // Another's route holds a peer's destination: the peer is skipped, the
    // route left as it is.
    a.ns.ip(&[
        "route",
        "add",
        "10.42.3.0/24",
        "via",
        "192.168.90.2",
        "proto",
        "static",
    ]);
    let c = Peer {
        name: "node-c".to_string(),
        pod_cidr: "10.42.3.0/24".parse().unwrap(),
        node_ip: "192.168.90.3".parse().unwrap(),
        vtep_mac: None,
    };
    let r = a.sync(Backend::HostGw, &[a.peer(), b.peer(), c]).unwrap();
    assert!(!r.changed() && r.skipped == ["node-c"], "{r:?}");

    // The peer goes: its route goes, the other's stays.
    let gone = a.sync(Backend::HostGw, &[a.peer()]).unwrap();
    assert_eq!(
        (gone.added, gone.replaced, gone.removed),
        (0, 0, 1),
        "{gone:?}"
    );
    assert_eq!(a.skiff_routes(), "");
    assert!(a
        .ns
        .ip(&["route", "show", "10.42.7.0/24"])
        .contains("via 192.168.90.2"));
    assert!(!a.reaches(&b), "reached B's pods without a route");

    // The peer moves to another address on the link: replaced in place.
    b.ns.ip(&["addr", "add", "192.168.90.12/24", "dev", "up0"]);
    a.sync(Backend::HostGw, &[b.peer()]).unwrap();
    let mut moved = b.peer();
    moved.node_ip = "192.168.90.12".parse().unwrap();
    let r = a.sync(Backend::HostGw, &[moved]).unwrap();
    assert_eq!((r.added, r.replaced, r.removed), (0, 1, 0), "{r:?}");
    assert!(a
        .skiff_routes()
        .contains("10.42.2.0/24 via 192.168.90.12 dev up0"));
    assert!(a.reaches(&b));

    a.teardown();
    assert_eq!(a.skiff_routes(), "");
    for foreign in ["10.42.3.0/24", "10.42.7.0/24"] {
        let r = a.ns.ip(&["route", "show", foreign]);
        assert!(r.contains("via 192.168.90.2 dev up0 proto static"), "{r}");
    }
}

#[test]
fn vxlan_routes_pods_between_nodes_on_one_link() {
    let (mut a, mut b) = one_link();
    let mac_a = a.prepare(Backend::Vxlan).expect("a MAC");
    let mac_b = b.prepare(Backend::Vxlan).expect("a MAC");
    assert_ne!(mac_a, mac_b);
    assert_eq!(
        a.prepare(Backend::Vxlan),
        Some(mac_a),
        "prepare is idempotent"
    );
    assert_eq!(a.pod_mtu(Backend::Vxlan), 1450);

    let dev = a.ns.ip(&["-d", "link", "show", "skiff.vxlan"]);
    for want in [
        "mtu 1450",
        &mac(mac_a),
        "vxlan id 1 local 192.168.90.1 dev up0",
        "dstport 8472",
        "nolearning",
    ] {
        assert!(dev.contains(want), "{want:?} not in {dev}");
    }
    let addrs = a.ns.ip(&["-4", "addr", "show", "dev", "skiff.vxlan"]);
    assert!(addrs.contains("inet 10.42.1.0/32"), "{addrs}");

    // A peer without a VTEP MAC waits.
    let mut early = b.peer();
    early.vtep_mac = None;
    let r = a.sync(Backend::Vxlan, &[a.peer(), early]).unwrap();
    assert!(!r.changed() && r.skipped == ["node-b"], "{r:?}");

    let (ra, rb) = sync_both(Backend::Vxlan, &a, &b);
    assert_eq!((ra.added, rb.added), (3, 3), "{ra:?} {rb:?}");
    let route = a.skiff_routes();
    assert!(
        route.contains("10.42.2.0/24 via 10.42.2.0 dev skiff.vxlan"),
        "{route}"
    );
    assert!(route.contains("onlink"), "{route}");
    let neigh = a.ns.ip(&["neigh", "show", "dev", "skiff.vxlan"]);
    assert!(
        neigh.contains(&format!("10.42.2.0 lladdr {} PERMANENT", mac(mac_b))),
        "{neigh}"
    );
    let fdb = a.ns.fdb();
    assert!(
        fdb.contains(&format!("{} dst 192.168.90.2 self permanent", mac(mac_b))),
        "{fdb}"
    );
    assert!(a.reaches(&b), "A's pod address cannot reach B's");

    // Another's route inside the cluster network; nothing to do twice.
    a.ns.ip(&[
        "route",
        "add",
        "10.42.7.0/24",
        "via",
        "192.168.90.2",
        "proto",
        "static",
    ]);
    let (ra, rb) = sync_both(Backend::Vxlan, &a, &b);
    assert!(!ra.changed() && !rb.changed(), "{ra:?} {rb:?}");

    // A wrong MAC for B, then the right one: the neighbour entry is
    // replaced, the FDB entry (keyed by MAC) removed and added.
    let mut wrong = b.peer();
    wrong.vtep_mac = Some([0x0e, 0x5f, 1, 2, 3, 4]);
    a.sync(Backend::Vxlan, &[wrong]).unwrap();
    assert!(!a.reaches(&b), "reached B through a wrong MAC");
    let r = a.sync(Backend::Vxlan, &[b.peer()]).unwrap();
    assert_eq!((r.added, r.replaced, r.removed), (1, 1, 1), "{r:?}");
    assert!(a.reaches(&b));

    // The peer goes: route, neighbour and FDB entry go; the other's stays.
    let r = a.sync(Backend::Vxlan, &[]).unwrap();
    assert_eq!((r.added, r.replaced, r.removed), (0, 0, 3), "{r:?}");
    assert_eq!(a.skiff_routes(), "");
    assert_eq!(
        a.ns.ip(&["neigh", "show", "dev", "skiff.vxlan", "nud", "permanent"]),
        ""
    );
    assert!(!a.ns.fdb().contains(&mac(mac_b)));
    assert!(a
        .ns
        .ip(&["route", "show", "10.42.7.0/24"])
        .contains("via 192.168.90.2"));

    // Switching to host-gw removes the device and routes the same pods.
    sync_both(Backend::Vxlan, &a, &b);
    a.prepare(Backend::HostGw);
    b.prepare(Backend::HostGw);
    assert!(a.ns.ip(&["link", "show", "type", "vxlan"]).is_empty());
    let (ra, _) = sync_both(Backend::HostGw, &a, &b);
    assert_eq!(ra.added, 1, "{ra:?}");
    assert!(a.reaches(&b));

    // Back to vxlan: the same MAC as before, then nothing of skiff's left.
    assert_eq!(a.prepare(Backend::Vxlan), Some(mac_a));
    a.teardown();
    assert!(a.ns.ip(&["link", "show", "type", "vxlan"]).is_empty());
    assert_eq!(a.skiff_routes(), "");
    assert!(a
        .ns
        .ip(&["route", "show", "10.42.7.0/24"])
        .contains("via 192.168.90.2"));
}

#[test]
fn vxlan_crosses_a_router_where_host_gw_cannot() {
    let mut a = Node::new("node-a", "192.168.91.2", "10.42.1.0/24");
    let mut b = Node::new("node-b", "192.168.92.2", "10.42.2.0/24");
    let r = Ns::new();
    link(
        (&r, "a0", "192.168.91.1/24"),
        (&a.ns, "up0", "192.168.91.2/24"),
    );
    link(
        (&r, "b0", "192.168.92.1/24"),
        (&b.ns, "up0", "192.168.92.2/24"),
    );
    a.ns.ip(&["route", "add", "default", "via", "192.168.91.1"]);
    b.ns.ip(&["route", "add", "default", "via", "192.168.92.1"]);
    // /proc/sys/net is that of the writer's namespace: R's only.
    run_ok(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", r.name))
            .args(["--", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]),
    );

    a.prepare(Backend::HostGw);
    // A peer host-gw cannot route is skipped (and warned about), the sync
    // itself goes on for the others.
    let report = a.sync(Backend::HostGw, &[b.peer()]).expect("sync");
    assert_eq!(report.skipped, vec!["node-b".to_string()], "{report:?}");
    assert_eq!(report.added, 0, "{report:?}");
    let why = OverlayError::NotOnLink {
        peer: "node-b".into(),
        node_ip: Ipv4Addr::new(192, 168, 92, 2),
    };
    assert!(why.to_string().contains("use the vxlan backend"), "{why}");
    assert_eq!(a.skiff_routes(), "");

    a.prepare(Backend::Vxlan);
    b.prepare(Backend::Vxlan);
    let (ra, rb) = sync_both(Backend::Vxlan, &a, &b);
    assert_eq!((ra.added, rb.added), (3, 3), "{ra:?} {rb:?}");
    assert!(a.reaches(&b), "A's pod address cannot reach B's");
    assert!(b.reaches(&a), "B's pod address cannot reach A's");

    a.teardown();
    b.teardown();
    for n in [&a, &b] {
        assert!(n.ns.ip(&["link", "show", "type", "vxlan"]).is_empty());
        assert_eq!(n.skiff_routes(), "");
    }
}

#[test]
fn errors_name_the_fix() {
    let n = Node::new("node-a", "192.168.93.1", "10.42.1.0/24");
    // The node address is on no link of this namespace.
    let err =
        n.ns.enter(|| overlay::prepare(Backend::Vxlan, &n.local))
            .unwrap_err();
    assert!(err.to_string().contains("set --node-ip"), "{err}");
    // vxlan peers before the device.
    let err = n.sync(Backend::Vxlan, &[]).unwrap_err();
    assert!(matches!(err, OverlayError::NoDevice), "{err:?}");
    // A link of skiff's name that is not skiff's is left alone.
    n.ns.ip(&["addr", "add", "192.168.93.1/24", "dev", "skiff0"]);
    n.ns.ip(&["link", "add", "skiff.vxlan", "type", "bridge"]);
    let err =
        n.ns.enter(|| overlay::prepare(Backend::Vxlan, &n.local))
            .unwrap_err();
    assert!(matches!(err, OverlayError::ForeignDevice), "{err:?}");
    n.teardown();
    assert!(n
        .ns
        .ip(&["link", "show", "skiff.vxlan"])
        .contains("skiff.vxlan"));
}
