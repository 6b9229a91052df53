//! Defaults of the HorizontalPodAutoscaler in its two versions
//! (`pkg/apis/autoscaling/{v1,v2}/defaults.go`).

use serde_json::{json, Value};

use super::{default_str, default_val, ensure_obj};

/// `autoscaling/v1`: one replica at least. A missing CPU target is the
/// conversion's to fill (80%), as upstream.
pub fn hpa_v1(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        default_val(spec, "minReplicas", json!(1));
    }
}

/// `autoscaling/v2`: one replica at least, CPU at 80% when no metric is
/// given, and the scaling rules of a `behavior` that is set filled in with
/// what the controller does without one.
pub fn hpa_v2(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_val(spec, "minReplicas", json!(1));
    let no_metrics = spec
        .get("metrics")
        .is_none_or(|m| m.is_null() || m.as_array().is_some_and(Vec::is_empty));
    if no_metrics {
        spec["metrics"] = json!([{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    if spec.get("behavior").is_none_or(Value::is_null) {
        return;
    }
    let Some(behavior) = ensure_obj(spec, "behavior") else {
        return;
    };
    if let Some(up) = ensure_obj(behavior, "scaleUp") {
        default_val(up, "stabilizationWindowSeconds", json!(0));
        rules(
            up,
            json!([
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ]),
        );
    }
    // The scale-down window stays unset: the controller's own default
    // (five minutes) applies, as upstream.
    if let Some(down) = ensure_obj(behavior, "scaleDown") {
        rules(
            down,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

fn rules(r: &mut Value, policies: Value) {
    default_str(r, "selectPolicy", "Max");
    // An empty list is the user's, and validation refuses it.
    if r.get("policies").is_none_or(Value::is_null) {
        r["policies"] = policies;
    }
}
