//! The namespace controller: when a namespace is marked for deletion, delete
//! everything in it, then release its "kubernetes" finalizer so it goes.
//!
//! An ordinary API client (`auth::NAMESPACE_CONTROLLER_USER` through the
//! loopback): it lists and watches namespaces, deletes their content with
//! background propagation and releases the finalizer with
//! `PUT namespaces/<ns>/finalize`, as upstream's controller does.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::Request;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{is_status, items, meta};
use crate::server::apiserver::loopback;
use crate::server::apiserver::registry::Registry;

/// A terminating namespace whose content is still held (by finalizers) is
/// looked at again after this long.
const RETRY: Duration = Duration::from_secs(2);
/// Periodic full pass, in case an event was missed.
const RESYNC: Duration = Duration::from_secs(30);
/// Content is deleted only this long after the namespace was marked, so that
/// a client deleting a manifest's objects one by one (`kubectl delete -f`
/// with the Namespace first) finds them still there, as on a real cluster,
/// where the namespace controller's discovery pass takes about as long.
const GRACE: Duration = Duration::from_secs(2);

/// The managedFields manager of what the controller writes.
pub const AGENT: &str = "skiff-namespace-controller";

const NAMESPACES: &str = "/api/v1/namespaces";

/// What the controller works with: a client, and the namespaced kinds it
/// empties (those that can be listed; the others store nothing).
///
/// Untyped (JSON values through the client's raw requests): the controller
/// reads a name, a deletion timestamp and the finalizers, and needs no typed
/// (de)serialiser for them, whose code every server would otherwise load at
/// start.
#[derive(Clone)]
pub struct Ctx {
    pub client: kube::Client,
    /// The server whose kinds (built-in and custom, as served now) a
    /// namespace's content can be of.
    pub api: std::sync::Arc<crate::server::apiserver::ApiState>,
}

/// A namespaced kind: where its collection in a namespace is.
#[derive(Clone, Debug)]
pub struct Kind {
    /// `/api/v1/namespaces/` or `/apis/<group>/<version>/namespaces/`.
    prefix: String,
    plural: &'static str,
}

impl Kind {
    fn collection(&self, namespace: &str) -> String {
        format!("{}{namespace}/{}", self.prefix, self.plural)
    }
}

/// The kinds a namespace's content can be of: the namespaced kinds that
/// can be listed (the others, reviews and the like, store nothing).
pub fn kinds(registry: &Registry) -> Vec<Kind> {
    registry
        .all()
        .into_iter()
        .filter(|d| d.namespaced && d.verbs.contains(&"list") && d.stored())
        .map(|d| Kind {
            prefix: if d.group.is_empty() {
                format!("/api/{}/namespaces/", d.version)
            } else {
                format!("/apis/{}/{}/namespaces/", d.group, d.version)
            },
            plural: d.plural,
        })
        .collect()
}

/// Run until `cancel` fires; a failed pass is logged and started over.
pub async fn run(ctx: Ctx, cancel: CancellationToken) {
    loop {
        let pass = tokio::select! {
            _ = cancel.cancelled() => return,
            r = watch_and_finish(&ctx) => r,
        };
        if let Err(e) = pass {
            tracing::warn!(error = %e, "namespace controller restarting");
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// Marked long enough ago for its content to go (see [`GRACE`]). A
/// timestamp that does not parse counts as long enough.
fn past_grace(marked: &str) -> bool {
    let Ok(marked) = chrono::DateTime::parse_from_rfc3339(marked) else {
        return true;
    };
    let age = chrono::Utc::now().signed_duration_since(marked);
    age.to_std().is_ok_and(|age| age >= GRACE)
}

fn list_namespaces() -> Result<http::Request<Vec<u8>>, kube::Error> {
    Request::new(NAMESPACES)
        .list(&ListParams::default())
        .map_err(kube::Error::BuildRequest)
}

/// List, finish what is terminating, then follow a watch until it ends.
async fn watch_and_finish(ctx: &Ctx) -> Result<(), kube::Error> {
    let list: Value = ctx.client.request(list_namespaces()?).await?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut pending = !finish_all(ctx, &items(list)).await?;
    let watch = Request::new(NAMESPACES)
        .watch(&WatchParams::default(), &rv)
        .map_err(kube::Error::BuildRequest)?;
    let mut events = ctx.client.request_events::<Value>(watch).await?.boxed();
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        tokio::select! {
            ev = events.try_next() => match ev? {
                Some(WatchEvent::Added(ns) | WatchEvent::Modified(ns)) => {
                    if meta(&ns, "deletionTimestamp").is_some() {
                        pending |= !finish(ctx, &ns).await?;
                    }
                }
                Some(WatchEvent::Deleted(_) | WatchEvent::Bookmark(_)) => {}
                // The watch ended (expired, compacted): start over.
                Some(WatchEvent::Error(_)) | None => return Ok(()),
            },
            _ = resync.tick() => { pending = !sweep(ctx).await?; }
            _ = tokio::time::sleep(RETRY), if pending => {
                pending = !sweep(ctx).await?;
            }
        }
    }
}

/// One pass over all terminating namespaces; true when none is left waiting.
async fn sweep(ctx: &Ctx) -> Result<bool, kube::Error> {
    let list: Value = ctx.client.request(list_namespaces()?).await?;
    finish_all(ctx, &items(list)).await
}

async fn finish_all(ctx: &Ctx, namespaces: &[Value]) -> Result<bool, kube::Error> {
    let mut done = true;
    for ns in namespaces
        .iter()
        .filter(|ns| meta(ns, "deletionTimestamp").is_some())
    {
        done &= finish(ctx, ns).await?;
    }
    Ok(done)
}

/// Delete the content of namespace `ns`; once it is empty, drop the
/// namespace's finalizer. True when the namespace is gone.
async fn finish(ctx: &Ctx, ns: &Value) -> Result<bool, kube::Error> {
    let Some(ns_name) = meta(ns, "name") else {
        return Ok(true);
    };
    if meta(ns, "deletionTimestamp").is_some_and(|marked| !past_grace(marked)) {
        return Ok(false);
    }
    let mut remaining = 0usize;
    for kind in &kinds(&ctx.api.registry) {
        let collection = Request::new(kind.collection(ns_name));
        let list = collection
            .list(&ListParams::default())
            .map_err(kube::Error::BuildRequest)?;
        for obj in items(ctx.client.request(list).await?) {
            remaining += 1;
            if meta(&obj, "deletionTimestamp").is_some() {
                continue;
            }
            let Some(obj_name) = meta(&obj, "name") else {
                continue;
            };
            let delete = collection
                .delete(obj_name, &DeleteParams::background())
                .map_err(kube::Error::BuildRequest)?;
            match ctx.client.request::<Value>(delete).await {
                Ok(_) => {}
                Err(e) if is_status(&e, |s| s.is_not_found()) => {}
                Err(e) => {
                    tracing::warn!(namespace = ns_name, resource = kind.plural, name = obj_name, error = %e, "cannot delete namespace content");
                }
            }
        }
    }
    if remaining > 0 {
        // Check again: objects without finalizers are gone by now.
        for kind in &kinds(&ctx.api.registry) {
            let list = Request::new(kind.collection(ns_name))
                .list(&ListParams::default().limit(1))
                .map_err(kube::Error::BuildRequest)?;
            if !items(ctx.client.request(list).await?).is_empty() {
                return Ok(false);
            }
        }
    }
    let namespaces = Request::new(NAMESPACES);
    let get = namespaces
        .get(ns_name, &Default::default())
        .map_err(kube::Error::BuildRequest)?;
    let Some(mut cur) = loopback::get_opt(&ctx.client, get).await? else {
        return Ok(true);
    };
    if let Some(finalizers) = cur
        .pointer_mut("/spec/finalizers")
        .and_then(Value::as_array_mut)
    {
        finalizers.retain(|f| f != "kubernetes");
    }
    let body = serde_json::to_vec(&cur).map_err(kube::Error::SerdeError)?;
    let finalize = namespaces
        .replace_subresource("finalize", ns_name, &PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    match ctx.client.request::<Value>(finalize).await {
        Ok(_) => {
            tracing::info!(
                namespace = ns_name,
                "namespace content deleted, finalizer released"
            );
            Ok(true)
        }
        Err(e) if is_status(&e, |s| s.is_conflict() || s.is_not_found()) => Ok(false),
        Err(e) => Err(e),
    }
}
