//! The AdmissionReview as upstream builds it (`CreateV1AdmissionReview`)
//! and its answer as upstream reads it: patch fields, denials and their
//! status; and the options a pod CONNECT is sent as.

use serde_json::{json, Value};

use super::config::{Hook, Phase};
use super::{matching, Operation, Request};
use crate::api::status::ApiError;

/// A denial in `response` as upstream's ToStatusErr words it.
pub(super) fn denied(hook: &Hook, response: &Value) -> Result<(), ApiError> {
    if response.get("allowed").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let status = response.get("status").unwrap_or(&Value::Null);
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400);
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook {:?} denied the request", hook.name);
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    Err(ApiError::new(code, status_reason(reason, code), text))
}

/// The webhook's reason when it is one of the API's, else the code's.
fn status_reason(reason: &str, code: u16) -> &'static str {
    const KNOWN: &[&str] = &[
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == reason) {
        return k;
    }
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Gone",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ if code >= 500 => "InternalError",
        _ => "BadRequest",
    }
}

/// Upstream's checks of a response's patch fields: only mutating webhooks
/// patch, and a v1 one says how.
pub(super) fn check_patch_fields(hook: &Hook, response: &Value) -> Result<(), &'static str> {
    let patch = response
        .get("patch")
        .and_then(Value::as_str)
        .is_some_and(|p| !p.is_empty());
    let patch_type = response.get("patchType").is_some_and(|t| !t.is_null());
    match hook.phase {
        Phase::Validating if patch => Err("validating webhook may not return response.patch"),
        Phase::Validating if patch_type => {
            Err("validating webhook may not return response.patchType")
        }
        Phase::Mutating if hook.review_version == "v1" && patch && !patch_type => {
            Err("webhook returned response.patch but not response.patchType")
        }
        _ => Ok(()),
    }
}

/// The AdmissionReview sent (upstream's CreateV1AdmissionReview).
pub(super) fn review(
    hook: &Hook,
    req: &Request<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    uid: &str,
) -> Value {
    let def = req.def;
    let kind =
        json!({"group": def.group, "version": def.version, "kind": req.kind.unwrap_or(def.kind)});
    let resource = json!({"group": def.group, "version": def.version, "resource": def.plural});
    let options = match req.op {
        Operation::Create => json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}),
        Operation::Update => json!({"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}),
        Operation::Delete => json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"}),
        Operation::Connect => Value::Null,
    };
    let mut r = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": req.name,
        "operation": req.op.as_str(),
        "userInfo": {"username": req.who.user, "groups": req.who.groups},
        "object": obj,
        "oldObject": old,
        "dryRun": req.dry_run,
        "options": options,
    });
    if let Some(sub) = req.subresource {
        r["subResource"] = json!(sub);
        r["requestSubResource"] = json!(sub);
    }
    // A namespace's own requests carry its name as their namespace.
    if let Some(ns) = req
        .namespace
        .or(matching::is_namespace(req).then_some(req.name))
    {
        r["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": format!("admission.k8s.io/{}", hook.review_version),
        "kind": "AdmissionReview",
        "request": r,
    })
}

/// The kind and object a pod CONNECT (`exec`, `attach`, `portforward`) is
/// sent to webhooks as, read from its query; `None` for other subresources.
pub fn connect_options(sub: &str, query: &[(String, String)]) -> Option<(&'static str, Value)> {
    let flag = |k: &str| {
        query
            .iter()
            .any(|(q, v)| q == k && matches!(v.as_str(), "true" | "1"))
    };
    let one = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let all = |k: &str| -> Vec<&str> {
        query
            .iter()
            .filter(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let streams = |kind: &str| {
        let mut o = json!({
            "kind": kind, "apiVersion": "v1",
            "stdin": flag("stdin"), "stdout": flag("stdout"),
            "stderr": flag("stderr"), "tty": flag("tty"),
        });
        if let Some(c) = one("container") {
            o["container"] = json!(c);
        }
        o
    };
    match sub {
        "exec" => {
            let mut o = streams("PodExecOptions");
            o["command"] = json!(all("command"));
            Some(("PodExecOptions", o))
        }
        "attach" => Some(("PodAttachOptions", streams("PodAttachOptions"))),
        "portforward" => {
            let ports: Vec<i64> = all("ports")
                .iter()
                .flat_map(|p| p.split(','))
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            Some((
                "PodPortForwardOptions",
                json!({"kind": "PodPortForwardOptions", "apiVersion": "v1", "ports": ports}),
            ))
        }
        _ => None,
    }
}
