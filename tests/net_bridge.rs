//! The bridge network of `skiff run`, inside network namespaces the test
//! makes: the engine's own namespace is "the node"; a second one, joined to
//! it by a veth pair, is "another host" on the node's uplink.
//!
//! node (engine netns)                     peer (TestNet)
//!   skiff0 10.42.0.1/24 -- containers
//!   up0 192.168.77.1/24  <--- veth --->   up1 192.168.77.2/24

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use containers::Engine;
use support::{run_ok, stderr, stdout, TestNet};

const NODE_IP: &str = "192.168.77.1";
const PEER_IP: &str = "192.168.77.2";

/// The engine's namespace plus a peer host on its uplink.
struct Lab {
    e: Engine,
    peer: TestNet,
}

impl Lab {
    fn new() -> Lab {
        let e = Engine::new();
        let peer = TestNet::new();
        let node = e.net.name().to_string();
        run_ok(Command::new("ip").args([
            "-n",
            &node,
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "up1",
            "netns",
            peer.name(),
        ]));
        run_ok(Command::new("ip").args([
            "-n",
            &node,
            "addr",
            "add",
            "192.168.77.1/24",
            "dev",
            "up0",
        ]));
        run_ok(Command::new("ip").args(["-n", &node, "link", "set", "up0", "up"]));
        run_ok(Command::new("ip").args([
            "-n",
            peer.name(),
            "addr",
            "add",
            "192.168.77.2/24",
            "dev",
            "up1",
        ]));
        run_ok(Command::new("ip").args(["-n", peer.name(), "link", "set", "up1", "up"]));
        Lab { e, peer }
    }

    /// A command in the peer host's namespace.
    fn in_peer(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.peer.name()))
            .arg("--")
            .arg(program);
        cmd
    }
}

/// A web server container serving `text` at /index.html on port 80.
fn web(e: &Engine, name: &str, text: &str, extra: &[&str]) -> String {
    let script =
        format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    e.ok(&args);
    let v = e.inspect(name);
    let ip = v["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(ip.starts_with("10.42.0."), "{v:#}");
    ip
}

/// An HTTP GET of `/` at `addr` (HOST:PORT) from a throw-away container,
/// retrying while httpd starts; returns the whole response. (busybox-static's
/// wget crashes in glibc's static NSS, so this speaks HTTP through nc.)
fn get_from_container(e: &Engine, extra: &[&str], addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "80"));
    let script = format!(
        "for i in $(seq 50); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} && exit 0; sleep 0.1; done; exit 1"
    );
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    e.ok(&args)
}

/// GET `url` with curl from a command prefix, retrying briefly.
fn curl(mut cmd: Command, url: &str) -> String {
    cmd.args([
        "curl",
        "-sS",
        "--max-time",
        "3",
        "--retry",
        "20",
        // A delay of 0 would mean curl's exponential back-off (up to ten
        // minutes per wait); bounded instead.
        "--retry-delay",
        "1",
        "--retry-max-time",
        "30",
        "--retry-connrefused",
        url,
    ]);
    let out = cmd.output().expect("curl");
    assert!(out.status.success(), "curl {url}: {}", stderr(&out));
    stdout(&out)
}

fn links(e: &Engine) -> String {
    let out = run_ok(Command::new("ip").args(["-n", e.net.name(), "-o", "link", "show"]));
    stdout(&out)
}

/// `nft list table ip skiff` in the node namespace, or None when there is
/// no such table (any other failure fails the test).
fn nft_table(e: &Engine) -> Option<String> {
    let out = e
        .in_net("nft")
        .args(["list", "table", "ip", "skiff"])
        .output()
        .expect("nft");
    if out.status.success() {
        return Some(stdout(&out));
    }
    assert!(
        stderr(&out).contains("No such file or directory"),
        "nft list failed: {}",
        stderr(&out)
    );
    None
}

/// The table exists and does not mention `ip`.
fn assert_rules_forget(e: &Engine, ip: &str) {
    let table = nft_table(e).expect("table ip skiff");
    assert!(!table.contains(ip), "{table}");
}

#[test]
fn containers_reach_each_other_and_published_ports_work() {
    let lab = Lab::new();
    let e = &lab.e;
    let ip = web(e, "web", "hello-bridge", &["-p", "8080:80"]);

    // Container to container, by IP.
    assert!(get_from_container(e, &[], &ip).contains("hello-bridge"));

    // The published port from the node itself, via localhost and via its
    // uplink address.
    let node = || e.in_net("env");
    assert_eq!(
        curl(node(), "http://127.0.0.1:8080/").trim(),
        "hello-bridge"
    );
    assert_eq!(
        curl(node(), &format!("http://{NODE_IP}:8080/")).trim(),
        "hello-bridge"
    );
    // From another host on the uplink.
    assert_eq!(
        curl(lab.in_peer("env"), &format!("http://{NODE_IP}:8080/")).trim(),
        "hello-bridge"
    );
    // Hairpin: the container reaches its own published port via the node.
    assert!(get_from_container(
        e,
        &["--network", "container:web"],
        &format!("{NODE_IP}:8080")
    )
    .contains("hello-bridge"));

    // ps and inspect show the mapping; the rules are readable by nft.
    let ps = e.ok(&["ps"]);
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let v = e.inspect("web");
    assert_eq!(
        v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], "8080",
        "{v:#}"
    );
    let table = nft_table(e).expect("table ip skiff");
    assert!(
        table.contains("dnat ip to") && table.contains(&ip) && table.contains("masquerade"),
        "{table}"
    );

    e.ok(&["rm", "-f", "web"]);
    assert!(!links(e).contains("veth"), "{}", links(e));
    assert_rules_forget(e, &ip);
    e.assert_clean();
}

#[test]
fn egress_is_masqueraded_to_the_node_address() {
    let lab = Lab::new();
    let e = &lab.e;
    // The peer's node has no route to 10.42.0.0/24: only a masqueraded
    // connection can be answered. The listener runs on a thread that joined
    // the peer's namespace.
    let ns = std::fs::File::open(format!("/run/netns/{}", lab.peer.name())).expect("peer netns");
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = TcpListener::bind((PEER_IP, 9000)).expect("bind");
        tx.send(()).expect("ready");
        let (mut conn, from): (TcpStream, SocketAddr) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = [0u8; 256];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nseen\n");
        from
    });
    rx.recv().expect("listener ready");
    // The node needs a default route for masquerade to pick the uplink.
    run_ok(Command::new("ip").args([
        "-n",
        e.net.name(),
        "route",
        "add",
        "default",
        "via",
        PEER_IP,
    ]));
    let body = get_from_container(e, &[], &format!("{PEER_IP}:9000"));
    assert!(body.contains("seen"), "{body}");
    let from = server.join().expect("server thread");
    assert_eq!(
        from.ip(),
        std::net::IpAddr::V4(NODE_IP.parse::<Ipv4Addr>().expect("ip"))
    );
    e.assert_clean();
}

#[test]
fn container_network_mode_shares_address_and_loopback() {
    let lab = Lab::new();
    let e = &lab.e;
    let ip = web(e, "a", "from-a", &[]);
    // a's loopback, reached from a container in a's namespace.
    let out = get_from_container(e, &["--network", "container:a"], "127.0.0.1:80");
    assert!(out.contains("from-a"), "{out}");
    let addr = e.ok(&[
        "run",
        "--rm",
        "--network",
        "container:a",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    // Joining a container that does not run is refused.
    e.ok(&["stop", "-t", "1", "a"]);
    let out = e.err(&["run", "--rm", "--network", "container:a", "busybox", "true"]);
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    e.ok(&["rm", "a"]);
    e.assert_clean();
}

#[test]
fn addresses_are_unique_and_released() {
    let lab = Lab::new();
    let e = &lab.e;
    let a = web(e, "one", "1", &[]);
    let b = web(e, "two", "2", &[]);
    assert_ne!(a, b);
    let net = e.ok(&["network", "inspect"]);
    assert!(net.contains(&a) && net.contains(&b), "{net}");
    e.ok(&["rm", "-f", "one", "two"]);
    let ipam = e.root().join("net/ipam");
    let left: Vec<_> = std::fs::read_dir(&ipam)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("10."))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(!links(e).contains("veth"), "{}", links(e));
    e.assert_clean();
}

#[test]
fn a_killed_shim_leaves_no_address_veth_or_rule_behind() {
    let lab = Lab::new();
    let e = &lab.e;
    let ip = web(e, "crash", "x", &["-p", "8081:80"]);
    // The crash: the shim and the container die without any cleanup.
    let v = e.inspect("crash");
    // The test started these (through skiff run); they are killed by PID.
    for pid in e.shims() {
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -9 {pid}");
    }
    if let Some(pid) = v["State"]["Pid"].as_i64().filter(|p| *p > 0) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    // Bounded wait (not an assertion on time) until the shim is gone.
    for _ in 0..100 {
        if e.shims().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(e.shims().is_empty(), "the shim survived kill -9");
    // The next command notices and releases everything it held.
    let ps = e.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited"), "{ps}");
    assert!(!links(e).contains("veth"), "{}", links(e));
    assert_rules_forget(e, &ip);
    // The port and a fresh address are free for the next container.
    web(e, "again", "y", &["-p", "8081:80"]);
    e.ok(&["rm", "-f", "crash", "again"]);
    e.assert_clean();
}

#[test]
fn bad_network_input_is_refused_cleanly() {
    let lab = Lab::new();
    let e = &lab.e;
    web(e, "p", "p", &["-p", "8082:80"]);
    let cases: &[(&[&str], &str)] = &[
        (&["-p", "8082:80"], "already published"),
        (&["-p", "70000:80"], "between 1 and 65535"),
        (&["-p", "0:80"], "between 1 and 65535"),
        (
            &["--network", "none", "-p", "1:2"],
            "needs the bridge network",
        ),
        (&["--network", "bogus"], "invalid network"),
        (&["--node-cidr", "192.168.77.0/24"], "overlaps"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "true"]);
        let out = e.err(&args);
        assert!(stderr(&out).contains(want), "{extra:?}: {}", stderr(&out));
    }
    // Only the one good container holds anything.
    let net = e.ok(&["network", "inspect"]);
    assert_eq!(net.matches("IPv4Address").count(), 1, "{net}");
    e.ok(&["rm", "-f", "p"]);
    e.assert_clean();
}

#[test]
fn two_nodes_in_two_namespaces_do_not_interfere() {
    let one = Lab::new();
    let two = Lab::new();
    web(&one.e, "w", "node-one", &["-p", "8090:80"]);
    web(&two.e, "w", "node-two", &["-p", "8090:80"]);
    assert!(curl(one.e.in_net("env"), "http://127.0.0.1:8090/").contains("node-one"));
    assert!(curl(two.e.in_net("env"), "http://127.0.0.1:8090/").contains("node-two"));
    one.e.ok(&["rm", "-f", "w"]);
    assert!(curl(two.e.in_net("env"), "http://127.0.0.1:8090/").contains("node-two"));
    two.e.ok(&["rm", "-f", "w"]);
    one.e.assert_clean();
    two.e.assert_clean();
}

#[test]
fn killall_leaves_nothing_behind() {
    let lab = Lab::new();
    let e = &lab.e;
    web(e, "a", "a", &["-p", "8091:80"]);
    web(e, "b", "b", &[]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert!(links(e).contains("skiff0"));
    e.ok(&["killall"]);
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");
    let l = links(e);
    assert!(!l.contains("skiff0") && !l.contains("veth"), "{l}");
    assert_eq!(nft_table(e), None, "table still there");
    assert!(e.shims().is_empty(), "{:?}", e.shims());
    assert!(e.mounts().is_empty(), "{:?}", e.mounts());
    // Running it again (nothing left) is fine.
    e.ok(&["killall"]);
    e.assert_clean();
}

#[test]
fn host_ip_ports_dns_and_extra_hosts() {
    let lab = Lab::new();
    let e = &lab.e;
    // Published on the node's loopback only.
    web(e, "lo-only", "local", &["-p", "127.0.0.1:8083:80"]);
    assert!(curl(e.in_net("env"), "http://127.0.0.1:8083/").contains("local"));
    let out = e
        .in_net("curl")
        .args(["-sS", "--max-time", "2", &format!("http://{NODE_IP}:8083/")])
        .output()
        .expect("curl");
    assert!(
        !out.status.success(),
        "reachable via {NODE_IP}: {}",
        stdout(&out)
    );
    // Name servers and /etc/hosts lines of the user's choosing.
    let files = e.ok(&[
        "run",
        "--rm",
        "--dns",
        "192.0.2.53",
        "--add-host",
        "db.internal:192.0.2.7",
        "--hostname",
        "box",
        "busybox",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
    ]);
    assert!(files.contains("nameserver 192.0.2.53"), "{files}");
    assert!(files.contains("192.0.2.7\tdb.internal"), "{files}");
    assert!(
        files
            .lines()
            .any(|l| l.starts_with("10.42.0.") && l.ends_with("\tbox")),
        "{files}"
    );
    e.ok(&["rm", "-f", "lo-only"]);
    e.assert_clean();
}

#[test]
fn an_exhausted_pool_is_a_clear_error_with_nothing_half_made() {
    let lab = Lab::new();
    let e = &lab.e;
    // A /30 holds the gateway and one container.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "only",
        "--node-cidr",
        "10.99.0.0/30",
        "busybox",
        "sleep",
        "1000",
    ]);
    let before = links(e);
    let out = e.err(&[
        "run",
        "--rm",
        "--node-cidr",
        "10.99.0.0/30",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&out).contains("no free IP address left in 10.99.0.0/30"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        links(e).matches("veth").count(),
        before.matches("veth").count()
    );
    let handles = std::fs::read_dir(e.run_dir().join("netns"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(handles, 1);
    e.ok(&["rm", "-f", "only"]);
    // Releasing rewrites the rules for the node's own subnet, not the default.
    let table = nft_table(e).expect("table ip skiff");
    assert!(
        table.contains("10.99.0.0/30") && !table.contains("10.42.0.0"),
        "{table}"
    );
    e.assert_clean();
}

#[test]
fn a_second_root_in_the_same_namespace_is_refused() {
    let lab = Lab::new();
    let e = &lab.e;
    web(e, "first", "1", &[]);
    let other = tempfile::tempdir().expect("temp dir");
    let archive = containers::build_busybox_archive(other.path());
    let skiff = |args: &[&str]| {
        e.in_net(env!("CARGO_BIN_EXE_skiff"))
            .arg("--root")
            .arg(other.path().join("root"))
            .arg("--run-dir")
            .arg(other.path().join("run"))
            .args(args)
            .output()
            .expect("skiff")
    };
    let load = skiff(&["load", "-i", archive.to_str().expect("utf-8")]);
    assert!(load.status.success(), "{}", stderr(&load));
    let out = skiff(&["run", "--rm", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("belongs to the skiff root"),
        "{}",
        stderr(&out)
    );
    // The first root's container still serves.
    assert!(get_from_container(
        e,
        &[],
        &format!(
            "{}:80",
            e.inspect("first")["NetworkSettings"]["IPAddress"]
                .as_str()
                .unwrap_or_default()
        )
    )
    .contains('1'));
    e.ok(&["rm", "-f", "first"]);
    e.assert_clean();
}

#[test]
fn a_host_port_is_picked_when_none_is_given() {
    let lab = Lab::new();
    let e = &lab.e;
    web(e, "any", "picked", &["-p", "80"]);
    let v = e.inspect("any");
    let port: u16 = v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no host port: {v:#}"));
    assert!((32768..=60999).contains(&port), "{port}");
    assert!(curl(e.in_net("env"), &format!("http://127.0.0.1:{port}/")).contains("picked"));
    assert!(e.ok(&["ps"]).contains(&format!("0.0.0.0:{port}->80/tcp")));
    e.ok(&["rm", "-f", "any"]);
    e.assert_clean();
}

/// CVE-2020-8558: publishing on 127.0.0.1 sets route_localnet on the bridge,
/// and with it the node routes packets for 127.0.0.0/8 that arrive on the
/// bridge to its own loopback services. A container with CAP_NET_RAW (in
/// the default set) can send such packets; here the test, as root in the
/// container's network namespace, lets that namespace's kernel send them
/// (127.0.0.1 routed out of eth0 via the gateway). A service bound to the
/// node's 127.0.0.1 must not answer, while the published port on 127.0.0.1
/// keeps working from the node itself.
#[test]
fn containers_cannot_reach_the_nodes_loopback() {
    let e = Engine::new();
    let node_ns = std::fs::File::open(format!("/run/netns/{}", e.net.name())).expect("node netns");
    let (listener, udp) = std::thread::spawn(move || {
        nix::sched::setns(node_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        (
            TcpListener::bind(("127.0.0.1", 0)).expect("bind on the node's 127.0.0.1"),
            UdpSocket::bind(("127.0.0.1", 0)).expect("udp bind on the node's 127.0.0.1"),
        )
    })
    .join()
    .expect("listener thread");
    let udp_port = udp.local_addr().expect("udp addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();

    // route_localnet is set on the bridge by a port published on 127.0.0.1.
    web(&e, "lo-pub", "published", &["-p", "127.0.0.1:8085:80"]);
    assert!(curl(e.in_net("env"), "http://127.0.0.1:8085/").contains("published"));

    e.ok(&[
        "run", "-d", "--name", "attacker", "busybox", "sleep", "1000",
    ]);
    let v = e.inspect("attacker");
    let pid = v["State"]["Pid"].as_u64().expect("pid");
    let gw = v["NetworkSettings"]["Gateway"]
        .as_str()
        .expect("gateway")
        .to_string();
    let ctr_ns = format!("/proc/{pid}/ns/net");
    let in_ctr = |args: &[&str]| {
        run_ok(
            Command::new("nsenter")
                .arg(format!("--net={ctr_ns}"))
                .arg("--")
                .args(args),
        )
    };
    // The container's own 127.0.0.1 goes away so that it is routed out of
    // eth0; its kernel must accept replies from 127.0.0.1 there.
    in_ctr(&["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"]);
    in_ctr(&["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"]);
    in_ctr(&["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"]);
    in_ctr(&[
        "ip",
        "route",
        "add",
        "127.0.0.1/32",
        "via",
        &gw,
        "dev",
        "eth0",
    ]);

    let ns = std::fs::File::open(&ctr_ns).expect("container netns");
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let attempt = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        // A bound on waiting for a SYN-ACK, not an assertion on time.
        (0..3)
            .map(|_| TcpStream::connect_timeout(&target, Duration::from_secs(2)))
            .find(|r| r.is_ok())
            .unwrap_or_else(|| TcpStream::connect_timeout(&target, Duration::from_secs(2)))
    })
    .join()
    .expect("attempt thread");
    assert!(
        attempt.is_err(),
        "a container reached a service on the node's 127.0.0.1:{port}"
    );
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the node's loopback service saw a connection: {other:?}"),
    }

    // A spoofed loopback source (CVE-2020-8558): skiff0 accepts 127.x
    // sources (route_localnet), so only `iifname != lo` tells this apart.
    in_ctr(&["ip", "addr", "add", "127.0.0.2/32", "dev", "eth0"]);
    let ns = std::fs::File::open(&ctr_ns).expect("container netns");
    let udp_target = SocketAddr::from((Ipv4Addr::LOCALHOST, udp_port));
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let s = UdpSocket::bind(("127.0.0.2", 0)).expect("bind 127.0.0.2 in the container");
        for _ in 0..3 {
            s.send_to(b"spoofed", udp_target).expect("send");
        }
    })
    .join()
    .expect("spoof thread");
    // A bound on waiting for a datagram, not an assertion on time.
    udp.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    match udp.recv_from(&mut buf) {
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a spoofed 127.0.0.2 datagram reached the node's 127.0.0.1: {other:?}"),
    }

    // The node itself still reaches its published port on 127.0.0.1.
    assert!(curl(e.in_net("env"), "http://127.0.0.1:8085/").contains("published"));
    e.ok(&["rm", "-f", "attacker", "lo-pub"]);
    e.assert_clean();
}
