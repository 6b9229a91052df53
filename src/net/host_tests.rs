//! host.rs against `FakeKernel`: attach, release, reconcile and the undoing
//! of a failed attach, and published-port checks and picking, without root.
//! The records and IPAM are the real ones, in a temporary directory.

use std::collections::BTreeSet;

use super::*;
use crate::net::kernel_fake::FakeKernel;
use crate::net::ports::{PortRange, Proto};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccc";

fn host() -> (tempfile::TempDir, HostBridge) {
    let dir = tempfile::tempdir().unwrap();
    let hb = HostBridge::new(
        &dir.path().join("root"),
        &dir.path().join("run"),
        "skiff0",
        "10.42.0.0/24".parse().unwrap(),
    );
    (dir, hb)
}

fn port(spec: &str) -> PublishedPort {
    PublishedPort::parse(spec).unwrap()
}

fn owners(hb: &HostBridge) -> Vec<String> {
    hb.ipam()
        .list()
        .unwrap()
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}

fn ids(hb: &HostBridge) -> Vec<String> {
    hb.attachments()
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect()
}

#[test]
fn attach_then_detach_leaves_nothing() {
    let (_dir, hb) = host();
    let mut k = FakeKernel::default();
    let a = hb.attach_with(&mut k, A, &[port("8080:80")]).unwrap();
    assert!(hb.cidr.contains(a.ip) && a.ip != a.gateway, "{a:?}");
    assert_eq!(hb.attachments().unwrap(), std::slice::from_ref(&a));
    assert_eq!(owners(&hb), [A]);
    assert!(k.links.contains("skiff0") && k.links.contains(&a.host_veth));
    assert!(k.pinned.contains(&a.netns));
    assert_eq!(k.table, Some(vec![A.to_string()]));

    hb.detach_with(&mut k, A).unwrap();
    assert!(ids(&hb).is_empty() && owners(&hb).is_empty());
    assert_eq!(k.links, BTreeSet::from(["skiff0".to_string()]));
    assert!(k.pinned.is_empty());
    assert_eq!(k.table, Some(vec![]));
    // Twice is fine: nothing recorded any more.
    hb.detach_with(&mut k, A).unwrap();
}

#[test]
fn a_failing_step_undoes_every_step_before_it() {
    for step in ["ensure_bridge", "plumb", "sync_rules"] {
        let (_dir, hb) = host();
        let mut k = FakeKernel::default();
        let b = hb.attach_with(&mut k, B, &[port("9090:80")]).unwrap();
        let links = k.links.clone();

        k.fail = Some(step);
        let e = hb
            .attach_with(&mut k, A, &[port("8080:80")])
            .expect_err(step)
            .to_string();
        assert!(e.contains(&format!("{step} fails")), "{step}: {e}");
        assert_eq!(ids(&hb), [B], "{step}: record left");
        assert_eq!(owners(&hb), [B], "{step}: address left");
        assert_eq!(k.links, links, "{step}: link left");
        assert_eq!(k.pinned, BTreeSet::from([b.netns.clone()]), "{step}");
        assert_eq!(k.table, Some(vec![B.to_string()]), "{step}");

        // What failed can be done again from scratch.
        k.fail = None;
        let a = hb.attach_with(&mut k, A, &[port("8080:80")]).unwrap();
        assert_eq!(ids(&hb), [A, B], "{step}");
        assert_eq!(k.table, Some(vec![A.to_string(), B.to_string()]));
        assert_ne!(a.ip, b.ip);
    }
}

#[test]
fn a_container_whose_namespace_is_gone_is_released_on_the_next_attach() {
    let (_dir, hb) = host();
    let mut k = FakeKernel::default();
    let a = hb.attach_with(&mut k, A, &[port("8080:80")]).unwrap();
    // A crash (or a reboot) took the namespace handle; the records stay.
    k.pinned.remove(&a.netns);
    // Its port is free again, and its address.
    let b = hb.attach_with(&mut k, B, &[port("8080:80")]).unwrap();
    assert_eq!(ids(&hb), [B]);
    assert_eq!(owners(&hb), [B]);
    assert!(!k.links.contains(&a.host_veth));
    assert_eq!(k.table, Some(vec![B.to_string()]));
    assert_eq!(b.ports[0].host_port, 8080);
}

#[test]
fn a_release_whose_rules_fail_is_finished_by_the_next_attach() {
    let (_dir, hb) = host();
    let mut k = FakeKernel::default();
    hb.attach_with(&mut k, A, &[port("8080:80")]).unwrap();
    k.fail = Some("sync_rules");
    assert!(hb.release_with(&mut k, A).is_err());
    k.fail = None;
    hb.attach_with(&mut k, B, &[]).unwrap();
    assert_eq!(ids(&hb), [B]);
    assert_eq!(owners(&hb), [B]);
    assert_eq!(k.table, Some(vec![]));
}

#[test]
fn published_ports_conflict_with_other_containers_and_themselves() {
    let (_dir, hb) = host();
    let mut k = FakeKernel::default();
    hb.attach_with(&mut k, B, &[port("8080:80")]).unwrap();
    for (ports, owner) in [
        (vec![port("127.0.0.1:8080:80")], &B[..12]),
        (vec![port("9000:80"), port("9000:81")], "given twice"),
    ] {
        let e = hb.attach_with(&mut k, A, &ports).unwrap_err();
        assert!(matches!(e, NetError::PortInUse { .. }), "{e}");
        assert!(e.to_string().contains(owner), "{e}");
    }
    // Refused before the kernel was asked anything for A.
    assert!(!k.calls.iter().any(|c| c.ends_with(A)), "{:?}", k.calls);
    assert_eq!(ids(&hb), [B]);
    // Another protocol, or another address than B's wildcard on another
    // port, is fine.
    hb.attach_with(&mut k, A, &[port("8080:80/udp")]).unwrap();
}

#[test]
fn host_ports_are_picked_from_the_range_until_it_is_exhausted() {
    let (_dir, mut hb) = host();
    hb.pick_range = PortRange {
        from: 5000,
        to: 5002,
    };
    let mut k = FakeKernel {
        busy: BTreeSet::from([5000]),
        ..FakeKernel::default()
    };
    let a = hb
        .attach_with(&mut k, A, &[port("80"), port("81")])
        .unwrap();
    let picked: BTreeSet<u16> = a.ports.iter().map(|p| p.host_port).collect();
    assert_eq!(picked, BTreeSet::from([5001, 5002]));
    // UDP has a range of its own.
    let b = hb.attach_with(&mut k, B, &[port("53/udp")]).unwrap();
    assert_eq!(b.ports[0].proto, Proto::Udp);
    assert_ne!(b.ports[0].host_port, 5000);

    let e = hb.attach_with(&mut k, C, &[port("82")]).unwrap_err();
    assert!(matches!(e, NetError::NoFreePort { .. }), "{e}");
    assert!(e.to_string().contains("82/tcp"), "{e}");
    assert_eq!(ids(&hb), [A, B]);
    assert!(!owners(&hb).contains(&C.to_string()));
}
