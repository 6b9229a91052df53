//! The namespace controller: when a namespace is marked for deletion, delete
//! everything in it, then release its "kubernetes" finalizer so it goes.
//!
//! An ordinary API client (`auth::NAMESPACE_CONTROLLER_USER` through the
//! loopback): it lists and watches namespaces, deletes their content with
//! background propagation and releases the finalizer with
//! `PUT namespaces/<ns>/finalize`, as upstream's controller does.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams,
};
use tokio_util::sync::CancellationToken;

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
const GRACE: SignedDuration = SignedDuration::from_secs(2);

/// The managedFields manager of what the controller writes.
pub const AGENT: &str = "skiff-namespace-controller";

/// What the controller works with: a client, and the namespaced kinds it
/// empties (those that can be listed; the others store nothing).
#[derive(Clone)]
pub struct Ctx {
    pub client: kube::Client,
    pub kinds: Vec<ApiResource>,
}

/// The kinds a namespace's content can be of: the namespaced kinds that
/// can be listed (the others, reviews and the like, store nothing).
pub fn kinds(registry: &Registry) -> Vec<ApiResource> {
    registry
        .all()
        .iter()
        .filter(|d| d.namespaced && d.verbs.contains(&"list"))
        .map(loopback::api_resource)
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

fn terminating(meta: &kube::api::ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// List, finish what is terminating, then follow a watch until it ends.
async fn watch_and_finish(ctx: &Ctx) -> Result<(), kube::Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let list = namespaces.list(&ListParams::default()).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut pending = !finish_all(ctx, &list.items).await?;
    let mut events = namespaces
        .watch(&WatchParams::default(), &rv)
        .await?
        .boxed();
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        tokio::select! {
            ev = events.try_next() => match ev? {
                Some(WatchEvent::Added(ns) | WatchEvent::Modified(ns)) => {
                    if terminating(&ns.metadata) {
                        pending |= !finish(ctx, &ns).await?;
                    }
                }
                Some(WatchEvent::Deleted(_) | WatchEvent::Bookmark(_)) => {}
                // The watch ended (expired, compacted): start over.
                Some(WatchEvent::Error(_)) | None => return Ok(()),
            },
            _ = resync.tick() => { pending = !sweep(ctx, &namespaces).await?; }
            _ = tokio::time::sleep(RETRY), if pending => {
                pending = !sweep(ctx, &namespaces).await?;
            }
        }
    }
}

/// One pass over all terminating namespaces; true when none is left waiting.
async fn sweep(ctx: &Ctx, namespaces: &Api<Namespace>) -> Result<bool, kube::Error> {
    let list = namespaces.list(&ListParams::default()).await?;
    finish_all(ctx, &list.items).await
}

async fn finish_all(ctx: &Ctx, items: &[Namespace]) -> Result<bool, kube::Error> {
    let mut done = true;
    for ns in items.iter().filter(|ns| terminating(&ns.metadata)) {
        done &= finish(ctx, ns).await?;
    }
    Ok(done)
}

fn is_status(e: &kube::Error, f: impl Fn(&kube::core::Status) -> bool) -> bool {
    matches!(e, kube::Error::Api(s) if f(s))
}

/// Delete the content of namespace `ns`; once it is empty, drop the
/// namespace's finalizer. True when the namespace is gone.
async fn finish(ctx: &Ctx, ns: &Namespace) -> Result<bool, kube::Error> {
    let Some(name) = ns.metadata.name.as_deref() else {
        return Ok(true);
    };
    if let Some(marked) = &ns.metadata.deletion_timestamp {
        if Timestamp::now().duration_since(marked.0) < GRACE {
            return Ok(false);
        }
    }
    let mut remaining = 0usize;
    for kind in &ctx.kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), name, kind);
        for obj in api.list(&ListParams::default()).await?.items {
            remaining += 1;
            if terminating(&obj.metadata) {
                continue;
            }
            let Some(obj_name) = obj.metadata.name.as_deref() else {
                continue;
            };
            match api.delete(obj_name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, |s| s.is_not_found()) => {}
                Err(e) => {
                    tracing::warn!(namespace = name, resource = kind.plural, name = obj_name, error = %e, "cannot delete namespace content");
                }
            }
        }
    }
    if remaining > 0 {
        // Check again: objects without finalizers are gone by now.
        for kind in &ctx.kinds {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), name, kind);
            if !api
                .list(&ListParams::default().limit(1))
                .await?
                .items
                .is_empty()
            {
                return Ok(false);
            }
        }
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let Some(mut cur) = namespaces.get_opt(name).await? else {
        return Ok(true);
    };
    if let Some(spec) = cur.spec.as_mut() {
        if let Some(f) = spec.finalizers.as_mut() {
            f.retain(|f| f != "kubernetes");
        }
    }
    match namespaces
        .replace_subresource("finalize", name, &PostParams::default(), &cur)
        .await
    {
        Ok(_) => {
            tracing::info!(
                namespace = name,
                "namespace content deleted, finalizer released"
            );
            Ok(true)
        }
        Err(e) if is_status(&e, |s| s.is_conflict() || s.is_not_found()) => Ok(false),
        Err(e) => Err(e),
    }
}
