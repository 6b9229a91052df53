//! Snapshots on a schedule, with the oldest removed (k3s's
//! `--etcd-snapshot-schedule-cron` and `--etcd-snapshot-retention`), so
//! that a box whose flash fails loses at most one period of changes.
//!
//! The schedule is read on the local wall clock, which an edge box without
//! a battery-backed clock may set late (NTP after boot): the wait is taken
//! in short steps against the wall clock, never as one long sleep counted
//! from a time that was wrong.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::api::cron::{self, Schedule};
use crate::server::snapshot;
use crate::server::store::sqlite::SqliteBackend;

/// The name scheduled snapshots are saved under (and pruned by): manual
/// ones (`skiff snapshot save`, named "on-demand" by default) are kept.
pub const NAME: &str = "scheduled";

/// The longest single wait before the wall clock is read again.
const STEP: Duration = Duration::from_secs(60);

/// What to do, from the server's flags.
#[derive(Debug, Clone)]
pub struct Plan {
    pub schedule: Schedule,
    /// Scheduled snapshots kept (at least one).
    pub retention: usize,
    /// Where they go; None: `<data-dir>/server/snapshots`.
    pub dir: Option<PathBuf>,
}

/// The flag's value: a cron schedule (five fields, a descriptor such as
/// `@daily`, or `@every 6h`).
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let schedule = cron::parse_standard(spec).map_err(|e| format!("{spec:?}: {e}"))?;
    if schedule
        .next(Timestamp::now(), &cron::local_zone())
        .is_none()
    {
        return Err(format!("{spec:?} names no time in the next five years"));
    }
    Ok(schedule)
}

/// Take snapshots of `data_dir` as `plan` says until cancelled; `store`'s
/// renewals waiting in memory are written first, so a snapshot holds every
/// write acknowledged before it.
pub async fn run(
    data_dir: PathBuf,
    plan: Plan,
    store: Arc<SqliteBackend>,
    cancel: CancellationToken,
) {
    let tz = cron::local_zone();
    let mut after = Timestamp::now();
    loop {
        let Some(mut at) = plan.schedule.next(after, &tz) else {
            // Refused at start; a component that returns stops the server.
            tracing::warn!("the snapshot schedule names no time in the next five years: no scheduled snapshots");
            cancel.cancelled().await;
            return;
        };
        loop {
            let now = Timestamp::now();
            if now >= at {
                break;
            }
            // A clock set back (it was ahead) brings the next time nearer.
            if let Some(sooner) = plan.schedule.next(now, &tz).filter(|t| *t < at) {
                at = sooner;
            }
            let left = Duration::try_from(at - now).unwrap_or(STEP).min(STEP);
            tokio::select! {
                _ = tokio::time::sleep(left) => {}
                _ = cancel.cancelled() => return,
            }
        }
        if let Err(e) = store.flush_renewals().await {
            // The snapshot is still worth taking; it may miss a few Lease
            // renewals.
            tracing::warn!(error = %e, "before a scheduled snapshot: writing Lease renewals failed");
        }
        let (data, plan_now) = (data_dir.clone(), plan.clone());
        let taken = tokio::task::spawn_blocking(move || take(&data, &plan_now)).await;
        match taken {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "scheduled snapshot failed"),
            Err(e) => tracing::warn!(error = %e, "scheduled snapshot failed"),
        }
        // A snapshot that took longer than the period does not start a
        // run of catch-ups.
        after = Timestamp::now().max(at);
    }
}

fn take(data_dir: &std::path::Path, plan: &Plan) -> Result<(), snapshot::SnapshotError> {
    let path = snapshot::save(data_dir, NAME, plan.dir.as_deref())?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    tracing::info!(path = %path.display(), size, "scheduled snapshot saved");
    let dir = plan.dir.clone().unwrap_or_else(|| snapshot::dir(data_dir));
    for gone in snapshot::prune(&dir, NAME, plan.retention)? {
        tracing::info!(path = %gone.path.display(), "old scheduled snapshot removed");
    }
    Ok(())
}
