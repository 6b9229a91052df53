//! NAT: published host ports (DNAT) and masquerading (pod egress, host
//! localhost to a published port, hairpin).

use netlink_packet_netfilter::nftables::InetHookNumber;

use super::config::Config;
use super::expr::{
    ct_status_dnat, dnat_to, fib_daddr_type_local, ip_daddr_is, ip_daddr_not_in, ip_saddr_in, jump,
    l4proto_is, masquerade, oifname_is, th_dport_is,
};
use super::ruleset::{Chain, ChainType, Rule, Ruleset};
use super::Ipv4Cidr;

pub(crate) const PREROUTING: &str = "prerouting";
pub(crate) const OUTPUT: &str = "output";
pub(crate) const POSTROUTING: &str = "postrouting";
/// Regular chain holding one DNAT rule per published port.
pub(crate) const PUBLISHED: &str = "published";

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

    for p in &cfg.ports {
        let mut stmts = Vec::new();
        if let Some(ip) = p.match_ip() {
            stmts.push(ip_daddr_is(ip));
        }
        stmts.extend([
            l4proto_is(p.proto),
            th_dport_is(p.host_port),
            dnat_to(p.container_ip, p.container_port),
        ]);
        rs.rules.push(Rule::new(PUBLISHED, stmts));
    }

    let pods = cfg.pod_cidr;
    rs.rules.extend([
        // Pod egress.
        Rule::new(
            POSTROUTING,
            vec![ip_saddr_in(pods), ip_daddr_not_in(pods), masquerade()],
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
        // come back from the host, not from itself.
        Rule::new(
            POSTROUTING,
            vec![
                oifname_is(&cfg.bridge),
                ip_saddr_in(pods),
                ct_status_dnat(),
                masquerade(),
            ],
        ),
    ]);
}
