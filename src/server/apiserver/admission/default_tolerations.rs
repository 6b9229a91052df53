//! `DefaultTolerationSeconds`, as upstream's admission plugin: a new pod
//! that does not tolerate the `not-ready` and `unreachable` NoExecute taints
//! gets tolerations of them for a bounded time (300 s unless the server
//! says otherwise), so that a node going away evicts its pods only after
//! that long.

use serde_json::{json, Value};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// How long pods tolerate a node that is not ready, and one unreachable.
#[derive(Debug, Clone, Copy)]
pub struct Seconds {
    pub not_ready: i64,
    pub unreachable: i64,
}

impl Default for Seconds {
    fn default() -> Self {
        Seconds {
            not_ready: 300,
            unreachable: 300,
        }
    }
}

/// Whether `t` (a toleration as JSON) already covers the NoExecute taint
/// `key`: the key or any key, with NoExecute or any effect.
fn covers(t: &Value, key: &str) -> bool {
    let k = t.get("key").and_then(Value::as_str).unwrap_or("");
    let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
    (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
}

pub fn admit_pod(pod: &mut Value, secs: Seconds) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for (key, s) in [(NOT_READY, secs.not_ready), (UNREACHABLE, secs.unreachable)] {
        if !list.iter().any(|t| covers(t, key)) {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_bounded_tolerations_unless_they_have_their_own() {
        let mut p = json!({"spec": {"containers": []}});
        admit_pod(&mut p, Seconds::default());
        let t = p["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["key"], NOT_READY);
        assert_eq!(t[1]["tolerationSeconds"], 300);
        // Their own toleration of one is kept, the other added.
        let mut p = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
        admit_pod(
            &mut p,
            Seconds {
                not_ready: 30,
                unreachable: 40,
            },
        );
        let t = p["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], NOT_READY);
        assert_eq!(t[1]["tolerationSeconds"], 30);
        // Tolerating everything covers both.
        let mut p = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit_pod(&mut p, Seconds::default());
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}
