//! The statements a service proxy needs beyond the engine's (expr.rs):
//! random choice over a verdict map, reject, packet marks, DNAT to a fixed
//! endpoint, set lookups and updates from the packet path (session
//! affinity), and the matches that pick Service traffic out.
//!
//! Numbers are the kernel UAPI's (include/uapi/linux/netfilter/nf_tables.h,
//! nf_nat.h); registers and byte orders as nft lays them out, so that `nft
//! list` prints what was meant.

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::{
    Bitwise, DataAttribute, Expressions, Lookup, Meta, MetaKey, Operator, Register, Verdict,
};

use super::config::Proto;
use super::expr::{
    and_mask, be32, cmp, immediate, ip_in, load_meta, load_meta_to, load_payload, load_payload_to,
    raw, reg, verdict, Stmt, IPV4_DADDR, IPV4_SADDR, NFPROTO_IPV4, NFTA_FIB_DREG, NFTA_FIB_FLAGS,
    NFTA_FIB_RESULT, NFTA_NAT_FAMILY, NFTA_NAT_REG_ADDR_MIN, NFTA_NAT_REG_PROTO_MIN, NFTA_NAT_TYPE,
    NFT_CT_STATE, NFT_FIB_RESULT_ADDRTYPE, NFT_NAT_DNAT, PAYLOAD_NETWORK_HEADER,
    PAYLOAD_TRANSPORT_HEADER, RTN_LOCAL, TH_DPORT,
};
use crate::net::cidr::Ipv4Cidr;
use std::net::Ipv4Addr;

// enum nft_ng_attributes / nft_ng_types
const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFT_NG_RANDOM: u32 = 1;

// enum nft_reject_attributes / nft_reject_types; ICMP_PORT_UNREACH.
const NFTA_REJECT_TYPE: u16 = 1;
const NFTA_REJECT_ICMP_CODE: u16 = 2;
const NFT_REJECT_ICMP_UNREACH: u32 = 0;
const NFT_REJECT_TCP_RST: u32 = 1;
const ICMP_PORT_UNREACH: u8 = 3;

// enum nft_dynset_attributes / nft_dynset_ops
const NFTA_DYNSET_SET_NAME: u16 = 1;
const NFTA_DYNSET_OP: u16 = 3;
const NFTA_DYNSET_SREG_KEY: u16 = 4;
const NFT_DYNSET_OP_UPDATE: u32 = 1;

// nft_fib_flags
const NFTA_FIB_F_SADDR: u32 = 1;

// enum nft_masq_attributes; NF_NAT_RANGE_PROTO_RANDOM_FULLY.
const NFTA_MASQ_FLAGS: u16 = 1;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 1 << 4;

/// ct state bit of IP_CT_NEW (2): NF_CT_STATE_BIT = 1 << (ctinfo + 1).
const CT_STATE_NEW: u32 = 1 << 3;

/// `ct state new`: the first packet of a connection.
pub(crate) fn ct_state_new() -> Stmt {
    super::expr::ct_any(NFT_CT_STATE, "state", CT_STATE_NEW, "new")
}

fn host(ip: Ipv4Addr) -> Ipv4Cidr {
    // A /32 is always a valid prefix.
    Ipv4Cidr::new(ip, 32).unwrap_or(Ipv4Cidr::LOOPBACK)
}

pub(crate) fn ip_saddr_is(ip: Ipv4Addr) -> Stmt {
    ip_in(IPV4_SADDR, "saddr", host(ip), false)
}

pub(crate) fn ip_daddr_is(ip: Ipv4Addr) -> Stmt {
    ip_in(IPV4_DADDR, "daddr", host(ip), false)
}

pub(crate) fn ip_saddr_not_in(cidr: Ipv4Cidr) -> Stmt {
    ip_in(IPV4_SADDR, "saddr", cidr, true)
}

/// `meta l4proto tcp`.
pub(crate) fn l4proto_is(proto: Proto) -> Stmt {
    Stmt::new(
        format!("meta l4proto {}", proto.name()),
        vec![
            load_meta(MetaKey::L4Proto),
            cmp(Operator::Equal, vec![proto.number()]),
        ],
    )
}

/// `th dport 80`, to follow an l4proto match (tcp, udp and sctp all keep
/// the destination port at offset 2).
pub(crate) fn th_dport_is(port: u16) -> Stmt {
    Stmt::new(
        format!("th dport {port}"),
        vec![
            load_payload(PAYLOAD_TRANSPORT_HEADER, TH_DPORT, 2),
            cmp(Operator::Equal, port.to_be_bytes().to_vec()),
        ],
    )
}

fn vmap_lookup(set: &str) -> super::expr::Expr {
    Expressions::Lookup(vec![
        Lookup::Set(set.to_string()),
        Lookup::SourceRegister(Register::Reg1),
        Lookup::DestinationRegister(Register::Verdict),
    ])
    .into()
}

/// `ip daddr . meta l4proto . th dport vmap @set`.
pub(crate) fn vmap_addr_proto_port(set: &str) -> Stmt {
    Stmt::new(
        format!("ip daddr . meta l4proto . th dport vmap @{set}"),
        vec![
            load_payload(PAYLOAD_NETWORK_HEADER, IPV4_DADDR, 4),
            load_meta_to(Register::Reg32_01, MetaKey::L4Proto),
            load_payload_to(Register::Reg32_02, PAYLOAD_TRANSPORT_HEADER, TH_DPORT, 2),
            vmap_lookup(set),
        ],
    )
}

/// `meta l4proto . th dport vmap @set`.
pub(crate) fn vmap_proto_port(set: &str) -> Stmt {
    Stmt::new(
        format!("meta l4proto . th dport vmap @{set}"),
        vec![
            load_meta(MetaKey::L4Proto),
            load_payload_to(Register::Reg32_01, PAYLOAD_TRANSPORT_HEADER, TH_DPORT, 2),
            vmap_lookup(set),
        ],
    )
}

/// `numgen random mod n vmap @set`: one of the set's `0..n` keys at random
/// (keys are 32-bit integers in host order, see set.rs). The modulus is in
/// the rule and the choices in the map, so a changed endpoint is a map
/// element and a one-rule chain, whatever the number of endpoints.
pub(crate) fn numgen_vmap(n: u32, set: &str) -> Stmt {
    Stmt::new(
        format!("numgen random mod {n} vmap @{set}"),
        vec![
            raw(
                "numgen",
                vec![
                    DefaultNla::new(NFTA_NG_DREG, reg(Register::Reg1)),
                    DefaultNla::new(NFTA_NG_MODULUS, be32(n)),
                    DefaultNla::new(NFTA_NG_TYPE, be32(NFT_NG_RANDOM)),
                ],
            ),
            vmap_lookup(set),
        ],
    )
}

/// `ip daddr @set`.
pub(crate) fn ip_daddr_in_set(set: &str) -> Stmt {
    lookup_ip(IPV4_DADDR, "daddr", set)
}

/// `ip saddr @set`.
pub(crate) fn ip_saddr_in_set(set: &str) -> Stmt {
    lookup_ip(IPV4_SADDR, "saddr", set)
}

fn lookup_ip(offset: u32, field: &str, set: &str) -> Stmt {
    Stmt::new(
        format!("ip {field} @{set}"),
        vec![
            load_payload(PAYLOAD_NETWORK_HEADER, offset, 4),
            Expressions::Lookup(vec![
                Lookup::Set(set.to_string()),
                Lookup::SourceRegister(Register::Reg1),
            ])
            .into(),
        ],
    )
}

/// `update @set { ip saddr }`: add the source, or refresh its timeout.
pub(crate) fn update_saddr(set: &str) -> Stmt {
    Stmt::new(
        format!("update @{set} {{ ip saddr }}"),
        vec![
            load_payload(PAYLOAD_NETWORK_HEADER, IPV4_SADDR, 4),
            raw(
                "dynset",
                vec![
                    DefaultNla::new(NFTA_DYNSET_SET_NAME, cstring(set)),
                    DefaultNla::new(NFTA_DYNSET_OP, be32(NFT_DYNSET_OP_UPDATE)),
                    DefaultNla::new(NFTA_DYNSET_SREG_KEY, reg(Register::Reg1)),
                ],
            ),
        ],
    )
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// `dnat ip to 10.42.0.7:8080`.
pub(crate) fn dnat_to(ip: Ipv4Addr, port: u16) -> Stmt {
    Stmt::new(
        format!("dnat ip to {ip}:{port}"),
        vec![
            immediate(Register::Reg1, DataAttribute::Value(ip.octets().to_vec())),
            immediate(
                Register::Reg32_01,
                DataAttribute::Value(port.to_be_bytes().to_vec()),
            ),
            raw(
                "nat",
                vec![
                    DefaultNla::new(NFTA_NAT_TYPE, be32(NFT_NAT_DNAT)),
                    DefaultNla::new(NFTA_NAT_FAMILY, be32(NFPROTO_IPV4)),
                    DefaultNla::new(NFTA_NAT_REG_ADDR_MIN, reg(Register::Reg1)),
                    DefaultNla::new(NFTA_NAT_REG_PROTO_MIN, reg(Register::Reg32_01)),
                ],
            ),
        ],
    )
}

/// `reject` (ICMP port unreachable), for any protocol.
pub(crate) fn reject_icmp() -> Stmt {
    Stmt::new(
        "reject with icmp port-unreachable",
        vec![raw(
            "reject",
            vec![
                DefaultNla::new(NFTA_REJECT_TYPE, be32(NFT_REJECT_ICMP_UNREACH)),
                DefaultNla::new(NFTA_REJECT_ICMP_CODE, vec![ICMP_PORT_UNREACH]),
            ],
        )],
    )
}

/// `reject with tcp reset`, after a tcp match.
pub(crate) fn reject_tcp_reset() -> Stmt {
    Stmt::new(
        "reject with tcp reset",
        vec![raw(
            "reject",
            vec![DefaultNla::new(NFTA_REJECT_TYPE, be32(NFT_REJECT_TCP_RST))],
        )],
    )
}

fn mark_op(text: String, mask: u32, xor: u32) -> Stmt {
    Stmt::new(
        text,
        vec![
            load_meta(MetaKey::Mark),
            Expressions::Bitwise(vec![
                Bitwise::SourceRegister(Register::Reg1),
                Bitwise::DestinationRegister(Register::Reg1),
                Bitwise::Length(4),
                Bitwise::Mask(DataAttribute::Value(mask.to_ne_bytes().to_vec())),
                Bitwise::Xor(DataAttribute::Value(xor.to_ne_bytes().to_vec())),
            ])
            .into(),
            Expressions::Meta(vec![
                Meta::Key(MetaKey::Mark),
                Meta::SourceRegister(Register::Reg1),
            ])
            .into(),
        ],
    )
}

/// `meta mark set meta mark | bit`.
pub(crate) fn mark_set(bit: u32) -> Stmt {
    mark_op(format!("meta mark set meta mark | {bit:#x}"), !bit, bit)
}

/// `meta mark set meta mark ^ bit` (clears a bit known to be set).
pub(crate) fn mark_flip(bit: u32) -> Stmt {
    mark_op(format!("meta mark set meta mark ^ {bit:#x}"), u32::MAX, bit)
}

/// `meta mark & bit == 0`: packet marks are in host order.
pub(crate) fn mark_lacks(bit: u32) -> Stmt {
    Stmt::new(
        format!("meta mark & {bit:#x} == 0"),
        vec![
            load_meta(MetaKey::Mark),
            and_mask(bit.to_ne_bytes().to_vec()),
            cmp(Operator::Equal, vec![0; 4]),
        ],
    )
}

/// `masquerade fully-random`: source ports picked at random, so that two
/// nodes' masqueraded connections to one endpoint do not collide.
pub(crate) fn masquerade_fully_random() -> Stmt {
    Stmt::new(
        "masquerade fully-random",
        vec![raw(
            "masq",
            vec![DefaultNla::new(
                NFTA_MASQ_FLAGS,
                be32(NF_NAT_RANGE_PROTO_RANDOM_FULLY),
            )],
        )],
    )
}

/// `fib saddr type local`: sent by this host itself.
pub(crate) fn fib_saddr_type_local() -> Stmt {
    Stmt::new(
        "fib saddr type local",
        vec![
            raw(
                "fib",
                vec![
                    DefaultNla::new(NFTA_FIB_DREG, reg(Register::Reg1)),
                    DefaultNla::new(NFTA_FIB_RESULT, be32(NFT_FIB_RESULT_ADDRTYPE)),
                    DefaultNla::new(NFTA_FIB_FLAGS, be32(NFTA_FIB_F_SADDR)),
                ],
            ),
            cmp(Operator::Equal, RTN_LOCAL.to_ne_bytes().to_vec()),
        ],
    )
}

pub(crate) fn goto(chain: &str) -> Stmt {
    Stmt::new(
        format!("goto {chain}"),
        vec![verdict(Verdict::Goto, Some(chain))],
    )
}

pub(crate) fn ret() -> Stmt {
    Stmt::new("return", vec![verdict(Verdict::Return, None)])
}
