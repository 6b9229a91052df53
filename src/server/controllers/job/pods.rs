//! The Job's pods: how many run (created from the template, or the
//! newest deleted when too many), the back-off after failures, and the
//! tracking finalizer taken off once a pod is counted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use super::{
    index_of, pod_from_template, policy, Ctx, Error, Failures, BACKOFF_FIRST, BACKOFF_MAX, BURST,
    TRACKING_FINALIZER,
};
use crate::events::{reference, NORMAL, WARNING};
use crate::server::controllers::podutil;
use crate::server::controllers::runtime::{Action, Key};

pub(super) struct ManageInput<'a> {
    pub(super) succeeded: i32,
    pub(super) failed: i32,
    pub(super) parallelism: i32,
    pub(super) completions: Option<i32>,
    pub(super) indexed: bool,
    pub(super) completed: &'a BTreeSet<i32>,
    /// Indexes given up on (backoffLimitPerIndex): not run again.
    pub(super) failed_indexes: &'a BTreeSet<i32>,
    /// Failures per index so far (with backoffLimitPerIndex), for the
    /// next pod of it to carry and to back off from.
    pub(super) index_failures: &'a HashMap<i32, Failures>,
    /// backoffLimitPerIndex is set: each index backs off on its own.
    pub(super) per_index: bool,
    pub(super) now: Timestamp,
}

/// What is left of the back-off after `failures` (10 s doubling, at most
/// 6 min, from when the count last grew).
fn backoff_left((failed, since): Failures, now: Timestamp) -> Duration {
    if failed <= 0 {
        return Duration::ZERO;
    }
    let shift = (failed - 1).clamp(0, 10) as u32;
    let backoff = BACKOFF_FIRST.saturating_mul(1 << shift).min(BACKOFF_MAX);
    let elapsed =
        Duration::from_secs(u64::try_from(now.as_second() - since.as_second()).unwrap_or(0));
    backoff.saturating_sub(elapsed)
}

/// The failures of each index: the most any failed pod of it carries, plus
/// its own (counted failures only).
pub(super) fn index_failures(
    pods: &[Arc<Pod>],
    tracked: bool,
    ignored: &BTreeSet<&str>,
    outcome: impl Fn(&Pod) -> Option<bool>,
) -> HashMap<i32, i32> {
    let mut out = HashMap::new();
    if !tracked {
        return out;
    }
    for p in pods {
        let id = p.metadata.uid.as_deref().unwrap_or_default();
        if outcome(p) != Some(false) || ignored.contains(id) {
            continue;
        }
        if let Some(i) = index_of(p) {
            let n = policy::index_failures(p).saturating_add(1);
            let e = out.entry(i).or_insert(0);
            *e = (*e).max(n);
        }
    }
    out
}

/// Create or delete pods so that the right number run.
pub(super) async fn manage(
    ctx: &Ctx,
    key: &Key,
    job: &Job,
    pod_api: &Api<Pod>,
    active: &[&Arc<Pod>],
    m: ManageInput<'_>,
) -> Result<Action, Error> {
    if !ctx.expectations.satisfied(key) {
        return Ok(Action::Done);
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    // Back-off after failures: 10 s doubling from the last new failure;
    // with backoffLimitPerIndex each index from its own failures.
    let job_wait = {
        let mut f = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = f.entry(key.clone()).or_insert((uid.clone(), (0, m.now)));
        if entry.0 != uid {
            *entry = (uid.clone(), (0, m.now));
        }
        if m.failed > entry.1 .0 {
            entry.1 = (m.failed, m.now);
        }
        backoff_left(entry.1, m.now)
    };
    let wait = |i: Option<i32>| match (m.per_index, i) {
        (true, Some(i)) => m
            .index_failures
            .get(&i)
            .map_or(Duration::ZERO, |f| backoff_left(*f, m.now)),
        _ => job_wait,
    };
    // The soonest an index backing off may run again.
    let mut later: Option<Duration> = None;
    let want: Vec<Option<i32>> = if m.indexed {
        let running: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
        let n = m.completions.unwrap_or(0);
        let room = (m.parallelism as usize).saturating_sub(active.len());
        // An index backing off keeps no slot from the others (upstream's
        // pending indexes leave delayed ones out).
        (0..n)
            .filter(|i| {
                !m.completed.contains(i) && !m.failed_indexes.contains(i) && !running.contains(i)
            })
            .filter(|i| {
                let w = wait(Some(*i));
                if !w.is_zero() {
                    later = Some(later.map_or(w, |l: Duration| l.min(w)));
                }
                w.is_zero()
            })
            .take(room)
            .map(Some)
            .collect()
    } else {
        let target = match m.completions {
            Some(n) => m.parallelism.min((n - m.succeeded).max(0)),
            None if m.succeeded > 0 => 0,
            None => m.parallelism,
        } as usize;
        if active.len() > target {
            // Too many: the newest, least advanced go.
            let surplus = active.len() - target;
            let mut doomed: Vec<&Arc<Pod>> = active.to_vec();
            doomed.sort_by_key(|p| {
                (
                    podutil::is_ready(p),
                    std::cmp::Reverse(
                        p.metadata
                            .creation_timestamp
                            .as_ref()
                            .map(|t| t.0.as_second()),
                    ),
                )
            });
            doomed.truncate(surplus);
            delete_pods(ctx, key, job, pod_api, &doomed).await?;
            return Ok(Action::Done);
        }
        vec![None; target - active.len()]
    };
    let after = |d: Option<Duration>| d.map_or(Action::Done, Action::After);
    if want.is_empty() {
        return Ok(after(later));
    }
    let (now, waiting): (Vec<Option<i32>>, Vec<Option<i32>>) =
        want.into_iter().partition(|i| wait(*i).is_zero());
    let next = waiting.iter().map(|i| wait(*i)).chain(later).min();
    if now.is_empty() {
        return Ok(after(next));
    }
    let want: Vec<Option<i32>> = now.into_iter().take(BURST).collect();
    ctx.expectations.expect(key, want.len() as i64, 0);
    let pp = PostParams::default();
    let pods: Vec<Pod> = want
        .iter()
        .map(|i| {
            let failures = i.and_then(|i| m.index_failures.get(&i).map(|f| f.0));
            pod_from_template(job, *i, failures.unwrap_or(0))
        })
        .collect();
    let results = futures::future::join_all(pods.iter().map(|p| pod_api.create(&pp, p))).await;
    let mut first_err = None;
    for r in results {
        match r {
            Ok(p) => ctx.events.object(
                reference(job),
                NORMAL,
                "SuccessfulCreate",
                format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
            ),
            Err(e) => {
                ctx.expectations.created(key);
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        ctx.events.object(
            reference(job),
            WARNING,
            "FailedCreate",
            format!("Error creating: {e}"),
        );
        return Err(e.into());
    }
    Ok(after(next))
}

/// Take the tracking finalizer off a pod (its count is recorded).
pub(super) async fn release(api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let kept: Vec<&String> = pod
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING_FINALIZER)
        .collect();
    let patch =
        json!({"metadata": {"finalizers": kept, "resourceVersion": pod.metadata.resource_version}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete_pods(
    ctx: &Ctx,
    key: &Key,
    job: &Job,
    api: &Api<Pod>,
    pods: &[&Arc<Pod>],
) -> Result<(), Error> {
    if pods.is_empty() {
        return Ok(());
    }
    ctx.expectations.expect(key, 0, pods.len() as i64);
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: p.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => ctx.events.object(
                reference(job),
                NORMAL,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(kube::Error::Api(s)) if s.is_not_found() => ctx.expectations.deleted(key),
            Err(e) => {
                ctx.expectations.deleted(key);
                return Err(e.into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_the_last_failure_up_to_six_minutes() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).unwrap();
        assert_eq!(backoff_left((0, t0), t0), Duration::ZERO);
        assert_eq!(backoff_left((1, t0), at(3)), Duration::from_secs(7));
        assert_eq!(backoff_left((3, t0), at(10)), Duration::from_secs(30));
        assert_eq!(backoff_left((3, t0), at(60)), Duration::ZERO);
        assert_eq!(backoff_left((20, t0), t0), BACKOFF_MAX);
    }
}
