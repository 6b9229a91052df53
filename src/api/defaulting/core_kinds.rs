//! Defaults of core and other non-workload kinds: Service, PVC, PV, Secret,
//! Namespace, Endpoints, NetworkPolicy, RBAC bindings.

use serde_json::{json, Value};

use super::{child_obj, default_str, default_val, ensure_obj, items_mut};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `SetDefaults_Service`. Cluster IPs and node ports are allocated by the
/// server, not here.
pub fn service(obj: &mut Value) {
    // Upstream's Service status always has its load balancer, `{}` at least.
    if let Some(status) = ensure_obj(obj, "status") {
        default_val(status, "loadBalancer", json!({}));
    }
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            if let Some(m) = spec.as_object_mut() {
                m.remove("sessionAffinityConfig");
            }
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for p in items_mut(spec, "ports") {
        default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(v) => v.as_i64() == Some(0),
        };
        if unset {
            if let Some(port) = p.get("port").cloned() {
                p["targetPort"] = port;
            }
        }
    }
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        default_val(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_val(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// `SetDefaults_PersistentVolumeClaim` (+ spec): Filesystem, phase Pending.
pub fn pvc(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        default_str(spec, "volumeMode", "Filesystem");
    }
    if let Some(status) = ensure_obj(obj, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// `SetDefaults_PersistentVolume`: Retain, Filesystem, phase Pending.
pub fn pv(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_str(spec, "volumeMode", "Filesystem");
        if let Some(hp) = child_obj(spec, "hostPath") {
            default_val(hp, "type", json!(""));
        }
    }
    if let Some(status) = ensure_obj(obj, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// `SetDefaults_Secret`, and what upstream's conversion of a v1 Secret does
/// before it: `stringData` is folded into `data` (its values base64-encoded,
/// winning over `data`'s for the same key) and never stored or returned.
pub fn secret(obj: &mut Value) {
    default_str(obj, "type", "Opaque");
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = m.remove("stringData") else {
        return;
    };
    use base64::Engine as _;
    let data = m
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            if let Value::String(v) = v {
                let encoded = base64::engine::general_purpose::STANDARD.encode(v);
                data.insert(k, Value::String(encoded));
            }
        }
    }
}

/// `SetDefaults_Namespace` (the `kubernetes.io/metadata.name` label) and
/// the "kubernetes" finalizer the namespace registry adds.
pub fn namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        if let Some(labels) = ensure_obj(obj, "metadata")
            .and_then(|m| ensure_obj(m, "labels"))
            .and_then(Value::as_object_mut)
        {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    if let Some(spec) = ensure_obj(obj, "spec") {
        default_val(spec, "finalizers", json!(["kubernetes"]));
    }
}

pub fn endpoints(obj: &mut Value) {
    for subset in items_mut(obj, "subsets") {
        for p in items_mut(subset, "ports") {
            default_str(p, "protocol", "TCP");
        }
    }
}

/// `SetDefaults_NetworkPolicy`: port protocols, and policyTypes from the
/// rules given.
pub fn network_policy(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    for dir in ["ingress", "egress"] {
        for rule in items_mut(spec, dir) {
            for p in items_mut(rule, "ports") {
                default_str(p, "protocol", "TCP");
            }
        }
    }
    let unset = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if unset {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        spec["policyTypes"] = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
    }
}

/// `SetDefaults_Subject` and the roleRef's API group.
pub fn role_binding(obj: &mut Value) {
    for s in items_mut(obj, "subjects") {
        let group = match s.get("kind").and_then(Value::as_str) {
            Some("ServiceAccount") => "",
            Some("User" | "Group") => RBAC_GROUP,
            _ => continue,
        };
        if s.get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && !group.is_empty()
        {
            s["apiGroup"] = json!(group);
        }
    }
    if let Some(r) = child_obj(obj, "roleRef") {
        default_str(r, "apiGroup", RBAC_GROUP);
    }
}
