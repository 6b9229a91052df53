//! The two forms of a HorizontalPodAutoscaler. `autoscaling/v2` is the
//! stored form; `autoscaling/v1` knows only a CPU utilisation target, and
//! carries everything else v2 has in annotations, as upstream's v1
//! conversion does, so that an object read and written back through v1
//! loses nothing.

use serde_json::{json, Map, Value};

/// Metrics other than the v1 CPU target (v1 `MetricSpec` list, as JSON).
pub const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Current values of those metrics (v1 `MetricStatus` list).
pub const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// Status conditions (v1 has no field for them).
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// `spec.behavior` (v2 shape).
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// An `autoscaling/v1` object into its `autoscaling/v2` form.
pub fn v1_to_v2(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    m.insert("apiVersion".into(), json!("autoscaling/v2"));
    let mut notes = take_annotations(m);
    let parse = |notes: &mut Map<String, Value>, key: &str| -> Option<Value> {
        let raw = notes.remove(key)?;
        serde_json::from_str(raw.as_str()?).ok()
    };
    let other_metrics = parse(&mut notes, METRICS_ANNOTATION);
    let current_metrics = parse(&mut notes, CURRENT_METRICS_ANNOTATION);
    let conditions = parse(&mut notes, CONDITIONS_ANNOTATION);
    let behavior = parse(&mut notes, BEHAVIOR_ANNOTATION);
    put_annotations(m, notes);

    if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
        // The other metrics first, then the CPU target; none at all is
        // CPU at 80%, as upstream's conversion.
        let mut metrics: Vec<Value> = list(other_metrics).iter().map(spec_v1_to_v2).collect();
        let cpu = spec
            .remove("targetCPUUtilizationPercentage")
            .filter(|c| !c.is_null());
        if cpu.is_some() || metrics.is_empty() {
            metrics.push(json!({"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": cpu.unwrap_or(json!(80))}}}));
        }
        spec.insert("metrics".into(), Value::Array(metrics));
        let behavior = behavior.map(from_go_names);
        if let Some(b) = behavior.filter(|b| b.as_object().is_some_and(|o| !o.is_empty())) {
            spec.insert("behavior".into(), b);
        }
    }
    if let Some(status) = m.get_mut("status").and_then(Value::as_object_mut) {
        let cpu = status
            .remove("currentCPUUtilizationPercentage")
            .filter(|c| !c.is_null());
        // The annotation holds every current metric, CPU's included.
        let mut current: Vec<Value> = list(current_metrics).iter().map(status_v1_to_v2).collect();
        if current.is_empty() {
            if let Some(cpu) = cpu {
                current.push(json!({"type": "Resource", "resource": {
                    "name": "cpu", "current": {"averageUtilization": cpu}}}));
            }
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions.filter(Value::is_array) {
            status.insert("conditions".into(), c);
        }
    }
}

/// An `autoscaling/v2` object into its `autoscaling/v1` form.
pub fn v2_to_v1(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    m.insert("apiVersion".into(), json!("autoscaling/v1"));
    let mut notes = take_annotations(m);
    // Only what this conversion writes: a v2 object's own annotations of
    // these names are not v1's fields, as upstream drops them first.
    for key in [
        METRICS_ANNOTATION,
        CURRENT_METRICS_ANNOTATION,
        CONDITIONS_ANNOTATION,
        BEHAVIOR_ANNOTATION,
    ] {
        notes.remove(key);
    }
    if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
        let mut others = Vec::new();
        let mut cpu = None;
        for metric in list(spec.remove("metrics")) {
            let target = metric.pointer("/resource/target/averageUtilization");
            if cpu.is_none()
                && metric["type"] == "Resource"
                && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
                && target.is_some_and(|t| !t.is_null())
            {
                cpu = target.cloned();
            } else {
                others.push(spec_v2_to_v1(&metric));
            }
        }
        if let Some(cpu) = cpu {
            spec.insert("targetCPUUtilizationPercentage".into(), cpu);
        }
        note(&mut notes, METRICS_ANNOTATION, others);
        if let Some(b) = spec.remove("behavior").filter(Value::is_object) {
            notes.insert(
                BEHAVIOR_ANNOTATION.into(),
                json!(to_go_names(&b).to_string()),
            );
        }
    }
    if let Some(status) = m.get_mut("status").and_then(Value::as_object_mut) {
        // Both counts are plain (not omitted) fields in v1.
        for key in ["currentReplicas", "desiredReplicas"] {
            status.entry(key).or_insert(json!(0));
        }
        let all = list(status.remove("currentMetrics"));
        // The last CPU utilisation is v1's figure; the annotation keeps
        // them all (the average value v1 has no field for included).
        let cpu = all.iter().rev().find_map(|metric| {
            (metric["type"] == "Resource"
                && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu"))
            .then(|| metric.pointer("/resource/current/averageUtilization"))
            .flatten()
            .filter(|c| !c.is_null())
            .cloned()
        });
        if let Some(cpu) = cpu {
            status.insert("currentCPUUtilizationPercentage".into(), cpu);
        }
        note(
            &mut notes,
            CURRENT_METRICS_ANNOTATION,
            all.iter().map(status_v2_to_v1).collect(),
        );
        if let Some(c) = status.remove("conditions") {
            if c.as_array().is_some_and(|a| !a.is_empty()) {
                notes.insert(CONDITIONS_ANNOTATION.into(), json!(c.to_string()));
            }
        }
    }
    put_annotations(m, notes);
}

/// Upstream writes the behavior annotation from its internal Go type,
/// which has no JSON tags: keys are Go field names (`ScaleUp`,
/// `StabilizationWindowSeconds`).
fn to_go_names(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let mut c = k.chars();
                    let key = c
                        .next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default();
                    (key, to_go_names(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(to_go_names).collect()),
        other => other.clone(),
    }
}

/// Go's decoder matches keys without regard to case: either spelling of
/// the annotation reads back. Nulls are Go's nil pointers: left out.
fn from_go_names(v: Value) -> Value {
    const KEYS: &[&str] = &[
        "scaleUp",
        "scaleDown",
        "stabilizationWindowSeconds",
        "selectPolicy",
        "policies",
        "type",
        "value",
        "periodSeconds",
    ];
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let key = KEYS
                        .iter()
                        .find(|known| known.eq_ignore_ascii_case(&k))
                        .map_or(k, |known| (*known).to_string());
                    (key, from_go_names(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(from_go_names).collect()),
        other => other,
    }
}

fn list(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.into_iter().filter(Value::is_object).collect(),
        _ => Vec::new(),
    }
}

fn note(notes: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        notes.insert(key.into(), json!(Value::Array(items).to_string()));
    }
}

fn take_annotations(m: &mut Map<String, Value>) -> Map<String, Value> {
    m.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|md| md.remove("annotations"))
        .and_then(|a| match a {
            Value::Object(a) => Some(a),
            _ => None,
        })
        .unwrap_or_default()
}

fn put_annotations(m: &mut Map<String, Value>, notes: Map<String, Value>) {
    if notes.is_empty() {
        return;
    }
    if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        md.insert("annotations".into(), Value::Object(notes));
    }
}

/// Copy `from[k]` into `to[k2]` when it is set.
fn copy(from: &Value, k: &str, to: &mut Map<String, Value>, k2: &str) {
    if let Some(v) = from.get(k).filter(|v| !v.is_null()) {
        to.insert(k2.into(), v.clone());
    }
}

/// A v2 `MetricTarget` from v1's flat fields: `(v1 field, v2 type, v2 field)`.
fn target_of(from: &Value, fields: &[(&str, &str, &str)]) -> Value {
    let mut t = Map::new();
    for (v1, ty, v2) in fields {
        if let Some(v) = from.get(*v1).filter(|v| !v.is_null()) {
            t.entry("type").or_insert_with(|| json!(ty));
            t.insert((*v2).into(), v.clone());
        }
    }
    Value::Object(t)
}

fn metric_id(name: Option<&Value>, selector: Option<&Value>) -> Value {
    let mut id = Map::new();
    if let Some(n) = name.filter(|v| !v.is_null()) {
        id.insert("name".into(), n.clone());
    }
    if let Some(s) = selector.filter(|v| !v.is_null()) {
        id.insert("selector".into(), s.clone());
    }
    Value::Object(id)
}

const RESOURCE_TARGET: &[(&str, &str, &str)] = &[
    (
        "targetAverageUtilization",
        "Utilization",
        "averageUtilization",
    ),
    ("targetAverageValue", "AverageValue", "averageValue"),
];

fn spec_v1_to_v2(m: &Value) -> Value {
    let ty = m.get("type").cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("type".into(), ty);
    if let Some(r) = m.get("resource").filter(|v| v.is_object()) {
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        s.insert("target".into(), target_of(r, RESOURCE_TARGET));
        out.insert("resource".into(), Value::Object(s));
    }
    if let Some(r) = m.get("containerResource").filter(|v| v.is_object()) {
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        copy(r, "container", &mut s, "container");
        s.insert("target".into(), target_of(r, RESOURCE_TARGET));
        out.insert("containerResource".into(), Value::Object(s));
    }
    if let Some(p) = m.get("pods").filter(|v| v.is_object()) {
        out.insert(
            "pods".into(),
            json!({
                "metric": metric_id(p.get("metricName"), p.get("selector")),
                "target": target_of(p, &[("targetAverageValue", "AverageValue", "averageValue")]),
            }),
        );
    }
    if let Some(o) = m.get("object").filter(|v| v.is_object()) {
        let mut s = Map::new();
        copy(o, "target", &mut s, "describedObject");
        s.insert(
            "metric".into(),
            metric_id(o.get("metricName"), o.get("selector")),
        );
        // An average, when given, is what the target is about.
        let target = if o.get("averageValue").is_some_and(|v| !v.is_null()) {
            target_of(o, &[("averageValue", "AverageValue", "averageValue")])
        } else {
            target_of(o, &[("targetValue", "Value", "value")])
        };
        s.insert("target".into(), target);
        out.insert("object".into(), Value::Object(s));
    }
    if let Some(e) = m.get("external").filter(|v| v.is_object()) {
        out.insert(
            "external".into(),
            json!({
                "metric": metric_id(e.get("metricName"), e.get("metricSelector")),
                "target": target_of(e, &[
                    ("targetValue", "Value", "value"),
                    ("targetAverageValue", "AverageValue", "averageValue"),
                ]),
            }),
        );
    }
    Value::Object(out)
}

fn spec_v2_to_v1(m: &Value) -> Value {
    let mut out = Map::new();
    copy(m, "type", &mut out, "type");
    let null = Value::Null;
    let target = |s: &Value| s.get("target").cloned().unwrap_or(Value::Null);
    if let Some(r) = m.get("resource").filter(|v| v.is_object()) {
        let t = target(r);
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        copy(&t, "averageUtilization", &mut s, "targetAverageUtilization");
        copy(&t, "averageValue", &mut s, "targetAverageValue");
        out.insert("resource".into(), Value::Object(s));
    }
    if let Some(r) = m.get("containerResource").filter(|v| v.is_object()) {
        let t = target(r);
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        copy(r, "container", &mut s, "container");
        copy(&t, "averageUtilization", &mut s, "targetAverageUtilization");
        copy(&t, "averageValue", &mut s, "targetAverageValue");
        out.insert("containerResource".into(), Value::Object(s));
    }
    if let Some(p) = m.get("pods").filter(|v| v.is_object()) {
        let id = p.get("metric").unwrap_or(&null);
        let mut s = Map::new();
        copy(id, "name", &mut s, "metricName");
        copy(id, "selector", &mut s, "selector");
        copy(&target(p), "averageValue", &mut s, "targetAverageValue");
        out.insert("pods".into(), Value::Object(s));
    }
    if let Some(o) = m.get("object").filter(|v| v.is_object()) {
        let id = o.get("metric").unwrap_or(&null);
        let t = target(o);
        let mut s = Map::new();
        copy(o, "describedObject", &mut s, "target");
        copy(id, "name", &mut s, "metricName");
        copy(id, "selector", &mut s, "selector");
        copy(&t, "value", &mut s, "targetValue");
        copy(&t, "averageValue", &mut s, "averageValue");
        out.insert("object".into(), Value::Object(s));
    }
    if let Some(e) = m.get("external").filter(|v| v.is_object()) {
        let id = e.get("metric").unwrap_or(&null);
        let t = target(e);
        let mut s = Map::new();
        copy(id, "name", &mut s, "metricName");
        copy(id, "selector", &mut s, "metricSelector");
        copy(&t, "value", &mut s, "targetValue");
        copy(&t, "averageValue", &mut s, "targetAverageValue");
        out.insert("external".into(), Value::Object(s));
    }
    Value::Object(out)
}

/// A v2 `MetricValueStatus` from v1's flat fields: `(v1 field, v2 field)`.
fn current_of(from: &Value, fields: &[(&str, &str)]) -> Value {
    let mut c = Map::new();
    for (v1, v2) in fields {
        copy(from, v1, &mut c, v2);
    }
    Value::Object(c)
}

const RESOURCE_CURRENT: &[(&str, &str)] = &[
    ("currentAverageUtilization", "averageUtilization"),
    ("currentAverageValue", "averageValue"),
];

fn status_v1_to_v2(m: &Value) -> Value {
    let mut out = Map::new();
    copy(m, "type", &mut out, "type");
    if let Some(r) = m.get("resource").filter(|v| v.is_object()) {
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        s.insert("current".into(), current_of(r, RESOURCE_CURRENT));
        out.insert("resource".into(), Value::Object(s));
    }
    if let Some(r) = m.get("containerResource").filter(|v| v.is_object()) {
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        copy(r, "container", &mut s, "container");
        s.insert("current".into(), current_of(r, RESOURCE_CURRENT));
        out.insert("containerResource".into(), Value::Object(s));
    }
    if let Some(p) = m.get("pods").filter(|v| v.is_object()) {
        out.insert(
            "pods".into(),
            json!({
                "metric": metric_id(p.get("metricName"), p.get("selector")),
                "current": current_of(p, &[("currentAverageValue", "averageValue")]),
            }),
        );
    }
    if let Some(o) = m.get("object").filter(|v| v.is_object()) {
        let mut s = Map::new();
        copy(o, "target", &mut s, "describedObject");
        s.insert(
            "metric".into(),
            metric_id(o.get("metricName"), o.get("selector")),
        );
        s.insert(
            "current".into(),
            current_of(
                o,
                &[("currentValue", "value"), ("averageValue", "averageValue")],
            ),
        );
        out.insert("object".into(), Value::Object(s));
    }
    if let Some(e) = m.get("external").filter(|v| v.is_object()) {
        out.insert(
            "external".into(),
            json!({
                "metric": metric_id(e.get("metricName"), e.get("metricSelector")),
                "current": current_of(e, &[
                    ("currentValue", "value"),
                    ("currentAverageValue", "averageValue"),
                ]),
            }),
        );
    }
    Value::Object(out)
}

fn status_v2_to_v1(m: &Value) -> Value {
    let mut out = Map::new();
    copy(m, "type", &mut out, "type");
    let null = Value::Null;
    let current = |s: &Value| s.get("current").cloned().unwrap_or(Value::Null);
    if let Some(r) = m.get("resource").filter(|v| v.is_object()) {
        let c = current(r);
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        copy(
            &c,
            "averageUtilization",
            &mut s,
            "currentAverageUtilization",
        );
        copy(&c, "averageValue", &mut s, "currentAverageValue");
        out.insert("resource".into(), Value::Object(s));
    }
    if let Some(r) = m.get("containerResource").filter(|v| v.is_object()) {
        let c = current(r);
        let mut s = Map::new();
        copy(r, "name", &mut s, "name");
        copy(r, "container", &mut s, "container");
        copy(
            &c,
            "averageUtilization",
            &mut s,
            "currentAverageUtilization",
        );
        copy(&c, "averageValue", &mut s, "currentAverageValue");
        out.insert("containerResource".into(), Value::Object(s));
    }
    if let Some(p) = m.get("pods").filter(|v| v.is_object()) {
        let id = p.get("metric").unwrap_or(&null);
        let mut s = Map::new();
        copy(id, "name", &mut s, "metricName");
        copy(id, "selector", &mut s, "selector");
        copy(&current(p), "averageValue", &mut s, "currentAverageValue");
        out.insert("pods".into(), Value::Object(s));
    }
    if let Some(o) = m.get("object").filter(|v| v.is_object()) {
        let id = o.get("metric").unwrap_or(&null);
        let c = current(o);
        let mut s = Map::new();
        copy(o, "describedObject", &mut s, "target");
        copy(id, "name", &mut s, "metricName");
        copy(id, "selector", &mut s, "selector");
        copy(&c, "value", &mut s, "currentValue");
        copy(&c, "averageValue", &mut s, "averageValue");
        out.insert("object".into(), Value::Object(s));
    }
    if let Some(e) = m.get("external").filter(|v| v.is_object()) {
        let id = e.get("metric").unwrap_or(&null);
        let c = current(e);
        let mut s = Map::new();
        copy(id, "name", &mut s, "metricName");
        copy(id, "selector", &mut s, "metricSelector");
        copy(&c, "value", &mut s, "currentValue");
        copy(&c, "averageValue", &mut s, "currentAverageValue");
        out.insert("external".into(), Value::Object(s));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_full() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "d", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "External", "external": {"metric": {"name": "queue",
                        "selector": {"matchLabels": {"q": "a"}}},
                        "target": {"type": "Value", "value": "30"}}},
                    {"type": "Object", "object": {
                        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                        "metric": {"name": "rps"},
                        "target": {"type": "Value", "value": "2k"}}},
                    {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                        "target": {"type": "Utilization", "averageUtilization": 60}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": 70, "averageValue": "70m"}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "current": {"averageValue": "80Mi"}}},
                ],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}],
            },
        })
    }

    #[test]
    fn v2_survives_a_trip_through_v1() {
        let original = v2_full();
        let mut v1 = original.clone();
        v2_to_v1(&mut v1);
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 70);
        assert!(v1["spec"].get("metrics").is_none());
        let notes = &v1["metadata"]["annotations"];
        assert_eq!(notes["team"], "a");
        for key in [
            METRICS_ANNOTATION,
            CURRENT_METRICS_ANNOTATION,
            CONDITIONS_ANNOTATION,
            BEHAVIOR_ANNOTATION,
        ] {
            assert!(notes[key].is_string(), "{key}: {notes}");
        }
        assert!(notes[BEHAVIOR_ANNOTATION]
            .as_str()
            .is_some_and(|b| b.contains("\"ScaleDown\":{\"StabilizationWindowSeconds\":0}")));
        let mut back = v1;
        v1_to_v2(&mut back);
        // The CPU target comes back last, as upstream's conversion puts it.
        let mut expected = original;
        let metrics = expected["spec"]["metrics"].as_array_mut().unwrap();
        let cpu = metrics.remove(0);
        metrics.push(cpu);
        assert_eq!(back, expected);
    }

    #[test]
    fn a_plain_v1_object_converts() {
        let mut v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                     "maxReplicas": 3, "targetCPUUtilizationPercentage": 40},
        });
        v1_to_v2(&mut v1);
        assert_eq!(
            v1["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 40}}}])
        );
        assert!(v1["metadata"].get("annotations").is_none());
        // and without a target, CPU at 80%
        let mut bare = json!({"apiVersion": "autoscaling/v1", "spec": {"maxReplicas": 3}});
        v1_to_v2(&mut bare);
        assert_eq!(
            bare["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
    }

    #[test]
    fn a_v2_objects_own_annotations_of_those_names_are_not_v1_fields() {
        let mut v2 = json!({
            "apiVersion": "autoscaling/v2",
            "metadata": {"name": "web", "annotations": {
                METRICS_ANNOTATION: "[{\"type\":\"Pods\"}]", "keep": "me"}},
            "spec": {"maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 40}}}]},
        });
        v2_to_v1(&mut v2);
        assert_eq!(v2["metadata"]["annotations"], json!({"keep": "me"}));
        // and an empty behavior is no behavior
        let mut v1 = json!({
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": "web", "annotations": {BEHAVIOR_ANNOTATION: "{}"}},
            "spec": {"maxReplicas": 3},
        });
        v1_to_v2(&mut v1);
        assert!(v1["spec"].get("behavior").is_none(), "{v1}");
    }

    #[test]
    fn broken_annotations_are_dropped_not_fatal() {
        let mut v1 = json!({
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": "web", "annotations": {METRICS_ANNOTATION: "{not json"}},
            "spec": {"maxReplicas": 3},
        });
        v1_to_v2(&mut v1);
        assert!(v1["metadata"].get("annotations").is_none());
    }
}
