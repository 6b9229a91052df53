//! The API servers sharing one datastore, and the `default/kubernetes`
//! endpoints that list the live ones: what pods reach as the kubernetes
//! Service, and what agents fail over between. Each server keeps a Lease
//! `kube-system/apiserver-<hash of its identity>` (labelled as upstream's
//! API server identity Leases, its advertised address in an annotation)
//! renewed every [`RENEW`]; every server lists them and writes the
//! Endpoints and EndpointSlice with the addresses renewed within
//! [`EXPIRY`], as upstream's lease endpoint reconciler does with the leases
//! it keeps in etcd. A server that stops gracefully gives its Lease back.
//!
//! Only on a shared datastore: the embedded one has one server, whose
//! address bootstrap writes.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::Request;
use tokio_util::sync::CancellationToken;

use super::apiserver::loopback::get_opt;
use super::bootstrap::{
    api_endpoint_slice, api_endpoints, put_if_changed, ENDPOINTS, ENDPOINT_SLICES,
};

pub const NAMESPACE: &str = "kube-system";
/// The Leases' names begin so.
pub const PREFIX: &str = "apiserver-";
/// The managedFields manager of the writes.
pub const AGENT: &str = "skiff-apiserver-peers";
/// Upstream's API server identity label.
const LABEL: &str = "apiserver.kubernetes.io/identity";
const LABEL_VALUE: &str = "kube-apiserver";
/// The address agents and pods reach this server at.
pub const ADDRESS: &str = "skiff.io/advertise-address";
pub const RENEW: Duration = Duration::from_secs(10);
/// A server not heard from for this long is out of the endpoints.
pub const EXPIRY: Duration = Duration::from_secs(40);

/// This server's Lease name.
pub fn lease_name(identity: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(identity.as_bytes());
    format!("{PREFIX}{}", hex::encode(&hash[..8]))
}

/// Keep this server's Lease and the endpoints until `stop`; then give the
/// Lease back and write the endpoints without it.
pub async fn run(client: kube::Client, identity: String, me: SocketAddr, stop: CancellationToken) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let name = lease_name(&identity);
    loop {
        if let Err(e) = renew(&leases, &name, &identity, me).await {
            tracing::warn!(lease = %name, "renewing this API server's Lease: {e}");
        }
        if let Err(e) = reconcile(&client, &leases, None).await {
            tracing::warn!("writing the kubernetes endpoints: {e}");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(RENEW) => {}
        }
    }
    let _ = leases.delete(&name, &DeleteParams::default()).await;
    if let Err(e) = reconcile(&client, &leases, Some(&name)).await {
        tracing::debug!("writing the kubernetes endpoints at exit: {e}");
    }
}

async fn renew(
    leases: &Api<Lease>,
    name: &str,
    identity: &str,
    me: SocketAddr,
) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let spec = LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: i32::try_from(EXPIRY.as_secs()).ok(),
        renew_time: Some(now),
        ..Default::default()
    };
    let meta = |resource_version| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(NAMESPACE.to_string()),
        labels: Some([(LABEL.to_string(), LABEL_VALUE.to_string())].into()),
        annotations: Some([(ADDRESS.to_string(), me.to_string())].into()),
        resource_version,
        ..Default::default()
    };
    let pp = PostParams {
        field_manager: Some(AGENT.into()),
        ..Default::default()
    };
    match leases.get_opt(name).await? {
        None => {
            let lease = Lease {
                metadata: meta(None),
                spec: Some(spec),
            };
            leases.create(&pp, &lease).await?;
        }
        Some(have) => {
            let lease = Lease {
                metadata: meta(have.metadata.resource_version),
                spec: Some(spec),
            };
            leases.replace(name, &pp, &lease).await?;
        }
    }
    Ok(())
}

/// The live servers' addresses, sorted (`leaving`: a Lease to leave out).
pub fn live(items: &[Lease], now: Timestamp, leaving: Option<&str>) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = items
        .iter()
        .filter(|l| l.metadata.name.as_deref() != leaving)
        .filter(|l| {
            let spec = l.spec.as_ref();
            let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
            let seconds = spec
                .and_then(|s| s.lease_duration_seconds)
                .map_or(EXPIRY.as_secs() as i64, i64::from);
            renewed.is_some_and(|t| now.as_second() - t.as_second() <= seconds)
        })
        .filter_map(|l| l.metadata.annotations.as_ref()?.get(ADDRESS)?.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn reconcile(
    client: &kube::Client,
    leases: &Api<Lease>,
    leaving: Option<&str>,
) -> anyhow::Result<()> {
    let list = leases
        .list(&ListParams::default().labels(&format!("{LABEL}={LABEL_VALUE}")))
        .await?;
    let addrs = live(&list.items, Timestamp::now(), leaving);
    if addrs.is_empty() {
        return Ok(());
    }
    let ep = get_opt(
        client,
        Request::new(ENDPOINTS).get("kubernetes", &Default::default())?,
    )
    .await?;
    let slice = get_opt(
        client,
        Request::new(ENDPOINT_SLICES).get("kubernetes", &Default::default())?,
    )
    .await?;
    put_if_changed(client, ENDPOINTS, ep, api_endpoints(&addrs), &["subsets"]).await?;
    put_if_changed(
        client,
        ENDPOINT_SLICES,
        slice,
        api_endpoint_slice(&addrs),
        &["addressType", "endpoints", "ports"],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, addr: &str, renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some([(ADDRESS.to_string(), addr.to_string())].into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_live_servers_are_those_renewed_within_their_lease() {
        let now = Timestamp::from_second(1_000).unwrap();
        let items = [
            lease("apiserver-b", "10.0.0.2:6443", 990),
            lease("apiserver-a", "10.0.0.1:6443", 961),
            lease("apiserver-c", "10.0.0.3:6443", 900),
            lease("apiserver-d", "not an address", 1_000),
        ];
        let got = live(&items, now, None);
        assert_eq!(
            got,
            [
                "10.0.0.1:6443".parse().unwrap(),
                "10.0.0.2:6443".parse().unwrap()
            ]
        );
        let got = live(&items, now, Some("apiserver-a"));
        assert_eq!(got, ["10.0.0.2:6443".parse().unwrap()]);
        assert_eq!(lease_name("host_abc"), lease_name("host_abc"));
        assert_ne!(lease_name("host_abc"), lease_name("host_abd"));
        assert!(lease_name("x").starts_with(PREFIX));
    }
}
