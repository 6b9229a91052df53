//! Upstream's NodeRestriction admission, for what a node writes to objects
//! it may otherwise touch: its own Node's labels and taints, and pods'
//! status. A node holds its credentials on a box the cluster does not
//! control; without these rules a compromised one could label itself to
//! attract pods (and with them their Secrets), shed the taints that keep
//! workloads away, or rewrite the status of pods on other nodes.
//!
//! - Labels: in the `kubernetes.io` and `k8s.io` domains a node may set
//!   only kubelet's own (hostname, os, arch, instance type, region and
//!   zone) and those under `kubelet.kubernetes.io/` and
//!   `node.kubernetes.io/`; never under `node-restriction.kubernetes.io/`.
//!   Labels of other domains are its own to set. On an update only the
//!   labels it changes are checked. The server's own node may carry the
//!   `node-role.kubernetes.io/` labels k3s gives server nodes.
//! - Taints: set when the Node is made (`--node-taint`), never changed by
//!   the node afterwards.
//! - Pod status: only of pods bound to the node.

use serde_json::Value;

use crate::api::status::ApiError;
use crate::server::pki::Identity;

/// Labels kubelet sets on its own Node (upstream's kubeletapis).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

fn in_domain(domain: &str, of: &str) -> bool {
    domain == of || domain.ends_with(&format!(".{of}"))
}

/// Whether a node may set label `key` on itself.
fn node_may_label(key: &str, control_plane: bool) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return true;
    };
    if in_domain(domain, "node-restriction.kubernetes.io") {
        return false;
    }
    if !(in_domain(domain, "kubernetes.io") || in_domain(domain, "k8s.io")) {
        return true;
    }
    KUBELET_LABELS.contains(&key)
        || in_domain(domain, "kubelet.kubernetes.io")
        || in_domain(domain, "node.kubernetes.io")
        || (control_plane && domain == "node-role.kubernetes.io")
}

fn labels(obj: Option<&Value>) -> serde_json::Map<String, Value> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn forbidden(node: &str, what: String) -> ApiError {
    ApiError::forbidden(format!("node {node:?} {what}"))
}

/// The check of a Node `node` writes for itself: `old` is None on create.
/// `control_plane` names the server's own node.
pub fn check_node(
    node: &str,
    old: Option<&Value>,
    new: &Value,
    control_plane: Option<&str>,
) -> Result<(), ApiError> {
    let (before, after) = (labels(old), labels(Some(new)));
    let cp = control_plane == Some(node);
    let mut refused: Vec<&str> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .chain(
            before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .map(String::as_str),
        )
        .filter(|k| !node_may_label(k, cp))
        .collect();
    refused.sort();
    refused.dedup();
    if !refused.is_empty() {
        return Err(forbidden(
            node,
            format!("is not allowed to modify labels: {}", refused.join(", ")),
        ));
    }
    if let Some(old) = old {
        let taints = |v: &Value| v.pointer("/spec/taints").cloned().unwrap_or(Value::Null);
        let empty = |t: &Value| t.is_null() || t.as_array().is_some_and(Vec::is_empty);
        let (a, b) = (taints(old), taints(new));
        if a != b && !(empty(&a) && empty(&b)) {
            return Err(forbidden(node, "is not allowed to modify taints".into()));
        }
    }
    Ok(())
}

/// The check of an update by `who` (only nodes are restricted).
pub fn check_update(
    who: &Identity,
    group: &str,
    resource: &str,
    subresource: Option<&str>,
    old: &Value,
    new: &Value,
    control_plane: Option<&str>,
) -> Result<(), ApiError> {
    let Some(node) = super::node_of(who) else {
        return Ok(());
    };
    match (group, resource, subresource) {
        ("", "nodes", None) => check_node(node, Some(old), new, control_plane),
        ("", "pods", Some("status")) => {
            let bound = old.pointer("/spec/nodeName").and_then(Value::as_str);
            if bound == Some(node) {
                Ok(())
            } else {
                let name = old
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Err(forbidden(
                    node,
                    format!("can only update the status of pods bound to it, not of {name:?}"),
                ))
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": "a1", "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn a_node_sets_only_the_labels_kubelet_may() {
        let ok = node(
            json!({"kubernetes.io/hostname": "a1", "node.kubernetes.io/instance-type": "skiff",
                   "topology.kubernetes.io/zone": "z1", "example.com/rack": "4", "plain": "x",
                   "kubelet.kubernetes.io/x": "y"}),
            json!(null),
        );
        check_node("a1", None, &ok, None).unwrap();
        for bad in [
            "node-role.kubernetes.io/control-plane",
            "node-restriction.kubernetes.io/trusted",
            "example.node-restriction.kubernetes.io/x",
            "kubernetes.io/role",
            "foo.k8s.io/x",
        ] {
            let n = node(json!({bad: "true"}), json!(null));
            let e = check_node("a1", None, &n, None).unwrap_err();
            assert_eq!(e.code, 403, "{bad}");
            assert!(e.message.contains(bad), "{e:?}");
        }
        // The server's own node: its role labels.
        let cp = node(
            json!({"node-role.kubernetes.io/control-plane": "true"}),
            json!(null),
        );
        check_node("a1", None, &cp, Some("a1")).unwrap();
        assert!(check_node("a1", None, &cp, Some("s")).is_err());
        // On update only what changes counts: a label set by an admin stays.
        let old = node(
            json!({"node-role.kubernetes.io/worker": "true"}),
            json!(null),
        );
        let mut new = old.clone();
        new["metadata"]["labels"]["example.com/x"] = json!("1");
        check_node("a1", Some(&old), &new, None).unwrap();
        let mut dropped = old.clone();
        dropped["metadata"]["labels"] = json!({});
        assert!(check_node("a1", Some(&old), &dropped, None).is_err());
    }

    #[test]
    fn a_node_keeps_its_taints_and_its_hands_off_others_pods() {
        let t = json!([{"key": "k", "effect": "NoSchedule"}]);
        let old = node(json!({}), t.clone());
        check_node("a1", None, &old, None).unwrap();
        check_node("a1", Some(&old), &old.clone(), None).unwrap();
        let freed = node(json!({}), json!([]));
        assert!(check_node("a1", Some(&old), &freed, None).is_err());
        check_node("a1", Some(&freed), &node(json!({}), json!(null)), None).unwrap();
        let who = Identity {
            user: "system:node:a1".into(),
            groups: vec![crate::server::pki::NODES_GROUP.into()],
        };
        let mine = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "a1"}});
        let theirs = json!({"metadata": {"name": "q"}, "spec": {"nodeName": "a2"}});
        check_update(&who, "", "pods", Some("status"), &mine, &mine, None).unwrap();
        assert!(check_update(&who, "", "pods", Some("status"), &theirs, &theirs, None).is_err());
        let admin = Identity {
            user: "admin".into(),
            groups: vec!["system:masters".into()],
        };
        check_update(&admin, "", "pods", Some("status"), &theirs, &theirs, None).unwrap();
    }
}
