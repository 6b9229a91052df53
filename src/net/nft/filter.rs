//! Filtering: pod forwarding, and keeping pods away from the host's
//! loopback services.
//!
//! Forwarding: the policy is accept, so these rules only count as
//! documentation of what pod traffic is; they start to matter once the chain
//! gets a drop policy or policy rules. An accept here cannot override a drop
//! in another table: every table's chains on a hook see the packet.
//!
//! Loopback: published ports on 127.0.0.1 need `route_localnet=1` on the
//! bridge (see nat.rs), and with it the host routes a packet for 127.0.0.0/8
//! that arrives on the bridge to its own loopback services — a container
//! that crafts one (CAP_NET_RAW is in the default set) reaches whatever the
//! node bound to 127.0.0.1: the API server, a registry, a database (the
//! CVE-2020-8558 class). kube-proxy's answer is kept: drop, on input, packets
//! to 127.0.0.0/8 that did not come from 127.0.0.0/8, unless conntrack knows
//! them as replies or as DNATed. Here it is narrowed to packets that did not
//! arrive on `lo`, so that the host's own traffic is never touched, and
//! written as accepts followed by a drop, so that a packet conntrack does not
//! track (invalid or untracked: `ct` matches nothing then) is dropped too.

use netlink_packet_netfilter::nftables::InetHookNumber;

use super::config::Config;
use super::expr::{
    accept, ct_state_established_related, ct_status_dnat, drop, iifname_is, iifname_is_not,
    ip_daddr_in, oifname_is,
};
use super::ruleset::{Chain, ChainType, Rule, Ruleset};
use super::Ipv4Cidr;

pub(crate) const FORWARD: &str = "forward";
pub(crate) const INPUT: &str = "input";

/// NF_IP_PRI_FILTER.
const PRIO_FILTER: i32 = 0;

pub(crate) fn add(rs: &mut Ruleset, cfg: &Config) {
    rs.chains.push(Chain::base(
        FORWARD,
        ChainType::Filter,
        InetHookNumber::Forward,
        PRIO_FILTER,
    ));
    let br = cfg.bridge.as_str();
    rs.rules.extend([
        Rule::new(FORWARD, vec![iifname_is(br), accept()]),
        Rule::new(
            FORWARD,
            vec![oifname_is(br), ct_state_established_related(), accept()],
        ),
        // Published ports: new connections DNATed towards a pod.
        Rule::new(FORWARD, vec![oifname_is(br), ct_status_dnat(), accept()]),
    ]);

    rs.chains.push(Chain::base(
        INPUT,
        ChainType::Filter,
        InetHookNumber::LocalIn,
        PRIO_FILTER,
    ));
    for last in [
        vec![ct_state_established_related(), accept()],
        vec![ct_status_dnat(), accept()],
        vec![drop()],
    ] {
        let mut stmts = vec![
            iifname_is_not("lo"),
            // No saddr clause: skiff0 has route_localnet=1, so a container can
            // send with a spoofed 127.x source (CVE-2020-8558); `iifname != lo`
            // alone tells the node's own loopback traffic apart.
            ip_daddr_in(Ipv4Cidr::LOOPBACK),
        ];
        stmts.extend(last);
        rs.rules.push(Rule::new(INPUT, stmts));
    }
}
