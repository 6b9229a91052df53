//! Controllers: reconcile loops that are ordinary API clients (the loopback
//! client, each with an identity of its own), fed by API watches.

pub mod claim;
pub mod cluster_dns;
pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deploy;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslices;
pub mod expectations;
pub mod garbage;
pub mod history;
pub mod hpa;
pub mod job;
pub mod namespace;
pub mod node_password;
pub mod nodelifecycle;
pub mod per_namespace;
pub mod podcontrol;
pub mod podgc;
pub mod podutil;
pub mod replicaset;
pub mod root_ca;
pub mod runtime;
pub mod serviceaccounts;
pub mod servicelb;
pub mod statefulset;
pub mod token_cleaner;
pub mod ttl_after_finished;

use serde_json::Value;

/// The items of a list answer (none when it has none).
fn items(list: Value) -> Vec<Value> {
    match list {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A string field of an object's metadata (`name`, `uid`,
/// `deletionTimestamp`…).
fn meta<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

/// An API error whose Status says `f` (not found, conflict…).
fn is_status(e: &kube::Error, f: impl Fn(&kube::core::Status) -> bool) -> bool {
    matches!(e, kube::Error::Api(s) if f(s))
}

#[cfg(test)]
pub(crate) mod tests;
