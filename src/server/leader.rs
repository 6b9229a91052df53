//! Leader election through Leases (coordination.k8s.io), as client-go's
//! leaderelection: the controllers and the scheduler run only in the server
//! that holds `kube-system/kube-controller-manager` and
//! `kube-system/kube-scheduler`. A single server takes them at once (the
//! Leases are free, or its own from before a restart); with several servers
//! on one datastore, the others wait until the holder stops renewing.
//!
//! A holder renews every retry period; one that cannot renew within the
//! renew deadline gives the leadership up and the server stops (as
//! kube-controller-manager exits), so that two servers never run the
//! controllers at once; systemd starts it again as a candidate.
//!
//! The periods are kube-controller-manager's flags, with longer defaults
//! on the embedded datastore (60 s, 40 s, 15 s against upstream's 15 s,
//! 10 s, 2 s): upstream's periods made most of an idle server's writes to
//! its flash (BENCHMARKS.md, "Release build and footprint"; renewals now
//! wait in memory for the next durable commit, `store::sqlite::deferred`,
//! but each still costs a request and a revision), and SQLite is opened by
//! one server only. A datastore several servers share takes upstream's:
//! failing over quickly is why it is shared (ServerArgs::leader_timing).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const NAMESPACE: &str = "kube-system";
pub const LEASES: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];
/// The managedFields manager of the Leases' writes.
pub const AGENT: &str = "skiff-leader-election";
/// A lease's duration when its holder wrote none.
const LEASE_DURATION: i32 = 15;

/// How long a Lease lasts, and how its holder keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a candidate waits for a holder that stopped renewing.
    pub lease_duration: Duration,
    /// How long a holder keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often it renews (and candidates try).
    pub retry_period: Duration,
}

impl Timing {
    /// The periods must nest: retry < renew deadline < lease duration.
    pub fn new(
        lease_duration: u64,
        renew_deadline: u64,
        retry_period: u64,
    ) -> Result<Timing, String> {
        if !(retry_period < renew_deadline && renew_deadline < lease_duration) {
            return Err(format!(
                "--leader-elect-retry-period ({retry_period}s) < --leader-elect-renew-deadline ({renew_deadline}s) < --leader-elect-lease-duration ({lease_duration}s) must hold"
            ));
        }
        if lease_duration > i32::MAX as u64 {
            return Err("--leader-elect-lease-duration is too long".into());
        }
        Ok(Timing {
            lease_duration: Duration::from_secs(lease_duration),
            renew_deadline: Duration::from_secs(renew_deadline),
            retry_period: Duration::from_secs(retry_period),
        })
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lost the lease {0}: not renewed within {1:?}")]
    Lost(&'static str, Duration),
}

/// Whether the Lease may be taken by `me` at `now`: it is free, ours, or
/// its holder let it expire.
pub fn takeable(spec: &LeaseSpec, me: &str, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return true;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_DURATION));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map_or(0, |t| t.0.as_second());
    now.as_second() > renewed + duration
}

/// Take (or renew) `name` for `me`; Ok(false) when another holds it.
async fn try_hold(
    api: &Api<Lease>,
    name: &str,
    me: &str,
    timing: Timing,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.into()),
                    lease_duration_seconds: Some(timing.lease_seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if !takeable(spec, me, now) {
                return Ok(false);
            }
            if spec.holder_identity.as_deref() != Some(me) {
                spec.holder_identity = Some(me.into());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(timing.lease_seconds());
            spec.renew_time = Some(MicroTime(now));
            // The resourceVersion read guards the write: of two candidates,
            // one wins.
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Give `name` up if `me` holds it (client-go's ReleaseOnCancel); best
/// effort: an unreleased Lease expires by itself.
async fn release(api: &Api<Lease>, name: &str, me: &str) {
    let Ok(Some(mut lease)) = api.get_opt(name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    if let Err(e) = api.replace(name, &PostParams::default(), &lease).await {
        tracing::debug!(lease = name, "releasing: {e}");
    }
}

/// Become the leader (wait for every Lease), tell `leading`, and renew until
/// `cancel` fires; an error when a Lease could not be renewed in time.
pub async fn run(
    client: kube::Client,
    me: String,
    timing: Timing,
    leading: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    for name in LEASES {
        loop {
            let held = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = try_hold(&api, name, &me, timing) => r,
            };
            match held {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = name, "leader election: {e}"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(timing.retry_period) => {}
            }
        }
    }
    tracing::info!(identity = %me, "leading the controllers and the scheduler");
    leading.send_replace(true);
    let mut renewed = [tokio::time::Instant::now(); 2];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                // Stopping: let another server take over at once.
                for name in LEASES {
                    release(&api, name, &me).await;
                }
                return Ok(());
            }
            _ = tokio::time::sleep(timing.retry_period) => {}
        }
        for (i, name) in LEASES.into_iter().enumerate() {
            match try_hold(&api, name, &me, timing).await {
                Ok(true) => renewed[i] = tokio::time::Instant::now(),
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = name, "renewing: {e}"),
            }
            if renewed[i].elapsed() > timing.renew_deadline {
                leading.send_replace(false);
                return Err(Error::Lost(name, timing.renew_deadline));
            }
        }
    }
}

/// This server's candidate identity, `<hostname>_<hash of its data dir>`:
/// the same across restarts, so that a server killed and started again
/// takes its Leases back at once instead of waiting for them to expire
/// (one data dir is one server: it holds the data dir's lock).
pub fn identity(data_dir: &std::path::Path) -> String {
    use sha2::Digest;
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "skiff".into());
    let hash = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    format!("{host}_{}", hex::encode(&hash[..6]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_periods_must_nest() {
        let t = Timing::new(60, 40, 15).unwrap();
        assert_eq!(t.lease_seconds(), 60);
        assert_eq!(t.retry_period, Duration::from_secs(15));
        assert!(Timing::new(15, 10, 2).is_ok());
        for (lease, renew, retry) in [(10, 10, 2), (15, 10, 10), (5, 10, 2)] {
            let e = Timing::new(lease, renew, retry).unwrap_err();
            assert!(e.contains("must hold"), "{e}");
        }
    }

    fn spec(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_taken_when_free_ours_or_expired() {
        let now = Timestamp::from_second(1000).unwrap();
        assert!(takeable(&LeaseSpec::default(), "me", now));
        assert!(takeable(&spec("me", 999), "me", now));
        assert!(!takeable(&spec("other", 990), "me", now));
        assert!(takeable(&spec("other", 984), "me", now));
    }
}
