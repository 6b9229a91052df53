//! The service proxy (skiff's kube-proxy): Services and EndpointSlices,
//! watched, become rules in the kernel (`nft::svc`), in the proxy's own
//! table. No packet passes through this process.
//!
//! ```text
//! translate.rs   a Service and its slices → ServiceRules (upstream's endpoint choice)
//! health.rs      healthCheckNodePort servers for externalTrafficPolicy Local
//! mod.rs         the watches, which Services changed, one transaction per batch of changes
//! ```
//!
//! Events are taken as they come and every change queued by then goes in
//! one transaction, so a burst (a Deployment scaled by hundreds) costs a
//! few transactions, and a quiet cluster none. The table is left in place
//! when the agent stops: pods keep reaching Services while it restarts.

pub mod health;
pub mod translate;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::dns::SharedRecords;
use crate::net::nft::svc::{ProxyConfig, ProxyTable, ServiceRules};
use translate::NodeView;

/// How often the table is checked to still be there (someone flushed the
/// ruleset): it is stated again when not.
const CHECK_EVERY: Duration = Duration::from_secs(30);
/// After a refused update, the next try.
const RETRY: Duration = Duration::from_secs(1);

enum Msg {
    Service(Box<Event<Service>>),
    Slice(Box<Event<EndpointSlice>>),
}

fn key_of(ns: Option<&str>, name: &str) -> String {
    format!("{}/{}", ns.unwrap_or_default(), name)
}

/// What a changed Service now needs.
struct Changed {
    key: String,
    rules: Option<ServiceRules>,
    health: Option<health::HealthCheck>,
}

/// The Services and slices seen, and which Services changed since the
/// table was last updated.
#[derive(Default)]
struct Seen {
    services: HashMap<String, Service>,
    /// Slices by their own key, with the Service key they belong to.
    slices: HashMap<String, (String, EndpointSlice)>,
    /// Slice keys by Service key.
    by_service: HashMap<String, BTreeSet<String>>,
    dirty: BTreeSet<String>,
    listing_services: HashSet<String>,
    listing_slices: HashSet<String>,
    services_synced: bool,
    slices_synced: bool,
}

impl Seen {
    fn apply_service(&mut self, s: Service) {
        let key = key_of(
            s.metadata.namespace.as_deref(),
            s.metadata.name.as_deref().unwrap_or(""),
        );
        self.dirty.insert(key.clone());
        self.services.insert(key, s);
    }

    fn delete_service(&mut self, key: &str) {
        self.dirty.insert(key.to_string());
        self.services.remove(key);
    }

    fn apply_slice(&mut self, s: EndpointSlice) {
        let ns = s.metadata.namespace.as_deref();
        let key = key_of(ns, s.metadata.name.as_deref().unwrap_or(""));
        let owner = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(translate::SERVICE_NAME_LABEL))
            .map(|name| key_of(ns, name));
        self.delete_slice(&key);
        if let Some(owner) = owner {
            self.dirty.insert(owner.clone());
            self.by_service
                .entry(owner.clone())
                .or_default()
                .insert(key.clone());
            self.slices.insert(key, (owner, s));
        }
    }

    fn delete_slice(&mut self, key: &str) {
        if let Some((owner, _)) = self.slices.remove(key) {
            if let Some(set) = self.by_service.get_mut(&owner) {
                set.remove(key);
                if set.is_empty() {
                    self.by_service.remove(&owner);
                }
            }
            self.dirty.insert(owner);
        }
    }

    fn on_service(&mut self, e: Event<Service>) {
        match e {
            Event::Init => self.listing_services.clear(),
            Event::InitApply(s) => {
                let key = key_of(
                    s.metadata.namespace.as_deref(),
                    s.metadata.name.as_deref().unwrap_or(""),
                );
                self.listing_services.insert(key);
                self.apply_service(s);
            }
            Event::InitDone => {
                let gone: Vec<String> = self
                    .services
                    .keys()
                    .filter(|k| !self.listing_services.contains(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    self.delete_service(&k);
                }
                self.listing_services.clear();
                self.services_synced = true;
            }
            Event::Apply(s) => self.apply_service(s),
            Event::Delete(s) => {
                let key = key_of(
                    s.metadata.namespace.as_deref(),
                    s.metadata.name.as_deref().unwrap_or(""),
                );
                self.delete_service(&key);
            }
        }
    }

    fn on_slice(&mut self, e: Event<EndpointSlice>) {
        match e {
            Event::Init => self.listing_slices.clear(),
            Event::InitApply(s) => {
                let key = key_of(
                    s.metadata.namespace.as_deref(),
                    s.metadata.name.as_deref().unwrap_or(""),
                );
                self.listing_slices.insert(key);
                self.apply_slice(s);
            }
            Event::InitDone => {
                let gone: Vec<String> = self
                    .slices
                    .keys()
                    .filter(|k| !self.listing_slices.contains(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    self.delete_slice(&k);
                }
                self.listing_slices.clear();
                self.slices_synced = true;
            }
            Event::Apply(s) => self.apply_slice(s),
            Event::Delete(s) => {
                let key = key_of(
                    s.metadata.namespace.as_deref(),
                    s.metadata.name.as_deref().unwrap_or(""),
                );
                self.delete_slice(&key);
            }
        }
    }

    /// The changed Services' rules (their names put in `records` too),
    /// and the changes forgotten.
    fn take_changes(&mut self, node: &NodeView, records: Option<&SharedRecords>) -> Vec<Changed> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut names = records.map(|r| r.write().unwrap_or_else(|e| e.into_inner()));
        dirty
            .into_iter()
            .map(|key| {
                let svc = self.services.get(&key);
                let slices: Vec<&EndpointSlice> = self
                    .by_service
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter_map(|k| self.slices.get(k).map(|(_, s)| s))
                    .collect();
                if let Some(names) = names.as_mut() {
                    names.update(&key, svc.map(|s| (s, slices.as_slice())));
                }
                let rules = svc.and_then(|svc| translate::rules(svc, &slices, node));
                let health = svc.and_then(|svc| translate::health_check(svc, &slices, node));
                Changed { key, rules, health }
            })
            .collect()
    }
}

async fn follow<K>(
    api: Api<K>,
    tx: mpsc::Sender<Msg>,
    wrap: fn(Box<Event<K>>) -> Msg,
    cancel: CancellationToken,
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => e,
        };
        match next {
            None => return,
            Some(Ok(e)) => {
                if tx.send(wrap(Box::new(e))).await.is_err() {
                    return;
                }
            }
            // The stream backs off and lists again by itself.
            Some(Err(e)) => tracing::debug!("service proxy watch: {e}"),
        }
    }
}

/// Follow Services and their slices until `cancel`: into the proxy's
/// table (`cfg`; none: the proxy is off) and the cluster DNS's names
/// (`records`; none: DNS is off).
pub async fn run(
    client: kube::Client,
    node: NodeView,
    cfg: Option<ProxyConfig>,
    records: Option<SharedRecords>,
    cancel: CancellationToken,
) {
    let table_name = cfg.as_ref().map(|c| c.table.clone()).unwrap_or_default();
    let table = match cfg.map(ProxyTable::new).transpose() {
        Ok(t) => t.map(|t| Arc::new(Mutex::new(t))),
        Err(e) => {
            tracing::error!("the service proxy is off: {e}");
            None
        }
    };
    if table.is_none() && records.is_none() {
        return;
    }
    let (tx, mut rx) = mpsc::channel(1024);
    let watches = [
        tokio::spawn(follow(
            Api::<Service>::all(client.clone()),
            tx.clone(),
            Msg::Service,
            cancel.child_token(),
        )),
        tokio::spawn(follow(
            Api::<EndpointSlice>::all(client),
            tx,
            Msg::Slice,
            cancel.child_token(),
        )),
    ];
    let mut seen = Seen::default();
    let mut health = health::HealthServers::new(None);
    let mut failed = false;
    let mut check =
        tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let retry = tokio::time::sleep(if failed || health.has_unbound() {
            RETRY
        } else {
            Duration::from_secs(3600)
        });
        tokio::select! {
            _ = cancel.cancelled() => break,
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let mut next = Some(msg);
                // Everything queued by now goes in one transaction.
                while let Some(m) = next {
                    match m {
                        Msg::Service(e) => seen.on_service(*e),
                        Msg::Slice(e) => seen.on_slice(*e),
                    }
                    next = rx.try_recv().ok();
                }
            }
            _ = retry => {}
            _ = check.tick(), if table.is_some() => {
                let name = table_name.clone();
                let present = tokio::task::spawn_blocking(move || crate::net::nft::svc::exists(&name)).await;
                if let (Ok(Ok(false)), Some(t)) = (present, &table) {
                    tracing::warn!(table = %table_name, "the service proxy's table is gone; stating it again");
                    lock(t).resync();
                    health.set_healthy(false);
                    failed = true;
                }
            }
        }
        if health.has_unbound() {
            health.start_unbound(&cancel);
        }
        if !(seen.services_synced && seen.slices_synced) || (seen.dirty.is_empty() && !failed) {
            continue;
        }
        let cpu_started = ThreadCpu::now();
        let changed = seen.take_changes(&node, records.as_ref());
        let Some(t) = table.clone() else {
            continue;
        };
        let mut changes = Vec::with_capacity(changed.len());
        let mut checks = Vec::new();
        for c in changed {
            checks.push((c.key.clone(), c.health));
            changes.push((c.key, c.rules));
        }
        health.update(checks, &cancel);
        let cpu_here = ThreadCpu::now().since(cpu_started);
        let n = changes.len();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let cpu_started = ThreadCpu::now();
            let r = lock(&t).update(changes);
            (r, ThreadCpu::now().since(cpu_started))
        })
        .await;
        let result = result.map(|(r, cpu)| r.map(|sent| (sent, cpu.plus(cpu_here))));
        match result {
            Ok(Ok((sent, cpu))) => {
                failed = false;
                health.set_healthy(true);
                tracing::debug!(
                    services = n,
                    messages = sent.messages,
                    full = sent.full,
                    took_us = started.elapsed().as_micros() as u64,
                    cpu_us = (cpu.user + cpu.sys).as_micros() as u64,
                    sys_us = cpu.sys.as_micros() as u64,
                    "service rules updated"
                );
                // In the background: a dump of a big conntrack table must
                // not hold the next rules back.
                tokio::spawn(async move { forget_udp_flows(&sent).await });
            }
            Ok(Err(e)) => {
                failed = true;
                health.set_healthy(false);
                tracing::warn!("updating the service rules: {e}; retrying");
            }
            Err(e) => {
                failed = true;
                health.set_healthy(false);
                tracing::warn!("updating the service rules: {e}; retrying");
            }
        }
    }
    for w in watches {
        w.abort();
    }
}

/// Conntrack entries of UDP clients that would otherwise keep going to an
/// endpoint that is gone, or keep being refused by a Service that now has
/// endpoints (kube-proxy does the same with the conntrack tool).
async fn forget_udp_flows(sent: &crate::net::nft::svc::Sent) {
    if sent.stale_udp_endpoints.is_empty()
        && sent.fresh_udp_services.is_empty()
        && sent.fresh_udp_node_ports.is_empty()
    {
        return;
    }
    let gone: Vec<(std::net::Ipv4Addr, u16)> = sent
        .stale_udp_endpoints
        .iter()
        .map(|e| (e.ip, e.port))
        .collect();
    let fresh = sent.fresh_udp_services.clone();
    let fresh_ports = sent.fresh_udp_node_ports.clone();
    let done = tokio::task::spawn_blocking(move || {
        crate::net::conntrack::delete_udp(|f| {
            (f.nated() && gone.contains(&f.reply_src))
                || (!f.nated()
                    && (fresh.contains(&f.orig_dst) || fresh_ports.contains(&f.orig_dst.1)))
        })
    })
    .await;
    match done {
        Ok(Ok(n)) => tracing::debug!(flows = n, "forgot UDP flows of changed Services"),
        Ok(Err(e)) => tracing::warn!("forgetting UDP flows of changed Services: {e}"),
        Err(e) => tracing::warn!("forgetting UDP flows of changed Services: {e}"),
    }
}

/// A thread's CPU time, in user space and in the kernel (the kernel's
/// share of an update is nf_tables checking the table, which grows with
/// it): what an update costs the agent, apart from the wall time it waits.
#[derive(Debug, Clone, Copy, Default)]
struct ThreadCpu {
    user: Duration,
    sys: Duration,
}

impl ThreadCpu {
    fn now() -> ThreadCpu {
        use nix::sys::resource::{getrusage, UsageWho};
        let Ok(u) = getrusage(UsageWho::RUSAGE_THREAD) else {
            return ThreadCpu::default();
        };
        let d = |t: nix::sys::time::TimeVal| {
            Duration::new(
                u64::try_from(t.tv_sec()).unwrap_or(0),
                u32::try_from(t.tv_usec()).unwrap_or(0).saturating_mul(1000),
            )
        };
        ThreadCpu {
            user: d(u.user_time()),
            sys: d(u.system_time()),
        }
    }

    fn since(self, start: ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            user: self.user.saturating_sub(start.user),
            sys: self.sys.saturating_sub(start.sys),
        }
    }

    fn plus(self, other: ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            user: self.user + other.user,
            sys: self.sys + other.sys,
        }
    }
}

fn lock(t: &Mutex<ProxyTable>) -> std::sync::MutexGuard<'_, ProxyTable> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keep the proxy's idea of which Services changed honest across relists.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn service(name: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.9", "ports": [{"port": 80}]},
        }))
        .unwrap()
    }

    fn slice(name: &str, svc: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default",
                         "labels": {translate::SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip]}],
            "ports": [{"port": 8080}],
        }))
        .unwrap()
    }

    #[test]
    fn relists_drop_what_is_gone_and_slices_follow_their_service_label() {
        let node = NodeView::default();
        let mut s = Seen::default();
        s.on_service(Event::Init);
        s.on_service(Event::InitApply(service("a")));
        s.on_service(Event::InitApply(service("b")));
        s.on_service(Event::InitDone);
        s.on_slice(Event::Init);
        s.on_slice(Event::InitApply(slice("a-1", "a", "10.42.0.5")));
        s.on_slice(Event::InitDone);
        let changes: BTreeMap<String, Option<ServiceRules>> = s
            .take_changes(&node, None)
            .into_iter()
            .map(|c| (c.key, c.rules))
            .collect();
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes["default/a"].as_ref().unwrap().ports[0]
                .cluster
                .len(),
            1
        );
        assert!(changes["default/b"].as_ref().unwrap().ports[0]
            .cluster
            .is_empty());
        // The slice moves to b (relabelled): both change.
        s.on_slice(Event::Apply(slice("a-1", "b", "10.42.0.5")));
        let changes: BTreeMap<String, Option<ServiceRules>> = s
            .take_changes(&node, None)
            .into_iter()
            .map(|c| (c.key, c.rules))
            .collect();
        assert!(changes["default/a"].as_ref().unwrap().ports[0]
            .cluster
            .is_empty());
        assert_eq!(
            changes["default/b"].as_ref().unwrap().ports[0]
                .cluster
                .len(),
            1
        );
        // A relist without b: b goes.
        s.on_service(Event::Init);
        s.on_service(Event::InitApply(service("a")));
        s.on_service(Event::InitDone);
        let changes: BTreeMap<String, Option<ServiceRules>> = s
            .take_changes(&node, None)
            .into_iter()
            .map(|c| (c.key, c.rules))
            .collect();
        assert!(changes["default/b"].is_none());
        assert!(s.take_changes(&node, None).is_empty());
    }
}
