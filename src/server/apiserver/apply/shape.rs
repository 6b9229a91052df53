//! The server-side apply view of the built-in schema: for every value in an
//! object, whether it is a granular map (each field owned on its own), an
//! atomic value, an associative list (elements identified by key fields), or
//! a set of primitives.
//!
//! It reuses the strategic-merge table of `crate::api::strategic::schema`
//! (which lists merge and on which key) and adds what server-side apply does
//! differently: its list-map keys are sometimes wider than the strategic
//! merge key (container and Service ports also key on `protocol`, which
//! defaults to `TCP`; topology spread constraints also on
//! `whenUnsatisfiable`), and label selectors and a Service's selector are
//! atomic.

use serde_json::{Map, Value};

use crate::api::strategic::schema::{self, ListStrategy, Ty};

/// One key field of an associative list and its default, used when an
/// element omits it (as the real server fills `protocol: TCP`).
pub(crate) type KeyField = (&'static str, Option<&'static str>);

/// What a value is, for field ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A map whose fields are owned one by one; `Some(ty)` when the schema
    /// knows the type below.
    Map(Option<Ty>),
    /// Owned as one value: scalars, atomic lists and atomic maps.
    Atomic,
    /// A list of objects identified by the key fields.
    Assoc(&'static [KeyField], Option<Ty>),
    /// A list of primitives, each owned on its own.
    Set,
}

const CONTAINER_PORT_KEYS: &[KeyField] = &[("containerPort", None), ("protocol", Some("TCP"))];
const SERVICE_PORT_KEYS: &[KeyField] = &[("port", None), ("protocol", Some("TCP"))];
const SPREAD_KEYS: &[KeyField] = &[("topologyKey", None), ("whenUnsatisfiable", None)];

/// The server-side apply keys of a list the strategic table merges on `key`.
fn assoc_keys(parent: Option<Ty>, field: &str, key: &'static str) -> &'static [KeyField] {
    match (parent, field) {
        (Some(Ty::Container), "ports") => CONTAINER_PORT_KEYS,
        (Some(Ty::ServiceSpec), "ports") => SERVICE_PORT_KEYS,
        (Some(Ty::PodSpec), "topologySpreadConstraints") => SPREAD_KEYS,
        _ => single_key(key),
    }
}

/// A `&'static [KeyField]` for one key name (the table's keys are few).
fn single_key(key: &'static str) -> &'static [KeyField] {
    macro_rules! keys {
        ($($k:literal),*) => {
            match key {
                $($k => &[($k, None)],)*
                _ => &[],
            }
        };
    }
    keys!(
        "name",
        "uid",
        "type",
        "ip",
        "mountPath",
        "devicePath",
        "containerPort",
        "port",
        "topologyKey"
    )
}

/// Maps that are owned as a whole (`+structType=atomic`/`+mapType=atomic`).
fn atomic_map(parent: Option<Ty>, field: &str) -> bool {
    matches!(
        (parent, field),
        (Some(Ty::WorkloadSpec | Ty::ServiceSpec), "selector")
    )
}

/// The shape of `value`, found in field `field` of an object of type
/// `parent`.
pub(crate) fn of_field(parent: Option<Ty>, field: &str, value: &Value) -> Shape {
    let f = schema::field(parent, field);
    match value {
        Value::Object(_) if atomic_map(parent, field) => Shape::Atomic,
        Value::Object(_) => Shape::Map(f.ty),
        Value::Array(_) => match f.list {
            ListStrategy::Merge(Some(key)) => {
                let keys = assoc_keys(parent, field, key);
                if keys.is_empty() {
                    Shape::Atomic
                } else {
                    Shape::Assoc(keys, f.ty)
                }
            }
            ListStrategy::Merge(None) => Shape::Set,
            ListStrategy::Atomic => Shape::Atomic,
        },
        _ => Shape::Atomic,
    }
}

/// The root type of an object, from its `apiVersion` and `kind`.
pub(crate) fn root(obj: &Value) -> Option<Ty> {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    Some(schema::root(av, kind))
}

/// The key of an associative-list element: key fields (defaults filled in)
/// sorted by name, or `None` if the element lacks one.
pub(crate) fn element_key(keys: &[KeyField], elem: &Value) -> Option<Map<String, Value>> {
    let obj = elem.as_object()?;
    let mut pairs: Vec<(&str, Value)> = Vec::with_capacity(keys.len());
    for (k, default) in keys {
        match (obj.get(*k), default) {
            (Some(v), _) if !v.is_null() => pairs.push((k, v.clone())),
            (_, Some(d)) => pairs.push((k, Value::String((*d).to_string()))),
            _ => return None,
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    Some(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}
