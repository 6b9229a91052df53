//! The proxy's table as data: a fixed skeleton (base chains, the shared
//! maps, the chains every Service jumps to), and one fragment per Service
//! (its own chains, endpoint maps and affinity sets, and the elements it
//! claims in the shared maps). A change to one Service rebuilds only its
//! fragment; mod.rs diffs it against the last one.
//!
//! Traffic, as kube-proxy's nftables mode lays it out:
//! - nat prerouting/output: `services` looks the destination up in
//!   `service-ips` (ClusterIPs, external and load balancer addresses) and,
//!   on a local address, the port in `service-nodeports`, and goes to the
//!   Service port's chain: `svc-…` spreads over every endpoint (Cluster
//!   policy), `local-…` over this node's (Local policies), `ext-…` is the
//!   way in from outside (masquerade, or the Local policy's rules).
//! - Random choice is `numgen random mod N vmap @…-eps`: the endpoints sit
//!   in the map at stable slots (mod.rs), so one endpoint coming or going
//!   is one element and a one-rule chain, whatever N is.
//! - Each endpoint's chain DNATs to it, marking for masquerade a pod that
//!   reaches itself (hairpin) and refreshing the client in its affinity
//!   set when the Service has ClientIP affinity.
//! - A Service port with nothing to send to is in `no-endpoint-…`: reject
//!   (TCP reset, ICMP port unreachable otherwise) under the Cluster
//!   policy, drop under Local, checked in the filter hooks, where reject is
//!   allowed.
//! - nat postrouting masquerades what was marked.

use std::collections::BTreeMap;

use netlink_packet_netfilter::nftables::InetHookNumber;

use super::super::config::Proto;
use super::super::expr::{fib_daddr_type_local, ip_daddr_in, ip_daddr_not_in, jump, Stmt};
use super::super::expr_svc::{
    ct_state_new, dnat_to, fib_saddr_type_local, goto, ip_daddr_in_set, ip_daddr_is,
    ip_saddr_in_set, ip_saddr_is, ip_saddr_not_in, l4proto_is, mark_flip, mark_lacks, mark_set,
    masquerade_fully_random, numgen_vmap, reject_icmp, reject_tcp_reset, ret, th_dport_is,
    update_saddr, vmap_addr_proto_port, vmap_proto_port,
};
use super::super::ruleset::{Chain, ChainType, Rule, Ruleset};
use super::super::set::{
    key_index, key_ip_proto_port, key_proto_port, DataType, Set, SetKind, Value, VerdictTo,
};
use super::config::{Endpoint, PortRules, ProxyConfig, ServiceRules};
use crate::net::cidr::Ipv4Cidr;

pub(crate) const SERVICE_IPS: &str = "service-ips";
pub(crate) const SERVICE_NODEPORTS: &str = "service-nodeports";
pub(crate) const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub(crate) const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub(crate) const CLUSTER_IPS: &str = "cluster-ips";

const SERVICES: &str = "services";
const MASQUERADING: &str = "masquerading";
const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
const REJECT: &str = "reject-chain";

/// NF_IP_PRI_NAT_DST, NF_IP_PRI_NAT_SRC; the filter chains run just before
/// DNAT (to see the Service address) and, on output, just after.
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;
const PRIO_PRE_DNAT: i32 = -110;
const PRIO_POST_DNAT: i32 = -90;

fn addr_proto_port() -> DataType {
    DataType::concat(&[DataType::IPV4, DataType::PROTO, DataType::PORT])
}

fn proto_port() -> DataType {
    DataType::concat(&[DataType::PROTO, DataType::PORT])
}

/// Base chains, shared maps and the chains every Service uses.
pub(crate) fn skeleton(cfg: &ProxyConfig) -> Ruleset {
    let mut rs = Ruleset::new(&cfg.table);
    let base = |name: &str, ty, hook, prio| Chain::base(name, ty, hook, prio);
    rs.chains.extend([
        base(
            "nat-prerouting",
            ChainType::Nat,
            InetHookNumber::PreRouting,
            PRIO_DSTNAT,
        ),
        base(
            "nat-output",
            ChainType::Nat,
            InetHookNumber::LocalOut,
            PRIO_DSTNAT,
        ),
        base(
            "nat-postrouting",
            ChainType::Nat,
            InetHookNumber::PostRouting,
            PRIO_SRCNAT,
        ),
        base(
            "filter-input",
            ChainType::Filter,
            InetHookNumber::LocalIn,
            PRIO_PRE_DNAT,
        ),
        base(
            "filter-forward",
            ChainType::Filter,
            InetHookNumber::Forward,
            PRIO_PRE_DNAT,
        ),
        base(
            "filter-output",
            ChainType::Filter,
            InetHookNumber::LocalOut,
            PRIO_PRE_DNAT,
        ),
        base(
            "filter-output-post-dnat",
            ChainType::Filter,
            InetHookNumber::LocalOut,
            PRIO_POST_DNAT,
        ),
    ]);
    for name in [
        SERVICES,
        MASQUERADING,
        MARK_FOR_MASQUERADE,
        SERVICE_ENDPOINTS_CHECK,
        NODEPORT_ENDPOINTS_CHECK,
        CLUSTER_IPS_CHECK,
        REJECT,
    ] {
        rs.chains.push(Chain::regular(name));
    }
    let rule = |chain: &str, stmts: Vec<Stmt>| Rule::new(chain, stmts);
    let bit = cfg.masquerade_bit;
    rs.rules.extend([
        rule("nat-prerouting", vec![jump(SERVICES)]),
        rule("nat-output", vec![jump(SERVICES)]),
        rule("nat-postrouting", vec![jump(MASQUERADING)]),
        rule(
            "filter-input",
            vec![ct_state_new(), jump(NODEPORT_ENDPOINTS_CHECK)],
        ),
        rule(
            "filter-input",
            vec![ct_state_new(), jump(SERVICE_ENDPOINTS_CHECK)],
        ),
        rule(
            "filter-forward",
            vec![ct_state_new(), jump(SERVICE_ENDPOINTS_CHECK)],
        ),
        rule(
            "filter-forward",
            vec![ct_state_new(), jump(CLUSTER_IPS_CHECK)],
        ),
        rule(
            "filter-output",
            vec![ct_state_new(), jump(SERVICE_ENDPOINTS_CHECK)],
        ),
        rule(
            "filter-output-post-dnat",
            vec![ct_state_new(), jump(CLUSTER_IPS_CHECK)],
        ),
        rule(SERVICES, vec![vmap_addr_proto_port(SERVICE_IPS)]),
        rule(MASQUERADING, vec![mark_lacks(bit), ret()]),
        // Cleared so that a packet that loops back in is not masqueraded twice.
        rule(MASQUERADING, vec![mark_flip(bit)]),
        rule(MASQUERADING, vec![masquerade_fully_random()]),
        rule(MARK_FOR_MASQUERADE, vec![mark_set(bit)]),
        rule(
            SERVICE_ENDPOINTS_CHECK,
            vec![vmap_addr_proto_port(NO_ENDPOINT_SERVICES)],
        ),
        rule(REJECT, vec![l4proto_is(Proto::Tcp), reject_tcp_reset()]),
        rule(REJECT, vec![reject_icmp()]),
        // A ClusterIP on a port it does not serve: refused, as a closed
        // port is; an address of the range no Service holds: dropped.
        rule(
            CLUSTER_IPS_CHECK,
            vec![ip_daddr_in_set(CLUSTER_IPS), reject_icmp()],
        ),
        rule(
            CLUSTER_IPS_CHECK,
            vec![ip_daddr_in(cfg.service_cidr), super::super::expr::drop()],
        ),
    ]);
    // NodePorts: on this node's own addresses (loopback excepted, as
    // upstream: a pod's 127.0.0.1 is its own), or only inside the
    // --nodeport-addresses ranges.
    let on_node: Vec<Vec<Stmt>> = if cfg.nodeport_cidrs.is_empty() {
        vec![vec![
            fib_daddr_type_local(),
            ip_daddr_not_in(Ipv4Cidr::LOOPBACK),
        ]]
    } else {
        cfg.nodeport_cidrs
            .iter()
            .map(|c| vec![fib_daddr_type_local(), ip_daddr_in(*c)])
            .collect()
    };
    for m in on_node {
        let mut to_service = m.clone();
        to_service.push(vmap_proto_port(SERVICE_NODEPORTS));
        rs.rules.push(rule(SERVICES, to_service));
        let mut to_check = m;
        to_check.push(vmap_proto_port(NO_ENDPOINT_NODEPORTS));
        rs.rules.push(rule(NODEPORT_ENDPOINTS_CHECK, to_check));
    }
    rs.sets.extend(shared_sets(&cfg.table).sets);
    rs
}

/// The shared sets, empty: each fragment's claims fill them.
pub(crate) fn shared_sets(table: &str) -> Ruleset {
    let mut rs = Ruleset::new(table);
    rs.sets.extend([
        Set::new(SERVICE_IPS, addr_proto_port(), SetKind::VerdictMap),
        Set::new(SERVICE_NODEPORTS, proto_port(), SetKind::VerdictMap),
        Set::new(NO_ENDPOINT_SERVICES, addr_proto_port(), SetKind::VerdictMap),
        Set::new(NO_ENDPOINT_NODEPORTS, proto_port(), SetKind::VerdictMap),
        Set::new(CLUSTER_IPS, DataType::IPV4, SetKind::Set),
    ]);
    rs
}

/// An element a fragment wants in a shared set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub set: &'static str,
    pub key: Vec<u8>,
    pub value: Value,
}

/// One Service's part of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fragment {
    /// Its own chains, rules and sets.
    pub own: Ruleset,
    pub claims: Vec<Claim>,
}

/// Slot assignments of a Service's endpoint maps, by map name.
pub(crate) type Slots = BTreeMap<String, Vec<Endpoint>>;

/// `want`'s endpoints laid out over `prev`'s slots: those kept stay where
/// they were, new ones fill the holes of those gone, and the map is
/// compacted by moving its last entries into holes left over. So a change
/// of k endpoints rewrites about k slots.
pub(crate) fn assign(prev: &[Endpoint], want: &[Endpoint]) -> Vec<Endpoint> {
    let wanted: std::collections::BTreeSet<&Endpoint> = want.iter().collect();
    let had: std::collections::BTreeSet<&Endpoint> = prev.iter().collect();
    let mut out: Vec<Option<Endpoint>> = prev
        .iter()
        .map(|e| wanted.contains(e).then_some(*e))
        .collect();
    let mut fresh: Vec<Endpoint> = want.iter().filter(|e| !had.contains(e)).copied().collect();
    fresh.sort();
    fresh.dedup();
    fresh.reverse();
    for slot in out.iter_mut().filter(|s| s.is_none()) {
        match fresh.pop() {
            Some(e) => *slot = Some(e),
            None => break,
        }
    }
    fresh.reverse();
    out.extend(fresh.into_iter().map(Some));
    loop {
        while out.last().is_some_and(Option::is_none) {
            out.pop();
        }
        let Some(hole) = out.iter().position(Option::is_none) else {
            break;
        };
        out[hole] = out.pop().flatten();
    }
    out.into_iter().flatten().collect()
}

/// Where a port's chains are built.
#[derive(Clone, Copy)]
struct At<'a> {
    cfg: &'a ProxyConfig,
    svc: &'a ServiceRules,
    p: &'a PortRules,
    n: &'a Names,
}

struct Names {
    base: String,
}

impl Names {
    fn new(svc: &ServiceRules, p: &PortRules) -> Names {
        Names {
            base: format!("{}/{}/{}", svc.key(), p.proto.name(), p.port),
        }
    }
    fn cluster(&self) -> String {
        format!("svc-{}", self.base)
    }
    fn local(&self) -> String {
        format!("local-{}", self.base)
    }
    fn external(&self) -> String {
        format!("ext-{}", self.base)
    }
    fn endpoint(&self, e: &Endpoint) -> String {
        format!("ep-{}/{}:{}", self.base, e.ip, e.port)
    }
    fn affinity(&self, e: &Endpoint) -> String {
        format!("aff-{}/{}:{}", self.base, e.ip, e.port)
    }
}

/// The fragment of `svc`; `slots` holds the endpoint maps' slots it had
/// and gets the ones it has now.
pub(crate) fn fragment(cfg: &ProxyConfig, svc: &ServiceRules, slots: &mut Slots) -> Fragment {
    let mut own = Ruleset::new(&cfg.table);
    let mut claims = Vec::new();
    let mut new_slots = Slots::new();
    if let Some(ip) = svc.cluster_ip {
        claims.push(Claim {
            set: CLUSTER_IPS,
            key: ip.octets().to_vec(),
            value: Value::None,
        });
    }
    for p in &svc.ports {
        let n = Names::new(svc, p);
        let mut endpoints: BTreeMap<Endpoint, ()> = BTreeMap::new();
        // Which policy chains exist: the ones traffic can be sent to.
        let uses_cluster = !svc.internal_local || (svc.external(p) && !svc.external_local);
        let uses_local = svc.internal_local || (svc.external(p) && svc.external_local);
        let cluster_chain = (uses_cluster && !p.cluster.is_empty()).then(|| n.cluster());
        let local_chain = (uses_local && !p.local.is_empty()).then(|| n.local());
        for (chain, eps) in [(&cluster_chain, &p.cluster), (&local_chain, &p.local)] {
            let Some(chain) = chain else { continue };
            let map = format!("{chain}-eps");
            let laid = assign(slots.get(&map).map(Vec::as_slice).unwrap_or(&[]), eps);
            let at = At { cfg, svc, p, n: &n };
            policy_chain(&mut own, &at, chain, &map, &laid);
            endpoints.extend(laid.iter().map(|e| (*e, ())));
            new_slots.insert(map, laid);
        }
        for e in endpoints.keys() {
            endpoint_chain(&mut own, &At { cfg, svc, p, n: &n }, e);
        }

        let internal = if svc.internal_local {
            &local_chain
        } else {
            &cluster_chain
        };
        if let Some(ip) = svc.cluster_ip {
            let key = key_ip_proto_port(ip, p.proto, p.port);
            claims.push(match internal {
                Some(chain) => Claim {
                    set: SERVICE_IPS,
                    key,
                    value: Value::Verdict(VerdictTo::Goto(chain.clone())),
                },
                None => Claim {
                    set: NO_ENDPOINT_SERVICES,
                    key,
                    value: no_endpoints(svc.internal_local),
                },
            });
        }
        if !svc.external(p) {
            continue;
        }
        let external = if svc.external_local {
            &local_chain
        } else {
            &cluster_chain
        };
        // Under the Local policy the way in also exists with no endpoint
        // here, for pods and the node itself, which go by the Cluster
        // policy (as upstream's short-circuit); what comes from outside is
        // dropped then.
        let ext_chain = (external.is_some() || (svc.external_local && cluster_chain.is_some()))
            .then(|| n.external());
        if let Some(ext) = &ext_chain {
            own.chains.push(Chain::regular(ext));
            let mut rules = Vec::new();
            if svc.external_local {
                // Pods and the node itself are not outside: they go by the
                // Cluster policy (the node's own traffic masqueraded).
                if let Some(c) = &cluster_chain {
                    rules.push(vec![
                        super::super::expr::ip_saddr_in(cfg.cluster_cidr),
                        goto(c),
                    ]);
                    rules.push(vec![fib_saddr_type_local(), jump(MARK_FOR_MASQUERADE)]);
                    rules.push(vec![fib_saddr_type_local(), goto(c)]);
                }
            } else {
                rules.push(vec![jump(MARK_FOR_MASQUERADE)]);
            }
            match external {
                Some(to) => rules.push(vec![goto(to)]),
                None => rules.push(vec![super::super::expr::drop()]),
            }
            own.rules
                .extend(rules.into_iter().map(|r| Rule::new(ext, r)));
        }
        let external_claim =
            |set_ok: &'static str, set_none: &'static str, key: Vec<u8>| match &ext_chain {
                Some(chain) => Claim {
                    set: set_ok,
                    key,
                    value: Value::Verdict(VerdictTo::Goto(chain.clone())),
                },
                None => Claim {
                    set: set_none,
                    key,
                    value: no_endpoints(svc.external_local),
                },
            };
        // An external address inside the Service range could take over
        // another Service's ClusterIP (the kubernetes Service's, the
        // cluster DNS's): never programmed.
        for ip in svc
            .external_ips
            .iter()
            .filter(|ip| !cfg.service_cidr.contains(**ip) && !ip.is_loopback())
        {
            claims.push(external_claim(
                SERVICE_IPS,
                NO_ENDPOINT_SERVICES,
                key_ip_proto_port(*ip, p.proto, p.port),
            ));
        }
        if let Some(np) = p.node_port {
            claims.push(external_claim(
                SERVICE_NODEPORTS,
                NO_ENDPOINT_NODEPORTS,
                key_proto_port(p.proto, np),
            ));
        }
    }
    *slots = new_slots;
    Fragment { own, claims }
}

/// Nowhere to send it: refused under the Cluster policy; dropped under a
/// Local one (another node may have endpoints: upstream drops too).
fn no_endpoints(local: bool) -> Value {
    Value::Verdict(if local {
        VerdictTo::Drop
    } else {
        VerdictTo::Goto(REJECT.to_string())
    })
}

/// `svc-…` or `local-…`: masquerade traffic to the ClusterIP from outside
/// the pod network, keep a client with its endpoint (affinity), else pick
/// one at random.
fn policy_chain(own: &mut Ruleset, at: &At, chain: &str, map: &str, laid: &[Endpoint]) {
    let At { cfg, svc, p, n } = *at;
    own.chains.push(Chain::regular(chain));
    if let Some(ip) = svc.cluster_ip {
        own.rules.push(Rule::new(
            chain,
            vec![
                ip_daddr_is(ip),
                l4proto_is(p.proto),
                th_dport_is(p.port),
                ip_saddr_not_in(cfg.cluster_cidr),
                jump(MARK_FOR_MASQUERADE),
            ],
        ));
    }
    if svc.affinity_secs.is_some() {
        for e in laid {
            own.rules.push(Rule::new(
                chain,
                vec![ip_saddr_in_set(&n.affinity(e)), goto(&n.endpoint(e))],
            ));
        }
    }
    own.rules
        .push(Rule::new(chain, vec![numgen_vmap(laid.len() as u32, map)]));
    let mut vmap = Set::new(map, DataType::INDEX, SetKind::VerdictMap);
    for (i, e) in laid.iter().enumerate() {
        vmap.elements.insert(
            key_index(i as u32),
            Value::Verdict(VerdictTo::Goto(n.endpoint(e))),
        );
    }
    own.sets.push(vmap);
}

/// `ep-…`: hairpin masquerade, affinity refresh, DNAT.
fn endpoint_chain(own: &mut Ruleset, at: &At, e: &Endpoint) {
    let At { svc, p, n, .. } = *at;
    let chain = n.endpoint(e);
    own.chains.push(Chain::regular(&chain));
    own.rules.push(Rule::new(
        &chain,
        vec![ip_saddr_is(e.ip), jump(MARK_FOR_MASQUERADE)],
    ));
    if let Some(secs) = svc.affinity_secs {
        let mut set = Set::new(&n.affinity(e), DataType::IPV4, SetKind::Set);
        set.def.timeout_ms = Some(u64::from(secs) * 1000);
        own.sets.push(set);
        own.rules
            .push(Rule::new(&chain, vec![update_saddr(&n.affinity(e))]));
    }
    own.rules.push(Rule::new(
        &chain,
        vec![l4proto_is(p.proto), dnat_to(e.ip, e.port)],
    ));
}
