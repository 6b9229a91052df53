//! Calling the webhooks a request matches: the mutating ones one after
//! another on the object, the validating ones at once, each within the
//! request's budget, a failed call failing the request or skipped as its
//! `failurePolicy` says.

use std::time::Instant;

use base64::Engine;
use serde_json::{Map, Value};

use super::config::{self, Hook};
use super::review::{check_patch_fields, denied, review};
use super::{call, matching, Operation, Request};
use crate::api::status::ApiError;
use crate::server::apiserver::ApiState;

/// The mutating webhooks that match, called in order on `obj` (`None` for
/// a delete); returns whether they changed it.
pub async fn mutate(
    state: &ApiState,
    req: &Request<'_>,
    mut obj: Option<&mut Value>,
    old: Option<&Value>,
) -> Result<bool, ApiError> {
    if req.exempt() {
        return Ok(false);
    }
    let all = state.webhooks.hooks();
    if all.mutating.is_empty() {
        return Ok(false);
    }
    let mut ns_labels = None;
    let mut changed_at = None;
    let mut reinvocable = Vec::new();
    for (i, hook) in all.mutating.iter().enumerate() {
        if !matches(state, hook, req, obj.as_deref(), old, &mut ns_labels).await? {
            continue;
        }
        if call_mutating(state, hook, req, obj.as_deref_mut(), old).await? {
            changed_at = Some(i);
        }
        if hook.reinvoke {
            reinvocable.push(i);
        }
    }
    let changed = changed_at.is_some();
    // Called once more: the IfNeeded webhooks that ran before the last
    // change (upstream's reinvocation, webhooks only).
    if let Some(last) = changed_at {
        for i in reinvocable.into_iter().filter(|i| *i < last) {
            let hook = &all.mutating[i];
            if matches(state, hook, req, obj.as_deref(), old, &mut ns_labels).await? {
                call_mutating(state, hook, req, obj.as_deref_mut(), old).await?;
            }
        }
    }
    Ok(changed)
}

/// The validating webhooks that match, called at once; the first to deny
/// (in configuration order) is the answer.
pub async fn validate(
    state: &ApiState,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if req.exempt() {
        return Ok(());
    }
    let all = state.webhooks.hooks();
    if all.validating.is_empty() {
        return Ok(());
    }
    let mut ns_labels = None;
    let mut called = Vec::new();
    for hook in all.validating.iter() {
        if matches(state, hook, req, obj, old, &mut ns_labels).await? {
            called.push(hook.clone());
        }
    }
    let answers =
        futures::future::join_all(called.iter().map(|h| ask(state, h, req, obj, old))).await;
    for (hook, answer) in called.iter().zip(answers) {
        match answer {
            Ok(Some(response)) => denied(hook, &response)?,
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `hook` is asked about the request: its rules, then its
/// selectors (the namespace's labels read once per request).
async fn matches(
    state: &ApiState,
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    ns_labels: &mut Option<Map<String, Value>>,
) -> Result<bool, ApiError> {
    if !matching::rules_match(hook, req) || !matching::object_matches(hook, obj, old) {
        return Ok(false);
    }
    if !matching::needs_namespace(hook, req) {
        return Ok(true);
    }
    if ns_labels.is_none() {
        *ns_labels = Some(namespace_labels(state, req, obj, old).await?);
    }
    Ok(ns_labels
        .as_ref()
        .is_some_and(|l| matching::namespace_matches(hook, l)))
}

/// The labels of the request's namespace; for a namespace itself, of the
/// object being written (or deleted).
async fn namespace_labels(
    state: &ApiState,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<Map<String, Value>, ApiError> {
    if matching::is_namespace(req) {
        return Ok(config::labels(obj.or(old)));
    }
    let ns = req.namespace.unwrap_or("");
    let def = state
        .registry
        .find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
    match state.objects.get(def, None, ns).await? {
        Some(stored) => Ok(config::labels(Some(&stored.obj))),
        None => Err(ApiError::not_found("", "namespaces", ns)),
    }
}

/// Call a mutating webhook and apply its patch; whether it changed `obj`.
async fn call_mutating(
    state: &ApiState,
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&mut Value>,
    old: Option<&Value>,
) -> Result<bool, ApiError> {
    let Some(response) = ask(state, hook, req, obj.as_deref(), old).await? else {
        return Ok(false);
    };
    denied(hook, &response)?;
    // A CONNECT's options are read from the request, not from the object.
    if req.op == Operation::Connect {
        return Ok(false);
    }
    let patch = response.get("patch").and_then(Value::as_str).unwrap_or("");
    let patch_type = response.get("patchType").and_then(Value::as_str);
    if patch.is_empty() {
        return Ok(false);
    }
    let failed = |why: String| -> Result<bool, ApiError> {
        fail(
            hook,
            format!("failed calling webhook {:?}: {why}", hook.name),
        )
    };
    if patch_type.is_some_and(|t| t != "JSONPatch") {
        return failed(format!(
            "unsupported patch type {:?}",
            patch_type.unwrap_or("")
        ));
    }
    let ops: json_patch::Patch = match base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(ops) => ops,
        Err(e) => {
            return failed(format!(
                "received undecodable patch in webhook response: {e}"
            ))
        }
    };
    if ops.0.is_empty() {
        return Ok(false);
    }
    let Some(obj) = obj else {
        return Err(ApiError::internal(format!(
            "Internal error occurred: admission webhook {:?} attempted to modify the object, which is not supported for this operation",
            hook.name
        )));
    };
    let mut patched = obj.clone();
    crate::server::apiserver::patch::apply_json_patch(&mut patched, &ops.0, req.name)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {}", e.message)))?;
    for (ptr, what) in [
        ("/apiVersion", "apiVersion"),
        ("/kind", "kind"),
        ("/metadata/name", "metadata.name"),
        ("/metadata/namespace", "metadata.namespace"),
    ] {
        if patched.pointer(ptr) != obj.pointer(ptr) {
            return Err(ApiError::internal(format!(
                "Internal error occurred: admission webhook {:?} attempted to change {what}, which is not supported",
                hook.name
            )));
        }
    }
    // As upstream's decode into the kind: unknown fields go, defaults are set.
    crate::server::apiserver::crd::prune_and_default(req.def, &mut patched);
    let changed = patched != *obj;
    *obj = patched;
    Ok(changed)
}

/// A failed call: the request fails (500) unless the webhook fails open.
fn fail<T: Default>(hook: &Hook, why: String) -> Result<T, ApiError> {
    if hook.fail_open {
        tracing::warn!(webhook = %hook.name, "failed calling webhook, failing open: {why}");
        return Ok(T::default());
    }
    tracing::warn!(webhook = %hook.name, "failed calling webhook, failing closed: {why}");
    Err(ApiError::internal(format!(
        "Internal error occurred: {why}"
    )))
}

/// Ask `hook` about the request; its `response` (`None`: it could not be
/// asked and fails open). Warnings it gives go to the client.
async fn ask(
    state: &ApiState,
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<Option<Value>, ApiError> {
    // v1 accepts only webhooks whose sideEffects let them be called on a
    // dry run (None, NoneOnDryRun): nothing to refuse here.
    let left = req.deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ApiError::timeout(
            "request did not complete within requested timeout",
        ));
    }
    let uid = uuid::Uuid::new_v4().to_string();
    let review = review(hook, req, obj, old, &uid);
    match call::call(state, hook, &review, &uid, hook.timeout.min(left)).await {
        Ok(response) => {
            if let Err(why) = check_patch_fields(hook, &response) {
                return fail(
                    hook,
                    format!(
                        "failed calling webhook {:?}: received invalid webhook response: {why}",
                        hook.name
                    ),
                );
            }
            for w in response
                .get("warnings")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(Value::as_str)
                .take(16)
            {
                crate::server::apiserver::warnings::add(w.to_string());
            }
            Ok(Some(response))
        }
        Err(call::CallError(why)) => fail(
            hook,
            format!("failed calling webhook {:?}: {why}", hook.name),
        ),
    }
}

/// A pod CONNECT through the webhooks (mutating ones may deny it, not
/// change it).
pub async fn admit_connect(
    state: &ApiState,
    req: &Request<'_>,
    options: &mut Value,
) -> Result<(), ApiError> {
    mutate(state, req, Some(options), None).await?;
    validate(state, req, Some(options), None).await
}
