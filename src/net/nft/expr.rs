//! nf_tables expressions, and the statements (`ip saddr 10.42.0.0/24`,
//! `masquerade`, ...) built from them.
//!
//! Every statement carries the nft-syntax text it stands for, so that an error
//! can say which rule the kernel refused. Expressions the netlink crate has no
//! type for (ct, fib, nat, masq) are built as raw attributes from the kernel
//! UAPI numbers (include/uapi/linux/netfilter/nf_tables.h).

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::{
    Bitwise, Cmp, DataAttribute, ExpressionAttribute, Expressions, Immediate, ListAttribute,
    Lookup, Meta, MetaKey, Operator, Payload, Register, Verdict, VerdictAttribute,
};

use super::config::IFNAMSIZ;
use super::set::VerdictTo;
use crate::net::cidr::Ipv4Cidr;

/// One expression of a rule, as it goes into NFTA_RULE_EXPRESSIONS.
pub(crate) type Expr = ListAttribute<ExpressionAttribute>;

/// A piece of a rule: the expressions and the nft text they mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub text: String,
    pub exprs: Vec<Expr>,
}

impl Stmt {
    pub(super) fn new(text: impl Into<String>, exprs: Vec<Expr>) -> Self {
        Self {
            text: text.into(),
            exprs,
        }
    }
}

// enum nft_payload_bases
pub(super) const PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(super) const PAYLOAD_TRANSPORT_HEADER: u32 = 2;
// Offsets in the IPv4 header and in the TCP/UDP header (both put dport at 2).
pub(super) const IPV4_SADDR: u32 = 12;
pub(super) const IPV4_DADDR: u32 = 16;
pub(super) const TH_DPORT: u32 = 2;

// enum nft_ct_attributes / nft_ct_keys
pub(super) const NFTA_CT_DREG: u16 = 1;
pub(super) const NFTA_CT_KEY: u16 = 2;
pub(super) const NFT_CT_STATE: u32 = 0;
const NFTA_CT_SREG: u16 = 4;
const NFT_CT_MARK: u32 = 3;
const NFT_CT_STATUS: u32 = 2;
/// ct state bits: NF_CT_STATE_BIT(ctinfo) = 1 << (ctinfo + 1) for
/// IP_CT_ESTABLISHED (0) and IP_CT_RELATED (1).
pub(crate) const CT_STATE_ESTABLISHED: u32 = 1 << 1;
pub(crate) const CT_STATE_RELATED: u32 = 1 << 2;
/// IPS_DST_NAT in enum ip_conntrack_status.
pub(crate) const CT_STATUS_DNAT: u32 = 1 << 5;

// enum nft_fib_attributes / nft_fib_result / nft_fib_flags
pub(super) const NFTA_FIB_DREG: u16 = 1;
pub(super) const NFTA_FIB_RESULT: u16 = 2;
pub(super) const NFTA_FIB_FLAGS: u16 = 3;
pub(super) const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
/// RTN_LOCAL from linux/rtnetlink.h: the route type of the host's own addresses.
pub(super) const RTN_LOCAL: u32 = 2;

// enum nft_nat_attributes / nft_nat_types
pub(super) const NFTA_NAT_TYPE: u16 = 1;
pub(super) const NFTA_NAT_FAMILY: u16 = 2;
pub(super) const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
pub(super) const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
pub(super) const NFT_NAT_DNAT: u32 = 1;
pub(super) const NFPROTO_IPV4: u32 = 2;

/// NF_DROP and NF_ACCEPT from linux/netfilter.h.
pub(super) const NF_DROP: u32 = 0;
pub(super) const NF_ACCEPT: u32 = 1;

pub(super) fn be32(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

pub(super) fn raw(name: &str, attributes: Vec<DefaultNla>) -> Expr {
    Expressions::Other {
        expression_type: name.to_string(),
        attributes,
    }
    .into()
}

pub(super) fn reg(r: Register) -> Vec<u8> {
    be32(u32::from(r))
}

pub(super) fn load_payload(base: u32, offset: u32, len: u32) -> Expr {
    load_payload_to(Register::Reg1, base, offset, len)
}

pub(super) fn load_payload_to(dreg: Register, base: u32, offset: u32, len: u32) -> Expr {
    Expressions::Payload(vec![
        Payload::DestinationRegister(dreg),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
    .into()
}

pub(super) fn load_meta(key: MetaKey) -> Expr {
    load_meta_to(Register::Reg1, key)
}

pub(super) fn load_meta_to(dreg: Register, key: MetaKey) -> Expr {
    Expressions::Meta(vec![Meta::DestinationRegister(dreg), Meta::Key(key)]).into()
}

pub(super) fn load_ct(key: u32) -> Expr {
    raw(
        "ct",
        vec![
            DefaultNla::new(NFTA_CT_DREG, reg(Register::Reg1)),
            DefaultNla::new(NFTA_CT_KEY, be32(key)),
        ],
    )
}

pub(super) fn cmp(op: Operator, data: Vec<u8>) -> Expr {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(op),
        Cmp::Data(DataAttribute::Value(data)),
    ])
    .into()
}

/// reg1 = (reg1 & mask) ^ 0
pub(super) fn and_mask(mask: Vec<u8>) -> Expr {
    let zero = vec![0; mask.len()];
    Expressions::Bitwise(vec![
        Bitwise::SourceRegister(Register::Reg1),
        Bitwise::DestinationRegister(Register::Reg1),
        Bitwise::Length(mask.len() as u32),
        Bitwise::Mask(DataAttribute::Value(mask)),
        Bitwise::Xor(DataAttribute::Value(zero)),
    ])
    .into()
}

pub(super) fn immediate(dreg: Register, data: DataAttribute) -> Expr {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(dreg),
        Immediate::Data(data),
    ])
    .into()
}

pub(super) fn ip_in(offset: u32, field: &str, cidr: Ipv4Cidr, negate: bool) -> Stmt {
    let op = if negate {
        Operator::NotEqual
    } else {
        Operator::Equal
    };
    let mut exprs = vec![load_payload(PAYLOAD_NETWORK_HEADER, offset, 4)];
    if cidr.prefix() < 32 {
        exprs.push(and_mask(cidr.mask().octets().to_vec()));
    }
    exprs.push(cmp(op, cidr.network().octets().to_vec()));
    let bang = if negate { "!= " } else { "" };
    let net = format!("{}/{}", cidr.network(), cidr.prefix());
    Stmt::new(format!("ip {field} {bang}{net}"), exprs)
}

pub(crate) fn ip_saddr_in(cidr: Ipv4Cidr) -> Stmt {
    ip_in(IPV4_SADDR, "saddr", cidr, false)
}

pub(crate) fn ip_daddr_in(cidr: Ipv4Cidr) -> Stmt {
    ip_in(IPV4_DADDR, "daddr", cidr, false)
}

pub(crate) fn ip_daddr_not_in(cidr: Ipv4Cidr) -> Stmt {
    ip_in(IPV4_DADDR, "daddr", cidr, true)
}

/// The name must already be checked to fit IFNAMSIZ with its NUL; it is
/// compared as the whole NUL-padded IFNAMSIZ buffer, as the kernel stores it.
fn ifname_cmp(key: MetaKey, field: &str, name: &str, negate: bool) -> Stmt {
    let mut data = name.as_bytes().to_vec();
    data.resize(IFNAMSIZ, 0);
    let (op, bang) = if negate {
        (Operator::NotEqual, "!= ")
    } else {
        (Operator::Equal, "")
    };
    Stmt::new(
        format!("{field} {bang}\"{name}\""),
        vec![load_meta(key), cmp(op, data)],
    )
}

pub(crate) fn iifname_is(name: &str) -> Stmt {
    ifname_cmp(MetaKey::Iifname, "iifname", name, false)
}

pub(crate) fn iifname_is_not(name: &str) -> Stmt {
    ifname_cmp(MetaKey::Iifname, "iifname", name, true)
}

pub(crate) fn oifname_is(name: &str) -> Stmt {
    ifname_cmp(MetaKey::Oifname, "oifname", name, false)
}

/// Matches when any of `bits` is set; the kernel keeps ct state and status
/// in host byte order.
pub(super) fn ct_any(key: u32, field: &str, bits: u32, names: &str) -> Stmt {
    Stmt::new(
        format!("ct {field} {names}"),
        vec![
            load_ct(key),
            and_mask(bits.to_ne_bytes().to_vec()),
            cmp(Operator::NotEqual, vec![0; 4]),
        ],
    )
}

pub(crate) fn ct_state_established_related() -> Stmt {
    ct_any(
        NFT_CT_STATE,
        "state",
        CT_STATE_ESTABLISHED | CT_STATE_RELATED,
        "established,related",
    )
}

pub(crate) fn ct_status_dnat() -> Stmt {
    ct_any(NFT_CT_STATUS, "status", CT_STATUS_DNAT, "dnat")
}

pub(crate) fn fib_daddr_type_local() -> Stmt {
    Stmt::new(
        "fib daddr type local",
        vec![
            raw(
                "fib",
                vec![
                    DefaultNla::new(NFTA_FIB_DREG, reg(Register::Reg1)),
                    DefaultNla::new(NFTA_FIB_RESULT, be32(NFT_FIB_RESULT_ADDRTYPE)),
                    DefaultNla::new(NFTA_FIB_FLAGS, be32(NFTA_FIB_F_DADDR)),
                ],
            ),
            cmp(Operator::Equal, RTN_LOCAL.to_ne_bytes().to_vec()),
        ],
    )
}

pub(super) fn verdict(code: Verdict, chain: Option<&str>) -> Expr {
    immediate(Register::Verdict, verdict_value(code, chain))
}

fn verdict_value(code: Verdict, chain: Option<&str>) -> DataAttribute {
    let mut v = vec![VerdictAttribute::Code(code)];
    if let Some(chain) = chain {
        v.push(VerdictAttribute::Chain(chain.to_string()));
    }
    DataAttribute::Verdict(v)
}

/// A verdict as data: a verdict map element's value.
pub(crate) fn verdict_data(v: &VerdictTo) -> DataAttribute {
    match v {
        VerdictTo::Drop => verdict_value(Verdict::Other(NF_DROP), None),
        VerdictTo::Jump(c) => verdict_value(Verdict::Jump, Some(c)),
        VerdictTo::Goto(c) => verdict_value(Verdict::Goto, Some(c)),
    }
}

#[cfg_attr(not(test), allow(dead_code))] // for the service proxy, see set.rs
/// `ip daddr vmap @set`: the verdict the set maps the destination to; no
/// element, no verdict (the rule does not match).
pub(crate) fn ip_daddr_vmap(set: &str) -> Stmt {
    Stmt::new(
        format!("ip daddr vmap @{set}"),
        vec![
            load_payload(PAYLOAD_NETWORK_HEADER, IPV4_DADDR, 4),
            Expressions::Lookup(vec![
                Lookup::Set(set.to_string()),
                Lookup::SourceRegister(Register::Reg1),
                Lookup::DestinationRegister(Register::Verdict),
            ])
            .into(),
        ],
    )
}

pub(crate) fn accept() -> Stmt {
    Stmt::new("accept", vec![verdict(Verdict::Other(NF_ACCEPT), None)])
}

pub(crate) fn drop() -> Stmt {
    Stmt::new("drop", vec![verdict(Verdict::Other(NF_DROP), None)])
}

pub(crate) fn jump(chain: &str) -> Stmt {
    Stmt::new(
        format!("jump {chain}"),
        vec![verdict(Verdict::Jump, Some(chain))],
    )
}

pub(crate) fn masquerade() -> Stmt {
    Stmt::new("masquerade", vec![raw("masq", vec![])])
}

/// Which packet fields a published-port map is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortKey {
    /// `meta l4proto . th dport`: published on every local address.
    ProtoPort,
    /// `ip daddr . meta l4proto . th dport`: published on one address.
    AddrProtoPort,
}

/// The conntrack mark bit of a connection the engine DNATed to a published
/// port. Only those are masqueraded when they come from a pod: a Service's
/// DNAT (the proxy's table) keeps the client's address.
pub(crate) const CT_MARK_PUBLISHED: u32 = 1 << 13;

/// `ct mark set ct mark | bit`, in register 2 (the DNAT's address and port
/// sit in register 1).
fn ct_mark_or(bit: u32) -> Vec<Expr> {
    vec![
        raw(
            "ct",
            vec![
                DefaultNla::new(NFTA_CT_DREG, reg(Register::Reg2)),
                DefaultNla::new(NFTA_CT_KEY, be32(NFT_CT_MARK)),
            ],
        ),
        Expressions::Bitwise(vec![
            Bitwise::SourceRegister(Register::Reg2),
            Bitwise::DestinationRegister(Register::Reg2),
            Bitwise::Length(4),
            Bitwise::Mask(DataAttribute::Value((!bit).to_ne_bytes().to_vec())),
            Bitwise::Xor(DataAttribute::Value(bit.to_ne_bytes().to_vec())),
        ])
        .into(),
        raw(
            "ct",
            vec![
                DefaultNla::new(NFTA_CT_KEY, be32(NFT_CT_MARK)),
                DefaultNla::new(NFTA_CT_SREG, reg(Register::Reg2)),
            ],
        ),
    ]
}

/// `ct mark & CT_MARK_PUBLISHED != 0`.
pub(crate) fn ct_mark_published() -> Stmt {
    ct_any(
        NFT_CT_MARK,
        "mark &",
        CT_MARK_PUBLISHED,
        &format!("{CT_MARK_PUBLISHED:#x} != 0"),
    )
}

/// `dnat ip to <key> map @set`, marking the connection as published
/// (`CT_MARK_PUBLISHED`): the key's fields are loaded into
/// consecutive 32-bit registers from reg 1 (a concatenation, each field
/// padded to 4 bytes, as set.rs lays out the keys), the map (values
/// `ipv4_addr . inet_service`) puts the address in reg 1 and the port in the
/// next 32-bit register, and the nat expression takes them from there. A
/// key the map does not hold ends the rule: the packet goes on unchanged.
///
/// The transport header is read raw (`th dport`): keys hold only tcp and
/// udp, so another protocol's bytes there never match. The kernel sets
/// NF_NAT_RANGE_MAP_IPS and _PROTO_SPECIFIED itself when the address and
/// port registers are present, so no flags are sent.
pub(crate) fn dnat_map(key: PortKey, set: &str) -> Stmt {
    let mut exprs = Vec::new();
    let (text, proto_reg, port_reg) = match key {
        PortKey::ProtoPort => (
            "meta l4proto . th dport",
            Register::Reg1,
            Register::Reg32_01,
        ),
        PortKey::AddrProtoPort => {
            exprs.push(load_payload(PAYLOAD_NETWORK_HEADER, IPV4_DADDR, 4));
            (
                "ip daddr . meta l4proto . th dport",
                Register::Reg32_01,
                Register::Reg32_02,
            )
        }
    };
    exprs.extend([
        load_meta_to(proto_reg, MetaKey::L4Proto),
        load_payload_to(port_reg, PAYLOAD_TRANSPORT_HEADER, TH_DPORT, 2),
        Expressions::Lookup(vec![
            Lookup::Set(set.to_string()),
            Lookup::SourceRegister(Register::Reg1),
            Lookup::DestinationRegister(Register::Reg1),
        ])
        .into(),
    ]);
    exprs.extend(ct_mark_or(CT_MARK_PUBLISHED));
    exprs.extend([raw(
        "nat",
        vec![
            DefaultNla::new(NFTA_NAT_TYPE, be32(NFT_NAT_DNAT)),
            DefaultNla::new(NFTA_NAT_FAMILY, be32(NFPROTO_IPV4)),
            DefaultNla::new(NFTA_NAT_REG_ADDR_MIN, reg(Register::Reg1)),
            DefaultNla::new(NFTA_NAT_REG_PROTO_MIN, reg(Register::Reg32_01)),
        ],
    )]);
    Stmt::new(
        format!("ct mark set ct mark | {CT_MARK_PUBLISHED:#x} dnat ip to {text} map @{set}"),
        exprs,
    )
}
