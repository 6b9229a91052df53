//! The namespace controller: when a namespace is marked for deletion, delete
//! everything in it, then release its "kubernetes" finalizer so it goes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::api::status::ApiError;
use crate::server::apiserver::objects::{meta, meta_str, name_of};
use crate::server::apiserver::registry::ResourceDef;
use crate::server::apiserver::write::{commit_update, delete_one, DeleteOptions};
use crate::server::apiserver::ApiState;
use crate::server::store::{EventKind, ListOptions};

/// A terminating namespace whose content is still held (by finalizers) is
/// looked at again after this long.
const RETRY: Duration = Duration::from_secs(2);
/// Periodic full pass, in case an event was missed.
const RESYNC: Duration = Duration::from_secs(30);
/// Content is deleted only this long after the namespace was marked, so that
/// a client deleting a manifest's objects one by one (`kubectl delete -f`
/// with the Namespace first) finds them still there, as on a real cluster,
/// where the namespace controller's discovery pass takes about as long.
const GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

pub fn spawn(state: Arc<ApiState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = run(&state).await {
                tracing::warn!(error = %e, "namespace controller restarting");
                tokio::time::sleep(RETRY).await;
            }
        }
    })
}

fn ns_def(state: &ApiState) -> Result<ResourceDef, ApiError> {
    state
        .registry
        .find("", "v1", "namespaces")
        .cloned()
        .ok_or_else(|| ApiError::internal("namespaces are not registered"))
}

fn terminating(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.contains_key("deletionTimestamp"))
}

async fn run(state: &Arc<ApiState>) -> Result<(), ApiError> {
    let def = ns_def(state)?;
    let store = state.objects.store.clone();
    let start = store.current_revision();
    sweep(state, &def).await?;
    let mut events = store
        .watch(&def.key_prefix(), start)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    let mut pending = false;
    loop {
        tokio::select! {
            ev = events.recv() => {
                match ev {
                    Some(Ok(ev)) if ev.kind != EventKind::Delete => {
                        if let Ok(obj) = serde_json::from_slice::<Value>(&ev.kv.value) {
                            if terminating(&obj) {
                                if let Some(name) = name_of(&obj) {
                                    pending |= !finish(state, &def, name).await?;
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    // The watch ended (lagged, compacted): start over.
                    Some(Err(_)) | None => return Ok(()),
                }
            }
            _ = resync.tick() => { pending = !sweep(state, &def).await?; }
            _ = tokio::time::sleep(RETRY), if pending => { pending = !sweep(state, &def).await?; }
        }
    }
}

/// One pass over all terminating namespaces; true when none is left waiting.
async fn sweep(state: &ApiState, def: &ResourceDef) -> Result<bool, ApiError> {
    let list = state
        .objects
        .list_raw(&def.key_prefix(), ListOptions::default())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut done = true;
    for kv in list.items {
        let obj: Value = match serde_json::from_slice(&kv.value) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if terminating(&obj) {
            if let Some(name) = name_of(&obj) {
                done &= finish(state, def, name).await?;
            }
        }
    }
    Ok(done)
}

/// Delete the content of namespace `ns`; once it is empty, drop the
/// namespace's finalizer. True when the namespace is gone.
async fn finish(state: &ApiState, def: &ResourceDef, ns: &str) -> Result<bool, ApiError> {
    if let Some(cur) = state.objects.get(def, None, ns).await? {
        let marked =
            meta_str(&cur.obj, "deletionTimestamp").and_then(crate::api::duration::parse_time);
        if marked.is_some_and(|t| chrono::Utc::now() - t < GRACE) {
            return Ok(false);
        }
    }
    let mut remaining = 0usize;
    let opts = DeleteOptions {
        propagation: Some("Background".into()),
        ..Default::default()
    };
    for rdef in state.registry.all().iter().filter(|d| d.namespaced) {
        let list = state
            .objects
            .list_raw(&rdef.namespace_prefix(Some(ns)), ListOptions::default())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        for kv in list.items {
            remaining += 1;
            let obj: Value = match serde_json::from_slice(&kv.value) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if terminating(&obj) {
                continue;
            }
            let name = meta_str(&obj, "name").unwrap_or("").to_string();
            match delete_one(state, rdef, Some(ns), &name, &opts).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(namespace = ns, resource = rdef.plural, name, error = %e, "cannot delete namespace content");
                }
            }
        }
    }
    if remaining > 0 {
        // Check again: objects without finalizers are gone by now.
        let mut left = 0usize;
        for rdef in state.registry.all().iter().filter(|d| d.namespaced) {
            left += state
                .objects
                .store
                .count(&rdef.namespace_prefix(Some(ns)))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))? as usize;
        }
        if left > 0 {
            return Ok(false);
        }
    }
    let cur = match state.objects.get(def, None, ns).await? {
        Some(c) => c,
        None => return Ok(true),
    };
    let mut new = cur.obj.clone();
    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(Value::Array(f)) = spec.get_mut("finalizers") {
            f.retain(|v| v != "kubernetes");
        }
    }
    match commit_update(state, def, None, ns, &new, cur.rev, false).await {
        Ok(_) => {
            tracing::info!(
                namespace = ns,
                "namespace content deleted, finalizer released"
            );
            Ok(true)
        }
        Err(e) if e.code == 409 || e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
