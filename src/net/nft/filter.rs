//! Forwarding of pod traffic.
//!
//! The policy is accept, so today these rules only count as documentation of
//! what pod traffic is; they start to matter once this chain gets a drop
//! policy or policy rules. An accept here cannot override a drop in another
//! table: every table's chains on a hook see the packet.

use netlink_packet_netfilter::nftables::InetHookNumber;

use super::config::Config;
use super::expr::{accept, ct_state_established_related, ct_status_dnat, iifname_is, oifname_is};
use super::ruleset::{Chain, ChainType, Rule, Ruleset};

pub(crate) const FORWARD: &str = "forward";

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
}
