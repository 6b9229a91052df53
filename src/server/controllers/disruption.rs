//! The disruption controller: keeps each PodDisruptionBudget's status, which
//! the eviction subresource reads and spends, as upstream's.
//!
//! - `expectedPods`: the pods picked (for an integer `minAvailable`), or the
//!   replicas their controllers want (for `maxUnavailable` or a percentage):
//!   ReplicaSets (a Deployment's ReplicaSet counts as the Deployment),
//!   ReplicationControllers and StatefulSets. Pods without a controller are
//!   left out, with an `UnmanagedPods` warning, as upstream; a controller
//!   skiff cannot scale fails the sync (`SyncFailed`, nothing may be
//!   disrupted).
//! - `desiredHealthy`: `minAvailable`, or expected − `maxUnavailable`
//!   (percentages rounded up).
//! - `currentHealthy`: Ready pods not being deleted, less the ones an
//!   eviction just took (`disruptedPods`, each kept for two minutes or until
//!   its pod goes).
//! - `disruptionsAllowed` = healthy − desired, never below zero, with the
//!   `DisruptionAllowed` condition saying why.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::podutil;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use crate::events::{reference, Recorder, WARNING};

pub const AGENT: &str = "skiff-disruption-controller";
pub const COMPONENT: &str = "controllermanager";
const WORKERS: usize = 2;
/// How long an evicted pod is counted as disrupted while it still shows.
const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

pub struct Ctx {
    client: kube::Client,
    pdbs: Arc<Informer<PodDisruptionBudget>>,
    pods: Arc<Informer<Pod>>,
    replicasets: Arc<Informer<ReplicaSet>>,
    deployments: Arc<Informer<Deployment>>,
    rcs: Arc<Informer<ReplicationController>>,
    statefulsets: Arc<Informer<StatefulSet>>,
    events: Recorder,
}

/// Requeue every budget of a namespace (a pod or a controller there moved).
fn all_in(pdbs: &Informer<PodDisruptionBudget>, q: &Queue<Key>, ns: &str) {
    for p in pdbs.list(ns) {
        q.add(Key::of(p.as_ref()));
    }
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        pdbs: informers.get::<PodDisruptionBudget>(),
        pods: informers.get::<Pod>(),
        replicasets: informers.get::<ReplicaSet>(),
        deployments: informers.get::<Deployment>(),
        rcs: informers.get::<ReplicationController>(),
        statefulsets: informers.get::<StatefulSet>(),
    });
    let q = queue.clone();
    ctx.pdbs
        .on_change(move |c: &Change<'_, PodDisruptionBudget>| {
            if let Some(p) = c.latest() {
                q.add(Key::of(p.as_ref()));
            }
        });
    let (q, pdbs) = (queue.clone(), ctx.pdbs.clone());
    ctx.pods.on_change(move |c: &Change<'_, Pod>| {
        if let Some(p) = c.latest() {
            all_in(
                &pdbs,
                &q,
                p.metadata.namespace.as_deref().unwrap_or_default(),
            );
        }
    });
    macro_rules! on_scale {
        ($informer:expr, $t:ty) => {{
            let (q, pdbs) = (queue.clone(), ctx.pdbs.clone());
            $informer.on_change(move |c: &Change<'_, $t>| {
                let size =
                    |o: Option<&Arc<$t>>| o.and_then(|o| o.spec.as_ref().map(|s| s.replicas));
                if size(c.old) != size(c.new) {
                    if let Some(o) = c.latest() {
                        all_in(
                            &pdbs,
                            &q,
                            o.metadata.namespace.as_deref().unwrap_or_default(),
                        );
                    }
                }
            });
        }};
    }
    on_scale!(ctx.replicasets, ReplicaSet);
    on_scale!(ctx.deployments, Deployment);
    on_scale!(ctx.rcs, ReplicationController);
    on_scale!(ctx.statefulsets, StatefulSet);
    ctx.pdbs.synced().await;
    ctx.pods.synced().await;
    ctx.replicasets.synced().await;
    ctx.deployments.synced().await;
    ctx.rcs.synced().await;
    ctx.statefulsets.synced().await;
    let c = ctx.clone();
    runtime::run_workers(COMPONENT, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

/// `v` against `total`: an integer, or a percentage rounded up.
fn scaled(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((p * i64::from(total) + 99) / 100) as i32)
        }
    }
}

impl Ctx {
    /// The replicas the controllers of `pods` want, each controller once.
    fn expected_scale(&self, ns: &str, pods: &[Arc<Pod>]) -> Result<i32, String> {
        let mut seen: HashMap<String, i32> = HashMap::new();
        for p in pods {
            let Some(r) = podutil::controller_of(&p.metadata) else {
                continue;
            };
            if seen.contains_key(&r.uid) {
                continue;
            }
            let (uid, size) = match r.kind.as_str() {
                "ReplicaSet" => {
                    let rs = self
                        .replicasets
                        .get(ns, &r.name)
                        .filter(|x| x.metadata.uid.as_ref() == Some(&r.uid));
                    let Some(rs) = rs else { continue };
                    // A Deployment's ReplicaSet: the Deployment's size counts.
                    let owner =
                        podutil::controller_of(&rs.metadata).filter(|o| o.kind == "Deployment");
                    match owner.and_then(|o| self.deployments.get(ns, &o.name)) {
                        Some(d) => (
                            d.metadata.uid.clone().unwrap_or_default(),
                            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        ),
                        None => (
                            r.uid.clone(),
                            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        ),
                    }
                }
                "ReplicationController" => match self.rcs.get(ns, &r.name) {
                    Some(rc) => (
                        r.uid.clone(),
                        rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ),
                    None => continue,
                },
                "StatefulSet" => match self.statefulsets.get(ns, &r.name) {
                    Some(s) => (
                        r.uid.clone(),
                        s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ),
                    None => continue,
                },
                other => {
                    return Err(format!(
                        "found no controllers for pod {:?}: {other} cannot be scaled",
                        p.metadata.name.as_deref().unwrap_or_default()
                    ))
                }
            };
            seen.insert(r.uid.clone(), 0);
            seen.insert(uid, size);
        }
        Ok(seen.values().sum())
    }
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(pdb) = ctx.pdbs.get_key(key) else {
        return Ok(Action::Done);
    };
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let spec = pdb.spec.clone().unwrap_or_default();
    let now = Timestamp::now();
    // A missing selector picks nothing; an empty one, every pod (policy/v1).
    let pods: Vec<Arc<Pod>> = match spec.selector.as_ref() {
        None => Vec::new(),
        Some(sel) => ctx
            .pods
            .list(&key.namespace)
            .into_iter()
            .filter(|p| podutil::selects(Some(sel), p.metadata.labels.as_ref()))
            .collect(),
    };
    // Pods no controller owns have no scale to count them against: left
    // out, with upstream's warning, when the budget needs the scale.
    let needs_scale = spec.max_unavailable.is_some()
        || matches!(spec.min_available, Some(IntOrString::String(_)));
    if needs_scale
        && pods
            .iter()
            .any(|p| podutil::controller_of(&p.metadata).is_none())
    {
        let selector = spec
            .selector
            .as_ref()
            .map(|s| {
                crate::api::selector::LabelSelector::from_label_selector_json(
                    &serde_json::to_value(s).unwrap_or_default(),
                )
                .map(|s| s.to_string())
                .unwrap_or_default()
            })
            .unwrap_or_default();
        ctx.events.object(
            reference(pdb.as_ref()),
            WARNING,
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        );
    }
    let counts = match (&spec.max_unavailable, &spec.min_available) {
        (Some(mu), _) => ctx
            .expected_scale(&key.namespace, &pods)
            .and_then(|expected| {
                let mu = scaled(mu, expected)?;
                Ok((expected, (expected - mu).max(0)))
            }),
        (None, Some(IntOrString::Int(n))) => Ok((pods.len() as i32, *n)),
        (None, Some(ma)) => ctx
            .expected_scale(&key.namespace, &pods)
            .and_then(|expected| Ok((expected, scaled(ma, expected)?))),
        // Neither: nothing may be disrupted, as upstream.
        (None, None) => Ok((0, 0)),
    };
    let old = pdb.status.clone().unwrap_or_default();
    // The disrupted pods still to be counted as such.
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    for (name, at) in old.disrupted_pods.clone().unwrap_or_default() {
        let Some(p) = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(&name))
        else {
            continue;
        };
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let expires = at.0 + DELETION_TIMEOUT;
        if expires <= now {
            ctx.events.object(
                reference(pdb.as_ref()),
                WARNING,
                "NotDeleted",
                format!(
                    "Pod {}/{name} was expected to be deleted at {} but it wasn't, updating pdb",
                    key.namespace, at.0
                ),
            );
            continue;
        }
        let left = Duration::try_from(expires.duration_since(now)).unwrap_or_default();
        recheck = Some(recheck.map_or(left, |r| r.min(left)));
        disrupted.insert(name, at);
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| podutil::is_ready(p))
        .count() as i32;
    let condition = |status: &str, reason: &str, message: &str| Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "DisruptionAllowed" && c.status == status && c.reason == reason)
            .map_or(Time(now), |c| c.last_transition_time.clone()),
    };
    let status = match counts {
        Ok((expected, desired)) => {
            let allowed = if expected <= 0 {
                0
            } else {
                (healthy - desired).max(0)
            };
            let cond = if allowed > 0 {
                condition("True", "SufficientPods", "")
            } else {
                condition("False", "InsufficientPods", "")
            };
            PodDisruptionBudgetStatus {
                current_healthy: healthy,
                desired_healthy: desired,
                expected_pods: expected,
                disruptions_allowed: allowed,
                disrupted_pods: Some(disrupted),
                observed_generation: pdb.metadata.generation,
                conditions: Some(vec![cond]),
            }
        }
        Err(e) => {
            ctx.events.object(
                reference(pdb.as_ref()),
                WARNING,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            );
            PodDisruptionBudgetStatus {
                current_healthy: healthy,
                disruptions_allowed: 0,
                disrupted_pods: Some(disrupted),
                observed_generation: pdb.metadata.generation,
                conditions: Some(vec![condition("False", "SyncFailed", &e)]),
                ..old.clone()
            }
        }
    };
    if pdb.status.as_ref() != Some(&status) {
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &key.namespace);
        let mut s = serde_json::to_value(&status).unwrap_or_default();
        // A merge patch merges maps: a pod no longer disrupted is removed
        // by naming it null.
        let mut map = serde_json::Map::new();
        for name in old.disrupted_pods.iter().flatten().map(|(n, _)| n) {
            map.insert(name.clone(), serde_json::Value::Null);
        }
        for (name, at) in status.disrupted_pods.iter().flatten() {
            map.insert(name.clone(), json!(at));
        }
        s["disruptedPods"] = serde_json::Value::Object(map);
        // Guarded by the version read: an eviction that spent the budget
        // meanwhile wins, and this pass runs again.
        let patch =
            json!({"metadata": {"resourceVersion": pdb.metadata.resource_version}, "status": s});
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(Action::Done),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(recheck.map_or(Action::Done, |d| {
        Action::After(d + Duration::from_millis(100))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled(&IntOrString::String("10%".into()), 10), Ok(1));
        assert_eq!(scaled(&IntOrString::Int(2), 10), Ok(2));
        assert!(scaled(&IntOrString::String("x".into()), 10).is_err());
    }
}
