//! diff.rs: what a change costs, and the batches it becomes, byte-checked.

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_netfilter::nftables::InetHookNumber;

use super::batch::{encode, ops};
use super::diff::{diff, element_count, Change};
use super::expr::{accept, ip_daddr_vmap};
use super::nat::PUBLISHED_ANY;
use super::ruleset::{build, Chain, ChainType, Rule, Ruleset, TABLE};
use super::set::{
    key_ip_proto_port, key_proto_port, value_ip_port, DataType, Set, SetKind, Value, VerdictTo,
};
use super::test_bytes::{cstr, frames, nla, NESTED};
use super::{Config, PortMapping, Proto};

pub(super) const PROXY: &str = "skiff-proxy";

/// A proxy-shaped table: `n` Service ports in a DNAT map, a verdict map on
/// the destination, and the chains that look them up.
pub(super) fn proxy(n: u32) -> Ruleset {
    let mut rs = Ruleset::new(PROXY);
    rs.chains.extend([
        Chain::base(
            "prerouting",
            ChainType::Nat,
            InetHookNumber::PreRouting,
            -100,
        ),
        Chain::regular("services"),
    ]);
    rs.rules.extend([
        Rule::new("prerouting", vec![ip_daddr_vmap("service-ips")]),
        Rule::new("services", vec![accept()]),
    ]);
    let mut dnat = Set::new(
        "service-ports",
        DataType::concat(&[DataType::IPV4, DataType::PROTO, DataType::PORT]),
        SetKind::Map(DataType::concat(&[DataType::IPV4, DataType::PORT])),
    );
    let mut vmap = Set::new("service-ips", DataType::IPV4, SetKind::VerdictMap);
    for i in 0..n {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 43, 0, 0)) + i);
        dnat.elements.insert(
            key_ip_proto_port(ip, Proto::Tcp, 80),
            Value::Data(value_ip_port(Ipv4Addr::new(10, 42, 0, 9), 8080)),
        );
        vmap.elements.insert(
            ip.octets().to_vec(),
            Value::Verdict(VerdictTo::Jump("services".into())),
        );
    }
    rs.sets.extend([dnat, vmap]);
    rs
}

/// nfgenmsg (family ip) + NFTA_SET_ELEM_LIST_{TABLE,SET,ELEMENTS}, with one
/// element of NFTA_SET_ELEM_KEY and, if given, NFTA_SET_ELEM_DATA (each
/// an NFTA_DATA_VALUE).
fn elem_msg(table: &str, set: &str, key: &[u8], data: Option<&[u8]>) -> Vec<u8> {
    let mut elem = nla(1 | NESTED, &nla(1, key));
    if let Some(d) = data {
        elem.extend(nla(2 | NESTED, &nla(1, d)));
    }
    let mut v = vec![2, 0, 0, 0];
    v.extend(nla(1, &cstr(table)));
    v.extend(nla(2, &cstr(set)));
    v.extend(nla(3 | NESTED, &nla(1 | NESTED, &elem)));
    v
}

#[test]
fn one_changed_element_of_thousands_is_one_delete_and_one_add() {
    let old = proxy(5000);
    let mut new = old.clone();
    let key = key_ip_proto_port(Ipv4Addr::new(10, 43, 7, 7), Proto::Tcp, 80);
    let moved = value_ip_port(Ipv4Addr::new(10, 42, 0, 33), 8080);
    assert!(new.sets[0].elements.contains_key(&key));
    new.sets[0]
        .elements
        .insert(key.clone(), Value::Data(moved.clone()));

    let changes = diff(Some(&old), &new);
    assert_eq!(
        changes,
        [
            Change::DelElements {
                set: "service-ports".into(),
                keys: vec![key.clone()],
            },
            Change::AddElements {
                set: "service-ports".into(),
                elements: vec![(key.clone(), Value::Data(moved.clone()))],
            },
        ]
    );
    assert_eq!(element_count(&changes), 2);

    let batch = ops(PROXY, &changes);
    let enc = encode(&batch, 1);
    let f = frames(&enc.bytes);
    assert_eq!(f.len(), 4, "begin, DELSETELEM, NEWSETELEM, end");
    // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELSETELEM (14) / NEWSETELEM (12).
    assert_eq!((f[1].0, f[1].1), (0x0a0e, NLM_F_REQUEST | NLM_F_ACK));
    assert_eq!(f[1].3, elem_msg(PROXY, "service-ports", &key, None));
    assert_eq!(
        (f[2].0, f[2].1),
        (0x0a0c, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
    );
    assert_eq!(f[2].3, elem_msg(PROXY, "service-ports", &key, Some(&moved)));
}

#[test]
fn added_and_removed_elements_cost_what_changed() {
    let old = proxy(3000);
    let mut new = proxy(3002);
    let gone = Ipv4Addr::new(10, 43, 0, 5).octets().to_vec();
    new.sets[1].elements.remove(&gone);
    let changes = diff(Some(&old), &new);
    // Two new Service ports in both maps, one address out of the vmap.
    assert_eq!(element_count(&changes), 5, "{changes:?}");
    assert!(changes
        .iter()
        .all(|c| matches!(c, Change::AddElements { .. } | Change::DelElements { .. })));
    // Elements come in as few messages as fit, not one per element.
    let batch = ops(PROXY, &diff(None, &new));
    let elem_msgs = batch
        .iter()
        .filter(|o| o.what.starts_with("NEWSETELEM"))
        .count();
    assert!(elem_msgs < 20, "{elem_msgs} messages for 6004 elements");
    let enc = encode(&batch, 1);
    for (_, _, _, payload) in frames(&enc.bytes) {
        assert!(payload.len() < 65535, "an attribute would overflow");
    }
}

#[test]
fn unchanged_is_nothing() {
    assert_eq!(diff(Some(&proxy(100)), &proxy(100)), []);
    let engine = build(&engine_cfg(2));
    assert_eq!(diff(Some(&engine), &engine), []);
}

pub(super) fn engine_cfg(ports: u16) -> Config {
    Config {
        pod_cidr: "10.42.0.0/24".parse().unwrap(),
        cluster_cidr: None,
        bridge: "skiff0".into(),
        ports: (0..ports)
            .map(|i| PortMapping {
                host_ip: None,
                host_port: 8080 + i,
                proto: Proto::Tcp,
                container_ip: Ipv4Addr::new(10, 42, 0, 5),
                container_port: 80,
            })
            .collect(),
    }
}

#[test]
fn a_published_port_is_one_map_element_among_many() {
    let old = build(&engine_cfg(1000));
    let new = build(&engine_cfg(1001));
    let key = key_proto_port(Proto::Tcp, 9080);
    let to = value_ip_port(Ipv4Addr::new(10, 42, 0, 5), 80);
    let added = diff(Some(&old), &new);
    assert_eq!(
        added,
        [Change::AddElements {
            set: PUBLISHED_ANY.into(),
            elements: vec![(key.clone(), Value::Data(to.clone()))],
        }]
    );
    let f_add = encode(&ops(TABLE, &added), 1);
    let f = frames(&f_add.bytes);
    assert_eq!(f.len(), 3, "begin, NEWSETELEM, end");
    assert_eq!(
        (f[1].0, f[1].1),
        (0x0a0c, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
    );
    assert_eq!(f[1].3, elem_msg(TABLE, PUBLISHED_ANY, &key, Some(&to)));

    // Releasing it (rm): one element out, nothing else.
    let removed = diff(Some(&new), &old);
    assert_eq!(
        removed,
        [Change::DelElements {
            set: PUBLISHED_ANY.into(),
            keys: vec![key.clone()],
        }]
    );
    let enc = encode(&ops(TABLE, &removed), 1);
    let f = frames(&enc.bytes);
    assert_eq!(f.len(), 3, "begin, DELSETELEM, end");
    assert_eq!((f[1].0, f[1].1), (0x0a0e, NLM_F_REQUEST | NLM_F_ACK));
    assert_eq!(f[1].3, elem_msg(TABLE, PUBLISHED_ANY, &key, None));

    // The full statement: every chain created if missing, flushed, refilled;
    // the maps filled in as few messages as fit.
    let full = diff(None, &new);
    assert_eq!(full[0], Change::AddTable);
    assert_eq!(
        full.iter()
            .filter(|c| matches!(c, Change::FlushChain(_)))
            .count(),
        new.chains.len()
    );
    assert_eq!(element_count(&full), 1001);
}

#[test]
fn a_removed_chain_is_emptied_first_and_deleted_last() {
    let old = proxy(1);
    let mut new = old.clone();
    new.chains.retain(|c| c.name != "services");
    new.rules = vec![Rule::new("prerouting", vec![accept()])];
    new.sets[1].elements.clear();
    let changes = diff(Some(&old), &new);
    let pos = |want: &Change| changes.iter().position(|c| c == want).unwrap();
    let del = pos(&Change::DelChain("services".into()));
    assert_eq!(del, changes.len() - 1, "{changes:?}");
    assert!(pos(&Change::FlushChain("services".into())) < del);
    assert!(pos(&Change::FlushChain("prerouting".into())) < del);
}

#[test]
fn a_redefined_set_is_recreated_after_its_lookups_are_flushed() {
    let old = proxy(3);
    let mut new = old.clone();
    new.sets[1].def.kind = SetKind::Set;
    for v in new.sets[1].elements.values_mut() {
        *v = Value::None;
    }
    let changes = diff(Some(&old), &new);
    let pos = |want: &Change| changes.iter().position(|c| c == want).unwrap();
    let del = pos(&Change::DelSet("service-ips".into()));
    let add = pos(&Change::AddSet(new.sets[1].def.clone()));
    assert!(pos(&Change::FlushChain("services".into())) < del);
    assert!(del < add);
    let refill = changes
        .iter()
        .position(|c| matches!(c, Change::AddRule(r) if r.chain == "services"))
        .unwrap();
    assert!(add < refill, "{changes:?}");
    // The unchanged map keeps its elements: not deleted, not re-sent.
    assert!(!changes.iter().any(|c| matches!(
        c,
        Change::DelSet(s) | Change::AddElements { set: s, .. } if s == "service-ports"
    )));
}

#[test]
fn another_table_is_stated_in_full() {
    let mut other = proxy(2);
    other.table = "someone-else".into();
    assert_eq!(diff(Some(&other), &proxy(2)), diff(None, &proxy(2)));
}
