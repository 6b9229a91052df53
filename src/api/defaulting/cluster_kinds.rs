//! Defaults of the kinds that describe the cluster's policies and plumbing
//! rather than workloads: LimitRange, PriorityClass, StorageClass,
//! CSIDriver (`pkg/apis/{core,scheduling,storage}/v1/defaults.go`).

use serde_json::{json, Map, Value};

use super::{default_str, default_val, ensure_obj, items_mut};

/// `SetDefaults_LimitRangeItem`: for containers, a missing default limit
/// is the max, a missing default request is the default limit, else the
/// min. What admission later applies to pods comes from these.
pub fn limit_range(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    for item in items_mut(spec, "limits") {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let max = resource_list(item, "max");
        let min = resource_list(item, "min");
        let mut default = resource_list(item, "default");
        for (k, v) in &max {
            default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut request = resource_list(item, "defaultRequest");
        for (k, v) in default.iter().chain(min.iter()) {
            request.entry(k.clone()).or_insert_with(|| v.clone());
        }
        item["default"] = Value::Object(default);
        item["defaultRequest"] = Value::Object(request);
    }
}

fn resource_list(item: &Value, key: &str) -> Map<String, Value> {
    item.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `SetDefaults_PriorityClass`.
pub fn priority_class(obj: &mut Value) {
    default_str(obj, "preemptionPolicy", "PreemptLowerPriority");
}

/// `SetDefaults_StorageClass`.
pub fn storage_class(obj: &mut Value) {
    default_str(obj, "reclaimPolicy", "Delete");
    default_str(obj, "volumeBindingMode", "Immediate");
}

/// `SetDefaults_CSIDriver`.
pub fn csi_driver(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_val(spec, "attachRequired", json!(true));
    default_val(spec, "podInfoOnMount", json!(false));
    default_val(spec, "storageCapacity", json!(false));
    default_val(spec, "requiresRepublish", json!(false));
    default_val(spec, "seLinuxMount", json!(false));
    default_str(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType");
    let modes_unset = spec
        .get("volumeLifecycleModes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if modes_unset {
        spec["volumeLifecycleModes"] = json!(["Persistent"]);
    }
}
