//! What an object uses of quota-tracked resources, which quotas' scopes
//! select it, and the quantities and messages quota admission works with
//! (upstream's evaluators in `pkg/quota/v1/evaluator/core`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::api::qos::qos_class;
use crate::api::validation::quantity::{format_nanos, is_binary, nanos};
use crate::server::apiserver::kinds::pod::pod_totals;
use crate::server::apiserver::registry::ResourceDef;

pub(super) const UNIT: i128 = 1_000_000_000;

/// Resource name → amount, in billionths.
pub type Usage = BTreeMap<String, i128>;

pub(super) fn count_name(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        format!("count/{}", def.plural)
    } else {
        format!("count/{}.{}", def.plural, def.group)
    }
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// What one object uses of quota-tracked resources.
pub fn usage(def: &ResourceDef, obj: &Value) -> Usage {
    let mut u = Usage::new();
    u.insert(count_name(def), UNIT);
    match (def.group, def.plural) {
        // Finished pods count as objects only.
        ("", "pods") if !terminal(obj) => {
            u.insert("pods".into(), UNIT);
            pod_compute(obj, &mut u);
        }
        ("", "services") => {
            u.insert("services".into(), UNIT);
            let ty = obj.pointer("/spec/type").and_then(Value::as_str);
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as i128;
            let node_ports = match ty {
                Some("NodePort") => ports,
                Some("LoadBalancer")
                    if obj.pointer("/spec/allocateLoadBalancerNodePorts")
                        != Some(&json!(false)) =>
                {
                    ports
                }
                _ => 0,
            };
            u.insert("services.nodeports".into(), node_ports * UNIT);
            if ty == Some("LoadBalancer") {
                u.insert("services.loadbalancers".into(), UNIT);
            }
        }
        ("", "persistentvolumeclaims") => {
            u.insert("persistentvolumeclaims".into(), UNIT);
            if let Some(q) = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(nanos)
            {
                u.insert("requests.storage".into(), q);
            }
        }
        ("", p @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            u.insert(p.into(), UNIT);
        }
        _ => {}
    }
    u
}

/// A pod's requests and limits (the sum over containers, or the largest
/// init container where that is more), as `requests.X`/`limits.X`, plus
/// the bare `cpu`/`memory`/`ephemeral-storage` names for requests.
fn pod_compute(pod: &Value, u: &mut Usage) {
    for bag in ["requests", "limits"] {
        for (k, q) in pod_totals(pod, bag) {
            if bag == "requests" && matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                u.insert(k.clone(), q);
            }
            u.insert(format!("{bag}.{k}"), q);
        }
    }
}

/// Whether a quota's scopes select this object (scopes are about pods).
pub(super) fn in_scope(quota: &Value, def: &ResourceDef, obj: &Value) -> bool {
    let mut scopes: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        scopes.push((s("scopeName"), s("operator"), values));
    }
    if scopes.is_empty() {
        return true;
    }
    if (def.group, def.plural) != ("", "pods") {
        return false;
    }
    let terminating = obj
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null());
    let best_effort = qos_class(obj) == "BestEffort";
    let class = obj
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    scopes.iter().all(|(scope, op, values)| {
        let holds = match scope.as_str() {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort,
            "NotBestEffort" => !best_effort,
            "PriorityClass" => {
                return match op.as_str() {
                    "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                    "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                    "DoesNotExist" => class.is_none(),
                    _ => class.is_some(),
                }
            }
            _ => false,
        };
        if op == "DoesNotExist" {
            !holds
        } else {
            holds
        }
    })
}

pub(super) fn quantities(quota: &Value, ptr: &str) -> BTreeMap<String, (i128, bool)> {
    quota
        .pointer(ptr)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let s = v.as_str()?;
            Some((k.clone(), (nanos(s)?, is_binary(s))))
        })
        .collect()
}

pub(super) fn hard_of(quota: &Value) -> BTreeMap<String, (i128, bool)> {
    let status = quantities(quota, "/status/hard");
    if status.is_empty() {
        quantities(quota, "/spec/hard")
    } else {
        status
    }
}

/// `k=v,k=v` of the named resources, as upstream prints quota errors.
pub(super) fn pretty(values: &BTreeMap<String, (i128, bool)>, names: &[&String]) -> String {
    names
        .iter()
        .map(|n| {
            let (q, bin) = values.get(n.as_str()).copied().unwrap_or((0, false));
            format!("{n}={}", format_nanos(q, bin))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Pods must state the requests and limits a quota tracks (`must specify`).
/// (quota resource name, where a container states it): upstream's
/// `validationSet`, the only resources a quota makes containers state.
const MUST_SPECIFY: &[(&str, &str)] = &[
    ("cpu", "/resources/requests/cpu"),
    ("limits.cpu", "/resources/limits/cpu"),
    ("limits.memory", "/resources/limits/memory"),
    ("memory", "/resources/requests/memory"),
    ("requests.cpu", "/resources/requests/cpu"),
    ("requests.memory", "/resources/requests/memory"),
];

/// The resources a pod's usage can count against.
pub(super) fn pod_resource(name: &str) -> bool {
    matches!(
        name,
        "pods" | "count/pods" | "cpu" | "memory" | "ephemeral-storage"
    ) || name.starts_with("requests.")
        || name.starts_with("limits.")
}

pub(super) fn missing_compute(quota: &Value, pod: &Value) -> Option<String> {
    let hard = hard_of(quota);
    let mut missing: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for key in ["initContainers", "containers"] {
        for c in spec
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
            for (r, at) in MUST_SPECIFY {
                let set = c.pointer(at).is_some_and(|v| !v.is_null());
                if hard.contains_key(*r) && !set {
                    missing.entry(r).or_default().insert(cname);
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(r, cs)| format!("{r} for: {}", cs.into_iter().collect::<Vec<_>>().join(",")))
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}
