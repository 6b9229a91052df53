//! Table `ip skiff` on the real kernel (src/net/nft), read back with the
//! real `nft` (Debian's nftables package).
//!
//! Each test runs in a network namespace of its own, made with
//! unshare(CLONE_NEWNET) on a thread of its own: the namespace belongs to that
//! thread only and disappears with it, so nothing here can reach the host's
//! namespace, routes or firewall. `nft` and `ip` are run through
//! `nsenter --net=/proc/<pid>/task/<tid>/ns/net`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use nix::sched::{unshare, CloneFlags};
use skiff::net::nft::{self, Config, NftError, PortMapping, Proto};

/// The test thread's network namespace.
struct Netns {
    path: String,
}

impl Netns {
    /// Runs `program` in this namespace; returns (success, stdout, stderr).
    fn run(&self, program: &str, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path))
            .arg(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run nsenter {program}: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let (ok, out, err) = self.run(program, args);
        assert!(ok, "{program} {args:?} failed:\n{out}\n{err}");
        out
    }

    /// `nft list table ip skiff`, or None when there is no such table.
    fn skiff_table(&self) -> Option<String> {
        let (ok, out, err) = self.run("nft", &["list", "table", "ip", "skiff"]);
        if ok {
            Some(out)
        } else {
            assert!(
                err.contains("No such file or directory"),
                "nft list failed oddly: {err}"
            );
            None
        }
    }
}

/// Runs `f` on a new thread inside a new network namespace with `lo` up.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce(&Netns) -> T + Send + 'static) -> T {
    let handle = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) (run as root)");
        let ns = Netns {
            path: format!(
                "/proc/{}/task/{}/ns/net",
                std::process::id(),
                nix::unistd::gettid()
            ),
        };
        ns.run_ok("ip", &["link", "set", "lo", "up"]);
        f(&ns)
    });
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn mapping(
    host_ip: Option<[u8; 4]>,
    host_port: u16,
    proto: Proto,
    container_ip: [u8; 4],
    container_port: u16,
) -> PortMapping {
    PortMapping {
        host_ip: host_ip.map(Ipv4Addr::from),
        host_port,
        proto,
        container_ip: container_ip.into(),
        container_port,
    }
}

fn config(ports: Vec<PortMapping>) -> Config {
    Config {
        pod_cidr: "10.42.0.0/24".parse().unwrap(),
        cluster_cidr: None,
        bridge: "skiff0".into(),
        ports,
    }
}

/// The lines of chain `name` in a listing, trimmed; panics if it is absent.
fn chain<'a>(listing: &'a str, name: &str) -> Vec<&'a str> {
    block(listing, &format!("chain {name}"))
}

/// The lines of `what {` … `}` in a listing, trimmed; panics if absent.
fn block<'a>(listing: &'a str, what: &str) -> Vec<&'a str> {
    let header = format!("{what} {{");
    let mut lines = listing.lines().map(str::trim);
    assert!(lines.any(|l| l == header), "no {what} in:\n{listing}");
    lines.take_while(|l| *l != "}").collect()
}

/// Published ports are elements of map `published-any` (every address) or
/// `published-addr` (one address), which the chain `published` looks up.
fn has_dnat(listing: &str, on: Option<&str>, proto: &str, port: u16, to: &str) -> bool {
    let (map, key) = match on {
        Some(ip) => ("published-addr", format!("{ip} . {proto} . {port}")),
        None => ("published-any", format!("{proto} . {port}")),
    };
    let want = format!("{key} : {}", to.replace(':', " . "));
    block(listing, &format!("map {map}"))
        .iter()
        .any(|l| l.contains(&want))
}

/// How many ports map `name` publishes.
fn published_count(listing: &str, name: &str) -> usize {
    block(listing, &format!("map {name}"))
        .iter()
        .filter(|l| !l.starts_with("type "))
        .map(|l| l.matches(" : ").count())
        .sum()
}

#[test]
fn apply_builds_the_whole_table() {
    let listing = in_new_netns(|ns| {
        let cfg = config(vec![
            mapping(None, 8080, Proto::Tcp, [10, 42, 0, 5], 80),
            mapping(Some([192, 168, 7, 1]), 5353, Proto::Udp, [10, 42, 0, 6], 53),
        ]);
        nft::apply(&cfg).expect("apply");
        ns.skiff_table().expect("table ip skiff after apply")
    });
    println!("nft list table ip skiff:\n{listing}");

    let pre = chain(&listing, "prerouting");
    assert!(
        pre.contains(&"type nat hook prerouting priority dstnat; policy accept;"),
        "{pre:?}"
    );
    assert!(
        pre.contains(&"fib daddr type local jump published"),
        "{pre:?}"
    );

    let out = chain(&listing, "output");
    assert!(
        out.contains(&"type nat hook output priority -100; policy accept;"),
        "{out:?}"
    );
    assert!(
        out.contains(&"fib daddr type local jump published"),
        "{out:?}"
    );

    let published = chain(&listing, "published");
    assert_eq!(
        published,
        [
            "ct mark set ct mark | 0x00002000 dnat ip to ip daddr . meta l4proto . th dport map @published-addr",
            "ct mark set ct mark | 0x00002000 dnat ip to meta l4proto . th dport map @published-any",
        ]
    );
    assert!(
        has_dnat(&listing, None, "tcp", 8080, "10.42.0.5:80"),
        "{listing}"
    );
    assert!(
        has_dnat(&listing, Some("192.168.7.1"), "udp", 5353, "10.42.0.6:53"),
        "{listing}"
    );
    // A wildcard mapping must not match on an address, nor the other way.
    assert_eq!(published_count(&listing, "published-any"), 1, "{listing}");
    assert_eq!(published_count(&listing, "published-addr"), 1, "{listing}");

    let post = chain(&listing, "postrouting");
    assert!(
        post.contains(&"type nat hook postrouting priority srcnat; policy accept;"),
        "{post:?}"
    );
    assert!(
        post.contains(&"ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/24 masquerade"),
        "{post:?}"
    );
    assert!(
        post.contains(&"ip saddr 127.0.0.0/8 oifname \"skiff0\" masquerade"),
        "{post:?}"
    );
    assert!(
        // Only the engine's own DNATs (marked in `published`): a Service's
        // keep the client's address.
        post.contains(&"oifname \"skiff0\" ip saddr 10.42.0.0/24 ct mark & 0x00002000 != 0x00000000 masquerade"),
        "{post:?}"
    );

    let fwd = chain(&listing, "forward");
    assert!(
        fwd.contains(&"type filter hook forward priority filter; policy accept;"),
        "{fwd:?}"
    );
    assert!(fwd.contains(&"iifname \"skiff0\" accept"), "{fwd:?}");
    assert!(
        fwd.contains(&"oifname \"skiff0\" ct state established,related accept"),
        "{fwd:?}"
    );
    assert!(
        fwd.contains(&"oifname \"skiff0\" ct status dnat accept"),
        "{fwd:?}"
    );

    // Packets for the host's loopback that did not come from it (CVE-2020-8558).
    let input = chain(&listing, "input");
    let martian = "iifname != \"lo\" ip daddr 127.0.0.0/8";
    for want in [
        "type filter hook input priority filter; policy accept;".to_string(),
        format!("{martian} ct state established,related accept"),
        format!("{martian} ct status dnat accept"),
        format!("{martian} drop"),
    ] {
        assert!(input.contains(&want.as_str()), "{want}: {input:?}");
    }
}

#[test]
fn apply_twice_replaces_and_drops_removed_mappings() {
    in_new_netns(|ns| {
        let two = config(vec![
            mapping(None, 8080, Proto::Tcp, [10, 42, 0, 5], 80),
            mapping(None, 8443, Proto::Tcp, [10, 42, 0, 5], 443),
        ]);
        nft::apply(&two).expect("first apply");
        let first = ns.skiff_table().expect("table after first apply");
        nft::apply(&two).expect("second apply");
        let second = ns.skiff_table().expect("table after second apply");
        assert_eq!(first, second, "the same config must give the same table");
        assert_eq!(second.matches("chain published {").count(), 1, "{second}");

        let one = config(vec![mapping(None, 8443, Proto::Tcp, [10, 42, 0, 5], 443)]);
        nft::apply(&one).expect("apply with one mapping");
        let listing = ns.skiff_table().expect("table after third apply");
        assert!(
            has_dnat(&listing, None, "tcp", 8443, "10.42.0.5:443"),
            "{listing}"
        );
        assert!(
            !listing.contains("8080"),
            "removed mapping survived:\n{listing}"
        );
        assert_eq!(published_count(&listing, "published-any"), 1, "{listing}");
        assert_eq!(chain(&listing, "published").len(), 2, "{listing}");
        // Rules of the hooked chains are not duplicated by re-applying.
        assert_eq!(chain(&listing, "postrouting").len(), 4, "{listing}");
    });
}

#[test]
fn invalid_config_is_refused_before_the_kernel() {
    in_new_netns(|ns| {
        let good = config(vec![mapping(None, 8080, Proto::Tcp, [10, 42, 0, 5], 80)]);
        nft::apply(&good).expect("apply");
        let before = ns.skiff_table().expect("table");

        let mut bad = good.clone();
        bad.bridge = "a-bridge-name-too-long".into();
        let err = nft::apply(&bad).expect_err("16+ byte bridge name accepted");
        assert!(matches!(err, NftError::InvalidConfig(_)), "{err}");
        assert!(err.to_string().contains("IFNAMSIZ"), "{err}");

        let mut dup = good.clone();
        dup.ports.push(mapping(
            Some([127, 0, 0, 1]),
            8080,
            Proto::Tcp,
            [10, 42, 0, 7],
            80,
        ));
        let err = nft::apply(&dup).expect_err("overlapping host ports accepted");
        assert!(matches!(err, NftError::InvalidConfig(_)), "{err}");

        assert_eq!(ns.skiff_table().as_deref(), Some(before.as_str()));
    });
}

#[test]
fn kernel_refusal_leaves_the_previous_table() {
    in_new_netns(|ns| {
        let old = config(vec![mapping(None, 8080, Proto::Tcp, [10, 42, 0, 5], 80)]);
        nft::apply(&old).expect("apply");
        let before = ns.skiff_table().expect("table");

        let new = config(vec![mapping(None, 9090, Proto::Udp, [10, 42, 0, 9], 90)]);
        let err =
            nft::apply_with_refused_last_rule(&new).expect_err("kernel accepted a jump to nowhere");
        println!("refused: {err}");
        match &err {
            NftError::Kernel {
                index,
                what,
                errno,
                also_failed,
                ..
            } => {
                assert_eq!(*errno, nix::errno::Errno::ENOENT, "{err}");
                assert!(what.contains("jump no-such-chain"), "{err}");
                assert!(*index > 10, "the refused rule is the last message: {err}");
                assert_eq!(*also_failed, 0, "{err}");
            }
            other => panic!("expected a per-message kernel error, got {other}"),
        }
        assert!(err.to_string().contains("ENOENT"), "{err}");
        let after = ns.skiff_table().expect("table gone after a refused batch");
        assert_eq!(after, before, "a refused batch changed the table");
        assert!(!after.contains("9090"));
    });
}

#[test]
fn delete_removes_only_our_table_and_twice_is_fine() {
    in_new_netns(|ns| {
        // Someone else's table, which skiff must never touch.
        ns.run_ok("nft", &["add", "table", "ip", "other"]);
        ns.run_ok(
            "nft",
            &[
                "add",
                "chain",
                "ip",
                "other",
                "keep",
                "{ type filter hook input priority 0; }",
            ],
        );
        ns.run_ok(
            "nft",
            &[
                "add", "rule", "ip", "other", "keep", "tcp", "dport", "22", "accept",
            ],
        );
        let other = ns.run_ok("nft", &["list", "table", "ip", "other"]);

        nft::delete().expect("delete with no table");
        nft::apply(&config(vec![])).expect("apply");
        assert!(ns.skiff_table().is_some());
        nft::delete().expect("delete");
        assert_eq!(ns.skiff_table(), None, "table still there after delete");
        nft::delete().expect("second delete");

        assert_eq!(ns.run_ok("nft", &["list", "table", "ip", "other"]), other);
    });
}

#[test]
fn published_port_reaches_the_listener() {
    in_new_netns(|_ns| {
        let listener = TcpListener::bind("127.0.0.1:9000").expect("listen on 127.0.0.1:9000");
        let published: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let timeout = Duration::from_secs(5);

        // Nothing listens on 8000 itself.
        let refused = TcpStream::connect_timeout(&published, timeout);
        assert!(refused.is_err(), "8000 answered before any DNAT");

        let cfg = config(vec![mapping(None, 8000, Proto::Tcp, [127, 0, 0, 1], 9000)]);
        nft::apply(&cfg).expect("apply");

        let mut client =
            TcpStream::connect_timeout(&published, timeout).expect("connect to the published port");
        client.set_read_timeout(Some(timeout)).unwrap();
        let (mut server, _) = listener.accept().expect("accept");
        server.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(server.local_addr().unwrap().port(), 9000);
        // The client still believes it talks to 8000: the reply is un-NATed.
        assert_eq!(client.peer_addr().unwrap(), published);

        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");

        // And it goes away with the table.
        drop((client, server));
        nft::delete().expect("delete");
        assert!(TcpStream::connect_timeout(&published, timeout).is_err());
    });
}

#[test]
fn update_from_the_applied_config_gives_the_same_table_as_apply() {
    in_new_netns(|ns| {
        let one = config(vec![mapping(None, 8080, Proto::Tcp, [10, 42, 0, 5], 80)]);
        let two = config(vec![
            mapping(None, 8080, Proto::Tcp, [10, 42, 0, 5], 80),
            mapping(Some([127, 0, 0, 1]), 9090, Proto::Udp, [10, 42, 0, 6], 53),
        ]);
        nft::apply(&two).expect("apply");
        let full = ns.skiff_table().expect("table after apply");
        nft::apply(&one).expect("apply one");
        nft::update(Some(&one), &two).expect("update");
        assert_eq!(ns.skiff_table().as_deref(), Some(full.as_str()));
        nft::update(Some(&two), &one).expect("update back");
        let listing = ns.skiff_table().expect("table after update back");
        assert!(!listing.contains("9090"), "{listing}");
        assert_eq!(published_count(&listing, "published-any"), 1, "{listing}");
        assert_eq!(published_count(&listing, "published-addr"), 0, "{listing}");

        // An old config the table no longer matches (here: the table is
        // gone) is refused by the kernel; the table is then stated in full.
        nft::delete().expect("delete");
        nft::update(Some(&one), &two).expect("update without a table");
        assert_eq!(ns.skiff_table().as_deref(), Some(full.as_str()));
    });
}
