//! The API servers sharing one datastore, and the `default/kubernetes`
//! endpoints that list the live ones: what pods reach as the kubernetes
//! Service, and what agents fail over between. Each server keeps a record
//! `/peers/<hash of its identity>` in the datastore itself (not an API
//! object: no API user can add an address to the list, as upstream keeps
//! its master leases in etcd), holding its advertised address and rewritten
//! every [`RENEW`]. Every server reads them and writes the Endpoints and
//! EndpointSlice with the addresses of those it has seen rewritten within
//! [`EXPIRY`] on its own clock (a record's revision moving, not a time
//! written by another host, so clocks need not agree). Records not
//! rewritten for [`FORGET`] are removed; a server that stops gracefully
//! removes its own.
//!
//! Only on a shared datastore: the embedded one has one server, whose
//! address bootstrap writes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kube::core::Request;
use tokio_util::sync::CancellationToken;

use super::apiserver::loopback::get_opt;
use super::bootstrap::{
    api_endpoint_slice, api_endpoints, put_if_changed, ENDPOINTS, ENDPOINT_SLICES,
};
use super::store::{Backend, Error as StoreError, ListOptions, Revision};

/// The records' prefix (outside `/registry/`: no API list shows them).
pub const PREFIX: &str = "/peers/";
/// The managedFields manager of the endpoints' writes.
pub const AGENT: &str = "skiff-apiserver-peers";
pub const RENEW: Duration = Duration::from_secs(10);
/// A server whose record has not moved for this long is out of the
/// endpoints.
pub const EXPIRY: Duration = Duration::from_secs(40);
/// ...and its record is removed after this long.
pub const FORGET: Duration = Duration::from_secs(600);
/// Servers listed at most (a record is written by a server only, but the
/// list stays bounded all the same).
const MAX_PEERS: usize = 32;

/// This server's record's key.
pub fn key(identity: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(identity.as_bytes());
    format!("{PREFIX}{}", hex::encode(&hash[..8]))
}

/// When each record was last seen to move, on this server's clock.
#[derive(Default)]
pub struct Seen(HashMap<String, (Revision, Instant)>);

impl Seen {
    /// Note `records` (key, revision, address) as read at `now`; the live
    /// addresses, sorted, and the keys to forget.
    pub fn observe(
        &mut self,
        records: &[(String, Revision, Option<SocketAddr>)],
        now: Instant,
    ) -> (Vec<SocketAddr>, Vec<(String, Revision)>) {
        self.0.retain(|k, _| records.iter().any(|(r, _, _)| r == k));
        let mut live = Vec::new();
        let mut forget = Vec::new();
        for (k, rev, addr) in records {
            let since = match self.0.get(k) {
                Some((seen, at)) if seen == rev => *at,
                _ => {
                    self.0.insert(k.clone(), (*rev, now));
                    now
                }
            };
            let quiet = now.saturating_duration_since(since);
            if quiet > FORGET {
                forget.push((k.clone(), *rev));
            } else if quiet <= EXPIRY {
                live.extend(addr);
            }
        }
        live.sort();
        live.dedup();
        live.truncate(MAX_PEERS);
        (live, forget)
    }
}

/// Keep this server's record and the endpoints until `stop`; then remove
/// the record and write the endpoints without it.
pub async fn run(
    client: kube::Client,
    store: Arc<dyn Backend>,
    identity: String,
    me: SocketAddr,
    stop: CancellationToken,
) {
    let mine = key(&identity);
    let mut seen = Seen::default();
    loop {
        if let Err(e) = renew(store.as_ref(), &mine, me).await {
            tracing::warn!("keeping this API server's address in the datastore: {e}");
        }
        if let Err(e) = reconcile(&client, store.as_ref(), &mut seen, None).await {
            tracing::warn!("writing the kubernetes endpoints: {e}");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(RENEW) => {}
        }
    }
    let _ = store.delete(&mine, None).await;
    if let Err(e) = reconcile(&client, store.as_ref(), &mut seen, Some(&mine)).await {
        tracing::debug!("writing the kubernetes endpoints at exit: {e}");
    }
}

async fn renew(store: &dyn Backend, key: &str, me: SocketAddr) -> Result<(), StoreError> {
    let value = Bytes::from(serde_json::json!({"address": me.to_string()}).to_string());
    match store.get(key, None).await? {
        None => store.create(key, value).await.map(|_| ()),
        Some(kv) => store.update(key, value, kv.mod_revision).await.map(|_| ()),
    }
}

async fn reconcile(
    client: &kube::Client,
    store: &dyn Backend,
    seen: &mut Seen,
    leaving: Option<&str>,
) -> anyhow::Result<()> {
    let list = store
        .list(
            PREFIX,
            ListOptions {
                limit: Some(MAX_PEERS * 4),
                ..Default::default()
            },
        )
        .await?;
    let records: Vec<_> = list
        .items
        .iter()
        .filter(|kv| Some(kv.key.as_str()) != leaving)
        .map(|kv| {
            let addr = serde_json::from_slice::<serde_json::Value>(&kv.value)
                .ok()
                .and_then(|v| v["address"].as_str()?.parse().ok());
            (kv.key.clone(), kv.mod_revision, addr)
        })
        .collect();
    let (addrs, forget) = seen.observe(&records, Instant::now());
    for (key, rev) in forget {
        tracing::info!(record = %key, "forgetting an API server not heard from");
        let _ = store.delete(&key, Some(rev)).await;
    }
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

    #[test]
    fn a_server_is_live_while_its_record_moves_on_this_servers_clock() {
        let t0 = Instant::now();
        let a: SocketAddr = "10.0.0.1:6443".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:6443".parse().unwrap();
        let mut seen = Seen::default();
        let rec = |ra, rb| {
            vec![
                ("/peers/a".to_string(), ra, Some(a)),
                ("/peers/b".to_string(), rb, Some(b)),
                ("/peers/c".to_string(), 1, None),
            ]
        };
        // First seen: live.
        let (live, forget) = seen.observe(&rec(5, 6), t0);
        assert_eq!(live, [a, b]);
        assert!(forget.is_empty());
        // a keeps moving, b stops: b drops out after EXPIRY...
        let t1 = t0 + EXPIRY + Duration::from_secs(1);
        let (live, _) = seen.observe(&rec(9, 6), t1);
        assert_eq!(live, [a]);
        // ...and is forgotten after FORGET.
        let t2 = t0 + FORGET + Duration::from_secs(1);
        let (live, forget) = seen.observe(&rec(12, 6), t2);
        assert_eq!(live, [a]);
        // (c, with no address, never moved either.)
        assert_eq!(
            forget,
            [("/peers/b".to_string(), 6), ("/peers/c".to_string(), 1)]
        );
        // A record that moves again is live again.
        let (live, _) = seen.observe(&rec(13, 7), t2);
        assert_eq!(live, [a, b]);
        assert_eq!(key("host_abc"), key("host_abc"));
        assert_ne!(key("host_abc"), key("host_abd"));
        assert!(key("x").starts_with(PREFIX));
    }

    #[test]
    fn the_endpoints_list_every_server_by_port() {
        let addrs: Vec<SocketAddr> = vec![
            "10.0.0.1:6443".parse().unwrap(),
            "10.0.0.2:6443".parse().unwrap(),
        ];
        let ep = api_endpoints(&addrs);
        assert_eq!(ep["subsets"].as_array().unwrap().len(), 1);
        assert_eq!(ep["subsets"][0]["addresses"][1]["ip"], "10.0.0.2");
        let slice = api_endpoint_slice(&addrs);
        assert_eq!(slice["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(slice["ports"][0]["port"], 6443);
    }
}
