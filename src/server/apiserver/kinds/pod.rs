//! Pods: created Pending; a pod a node runs is only marked on delete, and
//! its kubelet removes it once the containers are stopped.

use serde_json::{json, Map, Value};

use super::{bool_at, str_at, DeletePolicy, Strategy};

pub struct Pod;

pub static POD: Pod = Pod;

/// As the apiserver's pod field label conversion accepts them.
const FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

impl Strategy for Pod {
    fn status_on_create(&self, obj: &mut Map<String, Value>) {
        obj.insert("status".into(), json!({"phase": "Pending"}));
    }

    fn delete_policy(&self, obj: &Value, grace_seconds: Option<i64>) -> DeletePolicy {
        let grace = grace(obj, grace_seconds);
        DeletePolicy {
            marked_only: grace > 0,
            grace: Some(grace),
        }
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }

    fn field_labels(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "spec.hostNetwork" => Some(bool_at(obj, "/spec/hostNetwork")),
            "status.podIP" => Some(
                obj.pointer("/status/podIPs/0/ip")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| str_at(obj, "/status/podIP")),
            ),
            _ => None,
        }
    }
}

/// The grace period of a delete: 0 for pods no node runs or that have
/// finished (nothing to stop, so they go at once), else the request's or
/// the pod's own.
fn grace(obj: &Value, requested: Option<i64>) -> i64 {
    let on_node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !on_node || finished {
        return 0;
    }
    requested.unwrap_or_else(|| {
        obj.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    })
}
