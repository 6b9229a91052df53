//! Node lifecycle, as upstream's node lifecycle and taint eviction
//! controllers: a node that stops reporting is marked, tainted, and its
//! pods evicted once their tolerations run out, so their controllers
//! replace them on healthy nodes.
//!
//! - **Heartbeats**: a node's Lease (`kube-node-lease`) and its Ready
//!   condition's heartbeat. Silence is measured on this server's clock from
//!   when a heartbeat last *changed*, so a node's clock skew does not
//!   matter. After `--node-monitor-grace-period` (40 s) of silence its
//!   conditions go `Unknown` (`NodeStatusUnknown`) and its pods stop being
//!   Ready (Services stop sending them traffic).
//! - **Taints** follow the Ready condition: `node.kubernetes.io/not-ready`
//!   (False) or `node.kubernetes.io/unreachable` (Unknown), each NoSchedule
//!   and NoExecute; a cordoned node gets `node.kubernetes.io/unschedulable`.
//! - **Eviction**: a pod on a node with a NoExecute taint it does not
//!   tolerate is deleted at once; one that tolerates it for
//!   `tolerationSeconds` (300 s by default, from admission) is deleted
//!   when they run out, counted from the taint's `timeAdded`. It gets the
//!   `DisruptionTarget` condition first, as upstream.
//! - **Many nodes failing at once** (upstream's zone rules, simplified):
//!   nodes are grouped by `topology.kubernetes.io/zone`. NoExecute taints
//!   are added at most `--node-eviction-rate` nodes per second in a zone
//!   (0.1: one every ten seconds). When at least 55 % of a zone's nodes (and
//!   more than two) are unhealthy, the rate drops to a tenth of that, and to
//!   none in zones of 50 nodes or fewer. When every node of every zone is
//!   unhealthy, nothing is tainted for eviction and the NoExecute taints are
//!   taken off again (the fault is more likely this server's network than
//!   every node; a one-node cluster never evicts its own pods).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::runtime::{Informer, Informers};
use crate::api::node_match;
use crate::events::{reference, Recorder, NORMAL};

pub const AGENT: &str = "skiff-node-lifecycle-controller";
pub const COMPONENT: &str = "node-controller";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How often nodes and their pods are looked at.
const PERIOD: Duration = Duration::from_secs(1);
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
const LARGE_CLUSTER: usize = 50;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Silence after which a node is Unknown.
    pub grace: Duration,
    /// Nodes per second tainted for eviction in a healthy zone.
    pub eviction_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grace: Duration::from_secs(40),
            eviction_rate: 0.1,
        }
    }
}

/// What was last heard from a node, and when (on this server's clock).
struct Heard {
    beat: (Option<Timestamp>, Option<Timestamp>),
    at: Instant,
}

/// A token bucket of one: at most `rate` takes per second.
struct Bucket {
    last: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, rate: f64, now: Instant) -> bool {
        if !rate.is_finite() || rate <= 1e-6 {
            return false;
        }
        let gap = Duration::from_secs_f64(1.0 / rate);
        if self.last.is_none_or(|l| now.duration_since(l) >= gap) {
            self.last = Some(now);
            return true;
        }
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    Partial,
    Full,
}

/// A zone's state from its ready and unhealthy node counts.
pub fn zone_state(ready: usize, unhealthy: usize) -> ZoneState {
    let total = ready + unhealthy;
    if ready == 0 && unhealthy > 0 {
        ZoneState::Full
    } else if unhealthy > 2 && unhealthy as f64 / total as f64 >= UNHEALTHY_ZONE_THRESHOLD {
        ZoneState::Partial
    } else {
        ZoneState::Normal
    }
}

pub struct Controller {
    client: kube::Client,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    pods: Arc<Informer<Pod>>,
    events: Recorder,
    config: Config,
    heard: Mutex<HashMap<String, Heard>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// NoExecute taints without `timeAdded` (set by other clients): when
    /// this controller first saw each, per node, key and value.
    first_seen: Mutex<HashMap<(String, String, String), Timestamp>>,
}

pub async fn run(
    client: kube::Client,
    informers: &Informers,
    cancel: CancellationToken,
    config: Config,
) {
    let c = Controller {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        nodes: informers.get::<Node>(),
        leases: informers.get::<Lease>(),
        pods: informers.get::<Pod>(),
        config,
        heard: Mutex::new(HashMap::new()),
        buckets: Mutex::new(HashMap::new()),
        first_seen: Mutex::new(HashMap::new()),
    };
    c.nodes.synced().await;
    c.leases.synced().await;
    c.pods.synced().await;
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = c.pass().await {
            tracing::debug!(controller = COMPONENT, "{e}");
        }
    }
}

fn condition<'a>(n: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn ready_status(n: &Node) -> &str {
    condition(n, "Ready").map_or("Unknown", |c| c.status.as_str())
}

fn zone_of(n: &Node) -> String {
    n.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ZONE_LABEL))
        .cloned()
        .unwrap_or_default()
}

fn taints(n: &Node) -> Vec<Taint> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

fn has_taint(n: &Node, key: &str, effect: &str) -> bool {
    taints(n).iter().any(|t| t.key == key && t.effect == effect)
}

impl Controller {
    async fn pass(&self) -> Result<(), kube::Error> {
        let now = Instant::now();
        let nodes = self.nodes.list("");
        // 1. Silence → Unknown.
        for n in &nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            let lease = self.leases.get(LEASE_NAMESPACE, &name);
            let beat = (
                condition(n, "Ready")
                    .and_then(|c| c.last_heartbeat_time.as_ref())
                    .map(|t| t.0),
                lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)),
            );
            let silent = {
                let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
                let h = heard.entry(name.clone()).or_insert(Heard { beat, at: now });
                if h.beat != beat {
                    *h = Heard { beat, at: now };
                }
                now.duration_since(h.at) > self.config.grace
            };
            if silent && ready_status(n) != "Unknown" {
                if let Err(e) = self.mark_unknown(n).await {
                    tracing::debug!(controller = COMPONENT, node = %name, "{e}");
                }
            } else if ready_status(n) == "Unknown" {
                // Pods that became Ready since (or whose first marking lost
                // a race) are marked again.
                if let Err(e) = self.mark_pods_not_ready(&name).await {
                    tracing::debug!(controller = COMPONENT, node = %name, "{e}");
                }
            }
        }
        {
            let names: Vec<String> = nodes
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
            heard.retain(|k, _| names.contains(k));
        }
        // 2. Zones.
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for n in &nodes {
            let e = counts.entry(zone_of(n)).or_default();
            if ready_status(n) == "True" {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        let states: BTreeMap<String, ZoneState> = counts
            .iter()
            .map(|(z, (r, u))| (z.clone(), zone_state(*r, *u)))
            .collect();
        let all_full = !states.is_empty() && states.values().all(|s| *s == ZoneState::Full);
        // 3. Taints, then evictions.
        for n in &nodes {
            let zone = zone_of(n);
            let state = states.get(&zone).copied().unwrap_or(ZoneState::Normal);
            let size = counts.get(&zone).map_or(0, |(r, u)| r + u);
            if let Err(e) = self.taint(n, state, size, all_full, now).await {
                tracing::debug!(controller = COMPONENT, node = ?n.metadata.name, "{e}");
            }
        }
        for n in self.nodes.list("") {
            if let Err(e) = self.evict(&n).await {
                tracing::debug!(controller = COMPONENT, node = ?n.metadata.name, "{e}");
            }
        }
        Ok(())
    }

    async fn mark_unknown(&self, n: &Node) -> Result<(), kube::Error> {
        let name = n.metadata.name.clone().unwrap_or_default();
        let now = Time(Timestamp::now());
        let mut conds = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if !conds.iter().any(|c| c.type_ == "Ready") {
            conds.push(NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_transition_time: Some(now.clone()),
                last_heartbeat_time: None,
            });
        }
        for c in conds.iter_mut() {
            if matches!(
                c.type_.as_str(),
                "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure"
            ) && c.status != "Unknown"
            {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
            }
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"metadata": {"resourceVersion": n.metadata.resource_version},
            "status": {"conditions": conds}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.events.object(
            reference(n),
            NORMAL,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
        self.mark_pods_not_ready(&name).await
    }

    /// The pods of a node that stopped reporting stop being Ready:
    /// Services stop sending them traffic.
    async fn mark_pods_not_ready(&self, name: &str) -> Result<(), kube::Error> {
        let now = Time(Timestamp::now());
        for p in self.pods_on(name) {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            if ready.is_none_or(|c| c.status == "False") {
                continue;
            }
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let papi: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let mut conds = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
                c.status = "False".into();
                c.last_transition_time = Some(now.clone());
            }
            let patch = json!({"metadata": {"resourceVersion": p.metadata.resource_version},
                "status": {"conditions": conds}});
            match papi
                .patch_status(
                    p.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .list_all()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect()
    }

    /// Put on and take off the condition taints.
    async fn taint(
        &self,
        n: &Node,
        state: ZoneState,
        zone_size: usize,
        all_full: bool,
        now: Instant,
    ) -> Result<(), kube::Error> {
        // A node that never posted a Ready condition gets no condition
        // taint (its kubelet is still starting).
        let ready = condition(n, "Ready").map(|c| c.status.as_str());
        let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
        let condition_key = match ready {
            None | Some("True") => None,
            Some("False") => Some(NOT_READY),
            Some(_) => Some(UNREACHABLE),
        };
        let mut want: Vec<(&str, &str)> = Vec::new();
        if let Some(k) = condition_key {
            want.push((k, "NoSchedule"));
            let tainted = has_taint(n, k, "NoExecute");
            let keep = tainted && !all_full;
            let add = !tainted && !all_full && {
                let rate = match state {
                    ZoneState::Normal | ZoneState::Full => self.config.eviction_rate,
                    ZoneState::Partial if zone_size > LARGE_CLUSTER => {
                        self.config.eviction_rate / 10.0
                    }
                    _ => 0.0,
                };
                let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
                buckets
                    .entry(zone_of(n))
                    .or_insert(Bucket { last: None })
                    .take(rate, now)
            };
            if keep || add {
                want.push((k, "NoExecute"));
            }
        }
        if cordoned {
            want.push((UNSCHEDULABLE, "NoSchedule"));
        }
        let ours = |t: &Taint| matches!(t.key.as_str(), NOT_READY | UNREACHABLE | UNSCHEDULABLE);
        let have = taints(n);
        let mut next: Vec<Taint> = have
            .iter()
            .filter(|t| !ours(t) || want.contains(&(t.key.as_str(), t.effect.as_str())))
            .cloned()
            .collect();
        for (key, effect) in &want {
            if !next.iter().any(|t| t.key == *key && t.effect == *effect) {
                next.push(Taint {
                    key: key.to_string(),
                    effect: effect.to_string(),
                    value: None,
                    time_added: (*effect == "NoExecute").then(|| Time(Timestamp::now())),
                });
            }
        }
        if next == have {
            return Ok(());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"metadata": {"resourceVersion": n.metadata.resource_version},
            "spec": {"taints": next}});
        match api
            .patch(
                n.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Delete the pods whose tolerations of the node's NoExecute taints ran
    /// out.
    async fn evict(&self, n: &Node) -> Result<(), kube::Error> {
        let name = n.metadata.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let mut no_execute: Vec<Taint> = taints(n)
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        {
            let mut seen = self.first_seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|(node, key, value), _| {
                *node != name
                    || no_execute
                        .iter()
                        .any(|t| t.key == *key && t.value.clone().unwrap_or_default() == *value)
            });
            for t in no_execute.iter_mut().filter(|t| t.time_added.is_none()) {
                let k = (
                    name.clone(),
                    t.key.clone(),
                    t.value.clone().unwrap_or_default(),
                );
                t.time_added = Some(Time(*seen.entry(k).or_insert(now)));
            }
        }
        if no_execute.is_empty() {
            return Ok(());
        }
        for p in self.pods_on(&name) {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = p
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            if !due(&tolerations, &no_execute, now) {
                continue;
            }
            self.evict_pod(&p).await?;
        }
        Ok(())
    }

    async fn evict_pod(&self, p: &Pod) -> Result<(), kube::Error> {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let pname = p.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if let Some(conds) = super::podutil::with_disruption_target(
            p,
            "DeletionByTaintManager",
            "Taint manager: deleting due to NoExecute taint",
        ) {
            let patch = json!({"status": {"conditions": conds}});
            match api
                .patch_status(&pname, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.events.pod(
            p,
            None,
            NORMAL,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{pname}"),
        );
        let dp = DeleteParams {
            preconditions: p.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&pname, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether a pod with `tolerations` must go from a node with the NoExecute
/// taints `taints` at `now`: a taint not tolerated at all, or tolerated for
/// a time that has run out (counted from the taint's `timeAdded`).
pub fn due(tolerations: &[Toleration], taints: &[Taint], now: Timestamp) -> bool {
    let spec = k8s_openapi::api::core::v1::PodSpec {
        tolerations: Some(tolerations.to_vec()),
        ..Default::default()
    };
    if node_match::untolerated(&spec, taints, |_| true).is_some() {
        return true;
    }
    taints.iter().any(|taint| {
        // The shortest of the tolerations that match, and none: forever.
        let secs = tolerations
            .iter()
            .filter(|t| node_match::tolerates(t, taint))
            .filter_map(|t| t.toleration_seconds)
            .min();
        match (secs, taint.time_added.as_ref()) {
            (Some(s), Some(added)) => {
                added.0.as_second().saturating_add(s.max(0)) <= now.as_second()
            }
            (Some(s), None) => s <= 0,
            (None, _) => false,
        }
    })
}

#[cfg(test)]
#[path = "nodelifecycle_tests.rs"]
mod loopback_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, added: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: Some(Time(added.parse().unwrap())),
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn tolerations_run_out_from_the_taints_time() {
        let t = [taint(UNREACHABLE, "2026-12-03T10:00:00Z")];
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        assert!(due(&[], &t, at("2026-12-03T10:00:00Z")));
        let five = [tol(UNREACHABLE, Some(300))];
        assert!(!due(&five, &t, at("2026-12-03T10:04:59Z")));
        assert!(due(&five, &t, at("2026-12-03T10:05:00Z")));
        assert!(!due(
            &[tol(UNREACHABLE, None)],
            &t,
            at("2030-01-01T00:00:00Z")
        ));
        // Two matching: the shorter counts.
        let both = [tol(UNREACHABLE, Some(300)), tol("", Some(10))];
        assert!(due(&both, &t, at("2026-12-03T10:00:10Z")));
        assert!(due(
            &[tol(NOT_READY, Some(300))],
            &t,
            at("2026-12-03T10:00:00Z")
        ));
    }

    #[test]
    fn zones_as_upstream() {
        assert_eq!(zone_state(1, 1), ZoneState::Normal);
        assert_eq!(zone_state(0, 1), ZoneState::Full);
        assert_eq!(zone_state(2, 3), ZoneState::Partial);
        assert_eq!(zone_state(10, 2), ZoneState::Normal);
        assert_eq!(zone_state(3, 0), ZoneState::Normal);
    }

    #[test]
    fn the_bucket_lets_one_through_per_period() {
        let mut b = Bucket { last: None };
        let t0 = Instant::now();
        assert!(b.take(0.1, t0));
        assert!(!b.take(0.1, t0 + Duration::from_secs(9)));
        assert!(b.take(0.1, t0 + Duration::from_secs(10)));
        assert!(!b.take(0.0, t0 + Duration::from_secs(100)));
    }
}
