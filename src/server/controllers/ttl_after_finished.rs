//! The TTL-after-finished controller: a Job with
//! `ttlSecondsAfterFinished` is deleted, with its pods (foreground, as
//! upstream), that many seconds after it completed or failed. The Job is
//! read again from the API before it goes, and deleted only if it is still
//! the same finished Job (uid and resourceVersion preconditions), so one
//! updated in the meantime (a longer TTL) is kept.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use tokio_util::sync::CancellationToken;

use super::runtime::{self, Action, Change, Informer, Informers, Key, Queue};

pub const AGENT: &str = "skiff-ttl-after-finished-controller";
pub const COMPONENT: &str = "ttl-after-finished-controller";
const WORKERS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    jobs: Arc<Informer<Job>>,
}

/// When `job` finished (its Complete or Failed condition turned True).
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        // Without its time, when it finished is unknown: not expired.
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// How long until `job` expires: None when it never does (no TTL, not
/// finished, being deleted), zero when it is due.
pub fn left(job: &Job, now: Timestamp) -> Option<Duration> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let due = finished_at(job)? + SignedDuration::from_secs(i64::from(ttl.max(0)));
    Some(Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO))
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let queue = Arc::new(Queue::<Key>::default());
    let ctx = Arc::new(Ctx {
        client,
        jobs: informers.get::<Job>(),
    });
    let q = queue.clone();
    ctx.jobs.on_change(move |c: &Change<'_, Job>| {
        if let Some(j) = c.new.filter(|j| left(j, Timestamp::now()).is_some()) {
            q.add(Key::of(j.as_ref()));
        }
    });
    ctx.jobs.synced().await;
    let c = ctx.clone();
    runtime::run_workers(COMPONENT, queue, WORKERS, cancel, move |key: Key| {
        let c = c.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(cached) = ctx.jobs.get_key(key) else {
        return Ok(Action::Done);
    };
    match left(&cached, Timestamp::now()) {
        None => return Ok(Action::Done),
        Some(d) if !d.is_zero() => return Ok(Action::After(d)),
        Some(_) => {}
    }
    // The cache may be behind: decide on the Job as it is now.
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(fresh) = api.get_opt(&key.name).await? else {
        return Ok(Action::Done);
    };
    match left(&fresh, Timestamp::now()) {
        None => return Ok(Action::Done),
        Some(d) if !d.is_zero() => return Ok(Action::After(d)),
        Some(_) => {}
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    tracing::info!(namespace = %key.namespace, job = %key.name, "deleting a finished Job whose TTL expired");
    match api.delete(&key.name, &params).await {
        Ok(_) => Ok(Action::Done),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(Action::Done),
        // Changed since it was read: look again.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Action::After(Duration::ZERO)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(ttl: Option<i32>, finished: Option<&str>) -> Job {
        let conditions = finished.map_or(
            json!([]),
            |at| json!([{"type": "Complete", "status": "True", "lastTransitionTime": at}]),
        );
        serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {"ttlSecondsAfterFinished": ttl, "template": {"spec": {"containers": []}}},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn a_finished_job_expires_its_ttl_after_it_finished() {
        let now: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        assert_eq!(left(&job(None, Some("2026-06-01T11:00:00Z")), now), None);
        assert_eq!(left(&job(Some(60), None), now), None);
        assert_eq!(
            left(&job(Some(60), Some("2026-06-01T11:59:30Z")), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            left(&job(Some(0), Some("2026-06-01T11:59:30Z")), now),
            Some(Duration::ZERO)
        );
    }
}
