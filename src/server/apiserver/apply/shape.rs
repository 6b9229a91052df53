//! The server-side apply view of the built-in schema: for every value in an
//! object, whether it is a granular map (each field owned on its own), an
//! atomic value, an associative list (elements identified by key fields), or
//! a set of primitives.
//!
//! It reads the generated tables of `crate::api::strategic::schema`
//! ([`schema::Field::apply`]): upstream's list types and list-map keys
//! (sometimes wider than the strategic merge key: container and Service
//! ports also key on `protocol`, defaulted to `TCP`), its atomic maps and
//! structs (label selectors, a Service's selector, a pod's `nodeSelector`),
//! and the patch strategy where no list type is stated.

use serde_json::{Map, Value};

use crate::api::strategic::schema::{self, Apply, KeyField, Ty};

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

/// The shape of `value`, found in field `field` of an object of type
/// `parent`.
pub(crate) fn of_field(parent: Option<Ty>, field: &str, value: &Value) -> Shape {
    let f = schema::field(parent, field);
    match (value, f.apply) {
        (Value::Object(_), Apply::Atomic) => Shape::Atomic,
        (Value::Object(_), _) => Shape::Map(f.ty),
        (Value::Array(_), Apply::Map(keys)) => Shape::Assoc(keys, f.ty),
        (Value::Array(_), Apply::Set) => Shape::Set,
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

    fn shape(go_type: &str, field: &str, value: Value) -> Shape {
        of_field(schema::go_type(go_type), field, &value)
    }

    /// Upstream's list-map keys, not the strategic merge key, with their
    /// defaults; list types before patch strategies (`hostIPs` merges in a
    /// patch but is atomic here); atomic maps and structs.
    #[test]
    fn shapes_follow_the_upstream_tables() {
        let list = || Value::Array(Vec::new());
        let obj = || Value::Object(Map::new());
        let Shape::Assoc(keys, _) = shape("core.Container", "ports", list()) else {
            panic!("container ports are a map list");
        };
        assert_eq!(keys, &[("containerPort", None), ("protocol", Some("TCP"))]);
        let Shape::Assoc(keys, _) = shape("core.ServiceSpec", "ports", list()) else {
            panic!("service ports are a map list");
        };
        assert_eq!(keys, &[("port", None), ("protocol", Some("TCP"))]);
        assert_eq!(shape("core.PodStatus", "hostIPs", list()), Shape::Atomic);
        assert_eq!(shape("meta.ObjectMeta", "finalizers", list()), Shape::Set);
        assert_eq!(shape("core.PodSpec", "tolerations", list()), Shape::Atomic);
        assert_eq!(
            shape("apps.DeploymentSpec", "selector", obj()),
            Shape::Atomic
        );
        assert_eq!(shape("core.ServiceSpec", "selector", obj()), Shape::Atomic);
        assert_eq!(shape("core.PodSpec", "nodeSelector", obj()), Shape::Atomic);
        assert!(matches!(
            shape("core.PodSpec", "securityContext", obj()),
            Shape::Map(_)
        ));
    }
}
