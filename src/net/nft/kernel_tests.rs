//! Sets, maps and verdict maps, and their diffs, on the real kernel, read
//! back with the real `nft`. Each test runs on a thread of its own inside a
//! network namespace made with unshare(CLONE_NEWNET), which goes with the
//! thread: nothing here reaches the host's firewall. Needs root.

use std::net::Ipv4Addr;
use std::process::Command;

use nix::sched::{unshare, CloneFlags};

use super::diff_tests::{proxy, PROXY};
use super::set::{key_ip_proto_port, value_ip_port, SetKind, Value};
use super::{socket, sync, Proto};

/// `nft list table ip skiff-proxy` in the namespace at `ns`.
fn listing(ns: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(["nft", "list", "table", "ip", PROXY])
        .output()
        .expect("run nsenter nft");
    assert!(
        out.status.success(),
        "nft list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_new_netns(f: impl FnOnce(&str) + Send + 'static) {
    if !nix::unistd::geteuid().is_root() {
        println!("not root: the kernel was not asked");
        return;
    }
    let handle = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let ns = format!(
            "/proc/{}/task/{}/ns/net",
            std::process::id(),
            nix::unistd::gettid()
        );
        f(&ns)
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn kernel_takes_maps_and_their_element_diffs() {
    in_new_netns(|ns| {
        let old = proxy(3);
        sync(None, &old).expect("create");
        let l = listing(ns);
        assert!(l.contains("map service-ports {"), "{l}");
        assert!(l.contains("map service-ips {"), "{l}");
        assert!(l.contains("ip daddr vmap @service-ips"), "{l}");
        assert!(l.contains("10.43.0.2 : jump services"), "{l}");
        assert_eq!(l.matches("10.42.0.9").count(), 3, "{l}");

        // One element moves: only it is sent, and the kernel takes it.
        let mut new = old.clone();
        let key = key_ip_proto_port(Ipv4Addr::new(10, 43, 0, 1), Proto::Tcp, 80);
        new.sets[0].elements.insert(
            key,
            Value::Data(value_ip_port(Ipv4Addr::new(10, 42, 0, 33), 8080)),
        );
        sync(Some(&old), &new).expect("diff");
        let l = listing(ns);
        assert_eq!(l.matches("10.42.0.9").count(), 2, "{l}");
        assert_eq!(l.matches("10.42.0.33").count(), 1, "{l}");

        // A set redefined under the rules that look it up.
        let mut redefined = new.clone();
        redefined.sets[1].def.kind = SetKind::Set;
        redefined.sets[1]
            .elements
            .values_mut()
            .for_each(|v| *v = Value::None);
        redefined.rules.retain(|r| r.chain != "prerouting");
        sync(Some(&new), &redefined).expect("redefine");
        let l = listing(ns);
        assert!(l.contains("set service-ips {"), "{l}");
        assert!(!l.contains("vmap"), "{l}");

        // The table went behind its owner's back: the diff is refused and
        // the table stated in full instead.
        socket::transact(&super::batch::delete_table(PROXY)).expect("delete");
        sync(Some(&redefined), &new).expect("fallback to a full statement");
        let l = listing(ns);
        assert!(l.contains("ip daddr vmap @service-ips"), "{l}");
        assert_eq!(l.matches("10.42.0.33").count(), 1, "{l}");
    });
}

#[test]
fn kernel_takes_thousands_of_elements_in_one_batch() {
    in_new_netns(|ns| {
        let big = proxy(5000);
        sync(None, &big).expect("5000 Service ports in one transaction");
        let l = listing(ns);
        assert_eq!(l.matches("10.42.0.9").count(), 5000);
        let mut next = big.clone();
        next.sets[1].elements.clear();
        sync(Some(&big), &next).expect("5000 elements out in one transaction");
    });
}
