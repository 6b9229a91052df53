//! The StatefulSet controller: members `<set>-0…<set>-(n-1)` with stable
//! names, hostnames and claims, as upstream's.
//!
//! - `OrderedReady` (the default): one member at a time, each Running and
//!   Ready (for `minReadySeconds`) before the next is made; scaled down from
//!   the highest ordinal, one at a time. `Parallel`: all at once.
//! - A failed member is deleted and made again under the same name.
//! - `RollingUpdate`: from the highest ordinal down to `partition`, each
//!   member deleted and made again from the new template once the one above
//!   it is healthy; `OnDelete`: members take the new template when deleted.
//! - Templates are ControllerRevisions (`kubectl rollout history|undo`);
//!   `status.currentRevision` becomes the update revision once every member
//!   runs it.
//! - `volumeClaimTemplates` become one claim per member, kept when the set
//!   or the member goes unless `persistentVolumeClaimRetentionPolicy` says
//!   `Delete` (the claim is then owned by the set, or by the member scaled
//!   away, and the garbage collector takes it).

pub mod pods;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::history::{self, POD_REVISION_LABEL};
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use super::{claim, podutil};
use crate::events::{reference, Recorder, NORMAL, WARNING};

pub const AGENT: &str = "skiff-statefulset-controller";
pub const COMPONENT: &str = "statefulset-controller";
const WORKERS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    History(#[from] history::Error),
}

pub struct Ctx {
    client: kube::Client,
    sets: Arc<Informer<StatefulSet>>,
    pods: Arc<Informer<Pod>>,
    revisions: Arc<Informer<ControllerRevision>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    events: Recorder,
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        sets: informers.get::<StatefulSet>(),
        pods: informers.get::<Pod>(),
        revisions: informers.get::<ControllerRevision>(),
        claims: informers.get::<PersistentVolumeClaim>(),
    });
    let q = queue.clone();
    ctx.sets.on_change(move |c: &Change<'_, StatefulSet>| {
        if let (Some(o), Some(n)) = (c.old, c.new) {
            // Its own status writes.
            if o.spec == n.spec
                && o.metadata.labels == n.metadata.labels
                && o.metadata.deletion_timestamp == n.metadata.deletion_timestamp
            {
                return;
            }
        }
        if let Some(s) = c.latest() {
            q.add(Key::of(s.as_ref()));
        }
    });
    let (q, sets) = (queue.clone(), ctx.sets.clone());
    ctx.pods.on_change(move |c: &Change<'_, Pod>| {
        if let Some(p) = c.latest() {
            for key in podutil::owner_keys(&sets, "StatefulSet", &p.metadata, |s| {
                s.spec.as_ref().map(|s| &s.selector)
            }) {
                q.add(key);
            }
        }
    });
    ctx.sets.synced().await;
    ctx.pods.synced().await;
    ctx.revisions.synced().await;
    ctx.claims.synced().await;
    let c = ctx.clone();
    runtime::run_workers(COMPONENT, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn created(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| !p.is_empty())
}

fn running_and_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") && podutil::is_ready(p)
}

fn revision_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(POD_REVISION_LABEL)
        .map(String::as_str)
}

/// One pass over a set: what it sees, and the writes it makes.
struct Pass<'a> {
    ctx: &'a Ctx,
    sts: &'a StatefulSet,
    set: String,
    pod_api: Api<Pod>,
    claim_api: Api<PersistentVolumeClaim>,
    min_ready: i32,
    now: Timestamp,
}

impl Pass<'_> {
    fn event(&self, kind: &'static str, reason: &str, message: String) {
        self.ctx
            .events
            .object(reference(self.sts), kind, reason, message);
    }

    /// Healthy enough to go on past: Running, Ready, and available.
    fn healthy(&self, p: &Pod) -> bool {
        running_and_ready(p) && podutil::is_available(p, self.min_ready, self.now)
    }

    /// When a Ready member becomes available (minReadySeconds), if later.
    fn available_in(&self, p: &Pod) -> Option<Duration> {
        podutil::until_available(p, self.min_ready, self.now)
            .map(|s| Duration::from_secs(s.max(0) as u64 + 1))
    }

    async fn create(
        &self,
        ordinal: i32,
        template: &k8s_openapi::api::core::v1::PodTemplateSpec,
        revision: &str,
    ) -> Result<(), Error> {
        let pod_name = pods::name(&self.set, ordinal);
        let ns = self.sts.metadata.namespace.as_deref().unwrap_or_default();
        for c in pods::claims_for(self.sts, ordinal) {
            let cname = c.metadata.name.clone().unwrap_or_default();
            if self.ctx.claims.get(ns, &cname).is_some() {
                continue;
            }
            match self.claim_api.create(&PostParams::default(), &c).await {
                Ok(_) => self.event(
                    NORMAL,
                    "SuccessfulCreate",
                    format!(
                        "create Claim {cname} Pod {pod_name} in StatefulSet {} success",
                        self.set
                    ),
                ),
                Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => {}
                Err(e) => {
                    self.event(
                        WARNING,
                        "FailedCreate",
                        format!("create Claim {cname} for Pod {pod_name} in StatefulSet {} failed error: {e}", self.set),
                    );
                    return Err(e.into());
                }
            }
        }
        let pod = pods::pod_for(self.sts, template, revision, ordinal);
        match self.pod_api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.event(
                    NORMAL,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} successful",
                        self.set
                    ),
                );
                Ok(())
            }
            // Made by a pass ahead of the cache.
            Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => Ok(()),
            Err(e) => {
                self.event(
                    WARNING,
                    "FailedCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} failed error: {e}",
                        self.set
                    ),
                );
                Err(e.into())
            }
        }
    }

    async fn delete(&self, p: &Pod) -> Result<(), Error> {
        let name = p.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: p.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.pod_api.delete(&name, &dp).await {
            Ok(_) => {
                self.event(
                    NORMAL,
                    "SuccessfulDelete",
                    format!("delete Pod {name} in StatefulSet {} successful", self.set),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => Ok(()),
            Err(e) => {
                self.event(
                    WARNING,
                    "FailedDelete",
                    format!(
                        "delete Pod {name} in StatefulSet {} failed error: {e}",
                        self.set
                    ),
                );
                Err(e.into())
            }
        }
    }

    /// A member scaled away under `whenScaled: Delete`: its claims become
    /// its dependents, so they go with it.
    async fn hand_claims_to(&self, p: &Pod, ordinal: i32) -> Result<(), Error> {
        let ns = self.sts.metadata.namespace.as_deref().unwrap_or_default();
        for c in pods::claims_for(self.sts, ordinal) {
            let cname = c.metadata.name.clone().unwrap_or_default();
            let Some(have) = self.ctx.claims.get(ns, &cname) else {
                continue;
            };
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let mut refs = have.metadata.owner_references.clone().unwrap_or_default();
            if refs.iter().any(|r| r.uid == uid) {
                continue;
            }
            refs.push(OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: p.metadata.name.clone().unwrap_or_default(),
                uid,
                controller: None,
                block_owner_deletion: None,
            });
            let patch = json!({"metadata": {"ownerReferences": refs,
                "resourceVersion": have.metadata.resource_version}});
            match self
                .claim_api
                .patch(&cname, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(sts) = ctx.sets.get_key(key) else {
        return Ok(Action::Done);
    };
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let Some(spec) = sts.spec.as_ref() else {
        return Ok(Action::Done);
    };
    let ns = key.namespace.as_str();
    let uid = sts.metadata.uid.clone().unwrap_or_default();
    let set = sts.metadata.name.clone().unwrap_or_default();
    let owner = pods::owner_ref(&sts);

    // Revisions: the one the template is now, and the one members ran.
    let rev_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), ns);
    let revisions: Vec<Arc<ControllerRevision>> = ctx
        .revisions
        .list(ns)
        .into_iter()
        .filter(|r| podutil::controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let status = sts.status.clone().unwrap_or_default();
    let mut collisions = status.collision_count.unwrap_or(0);
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let update = history::ensure(
        &rev_api,
        &owner,
        &labels,
        &revisions,
        history::data_of(&spec.template),
        &mut collisions,
    )
    .await?;
    let update_name = update.metadata.name.clone().unwrap_or_default();
    let current = status
        .current_revision
        .as_ref()
        .and_then(|n| {
            revisions
                .iter()
                .find(|r| r.metadata.name.as_ref() == Some(n))
        })
        .map(|r| r.as_ref().clone())
        .unwrap_or_else(|| update.clone());
    let current_name = current.metadata.name.clone().unwrap_or_default();
    let current_template = history::template_of(&current).unwrap_or_else(|| spec.template.clone());

    // Members by ordinal.
    let pass = Pass {
        ctx,
        sts: &sts,
        set: set.clone(),
        pod_api: Api::namespaced(ctx.client.clone(), ns),
        claim_api: Api::namespaced(ctx.client.clone(), ns),
        min_ready: spec.min_ready_seconds.unwrap_or(0),
        now: Timestamp::now(),
    };
    let claimer = claim::Owner {
        reference: owner.clone(),
        selector: Some(&spec.selector),
        deleting: false,
    };
    let set_name = set.clone();
    let claimed = claimer
        .claim(&pass.pod_api, ctx.pods.list(ns), move |p: &Pod| {
            pods::ordinal(&set_name, p.metadata.name.as_deref().unwrap_or_default()).is_some()
        })
        .await?;
    let mut members: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
    for p in &claimed {
        if let Some(o) = pods::ordinal(&set, p.metadata.name.as_deref().unwrap_or_default()) {
            members.insert(o, p.clone());
        }
    }
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let range = start..start.saturating_add(replicas);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);

    let wait = step(
        &pass,
        &members,
        range.clone(),
        ordered,
        rolling,
        partition,
        (&current_template, &current_name),
        &update_name,
    )
    .await?;

    // Status, from what this pass saw.
    let mut st = StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        collision_count: (collisions > 0).then_some(collisions),
        current_revision: Some(current_name.clone()),
        update_revision: Some(update_name.clone()),
        conditions: status.conditions.clone(),
        ready_replicas: Some(0),
        current_replicas: Some(0),
        updated_replicas: Some(0),
        available_replicas: Some(0),
        ..Default::default()
    };
    let bump = |f: &mut Option<i32>| *f = Some(f.unwrap_or(0) + 1);
    for p in members.values() {
        if created(p) {
            st.replicas += 1;
        }
        if running_and_ready(p) {
            bump(&mut st.ready_replicas);
            if pass.healthy(p) {
                bump(&mut st.available_replicas);
            }
        }
        if created(p) && !terminating(p) {
            if revision_of(p) == Some(current_name.as_str()) {
                bump(&mut st.current_replicas);
            }
            if revision_of(p) == Some(update_name.as_str()) {
                bump(&mut st.updated_replicas);
            }
        }
    }
    // The rollout is done once every member runs the update and is ready.
    if rolling
        && st.updated_replicas == Some(st.replicas)
        && st.ready_replicas == Some(st.replicas)
        && st.replicas == replicas
    {
        st.current_revision = Some(update_name.clone());
        st.current_replicas = st.updated_replicas;
    }
    if sts.status.as_ref() != Some(&st) {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
        let mut s = serde_json::to_value(&st).unwrap_or_default();
        if s.get("collisionCount").is_none() {
            s["collisionCount"] = serde_json::Value::Null;
        }
        let patch =
            json!({"metadata": {"resourceVersion": sts.metadata.resource_version}, "status": s});
        api.patch_status(&set, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }

    // History: the revisions members still run, both named in the status,
    // and the newest others.
    let mut live: Vec<String> = claimed
        .iter()
        .filter_map(|p| revision_of(p).map(String::from))
        .collect();
    live.extend([current_name, update_name]);
    let limit = spec.revision_history_limit.unwrap_or(10);
    history::truncate(&rev_api, &revisions, &live, limit).await?;
    // A Ready member not yet available (minReadySeconds) changes
    // availableReplicas when its time comes, with no event to say so.
    let available_at = members
        .values()
        .filter(|p| running_and_ready(p))
        .filter_map(|p| pass.available_in(p))
        .min();
    let next = match (wait, available_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(next.map_or(Action::Done, Action::After))
}

/// The writes of one pass; Some(d) to look again after `d` (a member
/// becoming available).
#[allow(clippy::too_many_arguments)]
async fn step(
    pass: &Pass<'_>,
    members: &BTreeMap<i32, Arc<Pod>>,
    range: std::ops::Range<i32>,
    ordered: bool,
    rolling: bool,
    partition: i32,
    (current_template, current_name): (&k8s_openapi::api::core::v1::PodTemplateSpec, &str),
    update_name: &str,
) -> Result<Option<Duration>, Error> {
    let spec = pass.sts.spec.as_ref();
    let update_template = spec.map(|s| s.template.clone()).unwrap_or_default();
    // 1. Every member there and healthy, in order.
    for ord in range.clone() {
        match members.get(&ord) {
            None => {
                // Below the partition, a member is made as it was.
                let below = rolling && ord - range.start < partition;
                let (t, r) = if below {
                    (current_template, current_name)
                } else {
                    (&update_template, update_name)
                };
                pass.create(ord, t, r).await?;
                if ordered {
                    return Ok(None);
                }
            }
            Some(p) if podutil::is_terminal(p) && !terminating(p) => {
                pass.delete(p).await?;
                if ordered {
                    return Ok(None);
                }
            }
            Some(p) if ordered && (terminating(p) || !pass.healthy(p)) => {
                return Ok(pass.available_in(p));
            }
            Some(_) => {}
        }
    }
    // 2. Members beyond the count, from the highest.
    let deletes_claims = pods::deletes_claims(pass.sts, true);
    for (ord, p) in members.iter().rev().filter(|(o, _)| !range.contains(o)) {
        if terminating(p) {
            if ordered {
                return Ok(None);
            }
            continue;
        }
        if deletes_claims {
            pass.hand_claims_to(p, *ord).await?;
        }
        pass.delete(p).await?;
        if ordered {
            return Ok(None);
        }
    }
    // 3. The rolling update, from the highest ordinal down to the partition.
    if rolling {
        let floor = range.start.saturating_add(partition);
        for ord in range.rev().filter(|o| *o >= floor) {
            let Some(p) = members.get(&ord) else {
                return Ok(None);
            };
            if revision_of(p) != Some(update_name) && !terminating(p) {
                pass.delete(p).await?;
                return Ok(None);
            }
            if !pass.healthy(p) {
                return Ok(pass.available_in(p));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
