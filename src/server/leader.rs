//! Leader election through Leases (coordination.k8s.io), as client-go's
//! leaderelection: the controllers and the scheduler run only in the server
//! that holds `kube-system/kube-controller-manager` and
//! `kube-system/kube-scheduler`. A single server takes them at once (the
//! Leases are free, or its own from before a restart); with several servers
//! on one datastore, the others wait until the holder stops renewing.
//!
//! A holder renews every `RETRY`; one that cannot renew within
//! `RENEW_DEADLINE` gives the leadership up and the server stops (as
//! kube-controller-manager exits), so that two servers never run the
//! controllers at once; systemd starts it again as a candidate.

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
const LEASE_DURATION: i32 = 15;
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lost the lease {0}: not renewed within {RENEW_DEADLINE:?}")]
    Lost(&'static str),
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
async fn try_hold(api: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
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
                    lease_duration_seconds: Some(LEASE_DURATION),
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
            spec.lease_duration_seconds = Some(LEASE_DURATION);
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
    leading: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    for name in LEASES {
        loop {
            let held = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = try_hold(&api, name, &me) => r,
            };
            match held {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = name, "leader election: {e}"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(RETRY) => {}
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
            _ = tokio::time::sleep(RETRY) => {}
        }
        for (i, name) in LEASES.into_iter().enumerate() {
            match try_hold(&api, name, &me).await {
                Ok(true) => renewed[i] = tokio::time::Instant::now(),
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = name, "renewing: {e}"),
            }
            if renewed[i].elapsed() > RENEW_DEADLINE {
                leading.send_replace(false);
                return Err(Error::Lost(name));
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
