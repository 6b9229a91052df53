//! Named sets, maps and verdict maps, with their elements, as data.
//!
//! A producer that keeps many similar facts (one per Service port, one per
//! endpoint) states them as elements of a map instead of one rule each, so
//! that `diff` can change one fact with one element delete and add, and the
//! rules that look the map up never change.
//!
//! Keys and values are the bytes the kernel compares, in network order; the
//! key builders below lay out concatenations as nft does (each field padded
//! to 4 bytes). The type ids are nft's own (src/datatype.h in nftables), only
//! so that `nft list` can print the elements; the kernel stores them without
//! reading them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::config::Proto;

/// nft's datatype ids (enum datatypes in nftables' include/datatype.h).
const TYPE_INTEGER: u32 = 4;
const TYPE_IPADDR: u32 = 7;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
/// nft builds a concatenation's type id by shifting each field's id in.
const TYPE_BITS: u32 = 6;
/// NFT_DATA_VERDICT: the data type of a verdict map.
pub(crate) const DATA_VERDICT: u32 = 0xffff_ff00;

/// A key or value layout: nft's type id and the length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DataType {
    pub id: u32,
    pub len: u32,
}

impl DataType {
    pub(crate) const IPV4: DataType = DataType {
        id: TYPE_IPADDR,
        len: 4,
    };
    pub(crate) const PROTO: DataType = DataType {
        id: TYPE_INET_PROTOCOL,
        len: 1,
    };
    pub(crate) const PORT: DataType = DataType {
        id: TYPE_INET_SERVICE,
        len: 2,
    };
    /// A 32-bit integer in host order (what `numgen` yields).
    pub(crate) const INDEX: DataType = DataType {
        id: TYPE_INTEGER,
        len: 4,
    };

    /// `a . b . …`: fields padded to 4 bytes each, as registers hold them.
    pub(crate) fn concat(fields: &[DataType]) -> DataType {
        DataType {
            id: fields.iter().fold(0, |id, f| (id << TYPE_BITS) | f.id),
            len: fields.iter().map(|f| f.len.div_ceil(4) * 4).sum(),
        }
    }
}

/// Key bytes for `ipv4_addr . inet_proto . inet_service`.
pub(crate) fn key_ip_proto_port(ip: Ipv4Addr, proto: Proto, port: u16) -> Vec<u8> {
    let mut k = ip.octets().to_vec();
    k.extend([proto.number(), 0, 0, 0]);
    k.extend(port.to_be_bytes());
    k.extend([0, 0]);
    k
}

/// Key bytes for `inet_proto . inet_service`.
pub(crate) fn key_proto_port(proto: Proto, port: u16) -> Vec<u8> {
    let mut k = vec![proto.number(), 0, 0, 0];
    k.extend(port.to_be_bytes());
    k.extend([0, 0]);
    k
}

/// Key bytes for a `numgen` result.
pub(crate) fn key_index(i: u32) -> Vec<u8> {
    i.to_ne_bytes().to_vec()
}

/// Value bytes for `ipv4_addr . inet_service` (a DNAT target).
pub(crate) fn value_ip_port(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut v = ip.octets().to_vec();
    v.extend(port.to_be_bytes());
    v.extend([0, 0]);
    v
}

/// What the elements map their keys to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetKind {
    /// Keys only (`ip daddr @name`).
    Set,
    /// Keys to data of this type (`dnat to … map @name`).
    Map(DataType),
    /// Keys to verdicts (`… vmap @name`).
    VerdictMap,
}

/// A verdict as a verdict map's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VerdictTo {
    Drop,
    #[cfg_attr(not(test), allow(dead_code))]
    Jump(String),
    Goto(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    None,
    Data(Vec<u8>),
    Verdict(VerdictTo),
}

/// What the kernel is told when the set is created; changing any of it
/// means deleting and re-creating the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetDef {
    pub name: String,
    pub key: DataType,
    pub kind: SetKind,
    /// Filled from the packet path (`update @set`), each element expiring
    /// this many milliseconds after it was last refreshed. The owner
    /// states no elements for such a set: the kernel's are kept.
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Set {
    pub def: SetDef,
    /// Ordered, so that batches are the same for the same content.
    pub elements: BTreeMap<Vec<u8>, Value>,
}

impl Set {
    pub(crate) fn new(name: &str, key: DataType, kind: SetKind) -> Set {
        Set {
            def: SetDef {
                name: name.to_string(),
                key,
                kind,
                timeout_ms: None,
            },
            elements: BTreeMap::new(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.def.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenations_pad_fields_and_shift_type_ids() {
        let t = DataType::concat(&[DataType::IPV4, DataType::PROTO, DataType::PORT]);
        assert_eq!(t.len, 12);
        assert_eq!(t.id, (((7 << 6) | 12) << 6) | 13);
        let k = key_ip_proto_port(Ipv4Addr::new(10, 43, 0, 1), Proto::Udp, 53);
        assert_eq!(k, [10, 43, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(k.len() as u32, t.len);
        let k = key_proto_port(Proto::Tcp, 8080);
        assert_eq!(k, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(
            k.len() as u32,
            DataType::concat(&[DataType::PROTO, DataType::PORT]).len
        );
        let v = value_ip_port(Ipv4Addr::new(10, 42, 0, 7), 8080);
        assert_eq!(v, [10, 42, 0, 7, 0x1f, 0x90, 0, 0]);
        assert_eq!(
            DataType::concat(&[DataType::IPV4, DataType::PORT]).len,
            v.len() as u32
        );
    }
}
