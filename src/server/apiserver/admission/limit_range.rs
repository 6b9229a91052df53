//! The `LimitRanger` admission plugin: the namespace's LimitRanges fill
//! in missing container requests and limits (noted in the
//! `kubernetes.io/limit-ranger` annotation) and bound them per container
//! and per pod, and bound the storage a claim requests.

use serde_json::{json, Map, Value};

use super::{each, namespace_of, shown_name};
use crate::api::qos::qos_class;
use crate::api::status::ApiError;
use crate::api::validation::quantity::{format_nanos, nanos};
use crate::server::apiserver::kinds::pod::pod_totals;
use crate::server::apiserver::ApiState;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The items of every LimitRange in `ns`.
async fn items_in(state: &ApiState, ns: &str) -> Result<Vec<Value>, ApiError> {
    let Some(def) = state.registry.find("", "v1", "limitranges") else {
        return Ok(Vec::new());
    };
    let mut items = Vec::new();
    each(&state.objects, def, Some(ns), |lr| {
        if let Some(limits) = lr.pointer("/spec/limits").and_then(Value::as_array) {
            items.extend(limits.iter().cloned());
        }
    })
    .await?;
    Ok(items)
}

fn refuse(plural: &str, obj: &Value, errors: &[String]) -> ApiError {
    let why = if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    };
    ApiError::forbidden_object("", plural, shown_name(obj), &why)
}

/// A claim's storage request within the `PersistentVolumeClaim` bounds.
pub async fn admit_pvc(state: &ApiState, pvc: &mut Value) -> Result<(), ApiError> {
    let items = items_in(state, namespace_of(pvc)).await?;
    let mut errors = Vec::new();
    let bag = |k: &str| {
        pvc.pointer(&format!("/spec/resources/{k}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let u = Usage {
        requests: bag("requests"),
        limits: bag("limits"),
    };
    for item in &items {
        if item.get("type").and_then(Value::as_str) == Some("PersistentVolumeClaim") {
            check_claim(item, &u, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(refuse("persistentvolumeclaims", pvc, &errors))
    }
}

/// `minConstraint` and `maxRequestConstraint` on a claim's requests.
fn check_claim(item: &Value, u: &Usage, out: &mut Vec<String>) {
    const KIND: &str = "PersistentVolumeClaim";
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    for (bound, word) in [("min", "minimum"), ("max", "maximum")] {
        let Some(bounds) = list(item, bound) else {
            continue;
        };
        let mut names: Vec<&String> = bounds.keys().collect();
        names.sort();
        for r in names {
            let b = &bounds[r.as_str()];
            let (bq, bt) = (quantity(b), text(b));
            match u.requests.get(r.as_str()) {
                None => out.push(format!(
                    "{word} {r} usage per {KIND} is {bt}.  No request is specified"
                )),
                Some(q) => {
                    let over = if bound == "min" {
                        quantity(q) < bq
                    } else {
                        quantity(q) > bq
                    };
                    if over {
                        out.push(format!(
                            "{word} {r} usage per {KIND} is {bt}, but request is {}",
                            text(q)
                        ));
                    }
                }
            }
        }
    }
}

pub async fn admit_pod(state: &ApiState, pod: &mut Value) -> Result<(), ApiError> {
    let items = items_in(state, namespace_of(pod)).await?;
    if items.is_empty() {
        return Ok(());
    }
    apply_defaults(pod, &items);
    let errors = check_bounds(pod, &items);
    if !errors.is_empty() {
        return Err(refuse("pods", pod, &errors));
    }
    let qos = qos_class(pod);
    if let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("qosClass".into(), json!(qos));
    }
    Ok(())
}

fn list<'a>(item: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    item.get(key).and_then(Value::as_object)
}

fn container_lists(pod: &mut Value) -> Vec<(&'static str, &mut Value)> {
    let mut out = Vec::new();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return out;
    };
    for (key, cs) in spec.iter_mut() {
        let what = match key.as_str() {
            "initContainers" => "init container",
            "containers" => "container",
            _ => continue,
        };
        if let Some(cs) = cs.as_array_mut() {
            out.extend(cs.iter_mut().map(|c| (what, c)));
        }
    }
    out
}

/// `mergeContainerResources` for every container, with the annotation
/// saying what was set.
fn apply_defaults(pod: &mut Value, items: &[Value]) {
    let containers: Vec<&Value> = items
        .iter()
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("Container"))
        .collect();
    let mut notes = Vec::new();
    for (what, c) in container_lists(pod) {
        let cname = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(res) = ensure(c, "resources") else {
            continue;
        };
        // Requests first: upstream notes them before limits.
        for (bag, from, word) in [
            ("requests", "defaultRequest", "request"),
            ("limits", "default", "limit"),
        ] {
            let mut set: Vec<String> = Vec::new();
            // The last LimitRange item that sets a default wins.
            for item in containers.iter().rev() {
                let Some(defaults) = list(item, from) else {
                    continue;
                };
                let Some(have) = ensure(res, bag).and_then(Value::as_object_mut) else {
                    continue;
                };
                for (k, v) in defaults {
                    if !have.contains_key(k) {
                        have.insert(k.clone(), v.clone());
                        set.push(k.clone());
                    }
                }
            }
            if !set.is_empty() {
                set.sort();
                notes.push((
                    word,
                    format!("{} {word} for {what} {cname}", set.join(", ")),
                ));
            }
        }
        // Empty bags the defaults did not fill are not the user's.
        for bag in ["limits", "requests"] {
            if res
                .get(bag)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                if let Some(m) = res.as_object_mut() {
                    m.remove(bag);
                }
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    let text: Vec<String> = notes.into_iter().map(|(_, n)| n).collect();
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = meta.entry("annotations").or_insert(json!({}));
        if let Some(ann) = ann.as_object_mut() {
            ann.insert(
                ANNOTATION.into(),
                json!(format!("LimitRanger plugin set: {}", text.join("; "))),
            );
        }
    }
}

fn ensure<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let m = v.as_object_mut()?;
    let slot = m.entry(key).or_insert(json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.is_object().then_some(slot)
}

/// A container's (or the pod's summed) requests and limits, exact.
#[derive(Default)]
struct Usage {
    requests: Map<String, Value>,
    limits: Map<String, Value>,
}

fn quantity(v: &Value) -> Option<i128> {
    v.as_str().and_then(nanos)
}

fn check_one(kind: &str, item: &Value, u: &Usage, out: &mut Vec<String>) {
    let mut names: Vec<&String> = ["min", "max", "maxLimitRequestRatio"]
        .iter()
        .filter_map(|k| list(item, k))
        .flat_map(Map::keys)
        .collect();
    names.sort();
    names.dedup();
    for r in names {
        let req = u.requests.get(r.as_str());
        let lim = u.limits.get(r.as_str());
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        if let Some(min) = list(item, "min").and_then(|m| m.get(r.as_str())) {
            let (m, mt) = (quantity(min), text(min));
            match req {
                None => out.push(format!(
                    "minimum {r} usage per {kind} is {mt}.  No request is specified"
                )),
                Some(q) if quantity(q) < m => out.push(format!(
                    "minimum {r} usage per {kind} is {mt}, but request is {}",
                    text(q)
                )),
                Some(_) => {
                    if let Some(l) = lim.filter(|l| quantity(l) < m) {
                        out.push(format!(
                            "minimum {r} usage per {kind} is {mt}, but limit is {}",
                            text(l)
                        ));
                    }
                }
            }
        }
        if let Some(max) = list(item, "max").and_then(|m| m.get(r.as_str())) {
            let (m, mt) = (quantity(max), text(max));
            match lim {
                None => out.push(format!(
                    "maximum {r} usage per {kind} is {mt}.  No limit is specified"
                )),
                Some(l) if quantity(l) > m => out.push(format!(
                    "maximum {r} usage per {kind} is {mt}, but limit is {}",
                    text(l)
                )),
                Some(_) => {
                    if let Some(q) = req.filter(|q| quantity(q) > m) {
                        out.push(format!(
                            "maximum {r} usage per {kind} is {mt}, but request is {}",
                            text(q)
                        ));
                    }
                }
            }
        }
        if let Some(ratio) = list(item, "maxLimitRequestRatio").and_then(|m| m.get(r.as_str())) {
            let rt = text(ratio);
            let (q, l) = (
                req.and_then(quantity).unwrap_or(0),
                lim.and_then(quantity).unwrap_or(0),
            );
            if q == 0 {
                out.push(format!("{r} max limit to request ratio per {kind} is {rt}, but no request is specified or request is 0"));
            } else if l == 0 {
                out.push(format!("{r} max limit to request ratio per {kind} is {rt}, but no limit is specified or limit is 0"));
            } else if let Some(max) = quantity(ratio) {
                let observed = l as f64 / q as f64;
                if observed * 1e9 > max as f64 {
                    out.push(format!("{r} max limit to request ratio per {kind} is {rt}, but provided ratio is {observed:.6}"));
                }
            }
        }
    }
}

fn container_usage(c: &Value) -> Usage {
    let bag = |k: &str| {
        c.pointer(&format!("/resources/{k}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    Usage {
        requests: bag("requests"),
        limits: bag("limits"),
    }
}

/// The pod's requests and limits: the sum over its containers, or the
/// largest init container's where that is more (`resourcehelper`).
fn pod_usage(pod: &Value) -> Usage {
    let mut u = Usage::default();
    for (which, bag) in [("requests", &mut u.requests), ("limits", &mut u.limits)] {
        for (k, n) in pod_totals(pod, which) {
            let binary = k == "memory" || k.contains("storage") || k.starts_with("hugepages-");
            bag.insert(k, json!(format_nanos(n, binary)));
        }
    }
    u
}

fn check_bounds(pod: &Value, items: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("Container") => {
                for key in ["initContainers", "containers"] {
                    for c in spec
                        .get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        check_one("Container", item, &container_usage(c), &mut out);
                    }
                }
            }
            Some("Pod") => check_one("Pod", item, &pod_usage(pod), &mut out),
            _ => {}
        }
    }
    out
}
