//! Encoding tests: what goes on the wire, checked byte by byte where the
//! kernel is picky, and decoded back with the netlink crate's own parser.

use std::net::Ipv4Addr;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    ExpressionAttribute, Expressions, ListAttribute, NfTablesMessage,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};

use super::batch::{delete_table, encode, replace_table, Op};
use super::expr::{self, Expr};
use super::ruleset::{build, Rule};
use super::set::{DataType, SetKind, Value};
use super::test_bytes::{cstr, frames, nla_u32};
use super::{Config, Ipv4Cidr, PortMapping, Proto};

fn cfg() -> Config {
    Config {
        pod_cidr: "10.42.0.0/24".parse().unwrap(),
        cluster_cidr: None,
        bridge: "skiff0".into(),
        ports: vec![PortMapping {
            host_ip: Some(Ipv4Addr::new(192, 168, 1, 2)),
            host_port: 8080,
            proto: Proto::Tcp,
            container_ip: Ipv4Addr::new(10, 42, 0, 5),
            container_port: 80,
        }],
    }
}

fn names(exprs: &[Expr]) -> Vec<String> {
    exprs
        .iter()
        .map(|e| match e {
            ListAttribute::Element(attrs) => attrs
                .iter()
                .find_map(|a| match a {
                    ExpressionAttribute::Name(n) => Some(n.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            _ => String::new(),
        })
        .collect()
}

fn data(e: &Expr) -> &Expressions {
    match e {
        ListAttribute::Element(attrs) => attrs
            .iter()
            .find_map(|a| match a {
                ExpressionAttribute::Data(d) => Some(d),
                _ => None,
            })
            .unwrap(),
        _ => panic!("not an element: {e:?}"),
    }
}

/// The raw attributes of an expression built from UAPI numbers.
fn raw_attrs(e: &Expr) -> Vec<(u16, Vec<u8>)> {
    use netlink_packet_core::Nla;
    match data(e) {
        Expressions::Other { attributes, .. } => attributes
            .iter()
            .map(|a| {
                let mut v = vec![0; a.value_len()];
                a.emit_value(&mut v);
                (a.kind(), v)
            })
            .collect(),
        other => panic!("not a raw expression: {other:?}"),
    }
}

#[test]
fn delete_batch_bytes() {
    let enc = encode(&delete_table("skiff"), 100);
    assert_eq!(enc.begin_seq, 100);
    assert_eq!(enc.seqs, vec![101]);
    let f = frames(&enc.bytes);
    assert_eq!(f.len(), 3);
    // BATCH_BEGIN: subsystem 0, type 16; nfgenmsg AF_UNSPEC, v0, res_id
    // NFNL_SUBSYS_NFTABLES in network byte order.
    assert_eq!((f[0].0, f[0].1, f[0].2), (0x0010, NLM_F_REQUEST, 100));
    assert_eq!(f[0].3, &[0, 0, 0, 10]);
    // DELTABLE: NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELTABLE, family ip,
    // NFTA_TABLE_NAME "skiff".
    assert_eq!(
        (f[1].0, f[1].1, f[1].2),
        (0x0a02, NLM_F_REQUEST | NLM_F_ACK, 101)
    );
    assert_eq!(
        f[1].3,
        &[2, 0, 0, 0, 10, 0, 1, 0, b's', b'k', b'i', b'f', b'f', 0, 0, 0]
    );
    assert_eq!((f[2].0, f[2].1, f[2].2), (0x0011, NLM_F_REQUEST, 102));
    assert_eq!(f[2].3, &[0, 0, 0, 10]);
}

#[test]
fn replace_batch_order_and_flags() {
    let ops = replace_table(&build(&cfg()));
    let kinds: Vec<&str> = ops
        .iter()
        .map(|o| o.what.split(' ').next().unwrap())
        .collect();
    // Table, six chains (kept if they exist: no hook is unregistered),
    // six flushes, the two published-port maps (created if missing,
    // emptied, filled), then the rules.
    assert_eq!(kinds[0], "NEWTABLE");
    assert!(kinds[1..7].iter().all(|k| *k == "NEWCHAIN"), "{kinds:?}");
    assert!(kinds[7..13].iter().all(|k| *k == "flush"), "{kinds:?}");
    assert_eq!(
        kinds[13..18],
        ["NEWSET", "flush", "NEWSETELEM", "NEWSET", "flush"],
        "{kinds:?}"
    );
    assert!(kinds[18..].iter().all(|k| *k == "NEWRULE"), "{kinds:?}");
    for op in &ops {
        let want = match op.msg {
            NfTablesMessage::NewRule(_) => NLM_F_CREATE | NLM_F_APPEND,
            NfTablesMessage::DeleteRule(_) | NfTablesMessage::DeleteSetElement(_) => 0,
            _ => NLM_F_CREATE,
        };
        assert_eq!(op.flags, want, "{}", op.what);
    }
    let enc = encode(&ops, 1);
    let f = frames(&enc.bytes);
    assert_eq!(f.len(), ops.len() + 2);
    for (frame, seq) in f[1..=ops.len()].iter().zip(&enc.seqs) {
        assert_eq!(frame.2, *seq);
        assert_ne!(frame.1 & NLM_F_ACK, 0);
    }
}

#[test]
fn batch_decodes_back_to_the_same_messages() {
    let ops: Vec<Op> = replace_table(&build(&cfg()));
    let enc = encode(&ops, 7);
    let mut rest = &enc.bytes[..];
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
        let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&rest[..len]).unwrap();
        decoded.push(msg);
        rest = &rest[len..];
    }
    assert_eq!(decoded.len(), ops.len() + 2);
    for (msg, op) in decoded[1..=ops.len()].iter().zip(&ops) {
        match &msg.payload {
            NetlinkPayload::InnerMessage(m) => match &m.inner {
                NetfilterMessageInner::NfTables(inner) => assert_eq!(inner, &op.msg, "{}", op.what),
                other => panic!("{}: decoded as {other:?}", op.what),
            },
            other => panic!("{}: decoded as {other:?}", op.what),
        }
    }
}

#[test]
fn base_chain_priority_is_signed_big_endian() {
    let ops = replace_table(&build(&cfg()));
    let output = ops
        .iter()
        .find(|o| o.what.starts_with("NEWCHAIN output"))
        .unwrap();
    assert_eq!(
        output.what,
        "NEWCHAIN output (type nat hook output priority -100)"
    );
    let enc = encode(std::slice::from_ref(output), 1);
    // NFTA_HOOK_PRIORITY (2), 8 bytes, -100 as be32.
    let prio = nla_u32(2, -100i32 as u32);
    assert_eq!(prio, [8, 0, 2, 0, 0xff, 0xff, 0xff, 0x9c]);
    assert!(enc.bytes.windows(8).any(|w| w == prio));
    // NF_INET_LOCAL_OUT (3) as the hook number, NFTA_HOOK_HOOKNUM (1).
    assert!(enc.bytes.windows(8).any(|w| w == nla_u32(1, 3)));
}

#[test]
fn rule_texts_read_like_nft() {
    let rs = build(&cfg());
    let texts: Vec<String> = rs
        .rules
        .iter()
        .map(|r| format!("{}: {}", r.chain, r.text()))
        .collect();
    let want = [
        "prerouting: fib daddr type local jump published",
        "output: fib daddr type local jump published",
        "published: ct mark set ct mark | 0x2000 dnat ip to ip daddr . meta l4proto . th dport map @published-addr",
        "published: ct mark set ct mark | 0x2000 dnat ip to meta l4proto . th dport map @published-any",
        "postrouting: ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/24 masquerade",
        "postrouting: ip saddr 127.0.0.0/8 oifname \"skiff0\" masquerade",
        "postrouting: oifname \"skiff0\" ip saddr 10.42.0.0/24 ct mark & 0x2000 != 0 masquerade",
        "forward: iifname \"skiff0\" accept",
        "forward: oifname \"skiff0\" ct state established,related accept",
        "forward: oifname \"skiff0\" ct status dnat accept",
        "input: iifname != \"lo\" ip daddr 127.0.0.0/8 ct state established,related accept",
        "input: iifname != \"lo\" ip daddr 127.0.0.0/8 ct status dnat accept",
        "input: iifname != \"lo\" ip daddr 127.0.0.0/8 drop",
    ];
    assert_eq!(texts, want);
}

#[test]
fn published_rules_look_the_maps_up() {
    let rs = build(&cfg());
    let rules: Vec<&Rule> = rs.rules.iter().filter(|r| r.chain == "published").collect();
    assert_eq!(rules.len(), 2);
    let (addr, any) = (rules[0].exprs(), rules[1].exprs());
    assert_eq!(
        names(&addr),
        ["payload", "meta", "payload", "lookup", "ct", "bitwise", "ct", "nat"]
    );
    assert_eq!(
        names(&any),
        ["meta", "payload", "lookup", "ct", "bitwise", "ct", "nat"]
    );
    // The key as a concatenation in consecutive 32-bit registers from reg 1
    // (NFT_REG32_00 is reg 1's first word, 8): addr, l4proto (reg 9), dport
    // (reg 10) — or l4proto in reg 1 and dport in reg 9.
    let bytes = |e: &Expr| {
        use netlink_packet_core::Emitable;
        let mut v = vec![0; e.buffer_len()];
        e.emit(&mut v);
        v
    };
    let has = |e: &Expr, want: &[u8]| bytes(e).windows(want.len()).any(|w| w == want);
    // NFTA_PAYLOAD_DREG 1, BASE 2 (network header 1), OFFSET 3 (daddr 16), LEN 4.
    let daddr = [nla_u32(1, 1), nla_u32(2, 1), nla_u32(3, 16), nla_u32(4, 4)].concat();
    assert!(has(&addr[0], &daddr), "{:?}", bytes(&addr[0]));
    // NFTA_META_DREG 1, NFTA_META_KEY 2 = NFT_META_L4PROTO (16).
    assert!(has(&addr[1], &[nla_u32(1, 9), nla_u32(2, 16)].concat()));
    assert!(has(&any[0], &[nla_u32(1, 1), nla_u32(2, 16)].concat()));
    // th dport: transport header (2), offset 2, 2 bytes.
    let dport = |reg| [nla_u32(1, reg), nla_u32(2, 2), nla_u32(3, 2), nla_u32(4, 2)].concat();
    assert!(has(&addr[2], &dport(10)));
    assert!(has(&any[1], &dport(9)));
    // NFTA_LOOKUP_SET 1 (the map's name), SREG 2 = reg 1, DREG 3 = reg 1.
    for (e, set) in [(&addr[3], "published-addr"), (&any[2], "published-any")] {
        assert!(has(e, &cstr(set)), "{set}");
        assert!(has(e, &nla_u32(2, 1)) && has(e, &nla_u32(3, 1)), "{set}");
    }
    // The address lands in reg 1, the port in reg 9.
    let nat = [
        (1, vec![0, 0, 0, 1]), // NFTA_NAT_TYPE = NFT_NAT_DNAT
        (2, vec![0, 0, 0, 2]), // NFTA_NAT_FAMILY = NFPROTO_IPV4
        (3, vec![0, 0, 0, 1]), // NFTA_NAT_REG_ADDR_MIN = reg 1
        (5, vec![0, 0, 0, 9]), // NFTA_NAT_REG_PROTO_MIN = reg32 01
    ];
    assert_eq!(raw_attrs(&addr[7]), nat);
    assert_eq!(raw_attrs(&any[6]), nat);
    // The connection is marked as published in reg 2 (NFT_REG_2), which
    // the DNAT's registers leave alone: ct mark (key 3) loaded (DREG 1),
    // then stored (SREG 4).
    let (mark, reg2) = (vec![0, 0, 0, 3], vec![0, 0, 0, 2]);
    assert_eq!(raw_attrs(&addr[4]), [(1, reg2.clone()), (2, mark.clone())]);
    assert_eq!(raw_attrs(&addr[6]), [(2, mark), (4, reg2)]);
}

#[test]
fn published_ports_are_map_elements() {
    let mut c = cfg();
    c.ports.push(PortMapping {
        host_ip: Some(Ipv4Addr::UNSPECIFIED),
        host_port: 5353,
        proto: Proto::Udp,
        container_ip: Ipv4Addr::new(10, 42, 0, 6),
        container_port: 53,
    });
    let rs = build(&c);
    let set = |name: &str| rs.sets.iter().find(|s| s.name() == name).unwrap();
    let addr = set("published-addr");
    // ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
    assert_eq!(
        (addr.def.key.len, addr.def.key.id),
        (12, (7 << 12) | (12 << 6) | 13)
    );
    assert_eq!(
        addr.def.kind,
        SetKind::Map(DataType {
            id: (7 << 6) | 13,
            len: 8
        })
    );
    let elements: Vec<_> = addr.elements.iter().collect();
    assert_eq!(
        elements,
        [(
            &vec![192, 168, 1, 2, 6, 0, 0, 0, 0x1f, 0x90, 0, 0],
            &Value::Data(vec![10, 42, 0, 5, 0, 80, 0, 0])
        )]
    );
    // 0.0.0.0 is every address, as for Docker.
    let any = set("published-any");
    assert_eq!((any.def.key.len, any.def.key.id), (8, (12 << 6) | 13));
    let elements: Vec<_> = any.elements.iter().collect();
    assert_eq!(
        elements,
        [(
            &vec![17, 0, 0, 0, 0x14, 0xe9, 0, 0],
            &Value::Data(vec![10, 42, 0, 6, 0, 53, 0, 0])
        )]
    );
}

#[test]
fn prefix_matches_mask_only_when_needed() {
    let net: Ipv4Cidr = "10.42.0.9/24".parse().unwrap();
    let s = expr::ip_saddr_in(net);
    assert_eq!(s.text, "ip saddr 10.42.0.0/24");
    assert_eq!(names(&s.exprs), ["payload", "bitwise", "cmp"]);
    let mask = format!("{:?}", data(&s.exprs[1]));
    assert!(mask.contains("Value([255, 255, 255, 0])"), "{mask}");
    let cmp = format!("{:?}", data(&s.exprs[2]));
    assert!(
        cmp.contains("Value([10, 42, 0, 0])") && cmp.contains("Equal"),
        "{cmp}"
    );

    let host: Ipv4Cidr = "10.1.2.3/32".parse().unwrap();
    assert_eq!(names(&expr::ip_saddr_in(host).exprs), ["payload", "cmp"]);
    let not = expr::ip_daddr_not_in(net);
    assert!(format!("{:?}", data(&not.exprs[2])).contains("NotEqual"));
}

#[test]
fn ifname_is_nul_padded_to_ifnamsiz() {
    let s = expr::oifname_is("skiff0");
    let cmp = format!("{:?}", data(&s.exprs[1]));
    let mut want = b"skiff0".to_vec();
    want.resize(16, 0);
    assert!(cmp.contains(&format!("Value({want:?})")), "{cmp}");
}

#[test]
fn ct_and_fib_use_uapi_numbers() {
    let st = expr::ct_state_established_related();
    assert_eq!(names(&st.exprs), ["ct", "bitwise", "cmp"]);
    // NFTA_CT_DREG = reg 1, NFTA_CT_KEY = NFT_CT_STATE (0).
    assert_eq!(
        raw_attrs(&st.exprs[0]),
        [(1, vec![0, 0, 0, 1]), (2, vec![0, 0, 0, 0])]
    );
    // established (bit 1) | related (bit 2), in host byte order.
    let mask = format!("{:?}", data(&st.exprs[1]));
    assert!(
        mask.contains(&format!("Value({:?})", 6u32.to_ne_bytes().to_vec())),
        "{mask}"
    );

    let dnat = expr::ct_status_dnat();
    assert_eq!(raw_attrs(&dnat.exprs[0])[1], (2, vec![0, 0, 0, 2]));
    let mask = format!("{:?}", data(&dnat.exprs[1]));
    assert!(
        mask.contains(&format!("Value({:?})", 0x20u32.to_ne_bytes().to_vec())),
        "{mask}"
    );

    let fib = expr::fib_daddr_type_local();
    assert_eq!(
        raw_attrs(&fib.exprs[0]),
        [
            (1, vec![0, 0, 0, 1]), // NFTA_FIB_DREG = reg 1
            (2, vec![0, 0, 0, 3]), // NFTA_FIB_RESULT = NFT_FIB_RESULT_ADDRTYPE
            (3, vec![0, 0, 0, 2]), // NFTA_FIB_FLAGS = NFTA_FIB_F_DADDR
        ]
    );
    let local = format!("{:?}", data(&fib.exprs[1]));
    assert!(
        local.contains(&format!("Value({:?})", 2u32.to_ne_bytes().to_vec())),
        "{local}"
    );

    let masq = expr::masquerade();
    assert_eq!(names(&masq.exprs), ["masq"]);
    assert!(raw_attrs(&masq.exprs[0]).is_empty());
}
