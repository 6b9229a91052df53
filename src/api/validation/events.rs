//! Events, as the apiserver checks them (`ValidateEventCreate`): one
//! store seen through two APIs, so each API checks what its own clients
//! must send. events.k8s.io/v1 requires what a new-style recorder always
//! sets; core v1 keeps the legacy rules, where the namespace of the event
//! must be the involved object's.

use serde_json::Value;

use super::causes::{self, go_str};
use super::str_at;
use crate::api::status::Cause;

/// Longest `reportingInstance`, `action` and `reason`.
const MAX_FIELD: usize = 128;
/// Longest `note`.
const MAX_NOTE: usize = 4096;

fn check_type(ty: Option<&str>, out: &mut Vec<Cause>) {
    if let Some(t) = ty.filter(|t| !matches!(*t, "Normal" | "Warning")) {
        out.push(causes::invalid(
            "type",
            "\"\"",
            &format!("has invalid value: {t}"),
        ));
    }
}

/// events.k8s.io/v1 Events.
pub fn validate_event(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let set = |k: &str| str_at(obj, k).filter(|s| !s.is_empty());
    if set("eventTime").is_none() {
        out.push(causes::required("eventTime", ""));
    }
    check_type(str_at(obj, "type"), &mut out);
    if set("reportingController").is_none() {
        out.push(causes::required("reportingController", ""));
    }
    for key in ["reportingInstance", "action", "reason"] {
        match set(key) {
            None => out.push(causes::required(key, "")),
            Some(v) if v.len() > MAX_FIELD => out.push(causes::too_long(key, MAX_FIELD)),
            Some(_) => {}
        }
    }
    if set("note").is_some_and(|n| n.len() > MAX_NOTE) {
        out.push(causes::too_long("note", MAX_NOTE));
    }
    out
}

/// Core v1 Events: the involved object's namespace is the event's (an
/// event about a cluster-scoped object lives in `default` or
/// `kube-system`).
pub fn validate_core_event(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_style = str_at(obj, "reportingComponent").is_some_and(|s| !s.is_empty());
    let mismatch = if involved.is_empty() {
        !matches!(ns, "default" | "kube-system")
    } else {
        !new_style && involved != ns
    };
    if mismatch {
        out.push(causes::invalid(
            "involvedObject.namespace",
            &go_str(involved),
            "does not match event.namespace",
        ));
    }
    if new_style {
        check_type(str_at(obj, "type"), &mut out);
    }
    out
}
