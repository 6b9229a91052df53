//! The CRDs' status and cleanup, as upstream's naming, establishing and
//! finalizing controllers: NamesAccepted and Established (with the names
//! served under and the versions stored in), and, for a CRD marked for
//! deletion, the removal of its objects before its finalizer goes.
//!
//! It works on the store directly, as upstream's controllers work on the
//! apiextensions server's own storage: status is the server's to write,
//! and a deleted CRD's objects may no longer be reachable through the API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::definition::set_condition;
use super::follow::Known;
use super::{FINALIZER, MAX_DEFS};
use crate::api::status::ApiError;
use crate::server::apiserver::object_store::decode;
use crate::server::apiserver::registry::ResourceDef;
use crate::server::apiserver::ApiState;
use crate::server::store::ListOptions;

/// How soon a CRD whose objects are still going is looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// Objects removed per pass of a deleted CRD.
const PAGE: usize = 500;

/// Run until `cancel` fires.
pub async fn run(state: Arc<ApiState>, cancel: CancellationToken) {
    let mut changed = state.registry.custom.changed.subscribe();
    loop {
        let known = state.registry.custom.known();
        let pending = match reconcile(&state, &known).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e.message, "CRD controller pass failed");
                true
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = changed.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RETRY), if pending => {}
        }
    }
}

/// One pass over every CRD; true when some are still being cleaned up.
async fn reconcile(state: &ApiState, known: &Known) -> Result<bool, ApiError> {
    let Some(def) = state
        .registry
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return Ok(false);
    };
    let mut pending = false;
    for (name, (rev, crd)) in &known.crds {
        if super::terminating(crd) {
            pending |= !clean_up(state, def, crd).await?;
            continue;
        }
        let mut want = Value::clone(crd);
        desired_status(&mut want, known, name);
        if want.get("status") != crd.get("status") {
            write(state, def, name, &want, *rev).await?;
        }
    }
    Ok(pending)
}

/// The status `crd` should have, from what serving it decided.
fn desired_status(crd: &mut Value, known: &Known, name: &str) {
    let accepted = known.accepted.get(name);
    match accepted {
        Some(Ok(names)) => {
            crd["status"]["acceptedNames"] = Value::Object(names.clone());
            set_condition(
                crd,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            );
        }
        Some(Err(c)) => {
            set_condition(crd, "NamesAccepted", "False", c.reason, &c.message);
        }
        None => {}
    }
    if known.refused.contains(name) {
        let msg = format!(
            "skiff serves at most {MAX_DEFS} distinct custom resource versions over its life; \
             restart the server to serve this one"
        );
        set_condition(crd, "Established", "False", "TooManyDefinitions", &msg);
    } else if matches!(accepted, Some(Ok(_))) {
        set_condition(
            crd,
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        );
    } else {
        set_condition(
            crd,
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
        );
    }
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v.get("name"))
        .cloned();
    let stored = &mut crd["status"]["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    if let (Some(list), Some(storage)) = (stored.as_array_mut(), storage) {
        if !list.contains(&storage) {
            list.push(storage);
        }
    }
}

async fn write(
    state: &ApiState,
    def: &ResourceDef,
    name: &str,
    crd: &Value,
    rev: crate::server::store::Revision,
) -> Result<(), ApiError> {
    let cur = state.objects.must_get(def, None, name).await?;
    // Written against what the follower saw: a newer version is seen
    // again with the change that made it.
    if rev != cur.rev {
        return Ok(());
    }
    let mut next = cur.obj.clone();
    next["status"] = crd["status"].clone();
    match state.objects.update(def, None, name, &next, cur.rev).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove a deleted CRD's objects, then its finalizer. True when done.
async fn clean_up(state: &ApiState, def: &ResourceDef, crd: &Value) -> Result<bool, ApiError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !crate::server::apiserver::metadata::finalizers(crd)
        .iter()
        .any(|f| f == FINALIZER)
    {
        return Ok(true);
    }
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let prefix = format!("/registry/{group}/{plural}/");
    // Built-in objects share the key space: a CRD naming a built-in
    // resource (never served) must not take its objects with it; nor does
    // a CRD that was never served have objects of its own.
    let overlaps = state
        .registry
        .builtins()
        .iter()
        .any(|d| d.key_prefix() == prefix);
    let established = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
    if overlaps || !established || group.is_empty() || plural.is_empty() {
        let (reason, message) = if overlaps {
            (
                "OverlappingBuiltInResource",
                "instances overlap with built-in resources in storage",
            )
        } else {
            ("NeverEstablished", "resource was never established")
        };
        return finish(state, def, name, reason, message).await;
    }
    let mut removing = false;
    let mut opts = ListOptions {
        limit: Some(PAGE),
        ..ListOptions::default()
    };
    loop {
        let page = state
            .objects
            .list_raw(&prefix, opts.clone())
            .await
            .map_err(|e| ApiError::internal(format!("listing {prefix}: {e}")))?;
        removing |= !page.items.is_empty();
        remove_page(state, &page.items).await?;
        if !page.more {
            break;
        }
        opts.revision = Some(page.revision);
        opts.start_after = page.items.last().map(|kv| kv.key.clone());
    }
    if !removing {
        return finish(
            state,
            def,
            name,
            "InstanceDeletionCompleted",
            "removed all instances",
        )
        .await;
    }
    Ok(false)
}

/// Delete the objects of one page, marking those finalizers hold.
async fn remove_page(
    state: &ApiState,
    items: &[crate::server::store::KeyValue],
) -> Result<(), ApiError> {
    for kv in items {
        let obj = decode(kv)?;
        let held = !crate::server::apiserver::metadata::finalizers(&obj).is_empty();
        let result = if held {
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let mut marked = obj;
            marked["metadata"]["deletionTimestamp"] =
                json!(crate::server::apiserver::metadata::now_rfc3339());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if let Some(g) = marked["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
                marked["metadata"]["generation"] = json!(g + 1);
            }
            match crate::server::apiserver::object_store::encode(&marked) {
                Ok(bytes) => state
                    .objects
                    .store
                    .update(&kv.key, bytes, kv.mod_revision)
                    .await
                    .map(|_| ()),
                Err(e) => return Err(e),
            }
        } else {
            state
                .objects
                .store
                .delete(&kv.key, Some(kv.mod_revision))
                .await
                .map(|_| ())
        };
        if let Err(e) = result {
            tracing::debug!(key = %kv.key, error = %e, "removing a deleted CRD's object; retrying");
        }
    }
    Ok(())
}

/// Drop the cleanup finalizer; with no other, the CRD goes.
async fn finish(
    state: &ApiState,
    def: &ResourceDef,
    name: &str,
    reason: &str,
    message: &str,
) -> Result<bool, ApiError> {
    let Some(cur) = state.objects.get(def, None, name).await? else {
        return Ok(true);
    };
    let mut next = cur.obj.clone();
    if let Some(list) = next
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f != FINALIZER);
    }
    let result = if crate::server::apiserver::metadata::finalizers(&next).is_empty() {
        state
            .objects
            .delete(def, None, name, Some(cur.rev))
            .await
            .map(|_| ())
    } else {
        let status = if reason == "InstanceDeletionCompleted" {
            "True"
        } else {
            "False"
        };
        set_condition(&mut next, "Terminating", status, reason, message);
        state
            .objects
            .update(def, None, name, &next, cur.rev)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_conflict() || e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
