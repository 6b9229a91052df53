//! One object kept in every namespace: the loop that upstream's
//! service-account controller (a `default` ServiceAccount) and root CA
//! publisher (the `kube-root-ca.crt` ConfigMap) share.
//!
//! An ordinary API client (the loopback client, under the controller's own
//! identity). It lists and watches namespaces, and watches the kept object
//! across all namespaces (a `metadata.name` field selector); a namespace
//! that appears, or whose object is deleted or edited, is reconciled: the
//! object is created when missing and put right when [`Kept::fix`] says it
//! is wrong. Terminating namespaces are left alone (the namespace
//! controller is emptying them, and the API refuses creates there), as
//! upstream's controllers do. Failed reconciles are retried with back-off
//! (250 ms doubling to 30 s); a failed watch starts the whole pass over,
//! after the same back-off.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::Request;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{is_status, items, meta};
use crate::server::apiserver::loopback;

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// A full pass now and then, in case an event was missed.
const RESYNC: Duration = Duration::from_secs(300);

const NAMESPACES: &str = "/api/v1/namespaces";

/// Builds the object for a namespace.
pub type Build = Box<dyn Fn(&str) -> Value + Send + Sync>;
/// Puts an object right (`None`: it is right).
pub type Fix = Box<dyn Fn(&Value) -> Option<Value> + Send + Sync>;

/// What is kept: a core/v1 object of one name in every namespace.
pub struct Kept {
    /// For the log: `default service account`.
    pub what: &'static str,
    /// Its resource (core/v1): `serviceaccounts`, `configmaps`.
    pub plural: &'static str,
    pub name: &'static str,
    /// The object to create in a namespace.
    pub build: Build,
    /// The object as found, put right; `None` when it is right already.
    pub fix: Fix,
}

impl Kept {
    fn collection(&self, namespace: &str) -> String {
        format!("{NAMESPACES}/{namespace}/{}", self.plural)
    }
}

pub struct Ctx {
    pub client: kube::Client,
    pub kept: Kept,
}

/// Whether a namespace takes new objects: not marked for deletion, not
/// Terminating.
fn active(ns: &Value) -> bool {
    meta(ns, "deletionTimestamp").is_none()
        && ns.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating")
}

/// Run until `cancel` fires.
pub async fn run(ctx: Ctx, cancel: CancellationToken) {
    let mut wait = FIRST_RETRY;
    loop {
        let pass = tokio::select! {
            _ = cancel.cancelled() => return,
            r = watch_and_keep(&ctx) => r,
        };
        match pass {
            // The watch ended (expired, compacted): start over at once.
            Ok(()) => wait = FIRST_RETRY,
            Err(e) => {
                tracing::warn!(error = %e, what = ctx.kept.what, "controller restarting");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    }
}

fn resource_version(list: &Value) -> String {
    list.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// List, reconcile every namespace, then follow both watches until one
/// ends.
async fn watch_and_keep(ctx: &Ctx) -> Result<(), kube::Error> {
    let client = &ctx.client;
    let kept = &ctx.kept;
    let build = kube::Error::BuildRequest;
    let ns_list: Value = client
        .request(
            Request::new(NAMESPACES)
                .list(&ListParams::default())
                .map_err(build)?,
        )
        .await?;
    let ns_rv = resource_version(&ns_list);
    let mut namespaces: HashMap<String, bool> = items(ns_list)
        .iter()
        .filter_map(|ns| Some((meta(ns, "name")?.to_string(), active(ns))))
        .collect();
    // The kept objects of every namespace: only their resourceVersion is
    // needed, to watch from.
    let by_name = format!("metadata.name={}", kept.name);
    let all = Request::new(format!("/api/v1/{}", kept.plural));
    let obj_list: Value = client
        .request(
            all.list(&ListParams::default().fields(&by_name).limit(1))
                .map_err(build)?,
        )
        .await?;
    let obj_rv = resource_version(&obj_list);
    let ns_watch = Request::new(NAMESPACES)
        .watch(&WatchParams::default(), &ns_rv)
        .map_err(build)?;
    let mut ns_events = client.request_events::<Value>(ns_watch).await?.boxed();
    let obj_watch = all
        .watch(&WatchParams::default().fields(&by_name), &obj_rv)
        .map_err(build)?;
    let mut obj_events = client.request_events::<Value>(obj_watch).await?.boxed();

    let mut queue: BTreeSet<String> = namespaces
        .iter()
        .filter(|(_, a)| **a)
        .map(|(n, _)| n.clone())
        .collect();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut wait = FIRST_RETRY;
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        while let Some(ns) = queue.pop_first() {
            if !namespaces.get(&ns).copied().unwrap_or(false) {
                continue;
            }
            match reconcile(ctx, &ns).await {
                Ok(()) => wait = FIRST_RETRY,
                Err(e) => {
                    tracing::debug!(namespace = %ns, what = kept.what, error = %e, "will retry");
                    failed.insert(ns);
                }
            }
        }
        tokio::select! {
            ev = ns_events.try_next() => match ev? {
                Some(WatchEvent::Added(ns) | WatchEvent::Modified(ns)) => {
                    if let Some(name) = meta(&ns, "name") {
                        let is_active = active(&ns);
                        namespaces.insert(name.to_string(), is_active);
                        if is_active {
                            queue.insert(name.to_string());
                        }
                    }
                }
                Some(WatchEvent::Deleted(ns)) => {
                    if let Some(name) = meta(&ns, "name") {
                        namespaces.remove(name);
                    }
                }
                Some(WatchEvent::Bookmark(_)) => {}
                Some(WatchEvent::Error(_)) | None => return Ok(()),
            },
            ev = obj_events.try_next() => match ev? {
                Some(WatchEvent::Added(obj) | WatchEvent::Modified(obj) | WatchEvent::Deleted(obj)) => {
                    if let Some(ns) = meta(&obj, "namespace") {
                        queue.insert(ns.to_string());
                    }
                }
                Some(WatchEvent::Bookmark(_)) => {}
                Some(WatchEvent::Error(_)) | None => return Ok(()),
            },
            _ = tokio::time::sleep(wait), if !failed.is_empty() => {
                queue.append(&mut failed);
                wait = (wait * 2).min(MAX_RETRY);
            }
            _ = resync.tick() => {
                queue.extend(namespaces.iter().filter(|(_, a)| **a).map(|(n, _)| n.clone()));
            }
        }
    }
}

/// Create the kept object in `ns`, or put it right.
async fn reconcile(ctx: &Ctx, ns: &str) -> Result<(), kube::Error> {
    let kept = &ctx.kept;
    let build = kube::Error::BuildRequest;
    let collection = Request::new(kept.collection(ns));
    let get = collection
        .get(kept.name, &Default::default())
        .map_err(build)?;
    let result = match loopback::get_opt(&ctx.client, get).await? {
        None => {
            let body = serde_json::to_vec(&(kept.build)(ns)).map_err(kube::Error::SerdeError)?;
            let create = collection
                .create(&PostParams::default(), body)
                .map_err(build)?;
            let r = ctx.client.request::<Value>(create).await;
            if r.is_ok() {
                tracing::info!(namespace = ns, what = kept.what, "created");
            }
            r
        }
        Some(cur) => {
            let Some(fixed) = (kept.fix)(&cur) else {
                return Ok(());
            };
            let body = serde_json::to_vec(&fixed).map_err(kube::Error::SerdeError)?;
            let replace = collection
                .replace(kept.name, &PostParams::default(), body)
                .map_err(build)?;
            let r = ctx.client.request::<Value>(replace).await;
            if r.is_ok() {
                tracing::info!(namespace = ns, what = kept.what, "put right");
            }
            r
        }
    };
    match result {
        Ok(_) => Ok(()),
        // Someone else wrote first: the watch brings it back to be looked at.
        Err(e) if is_status(&e, |s| s.is_conflict() || s.is_already_exists()) => Ok(()),
        // The namespace started terminating meanwhile: its watch event
        // takes it off the list. (A namespace not found is retried: a
        // create can race ahead of the namespace's own; one that went is
        // dropped from the list by its watch event before the retry.)
        Err(e)
            if is_status(&e, |s| {
                s.is_forbidden() && s.message.contains("being terminated")
            }) =>
        {
            tracing::debug!(namespace = ns, what = kept.what, error = %e, "namespace going");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
