//! Fields that may not change on update, per kind, with the apiserver's
//! messages (`field is immutable`, the pod-update and StatefulSet Forbidden
//! texts, the immutable ConfigMap/Secret rules).

use serde_json::{Map, Value};

use super::causes::{self, go_json, go_str, go_string_slice};
use super::{arr_at, obj_at, str_at};
use crate::api::status::Cause;

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";
const STS_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
const PVC_UPDATE_FORBIDDEN: &str = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";
const IMMUTABLE: &str = "field is immutable";
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

/// ConfigMaps marked `immutable` keep their data.
pub fn config_map_update(old: &Value, new: &Value) -> Vec<Cause> {
    immutable_data(old, new, &["data", "binaryData"])
}

/// A Secret's type never changes; marked `immutable`, neither does its data.
pub fn secret_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let (ot, nt) = (str_at(old, "type"), str_at(new, "type"));
    if ot.unwrap_or("") != nt.unwrap_or("") {
        out.push(causes::invalid(
            "type",
            &go_str(nt.unwrap_or("")),
            IMMUTABLE,
        ));
    }
    out.extend(immutable_data(old, new, &["data"]));
    out
}

/// A copy without nulls, so that `"x": null` and a missing `x` compare equal
/// (the Go types cannot tell them apart).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let n = |v: Option<&Value>| v.map(normalized).unwrap_or(Value::Null);
    n(a) == n(b)
}

fn spec(v: &Value) -> &Value {
    v.get("spec").unwrap_or(&Value::Null)
}

pub fn pod_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let (os, ns) = (spec(old), spec(new));
    let ad = "spec.activeDeadlineSeconds";
    match (
        os.get("activeDeadlineSeconds").and_then(Value::as_i64),
        ns.get("activeDeadlineSeconds").and_then(Value::as_i64),
    ) {
        (_, Some(n)) if !(0..=i32::MAX as i64).contains(&n) => {
            out.push(causes::invalid(
                ad,
                &n.to_string(),
                &format!("must be between 0 and {}, inclusive", i32::MAX),
            ));
            return out;
        }
        (Some(o), Some(n)) if o < n => {
            out.push(causes::invalid(
                ad,
                &n.to_string(),
                "must be less than or equal to previous value",
            ));
            return out;
        }
        (Some(_), None) => out.push(causes::invalid(
            ad,
            "null",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Tolerations may only be added.
    let new_tols: Vec<Value> = arr_at(ns, "tolerations").iter().map(normalized).collect();
    for (i, t) in arr_at(os, "tolerations").iter().enumerate() {
        if !new_tols.contains(&normalized(t)) {
            out.push(causes::forbidden(
                &format!("spec.tolerations[{i}]"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
    }
    let mut munged = normalized(ns);
    if let Some(m) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            let old_list = arr_at(os, key);
            if let Some(Value::Array(list)) = m.get_mut(key) {
                if list.len() == old_list.len() {
                    for (c, oc) in list.iter_mut().zip(old_list) {
                        if let (Some(c), Some(img)) = (c.as_object_mut(), oc.get("image")) {
                            c.insert("image".into(), img.clone());
                        }
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "tolerations"] {
            match os.get(key).filter(|v| !v.is_null()) {
                Some(v) => m.insert(key.into(), normalized(v)),
                None => m.remove(key),
            };
        }
        let old_grace = os
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        let new_grace = ns
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                Value::from(old_grace),
            );
        }
    }
    if munged != normalized(os) {
        out.push(causes::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
    out
}

pub fn service_update(old: &Value, new: &Value) -> Vec<Cause> {
    let (os, ns) = (spec(old), spec(new));
    let external = |s: &Value| str_at(s, "type") == Some("ExternalName");
    if external(os) || external(ns) {
        return Vec::new();
    }
    let first_ip = |s: &Value| -> Option<String> {
        arr_at(s, "clusterIPs")
            .first()
            .and_then(Value::as_str)
            .or_else(|| str_at(s, "clusterIP"))
            .filter(|ip| !ip.is_empty())
            .map(str::to_string)
    };
    match (first_ip(os), first_ip(ns)) {
        (Some(o), Some(n)) if o != n => {
            let ips: Vec<&str> = arr_at(ns, "clusterIPs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let ips = if ips.is_empty() {
                vec![n.as_str()]
            } else {
                ips
            };
            vec![causes::invalid(
                "spec.clusterIPs[0]",
                &go_string_slice(&ips),
                "may not change once set",
            )]
        }
        _ => Vec::new(),
    }
}

fn empty_map(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

fn immutable_data(old: &Value, new: &Value, bags: &[&str]) -> Vec<Cause> {
    let mut out = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return out;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        out.push(causes::forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    for bag in bags {
        let (o, n) = (old.get(*bag), new.get(*bag));
        if !(same(o, n) || empty_map(o) && empty_map(n)) {
            out.push(causes::forbidden(bag, IMMUTABLE_WHEN_SET));
        }
    }
    out
}

/// `%#v` of a LabelSelector value (enough to recognise it).
fn selector_text(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "null".into();
    };
    let ml = super::causes::go_string_map(obj_at(sel, "matchLabels"));
    let me = if arr_at(sel, "matchExpressions").is_empty() {
        "[]v1.LabelSelectorRequirement(nil)"
    } else {
        "[]v1.LabelSelectorRequirement{...}"
    };
    format!("v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")
}

pub fn selector_update(old: &Value, new: &Value) -> Vec<Cause> {
    let (o, n) = (spec(old).get("selector"), spec(new).get("selector"));
    if same(o, n) {
        Vec::new()
    } else {
        vec![causes::invalid(
            "spec.selector",
            &selector_text(n),
            IMMUTABLE,
        )]
    }
}

/// Everything but the mutable fields must stay as it was.
fn spec_except(s: &Value, mutable: &[&str]) -> Value {
    let mut m: Map<String, Value> = s.as_object().cloned().unwrap_or_default();
    for k in mutable {
        m.remove(*k);
    }
    normalized(&Value::Object(m))
}

pub fn sts_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mutable = [
        "replicas",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "ordinals",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
    ];
    if spec_except(spec(old), &mutable) == spec_except(spec(new), &mutable) {
        Vec::new()
    } else {
        vec![causes::forbidden("spec", STS_UPDATE_FORBIDDEN)]
    }
}

pub fn job_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let (os, ns) = (spec(old), spec(new));
    if !same(os.get("selector"), ns.get("selector")) {
        out.push(causes::invalid(
            "spec.selector",
            &selector_text(ns.get("selector")),
            IMMUTABLE,
        ));
    }
    if !same(os.get("template"), ns.get("template")) {
        out.push(causes::invalid(
            "spec.template",
            "core.PodTemplateSpec{...}",
            IMMUTABLE,
        ));
    }
    let non_indexed = str_at(ns, "completionMode").is_none_or(|m| m == "NonIndexed");
    if non_indexed && !same(os.get("completions"), ns.get("completions")) {
        let v = ns.get("completions").map_or("null".into(), go_json);
        out.push(causes::invalid("spec.completions", &v, IMMUTABLE));
    }
    if !same(os.get("completionMode"), ns.get("completionMode")) {
        let v = ns.get("completionMode").map_or("null".into(), go_json);
        out.push(causes::invalid("spec.completionMode", &v, IMMUTABLE));
    }
    out
}

pub fn pvc_update(old: &Value, new: &Value) -> Vec<Cause> {
    let (os, ns) = (spec(old), spec(new));
    let bound = old.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    let mut mutable = vec!["volumeAttributesClassName"];
    if bound {
        mutable.push("resources");
    }
    // The binder fills in volumeName once.
    if str_at(os, "volumeName").unwrap_or("").is_empty() {
        mutable.push("volumeName");
    }
    let mut out = Vec::new();
    let strip_limits = |s: &Value| {
        let mut v = spec_except(s, &mutable);
        if bound {
            if let Some(lim) = s.pointer("/resources/limits") {
                v["resources"] = serde_json::json!({ "limits": normalized(lim) });
            }
        }
        v
    };
    if strip_limits(os) != strip_limits(ns) {
        out.push(causes::forbidden("spec", PVC_UPDATE_FORBIDDEN));
    }
    if bound {
        let q = |s: &Value| {
            s.pointer("/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(|q| super::quantity::parse(q).ok())
        };
        if let (Some(o), Some(n)) = (q(os), q(ns)) {
            if n < o {
                out.push(causes::forbidden(
                    "spec.resources.requests.storage",
                    "field can not be less than previous value",
                ));
            }
        }
    }
    out
}
