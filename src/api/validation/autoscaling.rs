//! `ValidateHorizontalPodAutoscaler` (`pkg/apis/autoscaling/validation`).
//! Upstream validates the internal form, whose paths are v2's, so a v1
//! object is converted and checked as v2: its errors name v2 fields, as a
//! real server's do.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::Value;

use super::causes::{self, go_json, go_str};
use super::meta::path_segment_errors;
use super::quantity;
use super::{is_dns1123_label, is_qualified_name, str_at};
use crate::api::defaulting::autoscaling::hpa_v2;
use crate::api::hpa_versions;
use crate::api::status::Cause;

/// Longest `periodSeconds` of a scaling policy.
const MAX_PERIOD_SECONDS: i64 = 1800;
/// Longest stabilization window.
const MAX_STABILIZATION_WINDOW_SECONDS: i64 = 3600;
const METRIC_SOURCE_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];
const SELECT_POLICIES: &[&str] = &["Disabled", "Max", "Min"];
const POLICY_TYPES: &[&str] = &["Percent", "Pods"];

/// An `autoscaling/v1` HorizontalPodAutoscaler.
pub fn validate_hpa_v1(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    // Upstream's conversion fails on these; the object cannot be stored.
    if let Some(notes) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for key in [
            hpa_versions::METRICS_ANNOTATION,
            hpa_versions::CURRENT_METRICS_ANNOTATION,
            hpa_versions::CONDITIONS_ANNOTATION,
            hpa_versions::BEHAVIOR_ANNOTATION,
        ] {
            let Some(raw) = notes.get(key) else { continue };
            let parsed = raw
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok());
            let fits = match (key, parsed) {
                (hpa_versions::BEHAVIOR_ANNOTATION, Some(v)) => v.is_object(),
                (_, Some(v)) => v.is_array(),
                _ => false,
            };
            if !fits {
                out.push(causes::invalid(
                    &format!("metadata.annotations[{key}]"),
                    &go_json(raw),
                    "must hold the JSON its autoscaling/v2 field takes",
                ));
            }
        }
    }
    let mut v2 = obj.clone();
    hpa_versions::v1_to_v2(&mut v2);
    hpa_v2(&mut v2);
    // What the annotations brought must be what v2's fields hold: the
    // stored object is read back typed, by every client.
    if out.is_empty() {
        if let Err(e) = serde_json::from_value::<HorizontalPodAutoscaler>(v2.clone()) {
            out.push(causes::invalid(
                "metadata.annotations",
                &go_json(obj.pointer("/metadata/annotations").unwrap_or(&Value::Null)),
                &format!("must hold the JSON its autoscaling/v2 field takes: {e}"),
            ));
        }
    }
    out.extend(validate_hpa_v2(&v2));
    out
}

/// An `autoscaling/v2` HorizontalPodAutoscaler (defaulted).
pub fn validate_hpa_v2(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if let Some(min) = min.filter(|m| *m < 1) {
        out.push(causes::invalid(
            "spec.minReplicas",
            &min.to_string(),
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        out.push(causes::invalid(
            "spec.maxReplicas",
            &max.to_string(),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|min| max < min) {
        out.push(causes::invalid(
            "spec.maxReplicas",
            &max.to_string(),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    object_ref(
        spec.get("scaleTargetRef").unwrap_or(&Value::Null),
        "spec.scaleTargetRef",
        &mut out,
    );
    if let Some(metrics) = spec.get("metrics").and_then(Value::as_array) {
        for (i, m) in metrics.iter().enumerate() {
            metric_spec(m, &format!("spec.metrics[{i}]"), &mut out);
        }
    }
    if let Some(b) = spec.get("behavior").filter(|b| b.is_object()) {
        for dir in ["scaleUp", "scaleDown"] {
            if let Some(r) = b.get(dir).filter(|r| r.is_object()) {
                scaling_rules(r, &format!("spec.behavior.{dir}"), &mut out);
            }
        }
    }
    out
}

/// `ValidateCrossVersionObjectReference`.
fn object_ref(r: &Value, path: &str, out: &mut Vec<Cause>) {
    for key in ["kind", "name"] {
        let field = format!("{path}.{key}");
        match str_at(r, key).filter(|s| !s.is_empty()) {
            None => out.push(causes::required(&field, "")),
            Some(s) => {
                for msg in path_segment_errors(s) {
                    out.push(causes::invalid(&field, &go_str(s), &msg));
                }
            }
        }
    }
}

fn metric_spec(m: &Value, path: &str, out: &mut Vec<Cause>) {
    let ty = str_at(m, "type").unwrap_or("");
    if ty.is_empty() {
        out.push(causes::required(
            &format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    let sources = [
        ("Object", "object"),
        ("External", "external"),
        ("Pods", "pods"),
        ("Resource", "resource"),
        ("ContainerResource", "containerResource"),
    ];
    let present: Vec<&str> = sources
        .iter()
        .map(|(_, f)| *f)
        .filter(|f| m.get(*f).is_some_and(Value::is_object))
        .collect();
    // Only the first source given is checked in depth, as upstream.
    if let Some(first) = present.first() {
        let src = &m[*first];
        let spath = format!("{path}.{first}");
        match *first {
            "object" => object_source(src, &spath, out),
            "external" => external_source(src, &spath, out),
            "pods" => pods_source(src, &spath, out),
            "resource" => resource_source(src, &spath, false, out),
            _ => resource_source(src, &spath, true, out),
        }
    }
    let expected = sources.iter().find(|(t, _)| *t == ty).map(|(_, f)| *f);
    match expected {
        Some(field) if !present.contains(&field) => out.push(causes::required(
            &format!("{path}.{field}"),
            "must populate information for the given metric source",
        )),
        Some(_) => {}
        None => out.push(causes::not_supported(
            &format!("{path}.type"),
            ty,
            METRIC_SOURCE_TYPES,
        )),
    }
    if present.len() > 1 {
        for f in present.iter().filter(|f| Some(**f) != expected) {
            out.push(causes::forbidden(
                &format!("{path}.{f}"),
                "must populate the given metric source only",
            ));
        }
    }
}

/// Whether a quantity field is set and not positive (`Sign() != 1`).
fn not_positive(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f <= 0.0),
        Value::String(s) => quantity::parse(s).is_ok_and(|f| f <= 0.0),
        _ => false,
    }
}

fn set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// `validateMetricTarget`.
fn target(t: &Value, path: &str, out: &mut Vec<Cause>) {
    let ty = str_at(t, "type").unwrap_or("");
    if ty.is_empty() {
        out.push(causes::required(
            &format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(ty, "Utilization" | "Value" | "AverageValue") {
        out.push(causes::invalid(
            &format!("{path}.type"),
            &go_str(ty),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for key in ["value", "averageValue"] {
        if let Some(v) = t.get(key).filter(|v| not_positive(v)) {
            out.push(causes::invalid(
                &format!("{path}.{key}"),
                &go_json(v),
                "must be positive",
            ));
        }
    }
    if let Some(u) = t
        .get("averageUtilization")
        .and_then(Value::as_i64)
        .filter(|u| *u < 1)
    {
        out.push(causes::invalid(
            &format!("{path}.averageUtilization"),
            &u.to_string(),
            "must be greater than 0",
        ));
    }
}

/// `validateMetricIdentifier`.
fn metric_id(id: &Value, path: &str, out: &mut Vec<Cause>) {
    let field = format!("{path}.name");
    match str_at(id, "name").filter(|s| !s.is_empty()) {
        None => out.push(causes::required(&field, "must specify a metric name")),
        Some(name) => {
            for msg in path_segment_errors(name) {
                out.push(causes::invalid(&field, &go_str(name), &msg));
            }
        }
    }
}

fn object_source(src: &Value, path: &str, out: &mut Vec<Cause>) {
    object_ref(
        src.get("describedObject").unwrap_or(&Value::Null),
        &format!("{path}.describedObject"),
        out,
    );
    metric_id(
        src.get("metric").unwrap_or(&Value::Null),
        &format!("{path}.metric"),
        out,
    );
    let t = src.get("target").unwrap_or(&Value::Null);
    target(t, &format!("{path}.target"), out);
    if !set(t, "value") && !set(t, "averageValue") {
        out.push(causes::required(
            &format!("{path}.target.averageValue"),
            "must set either a target value or averageValue",
        ));
    }
}

fn external_source(src: &Value, path: &str, out: &mut Vec<Cause>) {
    metric_id(
        src.get("metric").unwrap_or(&Value::Null),
        &format!("{path}.metric"),
        out,
    );
    let t = src.get("target").unwrap_or(&Value::Null);
    target(t, &format!("{path}.target"), out);
    if !set(t, "value") && !set(t, "averageValue") {
        out.push(causes::required(
            &format!("{path}.target.averageValue"),
            "must set either a target value for metric or a per-pod target",
        ));
    }
    if set(t, "value") && set(t, "averageValue") {
        out.push(causes::forbidden(
            &format!("{path}.target.value"),
            "may not set both a target value for metric and a per-pod target",
        ));
    }
}

fn pods_source(src: &Value, path: &str, out: &mut Vec<Cause>) {
    metric_id(
        src.get("metric").unwrap_or(&Value::Null),
        &format!("{path}.metric"),
        out,
    );
    let t = src.get("target").unwrap_or(&Value::Null);
    target(t, &format!("{path}.target"), out);
    if !set(t, "averageValue") {
        out.push(causes::required(
            &format!("{path}.target.averageValue"),
            "must specify a positive target averageValue",
        ));
    }
}

/// `validateResourceSource` and, with `container`, its ContainerResource twin.
fn resource_source(src: &Value, path: &str, container: bool, out: &mut Vec<Cause>) {
    let field = format!("{path}.name");
    match str_at(src, "name").filter(|s| !s.is_empty()) {
        None => out.push(causes::required(&field, "must specify a resource name")),
        Some(name) => {
            if !name.contains('/') {
                if !(matches!(name, "cpu" | "memory" | "ephemeral-storage")
                    || name.starts_with("hugepages-"))
                {
                    out.push(causes::invalid(
                        &field,
                        &go_str(name),
                        "must be a standard resource for containers",
                    ));
                }
            } else {
                for msg in is_qualified_name(name) {
                    out.push(causes::invalid(&field, &go_str(name), &msg));
                }
            }
        }
    }
    if container {
        let field = format!("{path}.container");
        match str_at(src, "container").filter(|s| !s.is_empty()) {
            None => out.push(causes::required(&field, "must specify a container")),
            Some(c) => {
                for msg in is_dns1123_label(c) {
                    out.push(causes::invalid(&field, &go_str(c), &msg));
                }
            }
        }
    }
    let t = src.get("target").unwrap_or(&Value::Null);
    target(t, &format!("{path}.target"), out);
    let (util, avg) = (set(t, "averageUtilization"), set(t, "averageValue"));
    if !util && !avg {
        out.push(causes::required(
            &format!("{path}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if util && avg {
        out.push(causes::forbidden(
            &format!("{path}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

/// `validateScalingRules`.
fn scaling_rules(r: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(w) = r.get("stabilizationWindowSeconds").and_then(Value::as_i64) {
        let field = format!("{path}.stabilizationWindowSeconds");
        if w < 0 {
            out.push(causes::invalid(
                &field,
                &w.to_string(),
                "must be greater than or equal to zero",
            ));
        }
        if w > MAX_STABILIZATION_WINDOW_SECONDS {
            out.push(causes::invalid(
                &field,
                &w.to_string(),
                &format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            ));
        }
    }
    if let Some(p) = str_at(r, "selectPolicy").filter(|p| !SELECT_POLICIES.contains(p)) {
        out.push(causes::not_supported(
            &format!("{path}.selectPolicy"),
            p,
            SELECT_POLICIES,
        ));
    }
    let policies = r
        .get("policies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if policies.is_empty() {
        out.push(causes::required(
            &format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let ppath = format!("{path}.policies[{i}]");
        let ty = str_at(p, "type").unwrap_or("");
        if !POLICY_TYPES.contains(&ty) {
            out.push(causes::not_supported(
                &format!("{ppath}.type"),
                ty,
                POLICY_TYPES,
            ));
        }
        let value = p.get("value").and_then(Value::as_i64).unwrap_or(0);
        if value <= 0 {
            out.push(causes::invalid(
                &format!("{ppath}.value"),
                &value.to_string(),
                "must be greater than zero",
            ));
        }
        let period = p.get("periodSeconds").and_then(Value::as_i64).unwrap_or(0);
        let field = format!("{ppath}.periodSeconds");
        if period <= 0 {
            out.push(causes::invalid(
                &field,
                &period.to_string(),
                "must be greater than zero",
            ));
        }
        if period > MAX_PERIOD_SECONDS {
            out.push(causes::invalid(
                &field,
                &period.to_string(),
                &format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
}
