//! The CronJob controller: starts a Job from the template each time the
//! schedule comes round, as upstream's (the `cronjob-controller` of
//! kube-controller-manager, its second version).
//!
//! - **When**: the schedule is read on the wall clock of `timeZone`, or of
//!   the server's zone when unset. Only the most recent run due is started
//!   (after an outage, one run, not a backlog), and not when it is older
//!   than `startingDeadlineSeconds` (`MissSchedule`). More than 100 missed
//!   runs since the last get a `TooManyMissedTimes` warning.
//! - **Once**: a run's Job is named `<cronjob>-<minutes since the epoch>`,
//!   so a retried or repeated pass finds the Job it made.
//! - **concurrencyPolicy**: `Allow` runs side by side; `Forbid` skips a run
//!   while one is active (`JobAlreadyActive`); `Replace` deletes the active
//!   ones first.
//! - **status**: `active` (the Jobs running), `lastScheduleTime`,
//!   `lastSuccessfulTime`; finished Jobs beyond
//!   `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` are deleted,
//!   oldest first, their pods with them.
//! - `suspend: true` starts nothing; the running Jobs go on.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::podutil;
use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};
use crate::api::cron;
use crate::events::{reference, Recorder, NORMAL, WARNING};

pub const AGENT: &str = "skiff-cronjob-controller";
pub const COMPONENT: &str = "cronjob-controller";
/// On each Job: when its run was scheduled, on the CronJob's clock.
pub const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
const WORKERS: usize = 5;
/// A pass comes this long after the run's time, so the clock has passed it.
const NEXT_DELTA: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("job {0} exists and belongs to something else")]
    Taken(String),
}

pub struct Ctx {
    client: kube::Client,
    cronjobs: Arc<Informer<CronJob>>,
    jobs: Arc<Informer<Job>>,
    events: Recorder,
}

fn cronjob_of(job: &Job) -> Option<Key> {
    let r = podutil::controller_of(&job.metadata)?;
    (r.kind == "CronJob").then(|| {
        Key::new(
            job.metadata.namespace.as_deref().unwrap_or_default(),
            &r.name,
        )
    })
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        events: Recorder::for_component(client.clone(), COMPONENT),
        client,
        cronjobs: informers.get::<CronJob>(),
        jobs: informers.get::<Job>(),
    });
    let q = queue.clone();
    ctx.cronjobs.on_change(move |c: &Change<'_, CronJob>| {
        // Its own status writes change nothing that needs a pass.
        let spec_changed = match (c.old, c.new) {
            (Some(o), Some(n)) => o.metadata.generation != n.metadata.generation,
            _ => true,
        };
        if let (true, Some(cj)) = (spec_changed, c.latest()) {
            q.add(Key::of(cj.as_ref()));
        }
    });
    let q = queue.clone();
    ctx.jobs.on_change(move |c: &Change<'_, Job>| {
        if let Some(key) = c.latest().and_then(|j| cronjob_of(j)) {
            q.add(key);
        }
    });
    ctx.cronjobs.synced().await;
    ctx.jobs.synced().await;
    let c = ctx.clone();
    runtime::run_workers(COMPONENT, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

/// `Complete` or `Failed`, once the Job has finished.
fn finished(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"]
        .into_iter()
        .find(|k| conds.iter().any(|c| c.type_ == *k && c.status == "True"))
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn completion_time(job: &Job) -> Option<Timestamp> {
    job.status.as_ref()?.completion_time.as_ref().map(|t| t.0)
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(cj) = ctx.cronjobs.get_key(key) else {
        return Ok(Action::Done);
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .list(&key.namespace)
        .into_iter()
        .filter(|j| podutil::controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let cj_api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let now = Timestamp::now();
    let old_status = cj.status.clone().unwrap_or_default();
    let mut status = old_status.clone();

    // 1. The active list, from the Jobs as they are.
    let mut active: Vec<ObjectReference> = Vec::new();
    // The CronJob as the API has it, read once when a Job seems unlisted:
    // the cache may not show the status that listed it yet.
    let mut fresh_active: Option<Vec<ObjectReference>> = None;
    for j in &jobs {
        let id = j.metadata.uid.as_deref();
        let listed = old_status
            .active
            .iter()
            .flatten()
            .any(|r| r.uid.as_deref() == id);
        let name = j.metadata.name.clone().unwrap_or_default();
        match finished(j) {
            None => {
                let mut listed = listed;
                if !listed {
                    if fresh_active.is_none() {
                        let fresh = cj_api.get_opt(&key.name).await?;
                        fresh_active = Some(
                            fresh
                                .and_then(|c| c.status)
                                .and_then(|s| s.active)
                                .unwrap_or_default(),
                        );
                    }
                    listed = fresh_active
                        .iter()
                        .flatten()
                        .any(|r| r.uid.as_deref() == id);
                }
                if !listed {
                    ctx.events.object(
                        reference(cj.as_ref()),
                        WARNING,
                        "UnexpectedJob",
                        format!("Saw a job that the controller did not create or forgot: {name}"),
                    );
                }
                active.push(job_ref(j));
            }
            Some(cond) => {
                if listed {
                    ctx.events.object(
                        reference(cj.as_ref()),
                        NORMAL,
                        "SawCompletedJob",
                        format!("Saw completed job: {name}, condition: {cond}"),
                    );
                }
                if cond == "Complete" {
                    if let Some(done) = completion_time(j) {
                        if status
                            .last_successful_time
                            .as_ref()
                            .is_none_or(|t| t.0 < done)
                        {
                            status.last_successful_time = Some(Time(done));
                        }
                    }
                }
            }
        }
    }
    for r in old_status.active.iter().flatten() {
        let gone = !jobs.iter().any(|j| j.metadata.uid == r.uid);
        if gone && !exists(&job_api, r).await? {
            ctx.events.object(
                reference(cj.as_ref()),
                NORMAL,
                "MissingJob",
                format!(
                    "Active job went missing: {}",
                    r.name.as_deref().unwrap_or_default()
                ),
            );
        } else if gone {
            // Made just now: the cache has not seen it yet.
            active.push(r.clone());
        }
    }
    status.active = (!active.is_empty()).then_some(active);

    let outcome = schedule(ctx, &cj, &jobs, &job_api, &mut status, now).await;
    if status != old_status {
        write_status(&cj_api, &cj, &status).await?;
    }
    let action = outcome?;
    clean_up(ctx, &cj, &jobs, &job_api).await?;
    Ok(action)
}

/// Start the run due, if any; the pass to come back for the next one.
async fn schedule(
    ctx: &Ctx,
    cj: &CronJob,
    jobs: &[Arc<Job>],
    job_api: &Api<Job>,
    status: &mut CronJobStatus,
    now: Timestamp,
) -> Result<Action, Error> {
    let Some(spec) = cj.spec.as_ref() else {
        return Ok(Action::Done);
    };
    let tz = match spec.time_zone.as_deref() {
        None => cron::local_zone(),
        Some(name) => match cron::zone(name) {
            Ok(tz) => tz,
            Err(e) => {
                ctx.events.object(
                    reference(cj),
                    WARNING,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {name:?}: {e}"),
                );
                return Ok(Action::Done);
            }
        },
    };
    let sched = match cron::parse_standard(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            ctx.events.object(
                reference(cj),
                WARNING,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            );
            return Ok(Action::Done);
        }
    };
    if spec.suspend == Some(true) {
        return Ok(Action::Done);
    }
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let last = status.last_schedule_time.as_ref().map(|t| t.0);
    let deadline = spec.starting_deadline_seconds;
    let due = plan::due(&sched, &tz, created, last, deadline, now);
    let anchor = last.unwrap_or(created);
    let next = |now: Timestamp| match plan::next_after(&sched, &tz, anchor, now) {
        Some(t) => Action::After(until(t, now) + NEXT_DELTA),
        None => Action::Done,
    };
    if due.many_missed {
        ctx.events.object(
            reference(cj),
            WARNING,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        );
    }
    let Some(at) = due.at else {
        return Ok(next(now));
    };
    if plan::too_late(at, deadline, now) {
        ctx.events.object(
            reference(cj),
            WARNING,
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                at.strftime("%a, %d %b %Y %H:%M:%S %z")
            ),
        );
        return Ok(next(now));
    }
    let name = plan::job_name(cj.metadata.name.as_deref().unwrap_or_default(), at);
    if jobs
        .iter()
        .any(|j| j.metadata.name.as_deref() == Some(&name))
        || last == Some(at)
    {
        return Ok(next(now));
    }
    let running: Vec<&ObjectReference> = status.active.iter().flatten().collect();
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !running.is_empty() => {
            ctx.events.object(
                reference(cj),
                NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            );
            return Ok(next(now));
        }
        Some("Replace") => {
            for r in running {
                delete_job(ctx, cj, job_api, r).await?;
            }
            status.active = None;
        }
        _ => {}
    }
    let job = job_for(cj, &name, at, &tz);
    let made = match job_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            ctx.events.object(
                reference(cj),
                NORMAL,
                "SuccessfulCreate",
                format!("Created job {name}"),
            );
            j
        }
        Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => {
            // A pass ahead of the cache made it: ours if it says so.
            let j = job_api.get(&name).await?;
            let ours = podutil::controller_of(&j.metadata)
                .is_some_and(|r| Some(&r.uid) == cj.metadata.uid.as_ref());
            if !ours {
                return Err(Error::Taken(name));
            }
            j
        }
        Err(e) => {
            ctx.events.object(
                reference(cj),
                WARNING,
                "FailedCreate",
                format!("Error creating job: {e}"),
            );
            return Err(e.into());
        }
    };
    if finished(&made).is_none() {
        let list = status.active.get_or_insert_with(Vec::new);
        if !list.iter().any(|r| r.uid == made.metadata.uid) {
            list.push(job_ref(&made));
        }
    }
    status.last_schedule_time = Some(Time(at));
    Ok(next(now))
}

fn until(t: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or_default()
}

/// The Job of the run at `at`: the template's labels, annotations and spec,
/// owned by the CronJob.
fn job_for(cj: &CronJob, name: &str, at: Timestamp, tz: &jiff::tz::TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_ANNOTATION.into(),
        at.to_zoned(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
            .replace("+00:00", "Z"),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cj.metadata.name.clone().unwrap_or_default(),
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Whether the Job `r` names is still there (asked of the API: the cache
/// may lag behind a Job made a moment ago).
async fn exists(api: &Api<Job>, r: &ObjectReference) -> Result<bool, Error> {
    let name = r.name.as_deref().unwrap_or_default();
    match api.get_opt(name).await? {
        Some(j) => Ok(j.metadata.uid == r.uid),
        None => Ok(false),
    }
}

/// Delete a Job and, in the background, its pods.
async fn delete_job(
    ctx: &Ctx,
    cj: &CronJob,
    api: &Api<Job>,
    r: &ObjectReference,
) -> Result<(), Error> {
    let name = r.name.clone().unwrap_or_default();
    let dp = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        preconditions: r.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {
            ctx.events.object(
                reference(cj),
                NORMAL,
                "SuccessfulDelete",
                format!("Deleted job {name}"),
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Delete the oldest finished Jobs beyond the history limits.
async fn clean_up(ctx: &Ctx, cj: &CronJob, jobs: &[Arc<Job>], api: &Api<Job>) -> Result<(), Error> {
    let Some(spec) = cj.spec.as_ref() else {
        return Ok(());
    };
    for (cond, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished(j) == Some(cond) && j.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        if excess == 0 {
            continue;
        }
        // Oldest first: by start time (never started last), then name.
        done.sort_by_key(|j| {
            let start = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            (start.is_none(), start, j.metadata.name.clone())
        });
        for j in done.into_iter().take(excess) {
            delete_job(ctx, cj, api, &job_ref(j)).await?;
        }
    }
    Ok(())
}

/// Write the status, guarded by the CronJob's resourceVersion.
async fn write_status(
    api: &Api<CronJob>,
    cj: &CronJob,
    status: &CronJobStatus,
) -> Result<(), Error> {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let mut patch =
        json!({"metadata": {"resourceVersion": cj.metadata.resource_version}, "status": status});
    if status.active.is_none() {
        patch["status"]["active"] = serde_json::Value::Null;
    }
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
