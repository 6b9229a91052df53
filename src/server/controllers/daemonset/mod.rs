//! The DaemonSet controller: one pod on every node the DaemonSet fits
//! (nodes.rs says which), replaced when it fails, removed from nodes it no
//! longer fits, updated node by node (rolling.rs) or only when deleted
//! (`OnDelete`), its templates kept as ControllerRevisions for
//! `kubectl rollout history|undo`. Daemon pods are bound by the scheduler:
//! their required node affinity names their node, as upstream's.

pub mod nodes;
pub mod rolling;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::expectations::Expectations;
use super::history::{self, POD_REVISION_LABEL};
use super::podcontrol::PodControl;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use super::{claim, podutil};
use crate::events::{reference, Recorder, WARNING};

pub const AGENT: &str = "skiff-daemonset-controller";
pub const COMPONENT: &str = "daemonset-controller";
const WORKERS: usize = 2;
/// Back-off before a failed daemon pod on a node is replaced again.
const FAILED_FIRST: Duration = Duration::from_secs(1);
const FAILED_MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    History(#[from] history::Error),
}

pub struct Ctx {
    client: kube::Client,
    sets: Arc<Informer<DaemonSet>>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    revisions: Arc<Informer<ControllerRevision>>,
    expectations: Arc<Expectations>,
    events: Recorder,
    /// Per DaemonSet UID and node: failed pods replaced, and when last.
    failed: Mutex<HashMap<(String, String), (u32, Timestamp)>>,
}

/// What about a node matters to where daemons run.
fn node_facts(n: &Node) -> impl PartialEq + '_ {
    let spec = n.spec.as_ref();
    (
        n.metadata.labels.as_ref(),
        spec.and_then(|s| s.taints.as_ref()),
        spec.and_then(|s| s.unschedulable),
    )
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        sets: informers.get::<DaemonSet>(),
        pods: informers.get::<Pod>(),
        nodes: informers.get::<Node>(),
        revisions: informers.get::<ControllerRevision>(),
        expectations: Arc::new(Expectations::default()),
        failed: Mutex::new(HashMap::new()),
    });
    let q = queue.clone();
    ctx.sets.on_change(move |c: &Change<'_, DaemonSet>| {
        if let (Some(o), Some(n)) = (c.old, c.new) {
            // Its own status writes.
            if o.spec == n.spec
                && o.metadata.labels == n.metadata.labels
                && o.metadata.deletion_timestamp == n.metadata.deletion_timestamp
            {
                return;
            }
        }
        if let Some(d) = c.latest() {
            q.add(Key::of(d.as_ref()));
        }
    });
    let (q, sets, exp) = (queue.clone(), ctx.sets.clone(), ctx.expectations.clone());
    ctx.pods.on_change(move |c: &Change<'_, Pod>| {
        let Some(p) = c.latest() else { return };
        for key in podutil::owner_keys(&sets, "DaemonSet", &p.metadata, |d| {
            d.spec.as_ref().map(|s| &s.selector)
        }) {
            if podutil::controller_of(&p.metadata).is_some() {
                if c.old.is_none() {
                    exp.created(&key);
                }
                // Seen as deleted once marked (a pod on a lost node may
                // never finish going), as upstream.
                let marked = |p: Option<&Arc<Pod>>| {
                    p.is_some_and(|p| p.metadata.deletion_timestamp.is_some())
                };
                if (c.new.is_none() && !marked(c.old)) || (!marked(c.old) && marked(c.new)) {
                    exp.deleted(&key);
                }
            }
            q.add(key);
        }
    });
    let (q, sets) = (queue.clone(), ctx.sets.clone());
    ctx.nodes.on_change(move |c: &Change<'_, Node>| {
        if let (Some(o), Some(n)) = (c.old, c.new) {
            if node_facts(o) == node_facts(n) {
                return;
            }
        }
        for d in sets.list_all() {
            q.add(Key::of(d.as_ref()));
        }
    });
    ctx.sets.synced().await;
    ctx.pods.synced().await;
    ctx.nodes.synced().await;
    ctx.revisions.synced().await;
    let c = ctx.clone();
    runtime::run_workers(COMPONENT, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

fn created(p: &Pod) -> Option<Timestamp> {
    p.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn int_or_percent(v: Option<&IntOrString>) -> Option<String> {
    v.map(|v| match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    })
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(ds) = ctx.sets.get_key(key) else {
        ctx.expectations.forget(key);
        return Ok(Action::Done);
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let Some(spec) = ds.spec.as_ref() else {
        return Ok(Action::Done);
    };
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let ns = key.namespace.as_str();
    let now = Timestamp::now();
    let owner = nodes::owner_ref(&ds);

    // The current revision.
    let rev_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), ns);
    let revisions: Vec<Arc<ControllerRevision>> = ctx
        .revisions
        .list(ns)
        .into_iter()
        .filter(|r| podutil::controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let mut collisions = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let mut labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let data = history::data_of(&spec.template);
    let hash = history::hash(&data, Some(collisions).filter(|c| *c > 0));
    labels.insert(POD_REVISION_LABEL.into(), hash);
    let current =
        history::ensure(&rev_api, &owner, &labels, &revisions, data, &mut collisions).await?;
    let hash = current
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(history::HASH_LABEL))
        .cloned()
        .unwrap_or_default();

    // The pods, by node.
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let claimer = claim::Owner {
        reference: owner.clone(),
        selector: Some(&spec.selector),
        deleting: false,
    };
    let pods = claimer
        .claim(&pod_api, ctx.pods.list(ns), podutil::is_active)
        .await?;
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for p in &pods {
        if let Some(n) = nodes::target_node(p) {
            by_node.entry(n.to_string()).or_default().push(p.clone());
        }
    }
    for list in by_node.values_mut() {
        list.sort_by_key(|p| (created(p), p.metadata.name.clone()));
    }
    let all_nodes = ctx.nodes.list("");
    let fits: BTreeMap<String, nodes::Fit> = all_nodes
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                nodes::fit(&ds, n),
            )
        })
        .collect();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let is_new = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_REVISION_LABEL))
            == Some(&hash)
    };
    let control = PodControl {
        api: pod_api.clone(),
        events: &ctx.events,
        owner: reference(ds.as_ref()),
        expectations: &ctx.expectations,
        key,
    };
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let desired = fits.values().filter(|f| f.run).count();
    let (max_unavailable, max_surge) = if rolling {
        rolling::budget(
            int_or_percent(ru.and_then(|r| r.max_unavailable.as_ref())).as_deref(),
            int_or_percent(ru.and_then(|r| r.max_surge.as_ref())).as_deref(),
            desired,
        )
    } else {
        (1, 0)
    };
    let mut after: Option<Duration> = None;
    let mut wait = |d: Duration| after = Some(after.map_or(d, |a| a.min(d)));

    if ctx.expectations.satisfied(key) {
        // 1. Each node: a pod where there should be one, none where not.
        let mut create = Vec::new();
        let mut delete: Vec<Arc<Pod>> = Vec::new();
        for (node, fit) in &fits {
            let here: Vec<&Arc<Pod>> = by_node
                .get(node)
                .into_iter()
                .flatten()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if !fit.keep && !fit.run {
                delete.extend(here.into_iter().cloned());
                continue;
            }
            let (failed, running): (Vec<&Arc<Pod>>, Vec<&Arc<Pod>>) =
                here.iter().partition(|p| podutil::is_terminal(p));
            if !failed.is_empty() {
                let k = (uid.clone(), node.clone());
                let mut seen = ctx.failed.lock().unwrap_or_else(|p| p.into_inner());
                let (n, last) = seen.get(&k).copied().unwrap_or((0, Timestamp::UNIX_EPOCH));
                let backoff = FAILED_FIRST.saturating_mul(1 << n.min(20)).min(FAILED_MAX);
                let since = Duration::try_from(now.duration_since(last)).unwrap_or_default();
                if n > 0 && since < backoff {
                    wait(backoff - since);
                } else {
                    seen.insert(k, (n + 1, now));
                    for p in &failed {
                        ctx.events.object(
                            reference(ds.as_ref()),
                            WARNING,
                            "FailedDaemonPod",
                            format!(
                                "Found failed daemon pod {ns}/{} on node {node}, will try to kill it",
                                p.metadata.name.as_deref().unwrap_or_default()
                            ),
                        );
                    }
                    delete.extend(failed.into_iter().cloned());
                }
                continue;
            }
            if running.is_empty() {
                if fit.run {
                    create.push(nodes::pod_for(&ds, node, &hash));
                }
                continue;
            }
            // More than one: keep the oldest (and, mid-surge, the oldest of
            // each revision).
            let mut kept_new = false;
            let mut kept_old = false;
            for p in running {
                let keep = if max_surge > 0 {
                    let slot = if is_new(p) {
                        &mut kept_new
                    } else {
                        &mut kept_old
                    };
                    !std::mem::replace(slot, true)
                } else {
                    !std::mem::replace(&mut kept_old, true)
                };
                if !keep {
                    delete.push(p.clone());
                }
            }
        }
        // Pods for nodes that are gone.
        for (node, list) in &by_node {
            if !fits.contains_key(node) {
                delete.extend(
                    list.iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .cloned(),
                );
            }
        }
        let changed = !create.is_empty() || !delete.is_empty();
        control.delete_all(&delete).await?;
        control.create_all(create).await?;

        // 2. The rolling update, once the nodes are settled.
        if rolling && !changed {
            let mut flat: Vec<&Arc<Pod>> = Vec::new();
            let mut plan_nodes = Vec::new();
            for (node, fit) in &fits {
                if !fit.run && !fit.keep {
                    continue;
                }
                let mut np = rolling::NodePods {
                    node: node.clone(),
                    new: Vec::new(),
                    old: Vec::new(),
                };
                for p in by_node.get(node).into_iter().flatten() {
                    if p.metadata.deletion_timestamp.is_some() || podutil::is_terminal(p) {
                        continue;
                    }
                    flat.push(p);
                    if is_new(p) {
                        np.new.push(flat.len() - 1);
                    } else {
                        np.old.push(flat.len() - 1);
                    }
                }
                // A node with no daemon yet is the first step's to fill.
                if !np.new.is_empty() || !np.old.is_empty() {
                    plan_nodes.push(np);
                }
            }
            let step = rolling::step(&plan_nodes, max_unavailable, max_surge, |i| {
                podutil::is_available(flat[i], min_ready, now)
            });
            let doomed: Vec<Arc<Pod>> = step.delete.iter().map(|i| flat[*i].clone()).collect();
            control.delete_all(&doomed).await?;
            let surge: Vec<Pod> = step
                .surge
                .iter()
                .map(|n| nodes::pod_for(&ds, n, &hash))
                .collect();
            control.create_all(surge).await?;
        }
    }

    // 3. Status, counted per node from its oldest pod.
    let mut status = DaemonSetStatus {
        collision_count: (collisions > 0).then_some(collisions),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        desired_number_scheduled: desired as i32,
        observed_generation: ds.metadata.generation,
        ..Default::default()
    };
    for (node, fit) in &fits {
        let here: Vec<&Arc<Pod>> = by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let Some(first) = here.first() else { continue };
        if !fit.run {
            status.number_misscheduled += 1;
            continue;
        }
        status.current_number_scheduled += 1;
        if podutil::is_ready(first) {
            status.number_ready += 1;
            if podutil::is_available(first, min_ready, now) {
                *status.number_available.get_or_insert(0) += 1;
            } else if let Some(s) = podutil::until_available(first, min_ready, now) {
                wait(Duration::from_secs(s.max(0) as u64 + 1));
            }
        }
        if is_new(first) {
            *status.updated_number_scheduled.get_or_insert(0) += 1;
        }
    }
    status.number_unavailable =
        Some(desired as i32 - status.number_available.unwrap_or(0)).filter(|n| *n > 0);
    if ds.status.as_ref() != Some(&status) {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), ns);
        let mut s = serde_json::to_value(&status).unwrap_or_default();
        // A merge patch keeps what it leaves out: a count gone to none
        // must be said.
        for f in [
            "numberAvailable",
            "numberUnavailable",
            "updatedNumberScheduled",
            "collisionCount",
        ] {
            if s.get(f).is_none() {
                s[f] = serde_json::Value::Null;
            }
        }
        let patch =
            json!({"metadata": {"resourceVersion": ds.metadata.resource_version}, "status": s});
        api.patch_status(
            ds.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }

    // 4. History: keep the revisions pods still run, and the newest others.
    let mut live: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(POD_REVISION_LABEL))
        .map(|h| format!("{}-{h}", owner.name))
        .collect();
    live.push(current.metadata.name.clone().unwrap_or_default());
    let limit = spec.revision_history_limit.unwrap_or(10);
    history::truncate(&rev_api, &revisions, &live, limit).await?;

    Ok(after.map_or(Action::Done, Action::After))
}

#[cfg(test)]
mod tests;
