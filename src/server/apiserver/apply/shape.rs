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
//! `whenUnsatisfiable`), label selectors and a Service's selector are
//! atomic, and so is a pod's `status.hostIPs`. The tests check the list
//! shapes against upstream's list types (`upstream_patch_facts.tsv`).

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

/// Lists that merge on a key in a strategic merge patch but that server-side
/// apply owns whole (`+listType=atomic` upstream): `status.hostIPs`.
fn atomic_list(parent: Option<Ty>, field: &str) -> bool {
    matches!((parent, field), (Some(Ty::PodStatus), "hostIPs"))
}

/// The shape of `value`, found in field `field` of an object of type
/// `parent`.
pub(crate) fn of_field(parent: Option<Ty>, field: &str, value: &Value) -> Shape {
    let f = schema::field(parent, field);
    match value {
        Value::Object(_) if atomic_map(parent, field) => Shape::Atomic,
        Value::Object(_) => Shape::Map(f.ty),
        Value::Array(_) if atomic_list(parent, field) => Shape::Atomic,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's list types and list-map keys (see
    /// `api/strategic/upstream_patch_facts.tsv` for their provenance).
    const FACTS: &str = include_str!("../../../api/strategic/upstream_patch_facts.tsv");

    const TYPES: &[(Ty, &str, &str)] = &[
        (Ty::PodSpec, "core", "PodSpec"),
        (Ty::PodStatus, "core", "PodStatus"),
        (Ty::Container, "core", "Container"),
        (Ty::ServiceSpec, "core", "ServiceSpec"),
        (Ty::NodeSpec, "core", "NodeSpec"),
        (Ty::NodeStatus, "core", "NodeStatus"),
        (Ty::ServiceAccount, "core", "ServiceAccount"),
    ];

    /// Every list upstream declares (`+listType`) has the same shape here:
    /// `map` an associative list on the same keys, `set` a set, `atomic`
    /// one value.
    #[test]
    fn list_shapes_agree_with_upstream() {
        for &(ty, group, go_type) in TYPES {
            let rows = FACTS
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let c: Vec<&str> = l.split('\t').collect();
                    (c.len() == 7 && c[0] == group && c[1] == go_type).then_some(c)
                });
            for c in rows {
                let (field, list_type, map_keys) = (c[2], c[5], c[6]);
                let shape = of_field(Some(ty), field, &Value::Array(Vec::new()));
                match list_type {
                    "map" => {
                        let Shape::Assoc(keys, _) = shape else {
                            panic!("{go_type}.{field} is a map list upstream, here {shape:?}");
                        };
                        let mut ours: Vec<&str> = keys.iter().map(|k| k.0).collect();
                        let mut theirs: Vec<&str> = map_keys.split(',').collect();
                        ours.sort_unstable();
                        theirs.sort_unstable();
                        assert_eq!(ours, theirs, "{go_type}.{field} list-map keys");
                    }
                    "set" => assert_eq!(shape, Shape::Set, "{go_type}.{field}"),
                    "atomic" => assert_eq!(shape, Shape::Atomic, "{go_type}.{field}"),
                    _ => {}
                }
            }
        }
    }
}
