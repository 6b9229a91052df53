//! Which updates are heartbeats: a Lease written again by its holder with
//! nothing changed but `spec.renewTime`. The store may hold those in memory
//! for a while (`Backend::renew`): on an idle node they are nearly every
//! write, and flash storage pays for each durable one. A change of holder,
//! duration or transitions, or of anything in metadata a person or a
//! controller set, is an ordinary durable write.

use serde_json::Value;

use super::registry::ResourceDef;

/// Whether writing `new` over `cur` only renews a Lease.
pub fn is_renewal(def: &ResourceDef, subresource: Option<&str>, cur: &Value, new: &Value) -> bool {
    if def.group != "coordination.k8s.io" || def.plural != "leases" || subresource.is_some() {
        return false;
    }
    let holder = |v: &Value| {
        v.pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // A Lease nobody holds is being released, not renewed.
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
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "node1", "namespace": "kube-node-lease", "resourceVersion": rv,
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
        // Not a Lease.
        let cms = reg.find("", "v1", "configmaps").unwrap();
        assert!(!is_renewal(cms, None, &cur, &renewed));
    }
}
