//! Validation of the policy and plumbing kinds: PriorityClass,
//! PodDisruptionBudget, ResourceQuota, LimitRange, Ingress, IngressClass,
//! StorageClass and RuntimeClass, with the apiserver's messages
//! (`pkg/apis/{scheduling,policy,core,networking,storage,node}/validation`).

use serde_json::{Map, Value};

use super::causes::{self, go_json, go_str};
use super::meta::validate_labels;
use super::pod::check_enum;
use super::{arr_at, int_at, is_dns1123_label, is_dns1123_subdomain, is_qualified_name};
use super::{is_valid_port_name, is_valid_port_num, obj_at, quantity, str_at, IS_NEGATIVE_ERR};
use crate::api::status::Cause;

/// `scheduling.HighestUserDefinablePriority`.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;
const SYSTEM_PREFIX: &str = "system-";

/// The two classes every cluster has, with their fixed values
/// (`scheduling.SystemPriorityClasses`).
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `ValidatePriorityClass`.
pub fn validate_priority_class(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let name = name_of(obj);
    let value = int_at(obj, "value").unwrap_or(0);
    if name.starts_with(SYSTEM_PREFIX) {
        let known = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name);
        let err = match known {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            Some(_) if obj.get("globalDefault").and_then(Value::as_bool) == Some(true) => Some(
                format!("globalDefault of {name} PriorityClass must be false"),
            ),
            Some(_) => None,
        };
        if let Some(err) = err {
            out.push(causes::forbidden(
                "metadata.name",
                &format!("priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {err}"),
            ));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        out.push(causes::forbidden(
            "value",
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
    check_enum(
        obj,
        "preemptionPolicy",
        "",
        &["Never", "PreemptLowerPriority"],
        &mut out,
    );
    out
}

/// `ValidatePriorityClassUpdate`: value and preemption policy are fixed.
pub fn priority_class_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if old.get("value") != new.get("value") {
        out.push(causes::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    if old.get("preemptionPolicy") != new.get("preemptionPolicy") {
        out.push(causes::invalid(
            "preemptionPolicy",
            &go_json(new.get("preemptionPolicy").unwrap_or(&Value::Null)),
            "field is immutable",
        ));
    }
    out
}

/// An int-or-percent that must be ≥ 0 (and ≤ 100%).
fn check_int_or_percent(spec: &Value, key: &str, out: &mut Vec<Cause>) {
    let path = format!("spec.{key}");
    match spec.get(key) {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => {
            out.push(causes::invalid(&path, &n.to_string(), IS_NEGATIVE_ERR));
        }
        Some(Value::String(s)) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) if p < 0 => out.push(causes::invalid(&path, &go_str(s), IS_NEGATIVE_ERR)),
            Some(Ok(p)) if p > 100 => {
                out.push(causes::invalid(&path, &go_str(s), "must not be greater than 100%"))
            }
            Some(Ok(_)) => {}
            _ => out.push(causes::invalid(
                &path,
                &go_str(s),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
        },
        _ => {}
    }
}

/// `ValidatePodDisruptionBudgetSpec`.
pub fn validate_pdb(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    let set = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    if set("minAvailable") && set("maxUnavailable") {
        out.push(causes::invalid(
            "spec",
            &go_json(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    check_int_or_percent(spec, "minAvailable", &mut out);
    check_int_or_percent(spec, "maxUnavailable", &mut out);
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        out.extend(validate_labels(
            sel.get("matchLabels"),
            "spec.selector.matchLabels",
        ));
    }
    check_enum(
        spec,
        "unhealthyPodEvictionPolicy",
        "spec",
        &["AlwaysAllow", "IfHealthyBudget"],
        &mut out,
    );
    out
}

/// A resource list whose names must be qualified and whose quantities
/// must not be negative (quota `hard`, limit range bounds).
fn check_resource_list(list: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    let mut keys: Vec<&String> = list.keys().collect();
    keys.sort();
    for k in keys {
        let rpath = format!("{path}[{k}]");
        for msg in is_qualified_name(k) {
            out.push(causes::invalid(&rpath, &go_str(k), &msg));
        }
        if quantity_of(&list[k]).is_some_and(|v| v < 0.0) {
            out.push(causes::invalid(
                &rpath,
                &go_str(&quantity_text(&list[k])),
                IS_NEGATIVE_ERR,
            ));
        }
    }
}

fn quantity_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A quantity's value; unparseable ones are decode errors reported by the
/// field checker, not here.
fn quantity_of(v: &Value) -> Option<f64> {
    quantity::parse(&quantity_text(v)).ok()
}

const QUOTA_SCOPES: &[&str] = &[
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
    "VolumeAttributesClass",
];

/// `standardQuotaResources`: the names a quota may track without a `/`.
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "configmaps",
    "cpu",
    "ephemeral-storage",
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "memory",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
    "requests.storage",
    "resourcequotas",
    "secrets",
    "services",
    "services.loadbalancers",
    "services.nodeports",
];

/// What a pod-scoped quota may track (`podComputeQuotaResources` and the
/// pod count).
fn pod_quota_resource(name: &str) -> bool {
    matches!(
        name,
        "pods" | "count/pods" | "cpu" | "memory" | "ephemeral-storage"
    ) || name.starts_with("requests.")
        || name.starts_with("limits.")
        || name.starts_with("hugepages-")
}

fn go_scopes(scopes: &[&str]) -> String {
    let items: Vec<String> = scopes.iter().map(|s| go_str(s)).collect();
    format!("[]core.ResourceQuotaScope{{{}}}", items.join(", "))
}

/// `ValidateResourceQuota`.
pub fn validate_resource_quota(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    let hard = obj_at(spec, "hard");
    if let Some(hard) = hard {
        check_resource_list(hard, "spec.hard", &mut out);
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        for k in names {
            let standard = STANDARD_QUOTA_RESOURCES.contains(&k.as_str())
                || k.starts_with("hugepages-")
                || k.starts_with("requests.hugepages-");
            if !k.contains('/') && !standard {
                out.push(causes::invalid(
                    &format!("spec.hard[{k}]"),
                    &go_str(k),
                    "must be a standard resource for quota",
                ));
            }
        }
    }
    let scopes: Vec<&str> = arr_at(spec, "scopes")
        .iter()
        .map(|s| s.as_str().unwrap_or(""))
        .collect();
    for (i, s) in scopes.iter().enumerate() {
        if !QUOTA_SCOPES.contains(s) {
            out.push(causes::not_supported(
                &format!("spec.scopes[{i}]"),
                s,
                QUOTA_SCOPES,
            ));
        }
    }
    let has = |s: &str| scopes.contains(&s);
    let pod_scoped = scopes.iter().any(|s| *s != "VolumeAttributesClass");
    if pod_scoped {
        let best_effort_only = has("BestEffort");
        let unsupported = hard.into_iter().flat_map(|h| h.keys()).any(|k| {
            if best_effort_only {
                !matches!(k.as_str(), "pods" | "count/pods")
            } else {
                !pod_quota_resource(k)
            }
        });
        if unsupported {
            out.push(causes::invalid(
                "spec.scopes",
                &go_scopes(&scopes),
                "unsupported scope applied to resource",
            ));
        }
    }
    if (has("Terminating") && has("NotTerminating")) || (has("BestEffort") && has("NotBestEffort"))
    {
        out.push(causes::invalid(
            "spec.scopes",
            &go_scopes(&scopes),
            "conflicting scopes",
        ));
    }
    out
}

const LIMIT_TYPES: &[&str] = &["Container", "PersistentVolumeClaim", "Pod"];

/// `ValidateLimitRange`: known types, and for each resource
/// min ≤ defaultRequest ≤ default ≤ max where they are set.
pub fn validate_limit_range(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    for (i, item) in arr_at(spec, "limits").iter().enumerate() {
        let path = format!("spec.limits[{i}]");
        let ty = str_at(item, "type").unwrap_or("");
        if !LIMIT_TYPES.contains(&ty) {
            out.push(causes::not_supported(
                &format!("{path}.type"),
                ty,
                LIMIT_TYPES,
            ));
        }
        let list = |k: &str| obj_at(item, k).cloned().unwrap_or_default();
        let (min, max, def, req) = (
            list("min"),
            list("max"),
            list("default"),
            list("defaultRequest"),
        );
        for (key, l) in [
            ("min", &min),
            ("max", &max),
            ("default", &def),
            ("defaultRequest", &req),
        ] {
            check_resource_list(l, &format!("{path}.{key}"), &mut out);
        }
        if ty == "Pod" && (!def.is_empty() || !req.is_empty()) {
            out.push(causes::forbidden(
                &format!("{path}.default"),
                "may not be specified when `type` is 'Pod'",
            ));
        }
        let mut names: Vec<&String> = min.keys().chain(max.keys()).chain(def.keys()).collect();
        names.extend(req.keys());
        names.sort();
        names.dedup();
        for r in names {
            let get = |l: &Map<String, Value>| {
                l.get(r)
                    .and_then(|v| quantity_of(v).map(|q| (q, quantity_text(v))))
            };
            // (where the error is reported, lower bound, upper bound, their names)
            let checks = [
                ("min", &min, &max, "min", "max"),
                ("defaultRequest", &min, &req, "min", "default request"),
                ("defaultRequest", &req, &max, "default request", "max"),
                (
                    "defaultRequest",
                    &req,
                    &def,
                    "default request",
                    "default limit",
                ),
                ("default", &min, &def, "min", "default"),
                ("default", &def, &max, "default", "max"),
            ];
            for (at, lo, hi, lo_name, hi_name) in checks {
                let (Some((lo_v, lo_t)), Some((hi_v, hi_t))) = (get(lo), get(hi)) else {
                    continue;
                };
                if lo_v > hi_v {
                    let shown = if at == lo_name
                        || (at == "defaultRequest" && lo_name == "default request")
                    {
                        &lo_t
                    } else {
                        &hi_t
                    };
                    out.push(causes::invalid(
                        &format!("{path}.{at}[{r}]"),
                        &go_str(shown),
                        &format!("{lo_name} value {lo_t} is greater than {hi_name} value {hi_t}"),
                    ));
                }
            }
        }
    }
    out
}

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

fn check_backend(b: &Value, path: &str, out: &mut Vec<Cause>) {
    let service = b.get("service").filter(|v| !v.is_null());
    let resource = b.get("resource").filter(|v| !v.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => out.push(causes::invalid(
            path,
            "\"\"",
            "cannot set both resource and service backends",
        )),
        (None, None) => out.push(causes::invalid(
            path,
            "\"\"",
            "resource or service backend is required",
        )),
        (Some(s), None) => {
            let spath = format!("{path}.service");
            match str_at(s, "name").unwrap_or("") {
                "" => out.push(causes::required(&format!("{spath}.name"), "")),
                n => {
                    for msg in super::is_dns1035_label(n) {
                        out.push(causes::invalid(&format!("{spath}.name"), &go_str(n), &msg));
                    }
                }
            }
            let port = s.get("port").unwrap_or(&Value::Null);
            let name = str_at(port, "name").unwrap_or("");
            let number = int_at(port, "number").unwrap_or(0);
            match (name.is_empty(), number == 0) {
                (true, true) => out.push(causes::required(
                    &format!("{spath}.port"),
                    "port name or number is required",
                )),
                (false, false) => out.push(causes::invalid(
                    &format!("{spath}.port"),
                    &go_json(port),
                    "cannot set both port name & port number",
                )),
                (false, true) => {
                    for msg in is_valid_port_name(name) {
                        out.push(causes::invalid(
                            &format!("{spath}.port.name"),
                            &go_str(name),
                            &msg,
                        ));
                    }
                }
                (true, false) => {
                    for msg in is_valid_port_num(number) {
                        out.push(causes::invalid(
                            &format!("{spath}.port.number"),
                            &number.to_string(),
                            &msg,
                        ));
                    }
                }
            }
        }
        (None, Some(_)) => {}
    }
}

/// `ValidateIngressSpec`.
pub fn validate_ingress(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    let rules = arr_at(spec, "rules");
    let default = spec.get("defaultBackend").filter(|v| !v.is_null());
    if rules.is_empty() && default.is_none() {
        out.push(causes::invalid(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        check_backend(b, "spec.defaultBackend", &mut out);
    }
    if let Some(class) = str_at(spec, "ingressClassName") {
        for msg in is_dns1123_subdomain(class) {
            out.push(causes::invalid(
                "spec.ingressClassName",
                &go_str(class),
                &msg,
            ));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let rpath = format!("spec.rules[{i}]");
        if let Some(host) = str_at(rule, "host").filter(|h| !h.is_empty()) {
            let plain = host.strip_prefix("*.").unwrap_or(host);
            for msg in is_dns1123_subdomain(plain) {
                out.push(causes::invalid(
                    &format!("{rpath}.host"),
                    &go_str(host),
                    &msg,
                ));
            }
        }
        let Some(http) = rule.get("http").filter(|v| !v.is_null()) else {
            continue;
        };
        let paths = arr_at(http, "paths");
        if paths.is_empty() {
            out.push(causes::required(&format!("{rpath}.http.paths"), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let ppath = format!("{rpath}.http.paths[{j}]");
            match str_at(p, "pathType") {
                None => out.push(causes::required(
                    &format!("{ppath}.pathType"),
                    "pathType must be specified",
                )),
                Some(t) if !PATH_TYPES.contains(&t) => out.push(causes::not_supported(
                    &format!("{ppath}.pathType"),
                    t,
                    PATH_TYPES,
                )),
                Some(t) => {
                    let path = str_at(p, "path").unwrap_or("");
                    if t != "ImplementationSpecific" && !path.starts_with('/') {
                        out.push(causes::invalid(
                            &format!("{ppath}.path"),
                            &go_str(path),
                            "must be an absolute path",
                        ));
                    }
                }
            }
            check_backend(
                p.get("backend").unwrap_or(&Value::Null),
                &format!("{ppath}.backend"),
                &mut out,
            );
        }
    }
    out
}

/// `ValidateIngressClass`: the controller names who implements it.
pub fn validate_ingress_class(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    match obj.pointer("/spec/controller").and_then(Value::as_str) {
        None | Some("") => out.push(causes::required("spec.controller", "")),
        Some(c) if c.len() > 250 => out.push(causes::too_long("spec.controller", 250)),
        Some(_) => {}
    }
    out
}

/// `ValidateIngressClassUpdate`: the controller is fixed.
pub fn ingress_class_update(old: &Value, new: &Value) -> Vec<Cause> {
    immutable(old, new, "/spec/controller", "spec.controller")
}

fn immutable(old: &Value, new: &Value, ptr: &str, path: &str) -> Vec<Cause> {
    let (a, b) = (old.pointer(ptr), new.pointer(ptr));
    if a == b {
        return Vec::new();
    }
    vec![causes::invalid(
        path,
        &go_json(b.unwrap_or(&Value::Null)),
        "field is immutable",
    )]
}

/// `ValidateStorageClass`.
pub fn validate_storage_class(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    match str_at(obj, "provisioner").unwrap_or("") {
        "" => out.push(causes::required("provisioner", "")),
        p => {
            for msg in is_qualified_name(&p.to_ascii_lowercase()) {
                out.push(causes::invalid("provisioner", &go_str(p), &msg));
            }
        }
    }
    check_enum(obj, "reclaimPolicy", "", &["Delete", "Retain"], &mut out);
    check_enum(
        obj,
        "volumeBindingMode",
        "",
        &["Immediate", "WaitForFirstConsumer"],
        &mut out,
    );
    out
}

/// `ValidateStorageClassUpdate`: all but metadata, mount options and
/// expansion is fixed.
pub fn storage_class_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    for (key, what) in [
        ("parameters", "parameters"),
        ("provisioner", "provisioner"),
        ("reclaimPolicy", "reclaimPolicy"),
    ] {
        if old.get(key) != new.get(key) {
            out.push(causes::forbidden(
                key,
                &format!("updates to {what} are forbidden."),
            ));
        }
    }
    out.extend(immutable(
        old,
        new,
        "/volumeBindingMode",
        "volumeBindingMode",
    ));
    out
}

/// `ValidateRuntimeClass`: the handler is a DNS label, fixed once set.
pub fn validate_runtime_class(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    match str_at(obj, "handler").unwrap_or("") {
        "" => out.push(causes::required("handler", "")),
        h => {
            for msg in is_dns1123_label(h) {
                out.push(causes::invalid("handler", &go_str(h), &msg));
            }
        }
    }
    out
}

pub fn runtime_class_update(old: &Value, new: &Value) -> Vec<Cause> {
    immutable(old, new, "/handler", "handler")
}
