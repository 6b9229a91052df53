//! NAT: published host ports (DNAT) and masquerading (pod egress, host
//! localhost to a published port, hairpin).
//!
//! Published ports are elements of two maps, shaped as a service proxy
//! keeps its Services: `published-any` (`l4proto . port`, published on
//! every local address) and `published-addr` (`addr . l4proto . port`, on
//! one address), each to `container addr . container port`. The rules that
//! look them up are fixed, so publishing or releasing a port is one element
//! added or deleted (diff.rs), never a chain rewrite. Masquerading needs no
//! set of its own: `ct status dnat` tells a published connection apart.

use netlink_packet_netfilter::nftables::InetHookNumber;

use super::config::Config;
use super::expr::{
    ct_mark_published, dnat_map, fib_daddr_type_local, ip_daddr_not_in, ip_saddr_in, jump,
    masquerade, oifname_is, PortKey,
};
use super::ruleset::{Chain, ChainType, Rule, Ruleset};
use super::set::{key_ip_proto_port, key_proto_port, value_ip_port, DataType, Set, SetKind, Value};
use super::Ipv4Cidr;

pub(crate) const PREROUTING: &str = "prerouting";
pub(crate) const OUTPUT: &str = "output";
pub(crate) const POSTROUTING: &str = "postrouting";
/// Regular chain whose two rules DNAT through the maps below.
pub(crate) const PUBLISHED: &str = "published";
/// Ports published on every local address: `l4proto . port`.
pub(crate) const PUBLISHED_ANY: &str = "published-any";
/// Ports published on one address: `addr . l4proto . port`.
pub(crate) const PUBLISHED_ADDR: &str = "published-addr";

/// NF_IP_PRI_NAT_DST ("dstnat") and NF_IP_PRI_NAT_SRC ("srcnat").
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;

pub(crate) fn add(rs: &mut Ruleset, cfg: &Config) {
    rs.chains.extend([
        Chain::base(
            PREROUTING,
            ChainType::Nat,
            InetHookNumber::PreRouting,
            PRIO_DSTNAT,
        ),
        Chain::base(
            OUTPUT,
            ChainType::Nat,
            InetHookNumber::LocalOut,
            PRIO_DSTNAT,
        ),
        Chain::regular(PUBLISHED),
        Chain::base(
            POSTROUTING,
            ChainType::Nat,
            InetHookNumber::PostRouting,
            PRIO_SRCNAT,
        ),
    ]);

    // Only traffic addressed to this host may be published; without the fib
    // check, a pod reaching some remote host on the same port would be
    // redirected too.
    for chain in [PREROUTING, OUTPUT] {
        rs.rules.push(Rule::new(
            chain,
            vec![fib_daddr_type_local(), jump(PUBLISHED)],
        ));
    }

    // The address-bound map first; validation keeps a port out of both
    // (config.rs), so the order only saves a lookup.
    rs.rules.extend([
        Rule::new(
            PUBLISHED,
            vec![dnat_map(PortKey::AddrProtoPort, PUBLISHED_ADDR)],
        ),
        Rule::new(PUBLISHED, vec![dnat_map(PortKey::ProtoPort, PUBLISHED_ANY)]),
    ]);
    let target = SetKind::Map(DataType::concat(&[DataType::IPV4, DataType::PORT]));
    let mut on_addr = Set::new(
        PUBLISHED_ADDR,
        DataType::concat(&[DataType::IPV4, DataType::PROTO, DataType::PORT]),
        target.clone(),
    );
    let mut any = Set::new(
        PUBLISHED_ANY,
        DataType::concat(&[DataType::PROTO, DataType::PORT]),
        target,
    );
    for p in &cfg.ports {
        let to = Value::Data(value_ip_port(p.container_ip, p.container_port));
        match p.match_ip() {
            Some(ip) => on_addr
                .elements
                .insert(key_ip_proto_port(ip, p.proto, p.host_port), to),
            None => any
                .elements
                .insert(key_proto_port(p.proto, p.host_port), to),
        };
    }
    rs.sets.extend([on_addr, any]);

    let pods = cfg.pod_cidr;
    rs.rules.extend([
        // Pod egress.
        Rule::new(
            POSTROUTING,
            vec![
                ip_saddr_in(pods),
                ip_daddr_not_in(cfg.cluster_cidr.unwrap_or(pods)),
                masquerade(),
            ],
        ),
        // The host's own 127.0.0.1 to a published port: a source of 127/8
        // cannot leave through the bridge (needs route_localnet, set by the
        // caller).
        Rule::new(
            POSTROUTING,
            vec![
                ip_saddr_in(Ipv4Cidr::LOOPBACK),
                oifname_is(&cfg.bridge),
                masquerade(),
            ],
        ),
        // Hairpin: a pod reaching its own published port must see the reply
        // come back from the host, not from itself. Only the engine's own
        // DNATs (marked in `published`): a Service's keep the client's
        // address, the proxy masquerading what it must itself.
        Rule::new(
            POSTROUTING,
            vec![
                oifname_is(&cfg.bridge),
                ip_saddr_in(pods),
                ct_mark_published(),
                masquerade(),
            ],
        ),
    ]);
}
