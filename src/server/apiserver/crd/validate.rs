//! Validation of a custom resource against its version's schema, in the
//! order kube-openapi's validators run (type, junctors, string, format,
//! number, array, enum, object) and with the field errors upstream turns
//! their results into (`kubeOpenAPIResultToFieldErrors`): `Required value`,
//! `Unsupported value`, `Too long`, `Too many`, a type error as
//! `FieldValueTypeInvalid`, anything else as `Invalid value`.

use std::collections::HashSet;

use base64::Engine;
use serde_json::Value;

use super::schema::Schema;
use crate::api::status::Cause;
use crate::api::validation::causes;

/// Every problem of `obj` under `schema` (the version's root schema).
pub fn validate(schema: &Schema, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    node(schema, obj, "", &mut out);
    out
}

/// The problems of one value under one schema node (a default at CRD
/// creation).
pub fn value(schema: &Schema, v: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    node(schema, v, "", &mut out);
    out
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The name kube-openapi gives a node in its messages (`.` at the root).
fn shown(path: &str) -> &str {
    if path.is_empty() {
        "."
    } else {
        path
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Does `v` have the node's type? Floats that are whole numbers are
/// integers, as Go's JSON decoding makes them.
fn type_matches(s: &Schema, v: &Value) -> bool {
    if s.int_or_string {
        return v.is_string() || is_integer(v);
    }
    match s.ty.as_str() {
        "" => true,
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn node(s: &Schema, v: &Value, path: &str, out: &mut Vec<Cause>) {
    let name = shown(path);
    if v.is_null() {
        if !s.nullable && !s.ty.is_empty() {
            let msg = format!("{name} in body must be of type {}: \"null\"", s.ty);
            out.push(causes::type_invalid(path, "\"null\"", &msg));
        }
        return;
    }
    if !type_matches(s, v) {
        let ty = json_type(v);
        let msg = format!("{name} in body must be of type {}: \"{ty}\"", s.ty);
        out.push(causes::type_invalid(path, &causes::go_str(ty), &msg));
        return;
    }
    junctors(s, v, path, out);
    if let Value::String(text) = v {
        string(s, text, path, out);
    }
    if let Value::Number(n) = v {
        number(s, n, path, out);
    }
    if let Value::Array(items) = v {
        array(s, items, path, out);
    }
    if !s.enumeration.is_empty() && !s.enumeration.contains(v) {
        out.push(not_supported(path, v, &s.enumeration));
    }
    if let Value::Object(map) = v {
        object(s, map, path, out);
    }
}

fn junctors(s: &Schema, v: &Value, path: &str, out: &mut Vec<Cause>) {
    let quoted = causes::go_str(shown(path));
    let composite = |detail: String| causes::invalid("<nil>", "\"\"", &detail);
    let errors_of = |sub: &Schema| {
        let mut e = Vec::new();
        node(sub, v, path, &mut e);
        e
    };
    if !s.any_of.is_empty() {
        // The first branch that holds settles it.
        let mut best: Option<Vec<Cause>> = None;
        let mut held = false;
        for sub in &s.any_of {
            let e = errors_of(sub);
            if e.is_empty() {
                held = true;
                break;
            }
            if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                best = Some(e);
            }
        }
        if !held {
            out.push(composite(format!(
                "{quoted} must validate at least one schema (anyOf)"
            )));
            out.extend(best.unwrap_or_default());
        }
    }
    if !s.one_of.is_empty() {
        let results: Vec<Vec<Cause>> = s.one_of.iter().map(errors_of).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let more = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            out.push(composite(format!(
                "{quoted} must validate one and only one schema (oneOf). {more}"
            )));
            if valid == 0 {
                if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                    out.extend(best);
                }
            }
        }
    }
    if !s.all_of.is_empty() {
        let mut valid = 0;
        for sub in &s.all_of {
            let e = errors_of(sub);
            if e.is_empty() {
                valid += 1;
            }
            out.extend(e);
        }
        if valid != s.all_of.len() {
            let more = if valid == 0 { ". None validated" } else { "" };
            out.push(composite(format!(
                "{quoted} must validate all the schemas (allOf){more}"
            )));
        }
    }
    if let Some(not) = &s.not {
        if errors_of(not).is_empty() {
            out.push(composite(format!(
                "{quoted} must not validate the schema (not)"
            )));
        }
    }
}

fn string(s: &Schema, text: &str, path: &str, out: &mut Vec<Cause>) {
    let name = shown(path);
    let value = causes::go_str(text);
    let chars = text.chars().count() as u64;
    if let Some(max) = s.max_length {
        if chars > max {
            out.push(causes::too_long(path, max as usize));
        }
    }
    if let Some(min) = s.min_length {
        if chars < min {
            let msg = format!("{name} in body should be at least {min} chars long");
            out.push(causes::invalid(path, &value, &msg));
        }
    }
    if let Some((src, re)) = &s.pattern {
        if !re.is_match(text) {
            let msg = format!("{name} in body should match '{src}'");
            out.push(causes::invalid(path, &value, &msg));
        }
    }
    if !s.format.is_empty() && !format_ok(&s.format, text) {
        let msg = format!("{name} in body must be of type {}: {value}", s.format);
        out.push(causes::type_invalid(path, &value, &msg));
    }
}

/// The string formats upstream checks for custom resources; others are
/// accepted as any string, as upstream drops formats it does not know.
fn format_ok(format: &str, text: &str) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match format {
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "uuid" => uuid::Uuid::parse_str(text).is_ok() && text.len() == 36,
        "ipv4" => text.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<Ipv6Addr>().is_ok(),
        "cidr" => text.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.parse::<Ipv4Addr>().is_ok() {
                32
            } else if ip.parse::<Ipv6Addr>().is_ok() {
                128
            } else {
                return false;
            };
            bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        "mac" => {
            let parts: Vec<&str> = text.split([':', '-']).collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "hostname" => {
            !text.is_empty()
                && text.len() <= 253
                && text.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
        "email" => text
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.')),
        _ => true,
    }
}

fn number(s: &Schema, n: &serde_json::Number, path: &str, out: &mut Vec<Cause>) {
    let name = shown(path);
    let value = n.to_string();
    let Some(f) = n.as_f64() else { return };
    if let Some(m) = s.multiple_of {
        // go-openapi's tolerance for float division.
        let q = f / m;
        if (q - q.round()).abs() > 1e-9 * q.abs().max(1.0) {
            let msg = format!("{name} in body should be a multiple of {}", go_float(m));
            out.push(causes::invalid(path, &value, &msg));
        }
    }
    if let Some(max) = s.maximum {
        let bad = if s.exclusive_maximum {
            f >= max
        } else {
            f > max
        };
        if bad {
            let rel = if s.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            let msg = format!("{name} in body should be {rel} {}", go_float(max));
            out.push(causes::invalid(path, &value, &msg));
        }
    }
    if let Some(min) = s.minimum {
        let bad = if s.exclusive_minimum {
            f <= min
        } else {
            f < min
        };
        if bad {
            let rel = if s.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            let msg = format!("{name} in body should be {rel} {}", go_float(min));
            out.push(causes::invalid(path, &value, &msg));
        }
    }
}

/// Go's `%v` of a float64 bound: whole numbers without a fraction.
fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn array(s: &Schema, items: &[Value], path: &str, out: &mut Vec<Cause>) {
    let name = shown(path);
    let n = items.len() as u64;
    if let Some(min) = s.min_items {
        if n < min {
            let msg = format!("{name} in body should have at least {min} items");
            out.push(causes::invalid(path, &n.to_string(), &msg));
        }
    }
    if let Some(max) = s.max_items {
        if n > max {
            out.push(causes::too_many(path, n as usize, max as usize));
        }
    }
    if let Some(item) = &s.items {
        for (i, v) in items.iter().enumerate() {
            node(item, v, &format!("{path}[{i}]"), out);
        }
    }
    match s.list_type.as_str() {
        "set" => {
            let mut seen = HashSet::new();
            for (i, v) in items.iter().enumerate() {
                if !seen.insert(v.to_string()) {
                    out.push(causes::duplicate(
                        &format!("{path}[{i}]"),
                        &causes::go_json(v),
                    ));
                }
            }
        }
        "map" => {
            let mut seen = HashSet::new();
            for (i, v) in items.iter().enumerate() {
                let key: Vec<String> = s
                    .list_map_keys
                    .iter()
                    .map(|k| v.get(k).map(Value::to_string).unwrap_or_default())
                    .collect();
                if !seen.insert(key) {
                    let shown: Vec<String> = s
                        .list_map_keys
                        .iter()
                        .filter_map(|k| v.get(k).map(|x| format!("{}:{}", causes::go_str(k), x)))
                        .collect();
                    let value = format!("map[string]interface {{}}{{{}}}", shown.join(", "));
                    out.push(causes::duplicate(&format!("{path}[{i}]"), &value));
                }
            }
        }
        _ => {}
    }
}

fn not_supported(path: &str, v: &Value, allowed: &[Value]) -> Cause {
    let list: Vec<String> = allowed
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| a.to_string())
        })
        .collect();
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    match v {
        Value::String(s) => causes::not_supported(path, s, &refs),
        other => {
            let mut c = causes::not_supported(path, "", &refs);
            c.message = c.message.replacen(
                "Unsupported value: \"\"",
                &format!("Unsupported value: {other}"),
                1,
            );
            c
        }
    }
}

fn object(s: &Schema, map: &serde_json::Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    let name = shown(path);
    let n = map.len() as u64;
    if let Some(max) = s.max_properties {
        if n > max {
            out.push(causes::too_many(path, n as usize, max as usize));
        }
    }
    if let Some(min) = s.min_properties {
        if n < min {
            let msg = format!("{name} in body should have at least {min} properties");
            out.push(causes::invalid(path, &n.to_string(), &msg));
        }
    }
    for r in &s.required {
        if !map.contains_key(r) {
            out.push(causes::required(&child(path, r), ""));
        }
    }
    // In the schema's (sorted) order, so that the causes come out the same
    // whatever order the client wrote its fields in.
    for (k, p) in &s.properties {
        let Some(v) = map.get(k) else { continue };
        // The root's metadata is ObjectMeta, checked as every kind's.
        if path.is_empty() && k == "metadata" {
            metadata(p, v, out);
            continue;
        }
        node(p, v, &child(path, k), out);
    }
    if let Some(a) = &s.additional {
        for (k, v) in map {
            node(a, v, &child(path, k), out);
        }
    }
}

/// A schema may restrict the root's metadata.name and generateName only.
fn metadata(s: &Schema, v: &Value, out: &mut Vec<Cause>) {
    for key in ["name", "generateName"] {
        if let (Some(p), Some(x)) = (s.properties.get(key), v.get(key)) {
            node(p, x, &format!("metadata.{key}"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, obj: Value) -> Vec<String> {
        let s = super::super::schema::parse(&schema, "s").expect("valid schema");
        validate(&s, &obj)
            .into_iter()
            .map(|c| format!("{} [{}] {}", c.field, c.reason, c.message))
            .collect()
    }

    fn crontab() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "required": ["cronSpec"],
        "properties": {
            "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
            "image": {"type": "string", "maxLength": 5},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "when": {"type": "string", "format": "date-time"},
            "ports": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set",
                "items": {"type": "integer"}},
        }}}})
    }

    #[test]
    fn upstream_causes() {
        let got = check(
            crontab(),
            json!({"spec": {"cronSpec": "* * * *", "replicas": 15, "image": "toolong",
                "mode": "c", "when": "yesterday", "ports": [1, 1, 2]}}),
        );
        assert_eq!(
            got,
            [
                "spec.cronSpec [FieldValueInvalid] Invalid value: \"* * * *\": spec.cronSpec in body should match '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'",
                "spec.image [FieldValueTooLong] Too long: may not be more than 5 bytes",
                "spec.mode [FieldValueNotSupported] Unsupported value: \"c\": supported values: \"a\", \"b\"",
                "spec.ports [FieldValueTooMany] Too many: 3: must have at most 2 items",
                "spec.ports[1] [FieldValueDuplicate] Duplicate value: 1",
                "spec.replicas [FieldValueInvalid] Invalid value: 15: spec.replicas in body should be less than or equal to 10",
                "spec.when [FieldValueTypeInvalid] Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
            ]
        );
    }

    #[test]
    fn types_and_required() {
        let got = check(crontab(), json!({"spec": {"replicas": "3"}}));
        assert_eq!(
            got,
            [
                "spec.cronSpec [FieldValueRequired] Required value",
                "spec.replicas [FieldValueTypeInvalid] Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            ]
        );
        assert!(check(
            crontab(),
            json!({"spec": {"cronSpec": "* * * * *", "replicas": 3.0}})
        )
        .is_empty());
    }

    #[test]
    fn int_or_string_and_nullable() {
        let s = json!({"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": true},
            "note": {"type": "string", "nullable": true},
            "name": {"type": "string"}}});
        assert!(check(s.clone(), json!({"port": "http", "note": null})).is_empty());
        assert!(check(s.clone(), json!({"port": 80})).is_empty());
        assert_eq!(check(s.clone(), json!({"port": 1.5})).len(), 1);
        assert_eq!(
            check(s, json!({"name": null})),
            ["name [FieldValueTypeInvalid] Invalid value: \"null\": name in body must be of type string: \"null\""]
        );
    }

    #[test]
    fn list_maps_refuse_duplicate_keys() {
        let s = json!({"type": "object", "properties": {"l": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}}}});
        let got = check(
            s,
            json!({"l": [{"name": "a", "v": 1}, {"name": "a", "v": 2}]}),
        );
        assert_eq!(
            got,
            ["l[1] [FieldValueDuplicate] Duplicate value: map[string]interface {}{\"name\":\"a\"}"]
        );
    }

    #[test]
    fn junctors() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}}});
        assert!(check(s.clone(), json!({"spec": {"a": "x"}})).is_empty());
        let got = check(s, json!({"spec": {"a": "x", "b": "y"}}));
        assert_eq!(
            got,
            ["<nil> [FieldValueInvalid] Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found 2 valid alternatives"]
        );
    }
}
