//! The Deployment controller: rolls a Deployment's pods from one template
//! to the next through ReplicaSets, one per revision, as upstream's.
//!
//! - `revisions.rs`: template hashes, the new ReplicaSet, revision numbers.
//! - `plan.rs`: the rollout arithmetic (maxSurge, maxUnavailable,
//!   proportional scaling), pure.
//! - `status.rs`: status and conditions.
//! - here: claiming ReplicaSets, the RollingUpdate and Recreate steps,
//!   pausing, history cleanup, and skiff's opt-in automatic rollback: with
//!   `skiff.dev/rollback-on-failure: "true"`, a rollout that exceeds its
//!   progress deadline goes back to the last revision that was complete
//!   (an event and a `RolledBack` condition say so), where upstream only
//!   reports the failure.
//!
//! `kubectl rollout undo` needs nothing here: kubectl itself copies an old
//! ReplicaSet's template into the Deployment, which this controller then
//! rolls out like any other change.

pub mod plan;
pub mod revisions;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::plan::Set;
use self::revisions::{DESIRED, MAX_REPLICAS, REVISION};
use self::status::{cond, set_condition};
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use super::{claim, podutil};
use crate::events::{reference, Recorder, NORMAL, WARNING};

pub const AGENT: &str = "skiff-deployment-controller";
pub const COMPONENT: &str = "deployment-controller";
/// The opt-in automatic rollback.
pub const ROLLBACK_ON_FAILURE: &str = "skiff.dev/rollback-on-failure";
/// The last revision that was complete, kept on the Deployment for the
/// automatic rollback.
pub const LAST_COMPLETE: &str = "skiff.dev/last-complete-revision";
pub const ROLLED_BACK: &str = "RolledBack";
const WORKERS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("no free name for the new replica set after five hash collisions")]
    NoFreeName,
}

pub struct Ctx {
    client: kube::Client,
    deployments: Arc<Informer<Deployment>>,
    sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    events: Recorder,
}

/// The Deployment that owns (or could adopt) `rs`.
fn owners_of(deployments: &Informer<Deployment>, rs: &ReplicaSet) -> Vec<Key> {
    podutil::owner_keys(deployments, "Deployment", &rs.metadata, |d| {
        d.spec.as_ref().map(|s| &s.selector)
    })
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        deployments: informers.get::<Deployment>(),
        sets: informers.get::<ReplicaSet>(),
        pods: informers.get::<Pod>(),
    });
    let q = queue.clone();
    ctx.deployments
        .on_change(move |c: &Change<'_, Deployment>| {
            if let Some(d) = c.latest() {
                q.add(Key::of(d.as_ref()));
            }
        });
    let (q, ds) = (queue.clone(), ctx.deployments.clone());
    ctx.sets.on_change(move |c: &Change<'_, ReplicaSet>| {
        for rs in [c.old, c.new].into_iter().flatten() {
            for k in owners_of(&ds, rs) {
                q.add(k);
            }
        }
    });
    // Recreate waits for the old pods to be gone: their leaving is news.
    let (q, ds, sets) = (queue.clone(), ctx.deployments.clone(), ctx.sets.clone());
    ctx.pods.on_change(move |c: &Change<'_, Pod>| {
        let gone = c.new.is_none_or(|p| !podutil::is_active(p));
        let Some(pod) = c.latest().filter(|_| gone) else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(rs) = podutil::controller_of(&pod.metadata)
            .filter(|r| r.kind == "ReplicaSet")
            .and_then(|r| sets.get(ns, &r.name))
        else {
            return;
        };
        for k in owners_of(&ds, &rs) {
            let recreate = ds.get_key(&k).is_some_and(|d| {
                d.spec
                    .as_ref()
                    .and_then(|s| s.strategy.as_ref())
                    .and_then(|s| s.type_.as_deref())
                    == Some("Recreate")
            });
            if recreate {
                q.add(k);
            }
        }
    });
    ctx.deployments.synced().await;
    ctx.sets.synced().await;
    ctx.pods.synced().await;
    let c = ctx.clone();
    runtime::run_workers(COMPONENT, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

fn set_of(rs: &ReplicaSet) -> Set {
    Set {
        name: rs.metadata.name.clone().unwrap_or_default(),
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
        created: rs
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
    }
}

/// One pass over one Deployment, with what it works on.
struct Pass<'a> {
    ctx: &'a Ctx,
    d: Arc<Deployment>,
    key: &'a Key,
    replicas: i32,
    surge: i32,
    unavailable: i32,
    now: Timestamp,
    /// Set when this pass created the new ReplicaSet, or found it.
    progress_note: Option<(&'static str, String)>,
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(d) = ctx.deployments.get_key(key) else {
        return Ok(Action::Done);
    };
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::Done);
    };
    let replicas = spec.replicas.unwrap_or(1);
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let (surge, unavailable) = match spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) {
        Some("Recreate") => (0, 0),
        _ => plan::surge_and_unavailable(
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            replicas,
        ),
    };
    let mut pass = Pass {
        ctx,
        d: d.clone(),
        key,
        replicas,
        surge,
        unavailable,
        now: Timestamp::now(),
        progress_note: None,
    };
    let sets = pass.claim().await?;
    if d.metadata.deletion_timestamp.is_some() {
        return pass.write_status(&sets, None).await;
    }
    if spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.is_empty())
        && spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
    {
        ctx.events.object(
            reference(d.as_ref()),
            WARNING,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(Action::Done);
    }
    let paused = spec.paused == Some(true);
    let new = revisions::find_new(&d, &sets);
    if paused || pass.scaling_event(&sets, new.as_deref()) {
        pass.scale(&sets, new.as_deref()).await?;
        let sets = pass.sets();
        return pass.write_status(&sets, new.as_deref()).await;
    }
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    if recreate {
        pass.recreate(sets, new).await
    } else {
        pass.rolling(sets, new).await
    }
}

impl Pass<'_> {
    fn api_sets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), &self.key.namespace)
    }

    /// The ReplicaSets the Deployment controls now (from the informer).
    fn sets(&self) -> Vec<Arc<ReplicaSet>> {
        let uid = self.d.metadata.uid.as_deref().unwrap_or_default();
        self.ctx
            .sets
            .list(&self.key.namespace)
            .into_iter()
            .filter(|rs| podutil::controller_of(&rs.metadata).is_some_and(|r| r.uid == uid))
            .collect()
    }

    /// Adopt matching orphans, release controlled sets that stopped
    /// matching; the sets the Deployment controls.
    async fn claim(&self) -> Result<Vec<Arc<ReplicaSet>>, Error> {
        let d = &self.d;
        let owner = claim::Owner {
            reference: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: d.metadata.name.clone().unwrap_or_default(),
                uid: d.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            selector: d.spec.as_ref().map(|s| &s.selector),
            deleting: d.metadata.deletion_timestamp.is_some(),
        };
        let sets = self.ctx.sets.list(&self.key.namespace);
        Ok(owner.claim(&self.api_sets(), sets, |_| true).await?)
    }

    /// Set one ReplicaSet's size (and the annotations that record the
    /// Deployment's size for proportional scaling).
    async fn resize(&self, rs: &ReplicaSet, size: i32) -> Result<(), Error> {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let cur = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let ann = rs.metadata.annotations.clone().unwrap_or_default();
        let desired = self.replicas.to_string();
        let max = self.replicas.saturating_add(self.surge).to_string();
        if cur == size && ann.get(DESIRED) == Some(&desired) && ann.get(MAX_REPLICAS) == Some(&max)
        {
            return Ok(());
        }
        let patch = json!({
            "metadata": {"annotations": {DESIRED: desired, MAX_REPLICAS: max}},
            "spec": {"replicas": size},
        });
        gone_ok(
            self.api_sets()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )?;
        if cur != size {
            let verb = if size > cur { "up" } else { "down" };
            self.ctx.events.object(
                reference(self.d.as_ref()),
                NORMAL,
                "ScalingReplicaSet",
                format!("Scaled {verb} replica set {name} from {cur} to {size}"),
            );
        }
        Ok(())
    }

    /// Whether the Deployment was scaled (its size differs from what its
    /// active sets were sized for).
    fn scaling_event(&self, sets: &[Arc<ReplicaSet>], _new: Option<&ReplicaSet>) -> bool {
        let want = self.replicas.to_string();
        sets.iter()
            .filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
            .any(|rs| {
                rs.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DESIRED))
                    .is_some_and(|v| *v != want)
            })
    }

    /// Scale without rolling: the new set alone takes all when it is the
    /// only one with pods, else the change is spread proportionally.
    async fn scale(
        &mut self,
        sets: &[Arc<ReplicaSet>],
        new: Option<&ReplicaSet>,
    ) -> Result<(), Error> {
        let active: Vec<&Arc<ReplicaSet>> = sets
            .iter()
            .filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
            .collect();
        if active.len() <= 1 {
            let target = active.first().map(|a| a.as_ref()).or(new);
            if let Some(rs) = target {
                self.resize(rs, self.replicas).await?;
            }
            return Ok(());
        }
        let mut ordered: Vec<&Arc<ReplicaSet>> = active.clone();
        ordered.sort_by_key(|rs| std::cmp::Reverse(set_of(rs).created));
        let plan_sets: Vec<Set> = ordered.iter().map(|rs| set_of(rs)).collect();
        let surge = if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            0
        } else {
            self.surge
        };
        let sizes = plan::proportional(self.replicas, surge, &plan_sets);
        for rs in ordered {
            let size = sizes
                .iter()
                .find(|(n, _)| Some(n) == rs.metadata.name.as_ref())
                .map_or(set_of(rs).replicas, |(_, s)| *s);
            self.resize(rs, size).await?;
        }
        Ok(())
    }

    /// The new ReplicaSet, created when missing (with a new revision).
    async fn ensure_new(
        &mut self,
        sets: &[Arc<ReplicaSet>],
        new: Option<Arc<ReplicaSet>>,
        size: i32,
    ) -> Result<Arc<ReplicaSet>, Error> {
        let max_old = sets
            .iter()
            .filter(|rs| {
                new.as_ref()
                    .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
            })
            .map(|rs| revisions::revision(rs))
            .max()
            .unwrap_or(0);
        if let Some(n) = new {
            // A set brought back (a rollback) takes the next revision.
            if revisions::revision(&n) <= max_old {
                let name = n.metadata.name.clone().unwrap_or_default();
                let patch =
                    json!({"metadata": {"annotations": {REVISION: (max_old + 1).to_string()}}});
                gone_ok(
                    self.api_sets()
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
            }
            let has_progress = self
                .d
                .status
                .as_ref()
                .and_then(|s| status::condition(s, status::PROGRESSING))
                .is_some();
            if !has_progress {
                let name = n.metadata.name.clone().unwrap_or_default();
                self.progress_note = Some((
                    status::FOUND_NEW_RS,
                    format!("Found new replica set {name:?}"),
                ));
            }
            return Ok(n);
        }
        let mut collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let api = self.api_sets();
        for _ in 0..5 {
            let template = self
                .d
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
            let hash = revisions::template_hash(&template, collisions);
            let rs = revisions::new_replicaset(&self.d, &hash, max_old + 1, size, self.surge);
            match api.create(&PostParams::default(), &rs).await {
                Ok(made) => {
                    let name = made.metadata.name.clone().unwrap_or_default();
                    self.ctx.events.object(
                        reference(self.d.as_ref()),
                        NORMAL,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {name} from 0 to {size}"),
                    );
                    self.progress_note = Some((
                        status::NEW_RS_CREATED,
                        format!("Created new replica set {name:?}"),
                    ));
                    if collisions != self.d.status.as_ref().and_then(|s| s.collision_count) {
                        let patch = json!({"status": {"collisionCount": collisions}});
                        let d_api: Api<Deployment> =
                            Api::namespaced(self.ctx.client.clone(), &self.key.namespace);
                        d_api
                            .patch_status(
                                &self.key.name,
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await?;
                    }
                    return Ok(Arc::new(made));
                }
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                    // Ours with the same template (a lagging informer):
                    // use it; someone else's: a hash collision.
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    let existing = api.get(&name).await?;
                    let ours = podutil::controller_of(&existing.metadata)
                        .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                    let same = existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|t| revisions::same_template(t, &template));
                    if ours && same {
                        return Ok(Arc::new(existing));
                    }
                    collisions = Some(collisions.unwrap_or(0).saturating_add(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::NoFreeName)
    }

    async fn rolling(
        &mut self,
        sets: Vec<Arc<ReplicaSet>>,
        new: Option<Arc<ReplicaSet>>,
    ) -> Result<Action, Error> {
        let first = if new.is_none() {
            let probe = Set {
                name: String::new(),
                replicas: 0,
                available: 0,
                created: 0,
            };
            let all: Vec<Set> = sets.iter().map(|rs| set_of(rs)).collect();
            let refs: Vec<&Set> = all.iter().collect();
            plan::new_rs_size(self.replicas, self.surge, &probe, &refs)
        } else {
            0
        };
        let new = self.ensure_new(&sets, new, first).await?;
        let new_uid = new.metadata.uid.clone();
        let old: Vec<Arc<ReplicaSet>> = sets
            .iter()
            .filter(|rs| rs.metadata.uid != new_uid)
            .cloned()
            .collect();
        // Grow the new set.
        let new_set = set_of(&new);
        let all: Vec<Set> = std::iter::once(new_set.clone())
            .chain(old.iter().map(|rs| set_of(rs)))
            .collect();
        let refs: Vec<&Set> = all.iter().collect();
        let size = plan::new_rs_size(self.replicas, self.surge, &new_set, &refs);
        if size != new_set.replicas || new_set.replicas > self.replicas {
            self.resize(&new, size.min(self.replicas)).await?;
            let sets = self.sets();
            return self.write_status(&sets, Some(&new)).await;
        }
        // Shrink the old ones.
        let old_sets: Vec<Set> = old.iter().map(|rs| set_of(rs)).collect();
        let sizes = plan::old_rs_sizes(self.replicas, self.unavailable, &new_set, &old_sets);
        if !sizes.is_empty() {
            for (name, n) in &sizes {
                if let Some(rs) = old
                    .iter()
                    .find(|rs| rs.metadata.name.as_ref() == Some(name))
                {
                    self.resize(rs, *n).await?;
                }
            }
            let sets = self.sets();
            return self.write_status(&sets, Some(&new)).await;
        }
        // Keep the new set's annotations current.
        self.resize(&new, new_set.replicas).await?;
        let sets = self.sets();
        let action = self.write_status(&sets, Some(&new)).await?;
        self.cleanup(&sets, &new).await?;
        Ok(action)
    }

    async fn recreate(
        &mut self,
        sets: Vec<Arc<ReplicaSet>>,
        new: Option<Arc<ReplicaSet>>,
    ) -> Result<Action, Error> {
        let new_uid = new.as_ref().and_then(|n| n.metadata.uid.clone());
        let old: Vec<&Arc<ReplicaSet>> = sets
            .iter()
            .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
            .collect();
        let mut scaled = false;
        for rs in &old {
            if rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0 {
                self.resize(rs, 0).await?;
                scaled = true;
            }
        }
        if scaled {
            let sets = self.sets();
            return self.write_status(&sets, new.as_deref()).await;
        }
        // Wait until no pod of an old set is left running.
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let running = self.ctx.pods.list(&self.key.namespace).iter().any(|p| {
            !podutil::is_terminal(p)
                && podutil::controller_of(&p.metadata)
                    .is_some_and(|r| old_uids.contains(&r.uid.as_str()))
        });
        if running {
            let sets = self.sets();
            return self.write_status(&sets, new.as_deref()).await;
        }
        let new = self.ensure_new(&sets, new, self.replicas).await?;
        self.resize(&new, self.replicas).await?;
        let sets = self.sets();
        let action = self.write_status(&sets, Some(&new)).await?;
        self.cleanup(&sets, &new).await?;
        Ok(action)
    }

    /// Delete old, empty ReplicaSets beyond revisionHistoryLimit, oldest
    /// revision first.
    async fn cleanup(&self, sets: &[Arc<ReplicaSet>], new: &ReplicaSet) -> Result<(), Error> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut empty: Vec<&Arc<ReplicaSet>> = sets
            .iter()
            .filter(|rs| rs.metadata.uid != new.metadata.uid)
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .filter(|rs| {
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
                    && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
            })
            .collect();
        if empty.len() <= limit {
            return Ok(());
        }
        empty.sort_by_key(|rs| revisions::revision(rs));
        let api = self.api_sets();
        for rs in empty.iter().take(empty.len() - limit) {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let dp = DeleteParams {
                preconditions: rs.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            gone_ok(api.delete(&name, &dp).await)?;
        }
        Ok(())
    }

    /// Write the status (and the revision annotations); roll back when
    /// asked to and the rollout has timed out; the next look, if a
    /// deadline is running.
    async fn write_status(
        &mut self,
        sets: &[Arc<ReplicaSet>],
        new: Option<&ReplicaSet>,
    ) -> Result<Action, Error> {
        let d = self.d.clone();
        let now = self.now;
        let mut s: DeploymentStatus = status::counts(&d, new, sets, self.unavailable, now);
        let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        let cur_reason = status::condition(&s, status::PROGRESSING).and_then(|c| c.reason.clone());
        if status::deadline(&d).is_some() {
            if paused && cur_reason.as_deref() != Some(status::PAUSED) {
                set_condition(
                    &mut s,
                    cond(
                        status::PROGRESSING,
                        "Unknown",
                        status::PAUSED,
                        "Deployment is paused".into(),
                        now,
                    ),
                );
            } else if !paused && cur_reason.as_deref() == Some(status::PAUSED) {
                set_condition(
                    &mut s,
                    cond(
                        status::PROGRESSING,
                        "Unknown",
                        status::RESUMED,
                        "Deployment is resumed".into(),
                        now,
                    ),
                );
            }
        }
        if let Some((reason, message)) = self.progress_note.take() {
            // A new revision: an earlier automatic rollback is history.
            if reason == status::NEW_RS_CREATED {
                status::remove_condition(&mut s, ROLLED_BACK);
            }
            if status::deadline(&d).is_some() {
                set_condition(
                    &mut s,
                    cond(status::PROGRESSING, "True", reason, message, now),
                );
            }
        }
        if !paused {
            status::progress(&d, &mut s, new, now);
        }
        let was_timed_out = d.status.as_ref().is_some_and(status::timed_out);
        if status::timed_out(&s) && !was_timed_out {
            let name = new
                .and_then(|n| n.metadata.name.clone())
                .unwrap_or_default();
            self.ctx.events.object(
                reference(d.as_ref()),
                WARNING,
                status::TIMED_OUT,
                format!("ReplicaSet {name:?} has timed out progressing."),
            );
        }
        self.annotate(new, &s).await?;
        let rollback = if status::timed_out(&s) && !paused {
            self.rollback_target(sets, new)
        } else {
            None
        };
        if let Some((target, _)) = &rollback {
            let failed = new
                .and_then(|n| n.metadata.name.clone())
                .unwrap_or_default();
            let message = format!(
                "Rolled back to revision {target}: replica set {failed:?} exceeded its progress deadline"
            );
            set_condition(
                &mut s,
                cond(ROLLED_BACK, "True", status::TIMED_OUT, message, now),
            );
        }
        if d.status.as_ref() != Some(&s) {
            let mut patch = json!({"status": s});
            if s.conditions.is_none() {
                patch["status"]["conditions"] = serde_json::Value::Null;
            }
            let api: Api<Deployment> =
                Api::namespaced(self.ctx.client.clone(), &self.key.namespace);
            gone_ok(
                api.patch_status(
                    &self.key.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await,
            )?;
        }
        if let Some((target, template)) = rollback {
            self.roll_back(target, template, &s).await?;
        }
        let left = if paused {
            None
        } else {
            status::time_left(&d, &s, now)
        };
        Ok(match left {
            Some(secs) => Action::After(Duration::from_secs(u64::try_from(secs).unwrap_or(0) + 1)),
            None => Action::Done,
        })
    }

    /// The Deployment's own annotations: its current revision, and the last
    /// revision that was complete.
    async fn annotate(&self, new: Option<&ReplicaSet>, s: &DeploymentStatus) -> Result<(), Error> {
        let Some(new) = new else { return Ok(()) };
        let d = &self.d;
        let ann = d.metadata.annotations.clone().unwrap_or_default();
        let rev = revisions::revision(new).to_string();
        let mut patch = serde_json::Map::new();
        if ann.get(REVISION) != Some(&rev) && rev != "0" {
            patch.insert(REVISION.into(), json!(rev));
        }
        if status::complete(d, s) && ann.get(LAST_COMPLETE) != Some(&rev) && rev != "0" {
            patch.insert(LAST_COMPLETE.into(), json!(rev));
        }
        if patch.is_empty() {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &self.key.namespace);
        let body = json!({"metadata": {"annotations": patch}});
        gone_ok(
            api.patch(
                &self.key.name,
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await,
        )?;
        Ok(())
    }

    /// The revision and template to go back to when the Deployment asks
    /// for automatic rollback and its last complete revision is another.
    fn rollback_target(
        &self,
        sets: &[Arc<ReplicaSet>],
        new: Option<&ReplicaSet>,
    ) -> Option<(i64, k8s_openapi::api::core::v1::PodTemplateSpec)> {
        let ann = self.d.metadata.annotations.clone().unwrap_or_default();
        if ann.get(ROLLBACK_ON_FAILURE).map(String::as_str) != Some("true") {
            return None;
        }
        let target = ann.get(LAST_COMPLETE)?.parse::<i64>().ok()?;
        if new.map(revisions::revision) == Some(target) {
            return None;
        }
        let rs = sets.iter().find(|rs| revisions::revision(rs) == target)?;
        let mut template = rs.spec.as_ref()?.template.clone()?;
        if let Some(l) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(revisions::HASH_LABEL);
        }
        Some((target, template))
    }

    /// skiff's automatic rollback: the template of the last complete
    /// revision goes back into the Deployment (as `kubectl rollout undo`
    /// does), which then rolls it out.
    async fn roll_back(
        &self,
        target: i64,
        template: k8s_openapi::api::core::v1::PodTemplateSpec,
        s: &DeploymentStatus,
    ) -> Result<(), Error> {
        let d = &self.d;
        let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &self.key.namespace);
        let patch = json!([
            {"op": "test", "path": "/metadata/uid", "value": d.metadata.uid},
            {"op": "replace", "path": "/spec/template", "value": template},
        ]);
        let Ok(patch) = serde_json::from_value::<json_patch::Patch>(patch) else {
            return Ok(());
        };
        gone_ok(
            api.patch(
                &self.key.name,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await,
        )?;
        let message = status::condition(s, ROLLED_BACK)
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| format!("Rolled back to revision {target}"));
        self.ctx.events.object(
            reference(d.as_ref()),
            WARNING,
            "DeploymentRollback",
            message,
        );
        Ok(())
    }
}

fn gone_ok<T>(r: Result<T, kube::Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
