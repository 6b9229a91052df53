//! Defaulting of the built-in kinds as kube-apiserver 1.32 does it: the
//! values a user who never set a field sees on a real cluster
//! (`k8s.io/kubernetes/pkg/apis/*/v1/defaults.go`, plus the Job selector
//! generation of the Job strategy).
//!
//! Which function defaults a kind is named by its `KindRules`
//! (`crate::api::rules`). [`apply_defaults`] only fills fields that are missing (absent, null, or
//! an empty string where Go tests for ""), so it is idempotent and can run
//! on every create and update.

pub(crate) mod autoscaling;
pub(crate) mod cluster_kinds;
pub(crate) mod core_kinds;
pub(crate) mod pod;
pub(crate) mod workloads;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::api::rules::KindRules;

/// Fill in the defaults of `obj`, an object of the kind `rules` describes
/// (kinds without defaults are left alone). Jobs need `metadata.uid` set
/// beforehand (their selector is generated from it).
pub fn apply_defaults(rules: &KindRules, obj: &mut Value) {
    if let Some(defaults) = rules.defaults.filter(|_| obj.is_object()) {
        defaults(obj);
    }
}

/// `v[key]` as a mutable object, if it is one.
fn child_obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.get_mut(key).filter(|c| c.is_object())
}

/// `v[key]` as a mutable object, created (or replacing null) when missing.
/// None when `v` is no object or `v[key]` holds something else.
fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let m = v.as_object_mut()?;
    let slot = m.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.is_object().then_some(slot)
}

/// Set `v[key]` when it is absent or null (a nil pointer in Go).
fn default_val(v: &mut Value, key: &str, value: Value) {
    if let Some(m) = v.as_object_mut() {
        let slot = m.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// Set `v[key]` when it is absent, null or "" (a zero string in Go).
fn default_str(v: &mut Value, key: &str, value: &str) {
    if let Some(m) = v.as_object_mut() {
        let slot = m.entry(key).or_insert(Value::Null);
        if slot.is_null() || slot.as_str() == Some("") {
            *slot = Value::String(value.to_string());
        }
    }
}

/// The mutable items of the list `v[key]` (none when it is no list).
fn items_mut<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|a| a.iter_mut())
        .filter(|i| i.is_object())
}
