//! The scheduler: assigns each pod that names no node (and asks for the
//! `default-scheduler`) to one, through the `pods/binding` subresource,
//! like kube-scheduler and through the same API.
//!
//! - `resources.rs`: what pods request and nodes can give.
//! - `cache.rs`: nodes and what their pods take, including pods just bound
//!   and not yet seen back ("assumed").
//! - `queue.rs`: which pod next, back-off, and the parked unschedulable
//!   pods that a node or pod change sends back.
//! - `filters.rs`, `scores.rs`, `algorithm.rs`: one decision.
//! - `preemption.rs`: making room by evicting pods of lower priority.
//! - here: the loop, fed by the shared pod and node informers; binding,
//!   the `PodScheduled=False` condition and the events, written by tasks
//!   so that a slow write never holds up the next decision.

pub mod algorithm;
pub mod cache;
pub mod filters;
pub mod interpod;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod scores;
pub mod spread;

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use self::algorithm::Search;
use self::cache::Cache;
use self::queue::SchedulingQueue;
pub use self::scores::Policy;
use crate::events::{reference, Recorder, NORMAL, WARNING};
use crate::server::controllers::runtime::{Change, Informer, Informers, Key};

/// The name pods ask for (`spec.schedulerName`), and our events' source.
pub const NAME: &str = "default-scheduler";
/// The managedFields manager of what the scheduler writes.
pub const AGENT: &str = "skiff-scheduler";
/// Bindings and status writes in flight at once.
const WRITES: usize = 128;

struct Shared {
    cache: Mutex<Cache>,
    queue: SchedulingQueue,
}

impl Shared {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Each cache method leaves it whole: a panic elsewhere does not.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Scheduler {
    client: kube::Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    namespaces: Arc<Informer<k8s_openapi::api::core::v1::Namespace>>,
    /// Read only when choosing preemption victims.
    pdbs: Arc<Informer<PodDisruptionBudget>>,
    shared: Arc<Shared>,
    events: Recorder,
    policy: Policy,
    writes: Arc<Semaphore>,
}

/// Whether the scheduler is to place `pod`.
fn ours(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let unbound = spec.node_name.as_deref().is_none_or(str::is_empty);
    let name = spec.scheduler_name.as_deref().unwrap_or(NAME);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let gated = spec
        .scheduling_gates
        .as_ref()
        .is_some_and(|g| !g.is_empty());
    unbound
        && !gated
        && (name == NAME || name.is_empty())
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded" | "Failed"))
}

fn bound(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn created(pod: &Pod) -> i64 {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second())
}

/// Whether a pod changed in what scheduling reads (not its status).
fn scheduling_changed(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
}

/// Whether a node changed in a way that could let a pod fit: anything but
/// its heartbeats.
fn node_changed(old: &Node, new: &Node) -> bool {
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    let alloc = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone());
    let images = |n: &Node| {
        n.status
            .as_ref()
            .map(|s| s.images.as_ref().map_or(0, Vec::len))
    };
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || ready(old) != ready(new)
        || alloc(old) != alloc(new)
        || images(old) != images(new)
}

impl Scheduler {
    pub fn new(client: kube::Client, informers: &Informers, policy: Policy) -> Self {
        let shared = Arc::new(Shared {
            cache: Mutex::new(Cache::default()),
            queue: SchedulingQueue::default(),
        });
        let pods = informers.get::<Pod>();
        let nodes = informers.get::<Node>();
        let s = shared.clone();
        nodes.on_change(move |c: &Change<'_, Node>| match (c.old, c.new) {
            (old, Some(new)) => {
                s.cache().set_node(new.clone());
                if old.is_none_or(|o| node_changed(o, new)) {
                    s.queue.move_all();
                }
            }
            (Some(old), None) => {
                let name = old.metadata.name.as_deref().unwrap_or_default();
                s.cache().remove_node(name);
            }
            (None, None) => {}
        });
        let s = shared.clone();
        pods.on_change(move |c: &Change<'_, Pod>| on_pod(&s, c));
        // Affinity terms may select pods by their namespace's labels.
        let namespaces = informers.get::<k8s_openapi::api::core::v1::Namespace>();
        let s = shared.clone();
        namespaces.on_change(
            move |c: &Change<'_, k8s_openapi::api::core::v1::Namespace>| match (c.old, c.new) {
                (old, Some(new)) => {
                    let name = new.metadata.name.as_deref().unwrap_or_default();
                    s.cache()
                        .set_namespace(name, new.metadata.labels.clone().unwrap_or_default());
                    if old.is_none_or(|o| o.metadata.labels != new.metadata.labels) {
                        s.queue.move_all();
                    }
                }
                (Some(old), None) => {
                    s.cache()
                        .remove_namespace(old.metadata.name.as_deref().unwrap_or_default());
                }
                (None, None) => {}
            },
        );
        Scheduler {
            events: Recorder::for_component(client.clone(), NAME),
            client,
            pods,
            nodes,
            namespaces,
            pdbs: informers.get::<PodDisruptionBudget>(),
            shared,
            policy,
            writes: Arc::new(Semaphore::new(WRITES)),
        }
    }

    /// Wait until the informers have listed pods and nodes.
    pub async fn synced(&self) {
        self.pods.synced().await;
        self.nodes.synced().await;
        self.namespaces.synced().await;
        self.pdbs.synced().await;
    }

    /// Schedule until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut search = Search::default();
        loop {
            let key = tokio::select! {
                _ = cancel.cancelled() => break,
                k = self.shared.queue.pop() => k,
            };
            let Some((key, attempt)) = key else { break };
            self.schedule_one(&key, attempt, &mut search);
        }
        self.shared.queue.close();
    }

    fn schedule_one(&self, key: &Key, attempt: u64, search: &mut Search) {
        let queue = &self.shared.queue;
        let Some(pod) = self.pods.get_key(key).filter(|p| ours(p)) else {
            queue.done(key, attempt);
            return;
        };
        let decision = {
            let cache = self.shared.cache();
            algorithm::schedule(&pod, &cache, self.policy, search).map_err(|mut fit| {
                let plan = if fit.nodes > 0 {
                    preemption::plan(&pod, &cache, &fit, &self.pdbs.list_all())
                        .map(Nomination::Set)
                        .unwrap_or_else(|no| {
                            fit.preemption = Some(no.message);
                            if no.clears {
                                Nomination::Clear
                            } else {
                                Nomination::Keep
                            }
                        })
                } else {
                    Nomination::Clear
                };
                (fit, plan)
            })
        };
        match decision {
            Ok(node) => {
                self.shared.cache().assume(&pod, &node);
                self.spawn_bind(key.clone(), attempt, pod, node);
            }
            Err((fit, plan)) => {
                queue.failed(key, attempt, true);
                // The room being made is this pod's from now on, not only
                // once its status says so.
                match &plan {
                    Nomination::Set(plan) => self.shared.cache().nominate(&pod, Some(&plan.node)),
                    Nomination::Clear => self.shared.cache().nominate(&pod, None),
                    Nomination::Keep => {}
                }
                tracing::debug!(pod = %key, "{fit}");
                self.spawn_unschedulable(pod, fit.to_string(), plan);
            }
        }
    }

    fn spawn_bind(&self, key: Key, attempt: u64, pod: Arc<Pod>, node: String) {
        let pods = self.pods.clone();
        let (client, shared, events) = (
            self.client.clone(),
            self.shared.clone(),
            self.events.clone(),
        );
        let writes = self.writes.clone();
        tokio::spawn(async move {
            let _permit = writes.acquire().await;
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let binding = json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": key.name, "namespace": key.namespace, "uid": uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let api: Api<Pod> = Api::namespaced(client, &key.namespace);
            match api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &key.name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                Ok(_) => {
                    shared.queue.done(&key, attempt);
                    events.object(
                        reference(pod.as_ref()),
                        NORMAL,
                        "Scheduled",
                        format!("Successfully assigned {key} to {node}"),
                    );
                }
                Err(e) => {
                    shared.cache().forget(&uid);
                    tracing::debug!(pod = %key, node, "binding: {e}");
                    // Final only when the pod we tried is gone, bound or
                    // going; anything else (a conflict with a status
                    // write, a server in trouble) is tried again.
                    let settled = pods.get_key(&key).is_none_or(|now| {
                        now.metadata.uid.as_deref() != Some(uid.as_str()) || !ours(&now)
                    });
                    if settled {
                        shared.queue.done(&key, attempt);
                    } else {
                        shared.queue.failed(&key, attempt, false);
                    }
                    events.object(
                        reference(pod.as_ref()),
                        WARNING,
                        "FailedScheduling",
                        format!("Binding rejected: {e}"),
                    );
                }
            }
        });
    }

    /// Say why the pod waits (condition and event), and carry out a
    /// preemption if one was planned.
    fn spawn_unschedulable(&self, pod: Arc<Pod>, message: String, plan: Nomination) {
        let (client, events, writes) = (
            self.client.clone(),
            self.events.clone(),
            self.writes.clone(),
        );
        tokio::spawn(async move {
            let _permit = writes.acquire().await;
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            events.object(
                reference(pod.as_ref()),
                WARNING,
                "FailedScheduling",
                message.clone(),
            );
            let same = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
                .is_some_and(|c| {
                    c.status == "False" && c.message.as_deref() == Some(message.as_str())
                });
            let mut status = serde_json::Map::new();
            if !same {
                status.insert(
                    "conditions".into(),
                    json!([{
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastProbeTime": null,
                        "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    }]),
                );
            }
            let had = pod
                .status
                .as_ref()
                .and_then(|s| s.nominated_node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            match &plan {
                Nomination::Set(plan) => {
                    status.insert("nominatedNodeName".into(), json!(plan.node));
                }
                Nomination::Clear if had => {
                    status.insert("nominatedNodeName".into(), serde_json::Value::Null);
                }
                _ => {}
            }
            if !status.is_empty() {
                let patch = json!({"status": status});
                if let Err(e) = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    tracing::debug!(pod = %name, "writing PodScheduled: {e}");
                }
            }
            if let Nomination::Set(plan) = plan {
                evict(&client, &events, &pod, &plan).await;
            }
        });
    }
}

/// What becomes of a pod's nominatedNodeName after a failed attempt.
enum Nomination {
    /// A preemption makes room for it there.
    Set(preemption::Plan),
    /// No node would do, even with preemption.
    Clear,
    /// As it was (preemption was not tried).
    Keep,
}

/// Evict a preemption's victims: each gets the DisruptionTarget condition
/// (so its controller knows why it goes) and is deleted with its grace
/// period.
async fn evict(client: &kube::Client, events: &Recorder, preemptor: &Pod, plan: &preemption::Plan) {
    let by = format!(
        "{}/{}",
        preemptor.metadata.namespace.as_deref().unwrap_or_default(),
        preemptor.metadata.name.as_deref().unwrap_or_default()
    );
    for victim in &plan.victims {
        let ns = victim.metadata.namespace.clone().unwrap_or_default();
        let name = victim.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let patch = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{NAME}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(pod = %name, "marking a preemption victim: {e}");
        }
        let uid = victim.metadata.uid.clone();
        let dp = DeleteParams {
            preconditions: uid.map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => events.object(
                reference(victim.as_ref()),
                NORMAL,
                "Preempted",
                format!("Preempted by pod {by} on node {}", plan.node),
            ),
            Err(e) => tracing::debug!(pod = %name, "deleting a preemption victim: {e}"),
        }
    }
}

/// Keep the cache and the queue in step with a pod change.
fn on_pod(s: &Shared, c: &Change<'_, Pod>) {
    let Some(latest) = c.latest() else { return };
    let key = Key::of(latest.as_ref());
    match c.new {
        Some(new) if bound(new) => {
            s.queue.remove(&key);
            let held = cache::holds_room(new);
            let freed = c.old.is_some_and(|o| cache::holds_room(o)) && !held;
            // A pod that landed, or whose labels or deletion changed, may
            // be what a parked pod's affinity or spread waits for.
            let moved = c.old.is_none_or(|o| {
                !bound(o)
                    || o.metadata.labels != new.metadata.labels
                    || o.metadata.deletion_timestamp != new.metadata.deletion_timestamp
            });
            s.cache().update_pod(new.clone());
            // A pod that ended gave its room back. A landing matters only
            // to pods parked waiting (a busy queue is not rescanned for
            // each binding).
            if freed || (moved && s.queue.any_parked()) {
                s.queue.move_all();
            }
        }
        Some(new) => {
            let nominated = |p: &Pod| {
                p.status
                    .as_ref()
                    .and_then(|s| s.nominated_node_name.clone())
                    .filter(|n| !n.is_empty())
            };
            let now = nominated(new).filter(|_| ours(new));
            if now.is_some() || c.old.is_some_and(|o| nominated(o).is_some()) {
                s.cache().nominate(new, now.as_deref());
            }
            // Our own status writes (PodScheduled=False) come back as
            // changes: only a change of what scheduling reads counts.
            if c.old
                .is_some_and(|o| ours(o) && !scheduling_changed(o, new))
                && s.queue.contains(&key)
            {
                return;
            }
            if ours(new) {
                let priority = new.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
                s.queue.add(key, priority, created(new));
            } else {
                s.queue.remove(&key);
            }
        }
        None => {
            s.queue.remove(&key);
            let uid = latest.metadata.uid.clone().unwrap_or_default();
            s.cache().remove_pod(&uid);
            if bound(latest) {
                s.queue.move_all();
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_affinity;
#[cfg(test)]
mod tests_preemption;
