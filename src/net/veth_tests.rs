//! veth.rs against `FakeLinks`: the plumbing of one container, step by
//! step, and the undoing of everything done before a failing step, in
//! reverse order. The integration tests (tests/net_bridge.rs) stay the
//! source of truth for what the kernel does with it.

use std::path::PathBuf;

use super::*;
use crate::net::links_fake::FakeLinks;

fn attachment() -> Attachment {
    Attachment {
        id: "aaaaaaaaaaaa".into(),
        ip: "10.42.0.2".parse().unwrap(),
        prefix: 24,
        gateway: "10.42.0.1".parse().unwrap(),
        bridge: "skiff0".into(),
        host_veth: host_veth_name("aaaaaaaaaaaa"),
        netns: PathBuf::from("/run/skiff/netns/aaaaaaaaaaaa"),
        ports: vec![],
    }
}

/// The bridge's index in a fresh `FakeLinks::with_bridge`.
const BRIDGE: u32 = 1;

const STEPS: &[&str] = &[
    "create_netns /run/skiff/netns/aaaaaaaaaaaa",
    "link_mtu skiff0",
    "add_veth vethaaaaaaaaaaa master 1 mtu Some(1500), eth0 in /run/skiff/netns/aaaaaaaaaaaa",
    "link_index vethaaaaaaaaaaa",
    "set_hairpin vethaaaaaaaaaaa",
    "in_netns /run/skiff/netns/aaaaaaaaaaaa",
    "[ns] link_index lo",
    "[ns] set_up lo",
    "[ns] link_index eth0",
    "[ns] add_address 10.42.0.2/24",
    "[ns] set_up eth0",
    "[ns] add_default_route 10.42.0.1",
];

/// What undoing calls: the veth, if its step was done (looked up, and
/// deleted if it exists), then the namespace handle.
fn undo_calls(veth: Option<bool>, netns_made: bool) -> Vec<&'static str> {
    let mut undo = Vec::new();
    if let Some(exists) = veth {
        undo.push("link_index vethaaaaaaaaaaa");
        if exists {
            undo.push("del_link vethaaaaaaaaaaa");
        }
    }
    if netns_made {
        undo.push("remove_netns /run/skiff/netns/aaaaaaaaaaaa");
    }
    undo
}

#[test]
fn plumbing_is_these_steps_in_this_order() {
    let a = attachment();
    let mut l = FakeLinks::with_bridge("skiff0");
    plumb(&mut l, "skiff0", BRIDGE, &a).unwrap();
    assert_eq!(l.calls, STEPS);
    assert!(l.links.contains_key(&a.host_veth));
    let inside: Vec<&str> = l.netns[&a.netns].iter().map(String::as_str).collect();
    assert_eq!(inside, ["eth0", "lo"]);
}

#[test]
fn a_failing_step_undoes_every_step_before_it_in_reverse_order() {
    let a = attachment();
    for (n, step) in STEPS.iter().enumerate() {
        let mut l = FakeLinks::with_bridge("skiff0");
        l.fail = Some(step.to_string());
        let e = plumb(&mut l, "skiff0", BRIDGE, &a).expect_err(step);
        assert!(e.to_string().contains("FakeLinks"), "{step}: {e}");
        // The steps up to the failing one, then the undoing.
        assert_eq!(l.calls[..=n], STEPS[..=n], "{step}");
        let undo = undo_calls((n > 2).then_some(true), n > 0);
        assert_eq!(l.calls[n + 1..], undo, "{step}");
        // Nothing is left but the bridge.
        assert_eq!(l.links.keys().collect::<Vec<_>>(), ["skiff0"], "{step}");
        assert!(l.netns.is_empty(), "{step}: {:?}", l.netns);
    }
}

#[test]
fn an_undo_that_fails_does_not_stop_the_others() {
    let a = attachment();
    let mut l = FakeLinks::with_bridge("skiff0");
    plumb(&mut l, "skiff0", BRIDGE, &a).unwrap();
    l.fail = Some("del_link vethaaaaaaaaaaa".into());
    unplumb(&mut l, &a);
    // The link could not go; the namespace handle still did.
    assert!(l.links.contains_key(&a.host_veth));
    assert!(l.netns.is_empty());
}

#[test]
fn unplumb_removes_the_veth_then_the_namespace_and_twice_is_fine() {
    let a = attachment();
    let mut l = FakeLinks::with_bridge("skiff0");
    plumb(&mut l, "skiff0", BRIDGE, &a).unwrap();
    l.calls.clear();
    unplumb(&mut l, &a);
    assert_eq!(l.calls, undo_calls(Some(true), true));
    assert_eq!(l.links.keys().collect::<Vec<_>>(), ["skiff0"]);
    assert!(l.netns.is_empty());
    l.calls.clear();
    unplumb(&mut l, &a);
    assert_eq!(l.calls, undo_calls(Some(false), true));
}

#[test]
fn host_veth_names_are_unique_for_ids_sharing_a_prefix() {
    // Container ids: their own start, as before.
    assert_eq!(host_veth_name("0123456789abcdef"), "veth0123456789a");
    let a = host_veth_name("sandbox-k8s_web-1_default_1111");
    let b = host_veth_name("sandbox-k8s_web-2_default_2222");
    assert_ne!(a, b);
    assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
}
