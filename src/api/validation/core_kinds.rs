//! Core kinds other than pods: Service, ConfigMap, Secret and
//! PersistentVolumeClaim.

use std::collections::HashSet;

use base64::Engine;
use serde_json::{Map, Value};

use super::causes::{self, go_str, go_string_slice};
use super::meta::validate_labels;
use super::pod::{check_enum, validate_port_ref};
use super::{arr_at, int_at, is_config_map_key, is_dns1123_label, is_dns1123_subdomain};
use super::{is_valid_port_num, obj_at, quantity, str_at};
use crate::api::status::Cause;

/// `core.MaxSecretSize`, also the ConfigMap limit.
const MAX_DATA_BYTES: usize = 1024 * 1024;
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys
}

pub fn validate_service(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    let ty = str_at(spec, "type").unwrap_or("ClusterIP");
    let headless = str_at(spec, "clusterIP") == Some("None");
    let ports = arr_at(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        out.push(causes::required("spec.ports", ""));
    }
    if ty == "ExternalName" {
        match str_at(spec, "externalName").unwrap_or("") {
            "" => out.push(causes::required("spec.externalName", "")),
            name => {
                let name = name.strip_suffix('.').unwrap_or(name);
                for msg in is_dns1123_subdomain(name) {
                    out.push(causes::invalid("spec.externalName", &go_str(name), &msg));
                }
            }
        }
        if str_at(spec, "clusterIP").is_some_and(|ip| !ip.is_empty() && ip != "None") {
            out.push(causes::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
    }
    if ty != "ExternalName" {
        validate_cluster_ips(spec, &mut out);
    }
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        match str_at(p, "name").filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => out.push(causes::required(&format!("{pp}.name"), "")),
            None => {}
            Some(n) => {
                for msg in is_dns1123_label(n) {
                    out.push(causes::invalid(&format!("{pp}.name"), &go_str(n), &msg));
                }
                if !names.insert(n) {
                    out.push(causes::duplicate(&format!("{pp}.name"), &go_str(n)));
                }
            }
        }
        let port = int_at(p, "port").unwrap_or(0);
        for msg in is_valid_port_num(port) {
            out.push(causes::invalid(
                &format!("{pp}.port"),
                &port.to_string(),
                &msg,
            ));
        }
        check_enum(p, "protocol", &pp, PROTOCOLS, &mut out);
        if let Some(tp) = p.get("targetPort") {
            validate_port_ref(tp, &format!("{pp}.targetPort"), &mut out);
        }
        let proto = str_at(p, "protocol").unwrap_or("TCP");
        if !keys.insert((port, proto)) {
            out.push(causes::duplicate(
                &pp,
                &format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    go_str(proto)
                ),
            ));
        }
        if let Some(np) = int_at(p, "nodePort").filter(|n| *n != 0) {
            if ty == "ClusterIP" {
                out.push(causes::forbidden(
                    &format!("{pp}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                for msg in is_valid_port_num(np) {
                    out.push(causes::invalid(
                        &format!("{pp}.nodePort"),
                        &np.to_string(),
                        &msg,
                    ));
                }
            }
        }
    }
    check_enum(
        spec,
        "sessionAffinity",
        "spec",
        &["ClientIP", "None"],
        &mut out,
    );
    check_enum(spec, "type", "spec", SERVICE_TYPES, &mut out);
    out.extend(validate_labels(spec.get("selector"), "spec.selector"));
    out
}

/// Keys of `data`/`binaryData` and the total size.
/// `validateServiceClusterIPsRelatedFields`, on the object as the
/// strategy normalises it first: a lone `clusterIP` stands for
/// `clusterIPs: [clusterIP]`, and a lone `clusterIPs` gives `clusterIP`.
fn validate_cluster_ips(spec: &Value, out: &mut Vec<Cause>) {
    let path = "spec.clusterIPs";
    let ip = str_at(spec, "clusterIP").unwrap_or("");
    let listed: Vec<&str> = arr_at(spec, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    let ips: Vec<&str> = match (ip.is_empty(), listed.is_empty()) {
        (false, true) => vec![ip],
        _ => listed.clone(),
    };
    if !ip.is_empty() && !listed.is_empty() && listed[0] != ip {
        out.push(causes::invalid(
            path,
            &go_string_slice(&listed),
            "first value must match `clusterIP`",
        ));
    }
    for (i, one) in ips.iter().enumerate() {
        if *one == "None" {
            if i != 0 {
                out.push(causes::invalid(
                    &format!("{path}[{i}]"),
                    &go_str(one),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if !is_ip_sloppy(one) {
            out.push(causes::invalid(
                &format!("{path}[{i}]"),
                &go_str(one),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    if ips.len() > 2 {
        out.push(causes::invalid(
            path,
            &go_string_slice(&ips),
            "may only hold up to 2 values",
        ));
    }
}

/// `netutils.ParseIPSloppy`: an IPv6 address, or IPv4 dotted decimal whose
/// octets may carry leading zeros (read as decimal).
pub(crate) fn is_ip_sloppy(s: &str) -> bool {
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    let octets: Vec<&str> = s.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && o.bytes().all(|b| b.is_ascii_digit())
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

pub fn validate_config_map(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let data = obj_at(obj, "data");
    let binary = obj_at(obj, "binaryData");
    let mut total = 0usize;
    for (bag, this, other, msg) in [
        (
            "data",
            data,
            binary,
            "duplicate of key present in binaryData",
        ),
        (
            "binaryData",
            binary,
            data,
            "duplicate of key present in data",
        ),
    ] {
        let Some(map) = this else { continue };
        for key in sorted_keys(map) {
            let path = format!("{bag}[{key}]");
            for m in is_config_map_key(key) {
                out.push(causes::invalid(&path, &go_str(key), &m));
            }
            if other.is_some_and(|o| o.contains_key(key)) {
                out.push(causes::invalid(&path, &go_str(key), msg));
            }
            total += value_len(&map[key], bag == "binaryData");
        }
    }
    if total > MAX_DATA_BYTES {
        out.push(causes::too_long("", MAX_DATA_BYTES));
    }
    out
}

/// Byte length of a data value (base64 for binary bags).
fn value_len(v: &Value, base64: bool) -> usize {
    let s = v.as_str().unwrap_or("");
    if base64 {
        s.len() / 4 * 3
    } else {
        s.len()
    }
}

fn secret_value<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj_at(obj, "data")
        .and_then(|d| d.get(key))
        .or_else(|| obj_at(obj, "stringData").and_then(|d| d.get(key)))
}

pub fn validate_secret(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (bag, b64) in [("data", true), ("stringData", false)] {
        let Some(map) = obj_at(obj, bag) else {
            continue;
        };
        for key in sorted_keys(map) {
            for m in is_config_map_key(key) {
                out.push(causes::invalid(&format!("data[{key}]"), &go_str(key), &m));
            }
            total += value_len(&map[key], b64);
        }
    }
    if total > MAX_DATA_BYTES {
        out.push(causes::too_long("data", MAX_DATA_BYTES));
    }
    let has = |k: &str| secret_value(obj, k).is_some();
    match str_at(obj, "type").unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                out.push(causes::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => check_docker_json(obj, ".dockercfg", &mut out),
        "kubernetes.io/dockerconfigjson" => check_docker_json(obj, ".dockerconfigjson", &mut out),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            out.push(causes::required("data[username]", ""));
            out.push(causes::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" => {
            let empty = secret_value(obj, "ssh-privatekey")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if empty {
                out.push(causes::required("data[ssh-privatekey]", ""));
            }
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    out.push(causes::required(&format!("data[{key}]"), ""));
                }
            }
        }
        _ => {}
    }
    out
}

fn check_docker_json(obj: &Value, key: &str, out: &mut Vec<Cause>) {
    let path = format!("data[{key}]");
    let Some(v) = secret_value(obj, key).and_then(Value::as_str) else {
        out.push(causes::required(&path, ""));
        return;
    };
    let from_data = obj_at(obj, "data").is_some_and(|d| d.contains_key(key));
    let bytes = if from_data {
        match base64::engine::general_purpose::STANDARD.decode(v) {
            Ok(b) => b,
            Err(_) => return,
        }
    } else {
        v.as_bytes().to_vec()
    };
    if let Err(e) = serde_json::from_slice::<Map<String, Value>>(&bytes) {
        out.push(causes::invalid(
            &path,
            "\"<secret contents redacted>\"",
            &e.to_string(),
        ));
    }
}

pub fn validate_pvc(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    let modes = arr_at(spec, "accessModes");
    if modes.is_empty() {
        out.push(causes::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            out.push(causes::not_supported("spec.accessModes", m, ACCESS_MODES));
        }
    }
    let has_source = ["dataSource", "dataSourceRef"]
        .iter()
        .any(|k| spec.get(*k).is_some_and(|v| !v.is_null()));
    let storage = spec.pointer("/resources/requests/storage");
    match storage {
        None if !has_source => out.push(causes::required("spec.resources[storage]", "")),
        None => {}
        Some(q) => {
            let text = match q {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Ok(v) = quantity::parse(&text) {
                if v <= 0.0 {
                    out.push(causes::invalid(
                        "spec.resources[storage]",
                        &go_str(&text),
                        "must be greater than zero",
                    ));
                }
            }
        }
    }
    check_enum(
        spec,
        "volumeMode",
        "spec",
        &["Block", "Filesystem"],
        &mut out,
    );
    out
}
