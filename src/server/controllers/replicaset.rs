//! The ReplicaSet controller: keeps `spec.replicas` pods of the template
//! running, as upstream's.
//!
//! - Pods are claimed by selector: a pod the ReplicaSet controls that no
//!   longer matches is released (its owner reference removed), an orphan
//!   that matches is adopted (with the ReplicaSet's UID as precondition).
//! - Missing pods are created in slow-start batches (1, 2, 4, …, at most
//!   500 at a time), so a template that cannot be created (quota, a bad
//!   field) fails once, not a thousand times; surplus pods are deleted in
//!   upstream's order: unscheduled, pending, not ready, lower
//!   `controller.kubernetes.io/pod-deletion-cost`, more replicas on the
//!   same node, ready more recently, more restarts, newer.
//! - Expectations: after writing, it waits for the informer to show the
//!   writes before it counts again.
//! - Status: replicas, fullyLabeledReplicas, readyReplicas,
//!   availableReplicas (Ready for minReadySeconds), observedGeneration,
//!   and the ReplicaFailure condition while creates or deletes fail.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::expectations::Expectations;
use super::podcontrol::PodControl;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use super::{claim, podutil};
use crate::events::Recorder;

pub const AGENT: &str = "skiff-replicaset-controller";
pub const COMPONENT: &str = "replicaset-controller";
/// Pods created or deleted per pass at most (upstream's burstReplicas).
const BURST: usize = 500;
const WORKERS: usize = 5;
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

pub struct Ctx {
    client: kube::Client,
    sets: Arc<dyn Sets>,
    flavor: Flavor,
    pods: Arc<Informer<Pod>>,
    expectations: Arc<Expectations>,
    events: Recorder,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("creating pods: {0}")]
    Create(kube::Error),
    #[error("deleting pods: {0}")]
    Delete(kube::Error),
}

/// The ReplicaSets that `pod` belongs to or could be adopted by.
/// Which kind the controller keeps: ReplicaSets, or the older
/// ReplicationControllers (the same logic over an equality selector).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flavor {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub component: &'static str,
}

pub const REPLICASETS: Flavor = Flavor {
    api_version: "apps/v1",
    kind: "ReplicaSet",
    component: COMPONENT,
};
pub const REPLICATION_CONTROLLERS: Flavor = Flavor {
    api_version: "v1",
    kind: "ReplicationController",
    component: "replication-controller",
};

/// The sets the controller keeps, as ReplicaSets.
pub trait Sets: Send + Sync {
    fn get(&self, key: &Key) -> Option<Arc<ReplicaSet>>;
    fn list(&self, namespace: &str) -> Vec<Arc<ReplicaSet>>;
}

impl Sets for Informer<ReplicaSet> {
    fn get(&self, key: &Key) -> Option<Arc<ReplicaSet>> {
        self.get_key(key)
    }
    fn list(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
        Informer::list(self, namespace)
    }
}

impl Sets for Informer<ReplicationController> {
    fn get(&self, key: &Key) -> Option<Arc<ReplicaSet>> {
        self.get_key(key).map(|rc| Arc::new(as_replicaset(&rc)))
    }
    fn list(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
        Informer::list(self, namespace)
            .iter()
            .map(|rc| Arc::new(as_replicaset(rc)))
            .collect()
    }
}

/// A ReplicationController as the ReplicaSet it is equivalent to (its
/// selector is a set of equalities; no selector means its template's
/// labels, as the API defaults it).
pub fn as_replicaset(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().or_else(|| {
        spec.template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
    });
    let status = rc.status.as_ref().map(|s| ReplicaSetStatus {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas,
        ready_replicas: s.ready_replicas,
        available_replicas: s.available_replicas,
        observed_generation: s.observed_generation,
        conditions: s.conditions.as_ref().map(|c| {
            c.iter()
                .map(|c| ReplicaSetCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect()
        }),
        terminating_replicas: None,
    });
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: selector,
                match_expressions: None,
            },
            template: spec.template,
        }),
        status,
    }
}

fn owners_of(sets: &dyn Sets, flavor: Flavor, pod: &Pod) -> Vec<Key> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    if let Some(r) = podutil::controller_of(&pod.metadata) {
        if r.kind == flavor.kind
            && r.api_version.split('/').next() == flavor.api_version.split('/').next()
        {
            return vec![Key::new(ns, &r.name)];
        }
        return Vec::new();
    }
    sets.list(ns)
        .iter()
        .filter(|rs| {
            podutil::selects(
                rs.spec.as_ref().map(|s| &s.selector),
                pod.metadata.labels.as_ref(),
            )
        })
        .map(|rs| Key::of(rs.as_ref()))
        .collect()
}

/// Start the controller; it runs until `cancel` fires.
/// Keep ReplicaSets until `cancel` fires.
pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let sets = informers.get::<ReplicaSet>();
    let q = queue.clone();
    sets.on_change(move |c: &Change<'_, ReplicaSet>| {
        // Our own status writes come back as changes: nothing to do.
        if let (Some(o), Some(n)) = (c.old, c.new) {
            if o.spec == n.spec && same_meta(&o.metadata, &n.metadata) {
                return;
            }
        }
        if let Some(rs) = c.latest() {
            q.add(Key::of(rs.as_ref()));
        }
    });
    sets.synced().await;
    run_with(client, informers, sets, REPLICASETS, queue, cancel).await;
}

/// Keep ReplicationControllers until `cancel` fires.
pub async fn run_replication_controllers(
    client: kube::Client,
    informers: &Informers,
    cancel: CancellationToken,
) {
    let queue = Arc::new(Queue::<Key>::default());
    let sets = informers.get::<ReplicationController>();
    let q = queue.clone();
    sets.on_change(move |c: &Change<'_, ReplicationController>| {
        if let (Some(o), Some(n)) = (c.old, c.new) {
            if o.spec == n.spec && same_meta(&o.metadata, &n.metadata) {
                return;
            }
        }
        if let Some(rc) = c.latest() {
            q.add(Key::of(rc.as_ref()));
        }
    });
    sets.synced().await;
    run_with(
        client,
        informers,
        sets,
        REPLICATION_CONTROLLERS,
        queue,
        cancel,
    )
    .await;
}

fn same_meta(o: &ObjectMeta, n: &ObjectMeta) -> bool {
    o.labels == n.labels
        && o.owner_references == n.owner_references
        && o.deletion_timestamp == n.deletion_timestamp
}

async fn run_with(
    client: kube::Client,
    informers: &Informers,
    sets: Arc<dyn Sets>,
    flavor: Flavor,
    queue: Arc<Queue<Key>>,
    cancel: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), flavor.component),
        client,
        sets,
        flavor,
        pods: informers.get::<Pod>(),
        expectations: Arc::new(Expectations::default()),
    });
    let (q, sets, exp) = (queue.clone(), ctx.sets.clone(), ctx.expectations.clone());
    ctx.pods.on_change(move |c: &Change<'_, Pod>| {
        let mut keys = Vec::new();
        if let Some(new) = c.new {
            let owners = owners_of(sets.as_ref(), flavor, new);
            if c.old.is_none() && podutil::controller_of(&new.metadata).is_some() {
                for k in &owners {
                    exp.created(k);
                }
            }
            if new.metadata.deletion_timestamp.is_some()
                && c.old
                    .is_some_and(|o| o.metadata.deletion_timestamp.is_none())
            {
                for k in &owners {
                    exp.deleted(k);
                }
            }
            keys.extend(owners);
        }
        if let Some(old) = c.old {
            let owners = owners_of(sets.as_ref(), flavor, old);
            if c.new.is_none() && old.metadata.deletion_timestamp.is_none() {
                for k in &owners {
                    exp.deleted(k);
                }
            }
            // Labels or owner changed: the old owner recounts too.
            keys.extend(owners);
        }
        keys.sort();
        keys.dedup();
        for k in keys {
            q.add(k);
        }
    });
    ctx.pods.synced().await;
    let c = ctx.clone();
    runtime::run_workers(flavor.component, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(rs) = ctx.sets.get(key) else {
        ctx.expectations.forget(key);
        return Ok(Action::Done);
    };
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(Action::Done);
    };
    let mut owned = claim(ctx, &rs).await?;
    let now = Timestamp::now();
    let mut failure = None;
    if ctx.expectations.satisfied(key) && rs.metadata.deletion_timestamp.is_none() {
        owned.retain(|p| podutil::is_active(p));
        let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
        if let Err(e) = manage(ctx, key, &rs, &owned, want).await {
            failure = Some(e);
        }
    } else {
        owned.retain(|p| podutil::is_active(p));
    }
    let status = compute_status(&rs, &owned, failure.as_ref(), now);
    if rs.status.as_ref() != Some(&status) {
        let pp = PatchParams::default();
        let mut patch = json!({"status": status});
        // A merge patch keeps what it does not name: a cleared condition
        // list must be named.
        if status.conditions.is_none() {
            patch["status"]["conditions"] = serde_json::Value::Null;
        }
        // The two kinds' statuses are the same fields.
        if ctx.flavor == REPLICATION_CONTROLLERS {
            let api: Api<ReplicationController> =
                Api::namespaced(ctx.client.clone(), &key.namespace);
            api.patch_status(&key.name, &pp, &Patch::Merge(&patch))
                .await?;
        } else {
            let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &key.namespace);
            api.patch_status(&key.name, &pp, &Patch::Merge(&patch))
                .await?;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // Ready pods that will become available: look again then.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let next = owned
        .iter()
        .filter_map(|p| podutil::until_available(p, min_ready, now))
        .min();
    Ok(next.map_or(Action::Done, |s| {
        Action::After(Duration::from_secs(u64::try_from(s).unwrap_or(1)))
    }))
}

fn owner_ref(flavor: Flavor, rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: flavor.api_version.into(),
        kind: flavor.kind.into(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pods the ReplicaSet controls once orphans that match are adopted
/// and controlled pods that no longer match are released.
async fn claim(ctx: &Ctx, rs: &ReplicaSet) -> Result<Vec<Arc<Pod>>, Error> {
    let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let owner = claim::Owner {
        reference: owner_ref(ctx.flavor, rs),
        selector: rs.spec.as_ref().map(|s| &s.selector),
        deleting: rs.metadata.deletion_timestamp.is_some(),
    };
    Ok(owner
        .claim(&api, ctx.pods.list(ns), podutil::is_active)
        .await?)
}

fn reference(flavor: Flavor, rs: &ReplicaSet) -> ObjectReference {
    crate::events::reference_as(&rs.metadata, flavor.api_version, flavor.kind)
}

/// Create or delete pods so that `want` are active.
async fn manage(
    ctx: &Ctx,
    key: &Key,
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    want: usize,
) -> Result<(), Error> {
    let control = PodControl {
        api: Api::namespaced(ctx.client.clone(), &key.namespace),
        events: &ctx.events,
        owner: reference(ctx.flavor, rs),
        expectations: &ctx.expectations,
        key,
    };
    if active.len() < want {
        let missing = (want - active.len()).min(BURST);
        let pod = pod_from_template(ctx.flavor, rs);
        control
            .create_all(vec![pod; missing])
            .await
            .map_err(Error::Create)?;
    } else if active.len() > want {
        let surplus = (active.len() - want).min(BURST);
        let doomed = to_delete(active, surplus);
        control.delete_all(&doomed).await.map_err(Error::Delete)?;
    }
    Ok(())
}

/// A new pod of the template, owned by the ReplicaSet.
pub fn pod_from_template(flavor: Flavor, rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner_ref(flavor, rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// The `n` pods to delete first, in upstream's order.
pub fn to_delete(pods: &[Arc<Pod>], n: usize) -> Vec<Arc<Pod>> {
    // Replicas of this set on each node: crowded nodes give up pods first.
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in pods {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Pod| {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty());
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        let phase_rank = match phase {
            Some("Pending") => 0,
            Some("Running") => 2,
            _ => 1,
        };
        let cost: i64 = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DELETION_COST))
            .and_then(|v| v.parse::<i32>().ok())
            .map_or(0, i64::from);
        let ready_since = podutil::ready_since(p)
            .flatten()
            .map_or(0, |t| t.as_second());
        let created = p
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second());
        (
            node.is_some(),
            phase_rank,
            podutil::is_ready(p),
            cost,
            std::cmp::Reverse(node.map_or(0, |n| per_node.get(n).copied().unwrap_or(0))),
            std::cmp::Reverse(ready_since),
            std::cmp::Reverse(podutil::restarts(p)),
            std::cmp::Reverse(created),
        )
    };
    let mut ranked: Vec<&Arc<Pod>> = pods.iter().collect();
    ranked.sort_by_cached_key(|p| rank(p));
    ranked.into_iter().take(n).cloned().collect()
}

fn compute_status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    failure: Option<&Error>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let fully = count(&|p| {
        let l = p.metadata.labels.clone().unwrap_or_default();
        template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
    });
    let prev = rs.status.as_ref();
    let mut conditions: Vec<ReplicaSetCondition> = prev
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    if let Some(e) = failure {
        let (reason, err) = match e {
            Error::Delete(e) => ("FailedDelete", e),
            Error::Create(e) | Error::Api(e) => ("FailedCreate", e),
        };
        let message = match err {
            kube::Error::Api(s) => s.message.clone(),
            other => other.to_string(),
        };
        // As upstream: set once, not rewritten with each new message
        // (which names a new pod each time, and would be a write per try).
        let kept = prev
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "ReplicaFailure"))
            .cloned();
        conditions.push(kept.unwrap_or(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
        }));
    }
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully),
        ready_replicas: Some(count(&podutil::is_ready)),
        available_replicas: Some(count(&|p| podutil::is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}

#[cfg(test)]
#[path = "replicaset_tests.rs"]
mod tests;
