//! The HorizontalPodAutoscaler printer: `kubectl get hpa`'s REFERENCE,
//! TARGETS, MINPODS, MAXPODS and REPLICAS, as upstream prints the internal
//! form (so a v1 object is shown through its v2 form).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, col, int_at, name, Column, Printer, AGE, NAME};
use crate::api::hpa_versions::v1_to_v2;
use crate::api::validation::quantity;

pub const HPAS: Printer = Printer {
    columns: hpa_columns,
    cells: hpa_cells,
};

fn hpa_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Reference", "string", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
        col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
        col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
        col("MaxPods", "integer", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas."),
        col("Replicas", "integer", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
        AGE,
    ]
}

fn hpa_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let v2;
    let obj = if obj["apiVersion"] == "autoscaling/v1" {
        let mut o = obj.clone();
        v1_to_v2(&mut o);
        v2 = o;
        &v2
    } else {
        obj
    };
    let spec = &obj["spec"];
    let reference = format!(
        "{}/{}",
        spec.pointer("/scaleTargetRef/kind")
            .and_then(Value::as_str)
            .unwrap_or(""),
        spec.pointer("/scaleTargetRef/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    let min = match spec.get("minReplicas").and_then(Value::as_i64) {
        Some(m) => m.to_string(),
        None => "<unset>".to_string(),
    };
    let empty = Vec::new();
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let current = obj
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    vec![
        name(obj),
        json!(reference),
        json!(targets(metrics, current)),
        json!(min),
        json!(int_at(obj, "/spec/maxReplicas")),
        json!(int_at(obj, "/status/currentReplicas")),
        age(obj, now),
    ]
}

/// A quantity as `Quantity.String()` prints it.
fn qty(v: Option<&Value>) -> String {
    let text = match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return "<unknown>".to_string(),
    };
    match quantity::nanos(&text) {
        Some(n) => quantity::format_nanos(n, quantity::is_binary(&text)),
        None => text,
    }
}

fn percent(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_i64).map(|p| format!("{p}%"))
}

/// `formatHPAMetrics`: `current/target` per metric (the status entry at
/// the same index is the current value), two shown, the rest counted.
pub fn targets(specs: &[Value], statuses: &[Value]) -> String {
    const SHOWN: usize = 2;
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let mut list = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let cur = |source: &str, field: &str| -> Option<&Value> {
            status?
                .get(source)?
                .get("current")?
                .get(field)
                .filter(|v| !v.is_null())
        };
        let ty = spec.get("type").and_then(Value::as_str).unwrap_or("");
        let text = match ty {
            "External" | "Object" => {
                let source = if ty == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec
                    .pointer(&format!("/{source}/target"))
                    .unwrap_or(&Value::Null);
                if target.get("averageValue").is_some_and(|v| !v.is_null()) {
                    format!(
                        "{}/{} (avg)",
                        qty(cur(source, "averageValue")),
                        qty(target.get("averageValue"))
                    )
                } else {
                    format!("{}/{}", qty(cur(source, "value")), qty(target.get("value")))
                }
            }
            "Pods" => format!(
                "{}/{}",
                qty(cur("pods", "averageValue")),
                qty(spec.pointer("/pods/target/averageValue"))
            ),
            "Resource" | "ContainerResource" => {
                let source = if ty == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let src = spec.get(source).unwrap_or(&Value::Null);
                let res = src.get("name").and_then(Value::as_str).unwrap_or("");
                let target = src.get("target").unwrap_or(&Value::Null);
                let prefix = format!("{res}: ");
                if target.get("averageValue").is_some_and(|v| !v.is_null()) {
                    format!(
                        "{prefix}{}/{}",
                        qty(cur(source, "averageValue")),
                        qty(target.get("averageValue"))
                    )
                } else {
                    format!(
                        "{prefix}{}/{}",
                        percent(cur(source, "averageUtilization"))
                            .unwrap_or_else(|| "<unknown>".to_string()),
                        percent(target.get("averageUtilization"))
                            .unwrap_or_else(|| "<auto>".to_string())
                    )
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(text);
    }
    let more = list.len().saturating_sub(SHOWN);
    list.truncate(SHOWN);
    let shown = list.join(", ");
    if more > 0 {
        format!("{shown} + {more} more...")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_upstream_prints_them() {
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}});
        assert_eq!(
            targets(std::slice::from_ref(&cpu), &[]),
            "cpu: <unknown>/50%"
        );
        let now = json!({"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 12, "averageValue": "12m"}}});
        assert_eq!(
            targets(std::slice::from_ref(&cpu), std::slice::from_ref(&now)),
            "cpu: 12%/50%"
        );
        let mem = json!({"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "AverageValue", "averageValue": "102400Ki"}}});
        let ext = json!({"type": "External", "external": {"metric": {"name": "q"},
            "target": {"type": "AverageValue", "averageValue": "0.5"}}});
        assert_eq!(
            targets(&[cpu, mem, ext], &[now]),
            "cpu: 12%/50%, memory: <unknown>/100Mi + 1 more..."
        );
        assert_eq!(targets(&[], &[]), "<none>");
    }

    #[test]
    fn a_v1_object_prints_through_its_v2_form() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                     "maxReplicas": 4, "targetCPUUtilizationPercentage": 30},
            "status": {"currentReplicas": 2, "currentCPUUtilizationPercentage": 45},
        });
        let cells = hpa_cells(&v1, Utc::now());
        assert_eq!(cells[1], "Deployment/web");
        assert_eq!(cells[2], "cpu: 45%/30%");
        assert_eq!(cells[3], "<unset>");
        assert_eq!(cells[4], 4);
        assert_eq!(cells[5], 2);
    }
}
