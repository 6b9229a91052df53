//! Admission that needs other objects, as upstream's plugins of the same
//! names do: `Priority` (a pod's priority from its PriorityClass, one
//! global default), `LimitRanger` (a namespace's defaults and bounds for
//! container resources) and `ResourceQuota` (usage charged against the
//! namespace's quotas before the create is stored, given back when it
//! fails or the object is deleted) and `ServiceAccount` (a pod's account
//! and its API credentials) and `DefaultTolerationSeconds` (how long a
//! pod stays on a failed node) and `DefaultStorageClass` (a new claim's
//! class when it names none).
//!
//! [`mutate`] runs after defaulting and before validation, as mutating
//! admission does; quota is charged with the other shared state a create
//! takes (`allocate::reserve`), after validation.

pub mod default_storage_class;
pub mod default_tolerations;
pub mod limit_range;
pub mod pod_security;
pub mod priority;
pub mod quota;
pub mod service_account;

#[cfg(test)]
mod tests;

use serde_json::Value;

use super::object_store::{decode_as, store_error, Objects};
use super::registry::ResourceDef;
use super::ApiState;
use crate::api::status::ApiError;
use crate::server::store::ListOptions;

/// Objects read in one page while admission scans a collection.
const PAGE: usize = 500;

/// Change a new object as upstream's mutating admission does.
pub async fn mutate(state: &ApiState, def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    match (def.group, def.plural) {
        ("", "pods") => {
            service_account::admit_pod(state, obj).await?;
            priority::admit_pod(state, obj).await?;
            default_tolerations::admit_pod(obj, state.tolerations);
            limit_range::admit_pod(state, obj).await
        }
        ("", "persistentvolumeclaims") => {
            default_storage_class::admit_pvc(state, obj).await?;
            limit_range::admit_pvc(state, obj).await
        }
        ("", "resourcequotas") => {
            quota::note_quota(state, namespace_of(obj));
            quota::count_new(state, obj).await
        }
        ("scheduling.k8s.io", "priorityclasses") => priority::admit_class(state, obj).await,
        _ => Ok(()),
    }
}

/// What admission changes in an updated object (a quota whose limits
/// changed is counted again).
pub async fn mutate_update(
    state: &ApiState,
    def: &ResourceDef,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    match (def.group, def.plural) {
        ("", "resourcequotas") => quota::on_update(state, old, new).await,
        ("scheduling.k8s.io", "priorityclasses") => priority::admit_class(state, new).await,
        _ => Ok(()),
    }
}

/// The namespace of an object being admitted.
pub(crate) fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

/// The name of an object being admitted (may be empty for generateName).
pub(crate) fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The name admission errors show: the `generateName` for a name the
/// server generated from it (upstream's admission runs before the name
/// is made).
pub(crate) fn shown_name(obj: &Value) -> &str {
    let name = name_of(obj);
    let generate = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    // The generated name: the prefix (cut at 58 bytes) and 5 characters.
    let generated = !generate.is_empty()
        && name
            .len()
            .checked_sub(5)
            .and_then(|n| name.get(..n))
            .is_some_and(|prefix| !prefix.is_empty() && generate.starts_with(prefix));
    if generated {
        generate
    } else {
        name
    }
}

/// Every object of `def` in `ns` (all namespaces for cluster-scoped
/// kinds), read page by page at one revision.
pub(crate) async fn each(
    objects: &Objects,
    def: &ResourceDef,
    ns: Option<&str>,
    mut f: impl FnMut(Value),
) -> Result<(), ApiError> {
    let prefix = def.namespace_prefix(ns);
    let mut opts = ListOptions {
        limit: Some(PAGE),
        ..Default::default()
    };
    loop {
        let res = objects
            .list_raw(&prefix, opts.clone())
            .await
            .map_err(|e| store_error(def, "", e))?;
        let last = res.items.last().map(|kv| kv.key.clone());
        for kv in &res.items {
            f(decode_as(def, kv)?);
        }
        match last {
            Some(key) if res.more => {
                opts.start_after = Some(key);
                opts.revision = Some(res.revision);
            }
            _ => return Ok(()),
        }
    }
}

/// The Forbidden error admission gives: `<plural> "<name>" is forbidden: …`.
pub(crate) fn forbidden(def: &ResourceDef, name: &str, why: &str) -> ApiError {
    ApiError::forbidden_object(def.group, def.plural, name, why)
}
