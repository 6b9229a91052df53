//! Which updates are heartbeats: a node's Lease, or the controllers' and
//! the scheduler's leader Lease, written again by its holder with nothing
//! changed but `spec.renewTime`. The store may hold those in memory for a
//! while (`Backend::renew`): on an idle node they are nearly every write,
//! and flash storage pays for each durable one. A change of holder,
//! duration or transitions, or of anything in metadata, is an ordinary
//! durable write.
//!
//! Other Leases are never held back: a crash could make one read as renewed
//! minutes earlier than it was, and electors that compare `renewTime` with
//! their own clock (not all time from when they see a change, as client-go
//! does) would then take over while the holder still leads. The readers of
//! the Leases held back time from what they observe: the node lifecycle
//! controller, and the server's own electors, which end with the process.

use serde_json::Value;

use super::registry::ResourceDef;
use crate::server::leader;

/// Where nodes' Leases live.
const NODE_LEASES: &str = "kube-node-lease";

/// Whether writing `new` over `cur` only renews a node's or a leader's
/// Lease.
pub fn is_renewal(def: &ResourceDef, subresource: Option<&str>, cur: &Value, new: &Value) -> bool {
    if def.group != "coordination.k8s.io" || def.plural != "leases" || subresource.is_some() {
        return false;
    }
    let at = |p: &str| cur.pointer(p).and_then(Value::as_str);
    let held_back = match (at("/metadata/namespace"), at("/metadata/name")) {
        (Some(NODE_LEASES), Some(_)) => true,
        (Some(ns), Some(name)) => ns == leader::NAMESPACE && leader::LEASES.contains(&name),
        _ => false,
    };
    if !held_back {
        return false;
    }
    let holder = |v: &Value| {
        v.pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    };
    // A Lease nobody holds (client-go releases with "") is being released
    // or taken, not renewed.
    if holder(cur).is_none() || holder(cur) != holder(new) {
        return false;
    }
    if cur.pointer("/spec/renewTime") == new.pointer("/spec/renewTime") {
        return false;
    }
    without_renewal(cur) == without_renewal(new)
}

/// The object less what a renewal changes: the renew time, the version
/// written over, and the managed fields' timestamps.
fn without_renewal(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("renewTime");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        if let Some(fields) = meta.get_mut("managedFields").and_then(Value::as_array_mut) {
            for entry in fields.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::apiserver::registry::Registry;
    use serde_json::json;

    fn lease(holder: Option<&str>, renew: &str, rv: &str) -> Value {
        lease_in("kube-node-lease", "node1", holder, renew, rv)
    }

    fn lease_in(ns: &str, name: &str, holder: Option<&str>, renew: &str, rv: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name, "namespace": ns, "resourceVersion": rv,
                "managedFields": [{"manager": "skiff", "operation": "Update", "time": format!("t{rv}")}]
            },
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 40, "renewTime": renew}
        })
    }

    #[test]
    fn only_a_new_renew_time_by_the_same_holder_is_a_renewal() {
        let reg = Registry::builtin();
        let leases = reg.find("coordination.k8s.io", "v1", "leases").unwrap();
        let cur = lease(Some("a"), "2026-12-05T10:00:00.000000Z", "5");
        let renewed = lease(Some("a"), "2026-12-05T10:00:10.000000Z", "6");
        assert!(is_renewal(leases, None, &cur, &renewed));
        // The same time again, another holder, a release, a status write.
        assert!(!is_renewal(
            leases,
            None,
            &cur,
            &lease(Some("a"), "2026-12-05T10:00:00.000000Z", "6")
        ));
        assert!(!is_renewal(
            leases,
            None,
            &cur,
            &lease(Some("b"), "2026-12-05T10:00:10.000000Z", "6")
        ));
        assert!(!is_renewal(
            leases,
            None,
            &cur,
            &lease(None, "2026-12-05T10:00:10.000000Z", "6")
        ));
        assert!(!is_renewal(leases, Some("status"), &cur, &renewed));
        // Anything else changed with it: a duration, a label.
        let mut longer = renewed.clone();
        longer["spec"]["leaseDurationSeconds"] = json!(60);
        assert!(!is_renewal(leases, None, &cur, &longer));
        let mut labelled = renewed.clone();
        labelled["metadata"]["labels"] = json!({"x": "y"});
        assert!(!is_renewal(leases, None, &cur, &labelled));
        // Released the way client-go does it, then taken.
        let released = lease(Some(""), "2026-12-05T10:00:10.000000Z", "6");
        let taken = lease(Some(""), "2026-12-05T10:00:20.000000Z", "7");
        assert!(!is_renewal(leases, None, &released, &taken));
        // Not a Lease.
        let cms = reg.find("", "v1", "configmaps").unwrap();
        assert!(!is_renewal(cms, None, &cur, &renewed));
    }

    #[test]
    fn only_nodes_and_the_servers_own_leaders_leases_are_held_back() {
        let reg = Registry::builtin();
        let leases = reg.find("coordination.k8s.io", "v1", "leases").unwrap();
        let renews = |ns: &str, name: &str| {
            let cur = lease_in(ns, name, Some("a"), "2026-12-05T10:00:00.000000Z", "5");
            let new = lease_in(ns, name, Some("a"), "2026-12-05T10:00:10.000000Z", "6");
            is_renewal(leases, None, &cur, &new)
        };
        assert!(renews("kube-node-lease", "worker-7"));
        assert!(renews("kube-system", "kube-controller-manager"));
        assert!(renews("kube-system", "kube-scheduler"));
        // A user's operator, or another component in kube-system.
        assert!(!renews("default", "my-operator-lock"));
        assert!(!renews("kube-system", "cloud-controller-manager"));
    }
}
