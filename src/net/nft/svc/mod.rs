//! The service proxy's table (`ip skiff-proxy` by default): ClusterIP,
//! NodePort, external and load balancer addresses DNATed to endpoints,
//! spread at random in the kernel. Only this table is touched; the
//! engine's (`ip skiff`) is its own owner's.
//!
//! `config` (what is asked: node settings, Services with their chosen
//! endpoints), `build` (skeleton and one fragment per Service), and here
//! the state: the fragments the kernel holds, who claims which element of
//! the shared maps, and the endpoint maps' slots. [`ProxyTable::update`]
//! turns a set of changed Services into one transaction whose size follows
//! what changed, never the number of Services or endpoints in the table.

mod build;
mod config;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use config::{Endpoint, PortRules, ProxyConfig, ServiceRules};

use self::build::{Claim, Fragment, Slots};
use super::batch;
use super::diff::{diff, Change};
use super::error::NftError;
use super::ruleset::Ruleset;
use super::set::Value;
use super::socket::{Netfilter, NetfilterSocket};

/// The proxy's table by default.
pub const TABLE: &str = "skiff-proxy";
/// kube-proxy's default masquerade bit (14).
pub const MASQUERADE_BIT: u32 = 1 << 14;

/// What one update sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// nf_tables messages in the transaction.
    pub messages: usize,
    /// Whether the whole table was stated (first use, or after a refusal).
    pub full: bool,
    /// UDP endpoints no Service port sends to any more: their conntrack
    /// entries should go, so that clients move on at once.
    pub stale_udp_endpoints: Vec<Endpoint>,
    /// UDP Service addresses that had no endpoint and now have one: their
    /// entries (made while the traffic was refused) should go.
    pub fresh_udp_services: Vec<(std::net::Ipv4Addr, u16)>,
    /// The same for UDP NodePorts (on any of the node's addresses).
    pub fresh_udp_node_ports: Vec<u16>,
}

struct Held {
    rules: ServiceRules,
    fragment: Fragment,
    slots: Slots,
}

/// UDP endpoints of `old` that `new` no longer has, and UDP addresses of
/// `new` that had none in `old`.
fn udp_changes(old: Option<&ServiceRules>, new: Option<&ServiceRules>, sent: &mut Sent) {
    use super::config::Proto;
    let endpoints = |r: Option<&ServiceRules>, proto_port: Option<(Proto, u16)>| {
        let mut v: Vec<Endpoint> = r
            .into_iter()
            .flat_map(|r| &r.ports)
            .filter(|p| p.proto == Proto::Udp)
            .filter(|p| proto_port.is_none_or(|pp| pp == (p.proto, p.port)))
            .flat_map(|p| p.cluster.iter().chain(&p.local).copied())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let still = endpoints(new, None);
    sent.stale_udp_endpoints.extend(
        endpoints(old, None)
            .into_iter()
            .filter(|e| still.binary_search(e).is_err()),
    );
    let Some(new) = new else { return };
    for p in new.ports.iter().filter(|p| p.proto == Proto::Udp) {
        let had = !endpoints(old, Some((p.proto, p.port))).is_empty();
        if had || (p.cluster.is_empty() && p.local.is_empty()) {
            continue;
        }
        let addrs = new.cluster_ip.iter().chain(&new.external_ips);
        sent.fresh_udp_services
            .extend(addrs.map(|ip| (*ip, p.port)));
        sent.fresh_udp_node_ports.extend(p.node_port);
    }
}

type ClaimKey = (&'static str, Vec<u8>);

/// The table's content as last sent, and the way to change it.
pub struct ProxyTable {
    cfg: ProxyConfig,
    held: BTreeMap<String, Held>,
    /// For each shared-set element, the Services that want it and what
    /// they want it to be; the first Service by name wins (two Services
    /// claiming one external address and port is a user's mistake: one
    /// of them gets it, steadily).
    claims: BTreeMap<ClaimKey, BTreeMap<String, Value>>,
    /// Whether the kernel holds what `held` says (else the next update
    /// states the table in full).
    synced: bool,
    /// Conntrack work of changes whose transaction failed: handed out with
    /// the next update that lands (flushing before the rules are in the
    /// kernel would let the flows come back; dropping it would leave UDP
    /// clients on a gone endpoint).
    unflushed: Sent,
    nf: Box<dyn Netfilter + Send>,
}

impl Sent {
    /// The counts of `full`, with this one's conntrack work.
    fn with(self, full: Sent) -> Sent {
        Sent {
            messages: full.messages,
            full: full.full,
            ..self
        }
    }
}

impl ProxyTable {
    /// A table in the calling thread's network namespace; nothing is sent
    /// before the first [`update`](Self::update).
    pub fn new(cfg: ProxyConfig) -> Result<ProxyTable, NftError> {
        Self::with(cfg, Box::new(NetfilterSocket))
    }

    pub(crate) fn with(
        cfg: ProxyConfig,
        nf: Box<dyn Netfilter + Send>,
    ) -> Result<ProxyTable, NftError> {
        if cfg.table.is_empty() || cfg.table.len() > 255 {
            return Err(NftError::InvalidConfig(format!(
                "table name {:?}: 1 to 255 bytes",
                cfg.table
            )));
        }
        if cfg.masquerade_bit.count_ones() != 1 {
            return Err(NftError::InvalidConfig(format!(
                "masquerade bit {:#x}: exactly one bit",
                cfg.masquerade_bit
            )));
        }
        Ok(ProxyTable {
            cfg,
            held: BTreeMap::new(),
            claims: BTreeMap::new(),
            synced: false,
            unflushed: Sent::default(),
            nf,
        })
    }

    /// How many Services the table holds.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Make the next update state the whole table (after it was found
    /// gone, say).
    pub fn resync(&mut self) {
        self.synced = false;
    }

    /// Put these Services in the table (`Some`) or take them out (`None`,
    /// keyed `namespace/name`), in one transaction. On error the table is
    /// as before in the kernel, and the next update states it in full and
    /// hands out this one's conntrack work too.
    pub fn update(
        &mut self,
        changes: Vec<(String, Option<ServiceRules>)>,
    ) -> Result<Sent, NftError> {
        let mut work = std::mem::take(&mut self.unflushed);
        let carried = !work.stale_udp_endpoints.is_empty();
        match self.transact_changes(changes, &mut work) {
            Ok(counts) => {
                if carried {
                    // A failed batch's stale endpoints that a later one
                    // brought back are live: their flows stay.
                    let live: std::collections::HashSet<Endpoint> = self
                        .held
                        .values()
                        .flat_map(|h| &h.rules.ports)
                        .filter(|p| p.proto == super::config::Proto::Udp)
                        .flat_map(|p| p.cluster.iter().chain(&p.local).copied())
                        .collect();
                    work.stale_udp_endpoints.retain(|e| !live.contains(e));
                    work.stale_udp_endpoints.sort();
                    work.stale_udp_endpoints.dedup();
                }
                Ok(work.with(counts))
            }
            Err(e) => {
                self.unflushed = work;
                Err(e)
            }
        }
    }

    /// `update`'s transaction: the counts it sent; its conntrack work goes
    /// to `sent`.
    fn transact_changes(
        &mut self,
        changes: Vec<(String, Option<ServiceRules>)>,
        sent: &mut Sent,
    ) -> Result<Sent, NftError> {
        // Each changed Service's fragment as the kernel has it, by key; the
        // new one is read from `held` (not cloned: a Service of thousands
        // of endpoints has a big one). A key twice keeps its first old.
        let mut touched: Vec<(String, Fragment)> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut keys: Vec<ClaimKey> = Vec::new();
        let mut before: BTreeMap<ClaimKey, Option<Value>> = BTreeMap::new();
        for (key, svc) in changes {
            let old = self.held.remove(&key);
            udp_changes(old.as_ref().map(|h| &h.rules), svc.as_ref(), sent);
            let mut slots = old.as_ref().map(|h| h.slots.clone()).unwrap_or_default();
            let new = svc
                .as_ref()
                .map(|s| (s.clone(), build::fragment(&self.cfg, s, &mut slots)));
            let empty = || Fragment {
                own: Ruleset::new(&self.cfg.table),
                claims: Vec::new(),
            };
            let old_fragment = old.map(|h| h.fragment).unwrap_or_else(empty);
            for c in old_fragment
                .claims
                .iter()
                .chain(new.iter().flat_map(|(_, f)| &f.claims))
            {
                let k = (c.set, c.key.clone());
                before
                    .entry(k.clone())
                    .or_insert_with(|| self.winner(&k).cloned());
                keys.push(k);
            }
            for c in &old_fragment.claims {
                let k = (c.set, c.key.clone());
                if let Some(owners) = self.claims.get_mut(&k) {
                    owners.remove(&key);
                    if owners.is_empty() {
                        self.claims.remove(&k);
                    }
                }
            }
            if let Some((_, f)) = &new {
                for Claim { set, key: k, value } in &f.claims {
                    self.claims
                        .entry((set, k.clone()))
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
            }
            if seen.insert(key.clone()) {
                touched.push((key.clone(), old_fragment));
            }
            if let Some((rules, fragment)) = new {
                self.held.insert(
                    key,
                    Held {
                        rules,
                        fragment,
                        slots,
                    },
                );
            }
        }
        if !self.synced {
            return self.state_in_full();
        }

        let mut ops = Vec::new();
        let mut last = Vec::new();
        let none = Ruleset::new(&self.cfg.table);
        for (key, old) in &touched {
            let new = self.held.get(key).map_or(&none, |h| &h.fragment.own);
            for c in diff(Some(&old.own), new) {
                match c {
                    Change::DelChain(_) => last.push(c),
                    other => ops.push(other),
                }
            }
        }
        keys.sort();
        keys.dedup();
        let mut dels: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
        let mut adds: BTreeMap<&str, Vec<(Vec<u8>, Value)>> = BTreeMap::new();
        for k in &keys {
            let was = before.get(k).cloned().flatten();
            let now = self.winner(k).cloned();
            if was == now {
                continue;
            }
            if was.is_some() {
                dels.entry(k.0).or_default().push(k.1.clone());
            }
            if let Some(v) = now {
                adds.entry(k.0).or_default().push((k.1.clone(), v));
            }
        }
        ops.extend(dels.into_iter().map(|(set, keys)| Change::DelElements {
            set: set.to_string(),
            keys,
        }));
        ops.extend(adds.into_iter().map(|(set, elements)| Change::AddElements {
            set: set.to_string(),
            elements,
        }));
        ops.extend(last);
        if ops.is_empty() {
            return Ok(Sent::default());
        }
        let batch = batch::ops(&self.cfg.table, &ops);
        match self.nf.transact(&batch) {
            Ok(()) => Ok(Sent {
                messages: batch.len(),
                ..Sent::default()
            }),
            // Not what the kernel holds (changed behind our back, or gone):
            // the transaction was refused whole; state it all instead.
            Err(e @ NftError::Kernel { .. }) => {
                tracing::debug!(table = %self.cfg.table, "service rules refused ({e}); stating the table in full");
                self.state_in_full()
            }
            Err(e) => {
                self.synced = false;
                Err(e)
            }
        }
    }

    fn winner(&self, k: &ClaimKey) -> Option<&Value> {
        self.claims.get(k).and_then(|o| o.values().next())
    }

    /// Everything the table should hold, as one ruleset.
    fn merged(&self) -> Ruleset {
        let mut rs = build::skeleton(&self.cfg);
        for h in self.held.values() {
            rs.chains.extend(h.fragment.own.chains.iter().cloned());
            rs.rules.extend(h.fragment.own.rules.iter().cloned());
            rs.sets.extend(h.fragment.own.sets.iter().cloned());
        }
        for ((set, key), owners) in &self.claims {
            let (Some(target), Some(v)) = (
                rs.sets.iter_mut().find(|s| s.name() == *set),
                owners.values().next(),
            ) else {
                continue;
            };
            target.elements.insert(key.clone(), v.clone());
        }
        rs
    }

    /// Replace the table with the whole of what it should hold, in one
    /// transaction: whatever an earlier run left there (Services deleted
    /// while no agent ran) goes with it.
    fn state_in_full(&mut self) -> Result<Sent, NftError> {
        let merged = self.merged();
        let mut ops = batch::ops(&self.cfg.table, &[Change::AddTable]);
        ops.extend(batch::delete_table(&self.cfg.table));
        ops.extend(batch::replace_table(&merged));
        self.synced = false;
        self.nf.transact(&ops)?;
        self.synced = true;
        Ok(Sent {
            messages: ops.len(),
            full: true,
            ..Sent::default()
        })
    }
}

/// Remove the proxy's table `table`; one already gone is not an error.
pub fn delete(table: &str) -> Result<(), NftError> {
    let mut ops = batch::ops(table, &[Change::AddTable]);
    ops.extend(batch::delete_table(table));
    super::socket::transact(&ops)
}

/// Whether table `ip table` exists.
pub fn exists(table: &str) -> Result<bool, NftError> {
    super::socket::table_exists(table)
}
