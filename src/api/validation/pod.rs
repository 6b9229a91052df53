//! `ValidatePodSpec` and its parts: containers, ports, env, volumes and
//! their mounts, resources, probes, and the pod-level enums.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::causes::{self, go_json, go_str};
use super::meta::{validate_annotations, validate_labels};
use super::{arr_at, check_non_negative, int_at, obj_at, quantity, str_at};
use super::{is_dns1123_label, is_dns1123_subdomain, is_env_var_name};
use super::{is_valid_port_name, is_valid_port_num};
use crate::api::status::Cause;

pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];
const MAX_INT32: i64 = i32::MAX as i64;

/// A Pod: its spec, with every restart policy allowed.
pub fn validate_pod(obj: &Value) -> Vec<Cause> {
    validate_pod_spec(obj.get("spec").unwrap_or(&Value::Null), "spec")
}

/// A PodTemplate: its `template`.
pub fn validate_pod_template(obj: &Value) -> Vec<Cause> {
    validate_template(obj.get("template").unwrap_or(&Value::Null), "template")
}

/// `ValidatePodTemplateSpec` at `path` (e.g. "spec.template").
pub fn validate_template(tmpl: &Value, path: &str) -> Vec<Cause> {
    validate_template_with(tmpl, path, &[])
}

/// [`validate_template`] where mounts may also name `extra_volumes`
/// (a StatefulSet's volumeClaimTemplates).
pub fn validate_template_with(tmpl: &Value, path: &str, extra_volumes: &[&str]) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(meta) = obj_at(tmpl, "metadata") {
        out.extend(validate_labels(
            meta.get("labels"),
            &format!("{path}.metadata.labels"),
        ));
        out.extend(
            validate_annotations(meta.get("annotations"))
                .into_iter()
                .map(|mut c| {
                    c.field = format!("{path}.{}", c.field);
                    c
                }),
        );
    }
    out.extend(validate_pod_spec_with(
        tmpl.get("spec").unwrap_or(&Value::Null),
        &format!("{path}.spec"),
        extra_volumes,
    ));
    out
}

/// The labels of a pod template (empty when it has none).
pub fn template_labels(tmpl: &Value) -> Option<&serde_json::Map<String, Value>> {
    tmpl.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
}

pub fn validate_pod_spec(spec: &Value, path: &str) -> Vec<Cause> {
    validate_pod_spec_with(spec, path, &[])
}

fn validate_pod_spec_with(spec: &Value, path: &str, extra_volumes: &[&str]) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut volumes = validate_volumes(
        arr_at(spec, "volumes"),
        &format!("{path}.volumes"),
        &mut out,
    );
    volumes.extend(extra_volumes.iter().copied());

    let containers = arr_at(spec, "containers");
    if containers.is_empty() {
        out.push(causes::required(&format!("{path}.containers"), ""));
    }
    let mut names = HashSet::new();
    for (list, key) in [
        (arr_at(spec, "initContainers"), "initContainers"),
        (containers, "containers"),
    ] {
        for (i, c) in list.iter().enumerate() {
            let cpath = format!("{path}.{key}[{i}]");
            validate_container(c, &cpath, &volumes, &mut out);
            if let Some(n) = str_at(c, "name").filter(|n| !n.is_empty()) {
                if !names.insert(n) {
                    out.push(causes::duplicate(&format!("{cpath}.name"), &go_str(n)));
                }
            }
        }
    }

    check_enum(spec, "restartPolicy", path, RESTART_POLICIES, &mut out);
    check_enum(spec, "dnsPolicy", path, DNS_POLICIES, &mut out);
    check_non_negative(spec, "terminationGracePeriodSeconds", path, &mut out);
    if let Some(n) = int_at(spec, "activeDeadlineSeconds") {
        if !(1..=MAX_INT32).contains(&n) {
            out.push(causes::invalid(
                &format!("{path}.activeDeadlineSeconds"),
                &n.to_string(),
                &format!("must be between 1 and {MAX_INT32}, inclusive"),
            ));
        }
    }
    if let Some(sa) = str_at(spec, "serviceAccountName").filter(|s| !s.is_empty()) {
        for msg in is_dns1123_subdomain(sa) {
            out.push(causes::invalid(
                &format!("{path}.serviceAccountName"),
                &go_str(sa),
                &msg,
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        if let Some(h) = str_at(spec, key).filter(|s| !s.is_empty()) {
            for msg in is_dns1123_label(h) {
                out.push(causes::invalid(&format!("{path}.{key}"), &go_str(h), &msg));
            }
        }
    }
    out.extend(validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
    ));
    let flag = |k: &str| spec.get(k).and_then(Value::as_bool) == Some(true);
    if flag("shareProcessNamespace") && flag("hostPID") {
        out.push(causes::invalid(
            &format!("{path}.shareProcessNamespace"),
            "true",
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    out
}

/// `field.NotSupported` unless `obj[key]` is absent, empty or one of `allowed`.
pub fn check_enum(obj: &Value, key: &str, path: &str, allowed: &[&str], out: &mut Vec<Cause>) {
    if let Some(v) = str_at(obj, key).filter(|v| !v.is_empty()) {
        if !allowed.contains(&v) {
            let at = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            out.push(causes::not_supported(&at, v, allowed));
        }
    }
}

/// Volume names (unique DNS labels) and sources (exactly one each); returns
/// the names for the mounts to refer to.
fn validate_volumes<'a>(vols: &'a [Value], path: &str, out: &mut Vec<Cause>) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, v) in vols.iter().enumerate() {
        let vpath = format!("{path}[{i}]");
        match str_at(v, "name").filter(|n| !n.is_empty()) {
            None => out.push(causes::required(&format!("{vpath}.name"), "")),
            Some(n) => {
                for msg in is_dns1123_label(n) {
                    out.push(causes::invalid(&format!("{vpath}.name"), &go_str(n), &msg));
                }
                if !names.insert(n) {
                    out.push(causes::duplicate(&format!("{vpath}.name"), &go_str(n)));
                }
            }
        }
        let sources = v
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, val)| k.as_str() != "name" && !val.is_null())
                    .count()
            })
            .unwrap_or(0);
        if sources == 0 {
            out.push(causes::required(&vpath, "must specify a volume type"));
        } else if sources > 1 {
            out.push(causes::forbidden(
                &vpath,
                "may not specify more than 1 volume type",
            ));
        }
    }
    names
}

fn validate_container(c: &Value, path: &str, volumes: &HashSet<&str>, out: &mut Vec<Cause>) {
    match str_at(c, "name").filter(|n| !n.is_empty()) {
        None => out.push(causes::required(&format!("{path}.name"), "")),
        Some(n) => {
            for msg in is_dns1123_label(n) {
                out.push(causes::invalid(&format!("{path}.name"), &go_str(n), &msg));
            }
        }
    }
    match str_at(c, "image").unwrap_or("") {
        "" => out.push(causes::required(&format!("{path}.image"), "")),
        img if img.trim() != img => out.push(causes::invalid(
            &format!("{path}.image"),
            &go_str(img),
            "must not have leading or trailing whitespace",
        )),
        _ => {}
    }
    check_enum(c, "imagePullPolicy", path, PULL_POLICIES, out);
    check_enum(
        c,
        "terminationMessagePolicy",
        path,
        TERMINATION_MESSAGE_POLICIES,
        out,
    );
    validate_ports(arr_at(c, "ports"), &format!("{path}.ports"), out);
    validate_env(arr_at(c, "env"), &format!("{path}.env"), out);
    validate_mounts(
        arr_at(c, "volumeMounts"),
        &format!("{path}.volumeMounts"),
        volumes,
        out,
    );
    if let Some(res) = c.get("resources") {
        validate_resources(res, &format!("{path}.resources"), out);
    }
    for (key, liveness_like) in [
        ("livenessProbe", true),
        ("readinessProbe", false),
        ("startupProbe", true),
    ] {
        if let Some(p) = c.get(key).filter(|p| !p.is_null()) {
            validate_probe(p, &format!("{path}.{key}"), liveness_like, out);
        }
    }
}

fn validate_ports(ports: &[Value], path: &str, out: &mut Vec<Cause>) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let ppath = format!("{path}[{i}]");
        if let Some(name) = str_at(p, "name").filter(|n| !n.is_empty()) {
            for msg in is_valid_port_name(name) {
                out.push(causes::invalid(
                    &format!("{ppath}.name"),
                    &go_str(name),
                    &msg,
                ));
            }
            if !names.insert(name) {
                out.push(causes::duplicate(&format!("{ppath}.name"), &go_str(name)));
            }
        }
        match int_at(p, "containerPort").unwrap_or(0) {
            0 => out.push(causes::required(&format!("{ppath}.containerPort"), "")),
            n => {
                for msg in is_valid_port_num(n) {
                    out.push(causes::invalid(
                        &format!("{ppath}.containerPort"),
                        &n.to_string(),
                        &msg,
                    ));
                }
            }
        }
        if let Some(n) = int_at(p, "hostPort").filter(|n| *n != 0) {
            for msg in is_valid_port_num(n) {
                out.push(causes::invalid(
                    &format!("{ppath}.hostPort"),
                    &n.to_string(),
                    &msg,
                ));
            }
        }
        check_enum(p, "protocol", &ppath, PROTOCOLS, out);
    }
}

fn validate_env(env: &[Value], path: &str, out: &mut Vec<Cause>) {
    for (i, e) in env.iter().enumerate() {
        let epath = format!("{path}[{i}]");
        match str_at(e, "name").filter(|n| !n.is_empty()) {
            None => out.push(causes::required(&format!("{epath}.name"), "")),
            Some(n) => {
                for msg in is_env_var_name(n) {
                    out.push(causes::invalid(&format!("{epath}.name"), &go_str(n), &msg));
                }
            }
        }
        if let Some(from) = obj_at(e, "valueFrom") {
            let has_value = str_at(e, "value").is_some_and(|v| !v.is_empty());
            if has_value {
                out.push(causes::invalid(
                    &format!("{epath}.valueFrom"),
                    "\"\"",
                    "may not be specified when `value` is not empty",
                ));
            }
            let sources = from.values().filter(|v| !v.is_null()).count();
            if sources == 0 {
                out.push(causes::invalid(
                    &format!("{epath}.valueFrom"),
                    "\"\"",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if sources > 1 {
                out.push(causes::invalid(
                    &format!("{epath}.valueFrom"),
                    "\"\"",
                    "may not have more than one field specified at a time",
                ));
            }
        }
    }
}

fn validate_mounts(mounts: &[Value], path: &str, volumes: &HashSet<&str>, out: &mut Vec<Cause>) {
    let mut paths = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let mpath = format!("{path}[{i}]");
        match str_at(m, "name").filter(|n| !n.is_empty()) {
            None => out.push(causes::required(&format!("{mpath}.name"), "")),
            Some(n) if !volumes.contains(n) => {
                out.push(causes::not_found(&format!("{mpath}.name"), &go_str(n)));
            }
            Some(_) => {}
        }
        match str_at(m, "mountPath").filter(|p| !p.is_empty()) {
            None => out.push(causes::required(&format!("{mpath}.mountPath"), "")),
            Some(p) => {
                if !paths.insert(p) {
                    out.push(causes::invalid(
                        &format!("{mpath}.mountPath"),
                        &go_str(p),
                        "must be unique",
                    ));
                }
            }
        }
        if let Some(sub) = str_at(m, "subPath").filter(|s| !s.is_empty()) {
            if sub.starts_with('/') {
                out.push(causes::invalid(
                    &format!("{mpath}.subPath"),
                    &go_str(sub),
                    "must be a relative path",
                ));
            } else if sub.split('/').any(|seg| seg == "..") {
                out.push(causes::invalid(
                    &format!("{mpath}.subPath"),
                    &go_str(sub),
                    "must not contain '..'",
                ));
            }
        }
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || name.contains('/')
}

fn validate_resources(res: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut limits: HashMap<&str, (f64, &str)> = HashMap::new();
    for key in ["limits", "requests"] {
        let Some(list) = obj_at(res, key) else {
            continue;
        };
        let mut entries: Vec<_> = list.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (name, q) in entries {
            let rpath = format!("{path}.{key}[{name}]");
            if !is_standard_container_resource(name) {
                out.push(causes::invalid(
                    &rpath,
                    &go_str(name),
                    "must be a standard resource type or fully qualified",
                ));
            }
            let text = match q {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            // Unparseable quantities are decode errors (400), reported by
            // the field checker, not here.
            let Ok(v) = quantity::parse(&text) else {
                continue;
            };
            if v < 0.0 {
                out.push(causes::invalid(
                    &rpath,
                    &go_str(&text),
                    super::IS_NEGATIVE_ERR,
                ));
                continue;
            }
            if key == "limits" {
                limits.insert(name, (v, q.as_str().unwrap_or("")));
            } else if let Some((lim, lim_text)) = limits.get(name.as_str()) {
                if v > *lim {
                    let lim_text = if lim_text.is_empty() {
                        lim.to_string()
                    } else {
                        lim_text.to_string()
                    };
                    out.push(causes::invalid(
                        &format!("{path}.requests"),
                        &go_str(&text),
                        &format!("must be less than or equal to {name} limit of {lim_text}"),
                    ));
                }
            }
        }
    }
}

fn validate_probe(p: &Value, path: &str, liveness_like: bool, out: &mut Vec<Cause>) {
    let handlers: Vec<&str> = PROBE_HANDLERS
        .iter()
        .copied()
        .filter(|h| p.get(*h).is_some_and(|v| !v.is_null()))
        .collect();
    match handlers.as_slice() {
        [] => out.push(causes::required(path, "must specify a handler type")),
        [_] => {}
        [_, rest @ ..] => {
            for h in rest {
                out.push(causes::forbidden(
                    &format!("{path}.{h}"),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        check_non_negative(p, key, path, out);
    }
    if liveness_like {
        if let Some(n) = int_at(p, "successThreshold").filter(|n| *n != 1) {
            out.push(causes::invalid(
                &format!("{path}.successThreshold"),
                &n.to_string(),
                "must be 1",
            ));
        }
    }
    for handler in ["httpGet", "tcpSocket"] {
        if let Some(port) = p.get(handler).and_then(|h| h.get("port")) {
            validate_port_ref(port, &format!("{path}.{handler}.port"), out);
        }
    }
}

/// A port given as number or name (probes, Service targetPort).
pub fn validate_port_ref(port: &Value, path: &str, out: &mut Vec<Cause>) {
    let msgs = match port {
        Value::String(s) => is_valid_port_name(s),
        Value::Number(n) => is_valid_port_num(n.as_i64().unwrap_or(0)),
        _ => return,
    };
    for msg in msgs {
        out.push(causes::invalid(path, &go_json(port), &msg));
    }
}
