//! The Job controller: runs pods until `completions` of them succeed
//! (`parallelism` at a time), or gives up, as upstream's.
//!
//! - **Counting without loss** (upstream's job-tracking finalizer): every
//!   pod is created with `batch.kubernetes.io/job-tracking`. A finished pod
//!   is first recorded in `status.uncountedTerminatedPods` (and, for an
//!   Indexed Job, its index in `completedIndexes`), then its finalizer is
//!   removed, then it is moved into `succeeded`/`failed`. A pod is thus
//!   counted exactly once, even when it is deleted at once, or the server
//!   stops in between.
//! - A pod being deleted counts as failed at once (upstream's default
//!   podReplacementPolicy for Jobs without a podFailurePolicy); with
//!   `podReplacementPolicy: Failed`, once it has ended.
//! - **Policies** (`policy.rs`): a pod failure policy's first matching rule
//!   fails the Job (`PodFailurePolicy`), fails the index, ignores the
//!   failure or counts it; `backoffLimitPerIndex` gives each index its own
//!   retries (`failedIndexes`, `maxFailedIndexes`, `FailedIndexes`); a
//!   success policy completes an Indexed Job early (`SuccessPolicy`).
//! - **Giving up**: more failures than `backoffLimit` (`BackoffLimitExceeded`)
//!   or running longer than `activeDeadlineSeconds` (`DeadlineExceeded`):
//!   the remaining pods are deleted, and the Job gets `FailureTarget` at
//!   once and `Failed` once none of its pods runs or terminates (upstream
//!   since 1.31). Pods are recreated after failures with upstream's back-off
//!   (10 s doubling, at most 6 min).
//! - **Indexed** Jobs: each index once, its pod named `<job>-<i>-…`, with
//!   hostname `<job>-<i>`, the index as annotation and label, and
//!   `JOB_COMPLETION_INDEX` in every container.
//! - **Done**: `SuccessCriteriaMet` (pods still running are deleted), then
//!   `Complete` with completionTime once none runs or terminates.
//! - `suspend: true` deletes the pods and sets `Suspended`.
//!
//! `ttlSecondsAfterFinished` is the TTL-after-finished controller's.
//! With `restartPolicy: OnFailure`, the running pods' container restarts
//! count toward the back-off limit.

pub mod indexes;
mod orphans;
mod pods;
pub mod policy;
pub mod template;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::pods::{delete_pods, index_failures, manage, release, ManageInput};
use self::policy::Verdict;
pub use self::template::pod_from_template;
use super::expectations::Expectations;
use super::podutil;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use crate::events::{reference, Recorder, NORMAL, WARNING};

pub const AGENT: &str = "skiff-job-controller";
pub const COMPONENT: &str = "job-controller";
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
const WORKERS: usize = 5;
const BACKOFF_FIRST: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// Pods created per pass at most.
const BURST: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// A failure count, and when it last grew (back-off runs from then).
pub(super) type Failures = (i32, Timestamp);

/// A Job's UID and its failures per index.
type IndexFailures = (String, HashMap<i32, Failures>);

pub struct Ctx {
    client: kube::Client,
    jobs: Arc<Informer<Job>>,
    pods: Arc<Informer<Pod>>,
    expectations: Arc<Expectations>,
    events: Recorder,
    /// Per Job: its UID and the failures seen.
    failures: Mutex<HashMap<Key, (String, Failures)>>,
    /// Per Job: (its UID, failures per index), so a count outlives the
    /// failed pods that carried it (backoffLimitPerIndex).
    index_failures: Mutex<HashMap<Key, IndexFailures>>,
    /// Pods whose tracking finalizer no Job will take off (`orphans.rs`).
    orphans: Arc<Queue<Key>>,
}

/// Pods being deleted that have not ended yet (the Job's `terminating`).
fn terminating(pods: &[Arc<Pod>]) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && !podutil::is_terminal(p))
        .count() as i32
}

fn job_of(pod: &Pod) -> Option<Key> {
    let r = podutil::controller_of(&pod.metadata)?;
    (r.kind == "Job").then(|| {
        Key::new(
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            &r.name,
        )
    })
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let orphans = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        jobs: informers.get::<Job>(),
        pods: informers.get::<Pod>(),
        expectations: Arc::new(Expectations::default()),
        failures: Mutex::new(HashMap::new()),
        index_failures: Mutex::new(HashMap::new()),
        orphans: orphans.clone(),
    });
    let q = queue.clone();
    // Status changes too: counting goes in steps, each from the status the
    // last one wrote (and each writes only when something changed).
    ctx.jobs.on_change(move |c: &Change<'_, Job>| {
        if let Some(j) = c.latest() {
            q.add(Key::of(j.as_ref()));
        }
    });
    let (q, exp, o) = (queue.clone(), ctx.expectations.clone(), orphans.clone());
    ctx.pods.on_change(move |c: &Change<'_, Pod>| {
        if let Some(p) = c.new.filter(|p| has_finalizer(p)) {
            if podutil::controller_of(&p.metadata).is_none() {
                o.add(Key::of(p.as_ref()));
            }
        }
        let Some(key) = c.latest().and_then(|p| job_of(p)) else {
            return;
        };
        if c.old.is_none() {
            exp.created(&key);
        }
        // Marked for deletion counts as deleted, as upstream's: a pod its
        // node takes a while to stop holds nothing up.
        let marked =
            |p: Option<&Arc<Pod>>| p.is_some_and(|p| p.metadata.deletion_timestamp.is_some());
        let gone_now = c.new.is_none() && !marked(c.old);
        if gone_now || (!marked(c.old) && marked(c.new)) {
            exp.deleted(&key);
        }
        q.add(key);
    });
    ctx.jobs.synced().await;
    ctx.pods.synced().await;
    let c = ctx.clone();
    let jobs = runtime::run_workers(
        COMPONENT,
        queue,
        WORKERS,
        cancel.clone(),
        move |key: Key| {
            let c = c.clone();
            async move { reconcile(&c, &key).await }
        },
    );
    let c = ctx.clone();
    let released = runtime::run_workers(COMPONENT, orphans, 1, cancel, move |key: Key| {
        let c = c.clone();
        async move { orphans::sync(&c, &key).await }
    });
    tokio::join!(jobs, released);
}

/// With `restartPolicy: OnFailure` a failing container restarts in its
/// pod instead of failing it: the restarts of the running pods are what
/// the back-off limit counts, as upstream.
fn past_limit_on_failure(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    pods: &[Arc<Pod>],
    limit: i32,
) -> bool {
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    if !on_failure {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(phase(p), Some("Running" | "Pending")))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| i64::from(c.restart_count))
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= i64::from(limit)
    }
}

fn has_condition(s: &JobStatus, kind: &str) -> bool {
    s.conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == kind && c.status == "True")
}

fn condition(kind: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: kind.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The reason and message of a SuccessCriteriaMet already recorded.
fn targeted_success(s: &JobStatus) -> Option<(String, String)> {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "SuccessCriteriaMet" && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

fn set_condition(s: &mut JobStatus, c: JobCondition) {
    let list = s.conditions.get_or_insert_with(Vec::new);
    if let Some(old) = list.iter_mut().find(|o| o.type_ == c.type_) {
        if old.status != c.status {
            *old = c;
        }
    } else {
        list.push(c);
    }
}

fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(INDEX_ANNOTATION)?
        .parse()
        .ok()
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// How a pod of the Job ended, if it did. A pod being deleted counts as
/// failed unless it succeeded, except with `podReplacementPolicy: Failed`
/// (the default with a pod failure policy), where only its end does.
fn outcome(pod: &Pod, deleting_fails: bool) -> Option<bool> {
    match phase(pod) {
        Some("Succeeded") => Some(true),
        Some("Failed") => Some(false),
        _ if deleting_fails && pod.metadata.deletion_timestamp.is_some() => Some(false),
        _ => None,
    }
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    // Pods of this name's Job that no Job counts any more (it was deleted,
    // or made again) lose their finalizer.
    let named: Vec<Arc<Pod>> = ctx
        .pods
        .list(&key.namespace)
        .into_iter()
        .filter(|p| job_of(p).as_ref() == Some(key))
        .collect();
    orphans::enqueue(ctx, &named);
    let Some(job) = ctx.jobs.get_key(key) else {
        ctx.expectations.forget(key);
        ctx.index_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        ctx.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        return Ok(Action::Done);
    };
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let pods: Vec<Arc<Pod>> = named
        .into_iter()
        .filter(|p| podutil::controller_of(&p.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let now = Timestamp::now();
    let mut status = job.status.clone().unwrap_or_default();
    let finished = has_condition(&status, "Complete") || has_condition(&status, "Failed");
    let spec = job.spec.clone().unwrap_or_default();
    let deleting_fails = spec.pod_replacement_policy.as_deref() != Some("Failed");
    let outcome = |p: &Pod| outcome(p, deleting_fails);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let per_index = spec.backoff_limit_per_index.filter(|_| indexed);
    let mut failed_indexes = indexes::parse(status.failed_indexes.as_deref().unwrap_or_default());
    // Failed pods the failure policy ignores: released, never counted.
    let verdict = |p: &Pod| {
        spec.pod_failure_policy
            .as_ref()
            .map_or(Verdict::Count, |fp| policy::failure_verdict(fp, p))
    };
    let ignored: BTreeSet<&str> = pods
        .iter()
        .filter(|p| outcome(p) == Some(false) && verdict(p) == Verdict::Ignore)
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();

    // 1. Record finished pods not yet recorded.
    let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut completed = indexes::parse(status.completed_indexes.as_deref().unwrap_or_default());
    let recorded = |u: &UncountedTerminatedPods, id: &str| {
        u.succeeded.iter().flatten().any(|x| x == id) || u.failed.iter().flatten().any(|x| x == id)
    };
    let mut newly = false;
    // A Job that failed ends its remaining pods: each counts as failed.
    let failed_job = has_condition(&status, "FailureTarget") || has_condition(&status, "Failed");
    // Once the success criteria are met, pods ending afterwards (the
    // surplus ones deleted) decide nothing: no failure policy, no index.
    let succeeded_job = has_condition(&status, "SuccessCriteriaMet");
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let ended = outcome(p).or((failed_job && phase(p) != Some("Succeeded")).then_some(false));
        let (Some(ok), Some(id)) = (ended, p.metadata.uid.as_deref()) else {
            continue;
        };
        if recorded(&uncounted, id) || ignored.contains(id) {
            continue;
        }
        newly = true;
        if ok {
            uncounted
                .succeeded
                .get_or_insert_with(Vec::new)
                .push(id.to_string());
            if let Some(i) = index_of(p) {
                completed.insert(i);
            }
        } else {
            uncounted
                .failed
                .get_or_insert_with(Vec::new)
                .push(id.to_string());
            if succeeded_job {
                continue;
            }
            let v = verdict(p);
            if let Verdict::FailJob(message) = &v {
                if !has_condition(&status, "FailureTarget") {
                    set_condition(
                        &mut status,
                        condition("FailureTarget", "PodFailurePolicy", message, now),
                    );
                }
            }
            // The index is done for when the policy says so, or when it
            // has failed more than its own limit allows.
            if let (Some(limit), Some(i)) = (per_index, index_of(p)) {
                if v == Verdict::FailIndex || policy::index_failures(p) + 1 > limit {
                    failed_indexes.insert(i);
                }
            }
        }
    }
    if newly {
        status.uncounted_terminated_pods = Some(uncounted.clone());
        if indexed {
            status.completed_indexes = Some(indexes::format(&completed));
        }
        if per_index.is_some() {
            status.failed_indexes = Some(indexes::format(&failed_indexes));
        }
        write_status(&api, &job, &status).await?;
        // The next pass goes on from the written status.
        return Ok(Action::Done);
    }
    // 2. Release the recorded pods; once the outcome is known, every pod
    // (as upstream: those ended are recorded first, the others are being
    // ended and are not counted), so none is held by the finalizer while
    // the Job waits for its pods to go.
    let decided = finished || failed_job || succeeded_job;
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let id = p.metadata.uid.as_deref().unwrap_or_default();
        if recorded(&uncounted, id) || ignored.contains(id) || decided {
            release(&pod_api, p).await?;
        }
    }
    // 3. Count the released ones.
    let still: BTreeSet<&str> = pods
        .iter()
        .filter(|p| has_finalizer(p))
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    let mut moved = false;
    for (list, counter) in [
        (&mut uncounted.succeeded, &mut status.succeeded),
        (&mut uncounted.failed, &mut status.failed),
    ] {
        if let Some(l) = list.as_mut() {
            let before = l.len();
            l.retain(|id| still.contains(id.as_str()));
            let gone = (before - l.len()) as i32;
            if gone > 0 {
                *counter = Some(counter.unwrap_or(0) + gone);
                moved = true;
            }
        }
    }
    status.uncounted_terminated_pods = Some(uncounted.clone());
    let succeeded =
        status.succeeded.unwrap_or(0) + uncounted.succeeded.as_ref().map_or(0, Vec::len) as i32;
    let failed = status.failed.unwrap_or(0) + uncounted.failed.as_ref().map_or(0, Vec::len) as i32;
    if finished {
        // Nothing runs for a finished Job any more.
        status.active = Some(0);
        status.ready = Some(0);
        status.terminating = Some(terminating(&pods));
        if moved || job.status.as_ref() != Some(&status) {
            write_status(&api, &job, &status).await?;
        }
        return Ok(Action::Done);
    }
    let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| outcome(p).is_none()).collect();
    status.terminating = Some(terminating(&pods));
    let suspended = spec.suspend == Some(true);
    if !suspended && status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);

    // 4. Decide.
    let deadline_passed = spec
        .active_deadline_seconds
        .zip(status.start_time.as_ref())
        .is_some_and(|(secs, start)| now.as_second() - start.0.as_second() >= secs);
    // A pod failure policy's FailJob, already recorded as the target.
    let targeted = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "FailureTarget" && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        });
    let all_indexes_settled = per_index.is_some()
        && completions
            .is_some_and(|n| (0..n).all(|i| completed.contains(&i) || failed_indexes.contains(&i)));
    let too_many_failed_indexes = spec
        .max_failed_indexes
        .filter(|_| per_index.is_some())
        .is_some_and(|m| failed_indexes.len() > usize::try_from(m).unwrap_or(usize::MAX));
    // Success criteria met stay met: a pod deleted afterwards is no failure.
    let success_target = has_condition(&status, "SuccessCriteriaMet");
    let failure: Option<(String, String)> = if let Some(t) = targeted {
        Some(t)
    } else if success_target {
        None
    } else if too_many_failed_indexes {
        Some((
            "MaxFailedIndexesExceeded".into(),
            "Job has exceeded the specified maximal number of failed indexes".into(),
        ))
    } else if all_indexes_settled && !failed_indexes.is_empty() {
        Some(("FailedIndexes".into(), "Job has failed indexes".into()))
    } else if failed > backoff_limit || past_limit_on_failure(&spec, &pods, backoff_limit) {
        Some((
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into(),
        ))
    } else if deadline_passed && !suspended {
        Some((
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into(),
        ))
    } else {
        None
    };
    // A success policy met ends an Indexed Job early.
    let by_policy = spec
        .success_policy
        .as_ref()
        .filter(|_| indexed)
        .and_then(|sp| policy::success_rule(sp, &completed));
    let done = success_target
        || by_policy.is_some()
        || match (indexed, completions) {
            (true, Some(n)) => (0..n).all(|i| completed.contains(&i)),
            (false, Some(n)) => succeeded >= n,
            // A work queue: done once one succeeded and none is left running.
            (_, None) => succeeded > 0 && active.is_empty(),
        };
    let mut action = Action::Done;
    // Once the outcome is known the Job's pods are ended, and the terminal
    // condition (Failed, Complete) waits until none of them runs or is
    // still terminating, as upstream's since 1.31: FailureTarget and
    // SuccessCriteriaMet say meanwhile what it will be.
    let running: Vec<&Arc<Pod>> = active
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    // Every pod ended and counted (upstream's enactJobFinished waits for
    // the uncounted list to empty too).
    let settled = pods.iter().all(|p| podutil::is_terminal(p))
        && uncounted.succeeded.as_ref().is_none_or(Vec::is_empty)
        && uncounted.failed.as_ref().is_none_or(Vec::is_empty);
    // The target is stored before any pod is ended for it, so that pods
    // ended for a success are never taken for failures (and the deletes
    // are made once, by the pass that reads it back).
    let targeted_now = match (failure.is_some(), done) {
        (true, _) => !has_condition(&status, "FailureTarget"),
        (false, true) => !has_condition(&status, "SuccessCriteriaMet"),
        _ => false,
    };
    let may_delete = !targeted_now && ctx.expectations.satisfied(key);
    let running: Vec<&Arc<Pod>> = if may_delete { running } else { Vec::new() };
    // The event for a Job that ended, sent once its status is written.
    let mut finished: Option<(&'static str, String, String)> = None;
    if let Some((reason, message)) = failure.as_ref() {
        delete_pods(ctx, key, &job, &pod_api, &running).await?;
        set_condition(
            &mut status,
            condition("FailureTarget", reason, message, now),
        );
        if running.is_empty() && settled {
            set_condition(&mut status, condition("Failed", reason, message, now));
            finished = Some((WARNING, reason.to_string(), message.clone()));
        }
    } else if done {
        let (reason, message) = match (by_policy, targeted_success(&status)) {
            (_, Some(met)) => met,
            (Some(i), None) => (
                "SuccessPolicy".to_string(),
                format!("Matched rules at index {i}"),
            ),
            (None, None) => (
                "CompletionsReached".to_string(),
                "Reached expected number of succeeded pods".to_string(),
            ),
        };
        // The pods still running are not needed any more.
        delete_pods(ctx, key, &job, &pod_api, &running).await?;
        set_condition(
            &mut status,
            condition("SuccessCriteriaMet", &reason, &message, now),
        );
        if running.is_empty() && settled {
            set_condition(&mut status, condition("Complete", &reason, &message, now));
            status.completion_time = Some(Time(now));
            finished = Some((NORMAL, "Completed".into(), "Job completed".into()));
        }
    } else if suspended {
        delete_pods(ctx, key, &job, &pod_api, &active).await?;
        set_condition(
            &mut status,
            condition("Suspended", "JobSuspended", "Job suspended", now),
        );
    } else {
        if status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Suspended" && c.status == "True")
        {
            if let Some(c) = status
                .conditions
                .as_mut()
                .and_then(|l| l.iter_mut().find(|c| c.type_ == "Suspended"))
            {
                c.status = "False".into();
                c.reason = Some("JobResumed".into());
                c.message = Some("Job resumed".into());
                c.last_transition_time = Some(Time(now));
            }
        }
        action = manage(
            ctx,
            key,
            &job,
            &pod_api,
            &active,
            ManageInput {
                succeeded,
                failed,
                parallelism,
                completions,
                indexed,
                completed: &completed,
                failed_indexes: &failed_indexes,
                index_failures: &{
                    let seen = index_failures(&pods, per_index.is_some(), &ignored, outcome);
                    let mut all = ctx.index_failures.lock().unwrap_or_else(|p| p.into_inner());
                    let entry = all.entry(key.clone()).or_default();
                    if entry.0 != uid {
                        *entry = (uid.clone(), HashMap::new());
                    }
                    for (i, n) in seen {
                        let e = entry.1.entry(i).or_insert((0, now));
                        if n > e.0 {
                            *e = (n, now);
                        }
                    }
                    entry.1.clone()
                },
                per_index: per_index.is_some(),
                now,
            },
        )
        .await?;
    }
    status.active = Some(active.len() as i32);
    status.ready = Some(active.iter().filter(|p| podutil::is_ready(p)).count() as i32);
    if job.status.as_ref() != Some(&status) {
        write_status(&api, &job, &status).await?;
    }
    // Told once the status says so (a write that lost a race is done
    // again, and would tell again).
    if let Some((kind, reason, message)) = finished {
        ctx.events
            .object(reference(job.as_ref()), kind, &reason, message);
    }
    // A deadline to watch for.
    if let (Some(secs), Some(start)) = (spec.active_deadline_seconds, status.start_time.as_ref()) {
        if failure.is_none() && !done {
            let left = secs - (now.as_second() - start.0.as_second());
            let after = Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1));
            action = match action {
                Action::After(d) if d < after => Action::After(d),
                _ => Action::After(after),
            };
        }
    }
    Ok(action)
}

/// Write the status, guarded by the Job's resourceVersion (a count is never
/// written over a newer one).
async fn write_status(api: &Api<Job>, job: &Job, status: &JobStatus) -> Result<(), Error> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut patch =
        json!({"metadata": {"resourceVersion": job.metadata.resource_version}, "status": status});
    if status.conditions.is_none() {
        patch["status"]["conditions"] = serde_json::Value::Null;
    }
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
