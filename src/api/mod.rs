//! Shared object model: names, selectors, Status errors and the helpers the
//! server and (later) the agent both use on Kubernetes objects kept as JSON.

pub mod cron;
pub mod defaulting;
pub mod duration;
pub mod fields;
pub mod hpa_versions;
pub mod node_match;
pub mod protobuf;
pub mod qos;
pub mod rules;
pub mod selector;
pub mod status;
pub mod strategic;
pub mod validation;

/// Unknown/duplicate field detection for `fieldValidation` (walks the protobuf schema table).
pub use protobuf::fieldcheck;

/// `v` with every object's keys in order (a canonical form: the same
/// object written with its keys in another order gives the same value).
pub fn sort_keys(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sort_keys(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}
