//! Constructors for the `field.Error` kinds of apimachinery
//! (`k8s.io/apimachinery/pkg/util/validation/field`), with their exact
//! reasons and message shapes, and Go-style rendering of the offending value.

use serde_json::Value;

use crate::api::status::Cause;

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// `field.Required`: "Required value" or "Required value: <detail>".
pub fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    cause("FieldValueRequired", field, message)
}

/// `field.Invalid` with an already rendered value (see [`go_str`], [`go_json`]).
pub fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        format!("Invalid value: {value}")
    } else {
        format!("Invalid value: {value}: {detail}")
    };
    cause("FieldValueInvalid", field, message)
}

/// `field.TypeInvalid` with an already rendered value.
pub fn type_invalid(field: &str, value: &str, detail: &str) -> Cause {
    cause(
        "FieldValueTypeInvalid",
        field,
        format!("Invalid value: {value}: {detail}"),
    )
}

/// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| go_str(s)).collect();
    let mut message = format!("Unsupported value: {}", go_str(value));
    if !list.is_empty() {
        message.push_str(": supported values: ");
        message.push_str(&list.join(", "));
    }
    cause("FieldValueNotSupported", field, message)
}

/// `field.Duplicate`: `Duplicate value: "x"`.
pub fn duplicate(field: &str, value: &str) -> Cause {
    cause(
        "FieldValueDuplicate",
        field,
        format!("Duplicate value: {value}"),
    )
}

/// `field.Forbidden`: `Forbidden: <detail>`.
pub fn forbidden(field: &str, detail: &str) -> Cause {
    cause("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

/// `field.NotFound`: `Not found: "x"`.
pub fn not_found(field: &str, value: &str) -> Cause {
    cause("FieldValueNotFound", field, format!("Not found: {value}"))
}

/// `field.TooLong` (1.32 wording).
pub fn too_long(field: &str, max: usize) -> Cause {
    cause(
        "FieldValueTooLong",
        field,
        format!("Too long: may not be more than {max} bytes"),
    )
}

/// `field.TooMany`.
pub fn too_many(field: &str, actual: usize, max: usize) -> Cause {
    cause(
        "FieldValueTooMany",
        field,
        format!("Too many: {actual}: must have at most {max} items"),
    )
}

/// Go's `%q` of a string.
pub fn go_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value as `field.Error` prints it: strings quoted, numbers and
/// booleans bare, anything else as compact JSON.
pub fn go_json(v: &Value) -> String {
    match v {
        Value::String(s) => go_str(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// `%#v` of a `map[string]string`: keys sorted,
/// `map[string]string{"a":"b", "c":"d"}`.
pub fn go_string_map(m: Option<&serde_json::Map<String, Value>>) -> String {
    let Some(m) = m else {
        return "map[string]string(nil)".into();
    };
    let mut pairs: Vec<(&String, String)> = m
        .iter()
        .map(|(k, v)| (k, v.as_str().map(go_str).unwrap_or_else(|| go_json(v))))
        .collect();
    pairs.sort();
    let body: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{}:{v}", go_str(k)))
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

/// `%#v` of a `[]string`: `[]string{"a", "b"}`.
pub fn go_string_slice(items: &[&str]) -> String {
    let body: Vec<String> = items.iter().map(|s| go_str(s)).collect();
    format!("[]string{{{}}}", body.join(", "))
}

/// `%#v` of an `intstr.IntOrString`.
pub fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_str(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}
