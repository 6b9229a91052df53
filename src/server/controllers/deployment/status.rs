//! A Deployment's status from its ReplicaSets, and its conditions as
//! upstream's controller sets them (what `kubectl rollout status` and
//! `kubectl describe` read):
//!
//! - `Available`: at least `replicas - maxUnavailable` pods available.
//! - `Progressing`: `NewReplicaSetCreated` / `FoundNewReplicaSet` when the
//!   new ReplicaSet appears, `ReplicaSetUpdated` each time the rollout moves
//!   on, `NewReplicaSetAvailable` once it is complete, and False with
//!   `ProgressDeadlineExceeded` when it has not moved for
//!   `progressDeadlineSeconds`; `DeploymentPaused`/`DeploymentResumed`
//!   (Unknown) while paused and when resumed.
//! - `ReplicaFailure`, copied from a ReplicaSet that cannot create pods.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

/// progressDeadlineSeconds of this value means none (upstream's rule).
const NO_DEADLINE: i32 = i32::MAX;

pub fn deadline(d: &Deployment) -> Option<i32> {
    let s = d.spec.as_ref()?.progress_deadline_seconds.unwrap_or(600);
    (s != NO_DEADLINE).then_some(s)
}

pub fn condition<'a>(s: &'a DeploymentStatus, kind: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

/// Set `c`, keeping the transition time when the status does not change
/// (and the whole condition when nothing does).
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let list = s.conditions.get_or_insert_with(Vec::new);
    if let Some(old) = list.iter().find(|o| o.type_ == c.type_) {
        if old.status == c.status && old.reason == c.reason && old.message == c.message {
            return;
        }
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    list.retain(|o| o.type_ != c.type_);
    list.push(c);
}

pub fn remove_condition(s: &mut DeploymentStatus, kind: &str) {
    if let Some(list) = s.conditions.as_mut() {
        list.retain(|c| c.type_ != kind);
        if list.is_empty() {
            s.conditions = None;
        }
    }
}

pub fn cond(
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn rs_replicas(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.as_ref();
    (
        s.map_or(0, |s| s.replicas),
        s.and_then(|s| s.ready_replicas).unwrap_or(0),
        s.and_then(|s| s.available_replicas).unwrap_or(0),
    )
}

/// The counts and the Available and ReplicaFailure conditions.
pub fn counts(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    all: &[Arc<ReplicaSet>],
    max_unavailable: i32,
    now: Timestamp,
) -> DeploymentStatus {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let (mut replicas, mut ready, mut available) = (0, 0, 0);
    for rs in all {
        let (r, re, a) = rs_replicas(rs);
        replicas += r;
        ready += re;
        available += a;
    }
    let prev = d.status.clone().unwrap_or_default();
    let mut s = DeploymentStatus {
        replicas: Some(replicas),
        updated_replicas: Some(new.map_or(0, |n| rs_replicas(n).0)),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((want - available).max(0)),
        observed_generation: d.metadata.generation,
        collision_count: prev.collision_count,
        conditions: prev.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= want - max_unavailable {
        set_condition(
            &mut s,
            cond(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut s,
            cond(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    let failure = all.iter().find_map(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut s,
            DeploymentCondition {
                type_: REPLICA_FAILURE.into(),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time,
            },
        ),
        None => remove_condition(&mut s, REPLICA_FAILURE),
    }
    s
}

/// Whether the rollout is done: every replica updated and available.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
        && s.observed_generation >= d.metadata.generation
}

/// Whether the rollout moved since the status `d` holds.
fn progressed(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let o = |x: Option<i32>| x.unwrap_or(0);
    let old_old = o(old.replicas) - o(old.updated_replicas);
    let new_old = o(s.replicas) - o(s.updated_replicas);
    o(s.updated_replicas) > o(old.updated_replicas)
        || new_old < old_old
        || o(s.ready_replicas) > o(old.ready_replicas)
        || o(s.available_replicas) > o(old.available_replicas)
}

/// Seconds until the rollout times out (None: it cannot, or has).
pub fn time_left(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> Option<i64> {
    let limit = deadline(d)?;
    let c = condition(s, PROGRESSING)?;
    if c.reason.as_deref() != Some(RS_UPDATED)
        && c.reason.as_deref() != Some(NEW_RS_CREATED)
        && c.reason.as_deref() != Some(FOUND_NEW_RS)
        && c.reason.as_deref() != Some(RESUMED)
    {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0.as_second();
    let left = from + i64::from(limit) - now.as_second();
    Some(left.max(0))
}

/// The Progressing condition after this pass (upstream's
/// syncRolloutStatus), for a Deployment that is not paused.
pub fn progress(
    d: &Deployment,
    s: &mut DeploymentStatus,
    new: Option<&ReplicaSet>,
    now: Timestamp,
) {
    if deadline(d).is_none() {
        remove_condition(s, PROGRESSING);
        return;
    }
    let name = new
        .and_then(|n| n.metadata.name.clone())
        .unwrap_or_default();
    let cur = condition(s, PROGRESSING).cloned();
    let done = s.replicas == s.updated_replicas
        && cur
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if done {
        return;
    }
    if complete(d, s) {
        set_condition(
            s,
            cond(
                PROGRESSING,
                "True",
                NEW_RS_AVAILABLE,
                format!("ReplicaSet {name:?} has successfully progressed."),
                now,
            ),
        );
    } else if progressed(d, s) {
        let mut c = cond(
            PROGRESSING,
            "True",
            RS_UPDATED,
            format!("ReplicaSet {name:?} is progressing."),
            now,
        );
        if let Some(old) = cur.filter(|o| o.status == "True") {
            c.last_transition_time = old.last_transition_time;
        }
        // Always written: the update time is what the deadline counts from.
        s.conditions
            .get_or_insert_with(Vec::new)
            .retain(|o| o.type_ != PROGRESSING);
        s.conditions.get_or_insert_with(Vec::new).push(c);
    } else if time_left(d, s, now) == Some(0) {
        set_condition(
            s,
            cond(
                PROGRESSING,
                "False",
                TIMED_OUT,
                format!("ReplicaSet {name:?} has timed out progressing."),
                now,
            ),
        );
    }
}

/// Whether the rollout has timed out.
pub fn timed_out(s: &DeploymentStatus) -> bool {
    condition(s, PROGRESSING).is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT))
}
