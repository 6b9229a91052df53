//! Structural pruning and defaulting of custom resources, as upstream's
//! `pruning` and `defaulting` packages: fields the schema does not specify
//! are dropped (unless a node keeps unknown fields), null values of
//! non-nullable fields without a default are dropped, and defaults fill in
//! what is missing. Metadata is ObjectMeta at the root and in embedded
//! resources, pruned as every kind's.

use serde_json::{Map, Value};

use super::schema::Schema;

/// Drop what `schema` does not specify from `obj` (a whole object), and
/// return the paths dropped (`spec.foo`, `spec.items[0].bar`), which
/// fieldValidation reports as unknown fields.
pub fn prune(schema: &Schema, obj: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    if let Value::Object(map) = obj {
        resource(schema, map, "", &mut dropped);
    }
    dropped
}

/// The fields `prune` would drop, without changing `obj`.
pub fn unknown_fields(schema: &Schema, obj: &Value) -> Vec<String> {
    prune(schema, &mut obj.clone())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// An object with apiVersion, kind and metadata of its own (the root, or an
/// `x-kubernetes-embedded-resource`).
fn resource(s: &Schema, map: &mut Map<String, Value>, path: &str, dropped: &mut Vec<String>) {
    if let Some(meta) = map.get_mut("metadata") {
        for f in object_meta_unknowns(meta) {
            dropped.push(join(path, &format!("metadata.{f}")));
        }
        prune_object_meta(meta);
    }
    fields(s, map, path, &["apiVersion", "kind", "metadata"], dropped);
}

fn fields(
    s: &Schema,
    map: &mut Map<String, Value>,
    path: &str,
    keep: &[&str],
    dropped: &mut Vec<String>,
) {
    let keep_unknown = s.preserve_unknown || s.additional_any;
    map.retain(|k, v| {
        if keep.contains(&k.as_str()) {
            return true;
        }
        let at = join(path, k);
        if let Some(p) = s.properties.get(k) {
            value(p, v, &at, dropped);
            true
        } else if let Some(a) = &s.additional {
            value(a, v, &at, dropped);
            true
        } else if keep_unknown {
            true
        } else {
            dropped.push(at);
            false
        }
    });
}

fn value(s: &Schema, v: &mut Value, path: &str, dropped: &mut Vec<String>) {
    match v {
        Value::Object(map) if s.embedded_resource => resource(s, map, path, dropped),
        Value::Object(map) => fields(s, map, path, &[], dropped),
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for (i, x) in items.iter_mut().enumerate() {
                    value(item, x, &format!("{path}[{i}]"), dropped);
                }
            }
        }
        _ => {}
    }
}

/// ObjectMeta's unknown fields, found with the typed schema of a kind
/// whose metadata is plain ObjectMeta (ConfigMap's).
fn object_meta_unknowns(meta: &Value) -> Vec<String> {
    let probe = serde_json::json!({ "metadata": meta });
    crate::api::fieldcheck::unknown_fields("v1", "ConfigMap", &probe)
        .into_iter()
        .filter_map(|p| p.strip_prefix("metadata.").map(str::to_string))
        .collect()
}

fn prune_object_meta(meta: &mut Value) {
    let mut probe = serde_json::json!({ "metadata": meta.take() });
    crate::api::fieldcheck::prune_unknown_fields("v1", "ConfigMap", &mut probe);
    *meta = probe
        .get_mut("metadata")
        .map(Value::take)
        .unwrap_or_else(|| Value::Object(Map::new()));
}

/// Drop null values of non-nullable fields that have no default, then fill
/// defaults in (a null of a non-nullable field with a default is replaced).
pub fn default(schema: &Schema, obj: &mut Value) {
    prune_nulls(obj, Some(schema));
    apply_defaults(obj, schema);
}

fn field_schema<'s>(s: Option<&'s Schema>, key: &str) -> Option<&'s Schema> {
    let s = s?;
    s.properties.get(key).or(s.additional.as_deref())
}

fn non_nullable_null(v: &Value, s: &Schema) -> bool {
    v.is_null() && !s.nullable
}

fn prune_nulls(v: &mut Value, s: Option<&Schema>) {
    match v {
        Value::Object(map) => {
            map.retain(|k, x| {
                let sub = field_schema(s, k);
                !sub.is_some_and(|p| non_nullable_null(x, p) && p.default.is_none())
            });
            for (k, x) in map.iter_mut() {
                prune_nulls(x, field_schema(s, k));
            }
        }
        Value::Array(items) => {
            let sub = s.and_then(|s| s.items.as_deref());
            for x in items {
                prune_nulls(x, sub);
            }
        }
        _ => {}
    }
}

fn apply_defaults(v: &mut Value, s: &Schema) {
    match v {
        Value::Object(map) => {
            for (k, p) in &s.properties {
                let Some(d) = &p.default else { continue };
                let missing = map.get(k).is_none_or(|x| non_nullable_null(x, p));
                if missing {
                    map.insert(k.clone(), d.clone());
                }
            }
            for (k, x) in map.iter_mut() {
                if let Some(p) = s.properties.get(k) {
                    apply_defaults(x, p);
                } else if let Some(a) = &s.additional {
                    if let (true, Some(d)) = (non_nullable_null(x, a), &a.default) {
                        *x = d.clone();
                    }
                    apply_defaults(x, a);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for x in items {
                    if let (true, Some(d)) = (non_nullable_null(x, item), &item.default) {
                        *x = d.clone();
                    }
                    apply_defaults(x, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        super::super::schema::parse(
            &json!({"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "default": 3},
                    "name": {"type": "string"},
                    "note": {"type": "string", "nullable": true},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {"type": "array", "items": {"type": "object",
                        "properties": {"port": {"type": "integer", "default": 80}}}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object"}}},
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }}),
            "s",
        )
        .expect("schema")
    }

    #[test]
    fn prunes_what_the_schema_does_not_specify() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K",
            "metadata": {"name": "a", "bogus": 1},
            "extra": true,
            "spec": {"name": "n", "nope": 1,
                "free": {"anything": [1], "known": {"a": "x", "b": "y"}},
                "labels": {"k": "v"},
                "items": [{"port": 1, "host": "h"}],
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"x": 1}, "other": 2}}});
        let dropped = prune(&schema(), &mut obj);
        assert_eq!(
            dropped,
            [
                "metadata.bogus",
                "extra",
                "spec.nope",
                "spec.free.known.b",
                "spec.items[0].host",
                "spec.template.spec.x",
                "spec.template.other"
            ]
        );
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
                "spec": {"name": "n", "free": {"anything": [1], "known": {"a": "x"}},
                    "labels": {"k": "v"}, "items": [{"port": 1}],
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                        "spec": {}}}})
        );
    }

    #[test]
    fn defaults_fill_missing_and_non_nullable_nulls() {
        let mut obj = json!({"spec": {"name": null, "note": null, "items": [{}, {"port": 8}]}});
        default(&schema(), &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"note": null, "items": [{"port": 80}, {"port": 8}], "size": 3}})
        );
        let mut obj = json!({"spec": {"size": null}});
        default(&schema(), &mut obj);
        assert_eq!(obj, json!({"spec": {"size": 3}}));
    }
}
