//! `pods/binding` (and the older `bindings` collection): how a scheduler
//! assigns a pod to a node. As upstream's: the pod gets `spec.nodeName` and
//! a `PodScheduled=True` condition in one write, a pod already assigned or
//! being deleted is a 409, a UID in the binding is a precondition, and the
//! binding's annotations are copied onto the pod.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::metadata::{meta_str, now_rfc3339};
use super::negotiate::json_response;
use super::write::{commit_update, Write};
use super::Call;
use crate::api::status::{success_status, ApiError, Cause};

/// Bind pod `name` (of `call`'s namespace) as `binding` says.
pub async fn create(
    call: &Call<'_>,
    name: &str,
    binding: &Value,
    manager: &str,
) -> Result<Response, ApiError> {
    let Call { state, ctx, r, .. } = *call;
    let def = r.def;
    let ns = r.namespace.as_deref();
    if let Some(n) = meta_str(binding, "name").filter(|n| !n.is_empty() && *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the binding ({n}) does not match the name of the pod on the URL ({name})"
        )));
    }
    let target = target_node(binding, name)?;
    for _ in 0..16 {
        let cur = state.objects.must_get(def, ns, name).await?;
        let mut pod = cur.obj.clone();
        check_uid(binding, &pod, name)?;
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                def.group,
                def.plural,
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let gated = pod
            .pointer("/spec/schedulingGates")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
        if gated {
            return Err(ApiError::conflict(
                def.group,
                def.plural,
                name,
                &format!("pod {name} has non-empty .spec.schedulingGates"),
            ));
        }
        let bound = pod.pointer("/spec/nodeName").and_then(Value::as_str);
        if let Some(node) = bound.filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                def.group,
                def.plural,
                name,
                &format!("pod {name} is already assigned to node {node:?}"),
            ));
        }
        let now = now_rfc3339();
        bind(&mut pod, binding, target, &now);
        super::apply::record_update(Some(&cur.obj), &mut pod, manager, Some("binding"), &now);
        let w = Write::to(state, r, name, ctx);
        match commit_update(w, &pod, cur.rev).await {
            Ok(_) => {
                let mut done = success_status(None);
                done["code"] = json!(201);
                return Ok(json_response(StatusCode::CREATED, &done));
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        def.group,
        def.plural,
        name,
        "the object kept changing; try again",
    ))
}

/// The node a binding names (`target.name`; `target.kind` Node or unset).
fn target_node<'a>(binding: &'a Value, pod: &str) -> Result<&'a str, ApiError> {
    let invalid = |field: &str, msg: &str| {
        ApiError::invalid(
            "",
            "Binding",
            pod,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: msg.into(),
                field: field.into(),
            }],
        )
    };
    let target = binding.get("target").unwrap_or(&Value::Null);
    if let Some(kind) = target.get("kind").and_then(Value::as_str) {
        if !kind.is_empty() && kind != "Node" {
            return Err(ApiError::invalid(
                "",
                "Binding",
                pod,
                vec![Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!(
                        "Unsupported value: {kind:?}: supported values: \"Node\", \"\""
                    ),
                    field: "target.kind".into(),
                }],
            ));
        }
    }
    match target.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(invalid("target.name", "Required value")),
    }
}

fn check_uid(binding: &Value, pod: &Value, name: &str) -> Result<(), ApiError> {
    let Some(want) = meta_str(binding, "uid").filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    let have = meta_str(pod, "uid").unwrap_or("");
    if want == have {
        return Ok(());
    }
    Err(ApiError::conflict(
        "",
        "pods",
        name,
        &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
    ))
}

/// Set the node, the PodScheduled condition and the binding's annotations.
fn bind(pod: &mut Value, binding: &Value, node: &str, now: &str) {
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("nodeName".into(), json!(node));
    }
    if let Some(extra) = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .filter(|a| !a.is_empty())
    {
        if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(a) = annotations.as_object_mut() {
                for (k, v) in extra {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let Some(obj) = pod.as_object_mut() else {
        return;
    };
    let status = obj
        .entry("status")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(status) = status.as_object_mut() else {
        return;
    };
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(conditions) = conditions.as_array_mut() else {
        return;
    };
    conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    conditions.push(json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": now,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_sets_the_node_and_replaces_an_unschedulable_condition() {
        let mut pod = json!({
            "metadata": {"name": "p", "annotations": {"a": "1"}},
            "spec": {"containers": []},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            ]}
        });
        let binding = json!({
            "metadata": {"name": "p", "annotations": {"b": "2"}},
            "target": {"kind": "Node", "name": "n1"}
        });
        assert_eq!(target_node(&binding, "p").unwrap(), "n1");
        bind(&mut pod, &binding, "n1", "2026-01-01T00:00:00Z");
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "1", "b": "2"}));
        let conds = pod["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["status"], "True");
    }

    #[test]
    fn a_binding_without_a_node_or_to_another_kind_is_invalid() {
        let e = target_node(&json!({"target": {}}), "p").unwrap_err();
        assert_eq!(e.code, 422);
        let e = target_node(&json!({"target": {"kind": "Pod", "name": "x"}}), "p").unwrap_err();
        assert_eq!(e.code, 422);
        assert!(check_uid(
            &json!({"metadata": {"uid": "u1"}}),
            &json!({"metadata": {"uid": "u2"}}),
            "p"
        )
        .is_err());
    }
}
