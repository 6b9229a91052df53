//! Pods: created Pending; a pod a node runs is only marked on delete, and
//! its kubelet removes it once the containers are stopped.

use serde_json::{json, Map, Value};

use super::{bool_at, str_at, DeletePolicy, Strategy};
use crate::api::qos::qos_class;

pub struct Pod;

pub static POD: Pod = Pod;

/// As the apiserver's pod field label conversion accepts them.
const FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

impl Strategy for Pod {
    fn status_on_create(&self, obj: &mut Map<String, Value>) {
        let gated = obj
            .get("spec")
            .and_then(|s| s.get("schedulingGates"))
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
        let status = if gated {
            // As upstream: the scheduler leaves it alone until the gates go.
            json!({"phase": "Pending", "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
                "lastProbeTime": null,
                "lastTransitionTime": super::super::metadata::now_rfc3339(),
            }]})
        } else {
            json!({"phase": "Pending"})
        };
        obj.insert("status".into(), status);
    }

    fn admit_create(&self, obj: &mut Value) {
        let qos = qos_class(obj);
        // A mirror pod (a node's static pod) has no account, as upstream's
        // ServiceAccount admission leaves it.
        let mirror = obj
            .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
            .is_some();
        if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("qosClass".into(), json!(qos));
        }
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        // ServiceAccount: the namespace's default account when none is
        // named (upstream also refuses a pod whose account does not exist;
        // accounts come with access control), and the deprecated field the
        // v1 API mirrors it into.
        let account = match spec.get("serviceAccountName").and_then(Value::as_str) {
            Some(a) if !a.is_empty() => Some(a.to_string()),
            _ if mirror => None,
            _ => Some("default".to_string()),
        };
        if let Some(account) = account {
            spec.insert("serviceAccountName".into(), json!(account));
            if spec
                .get("serviceAccount")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                spec.insert("serviceAccount".into(), json!(account));
            }
        }
        // Priority comes from the PriorityClasses (`admission::priority`),
        // the bounded NoExecute tolerations from
        // `admission::default_tolerations` (with the server's flags).
    }

    fn delete_policy(&self, obj: &Value, grace_seconds: Option<i64>) -> DeletePolicy {
        let grace = grace(obj, grace_seconds);
        DeletePolicy {
            marked_only: grace > 0,
            grace: Some(grace),
        }
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }

    fn field_labels(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "spec.hostNetwork" => Some(bool_at(obj, "/spec/hostNetwork")),
            "status.podIP" => Some(
                obj.pointer("/status/podIPs/0/ip")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| str_at(obj, "/status/podIP")),
            ),
            _ => None,
        }
    }
}

/// The grace period of a delete: 0 for pods no node runs or that have
/// finished (nothing to stop, so they go at once), else the request's or
/// the pod's own.
fn grace(obj: &Value, requested: Option<i64>) -> i64 {
    let on_node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !on_node || finished {
        return 0;
    }
    requested.unwrap_or_else(|| {
        obj.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    })
}

/// A pod's total `requests` or `limits` (`bag`) per resource, exact in
/// billionths: the sum over its containers, or the largest init
/// container's where that is more (upstream's `resourcehelper`). Sums
/// saturate: quantities up to ~1e29 validate, and two of them overflow an
/// i128 of billionths.
pub(crate) fn pod_totals(pod: &Value, bag: &str) -> std::collections::BTreeMap<String, i128> {
    use crate::api::validation::quantity::nanos;
    let mut sum = std::collections::BTreeMap::<String, i128>::new();
    let spec = pod.get("spec");
    for (key, init) in [("containers", false), ("initContainers", true)] {
        let containers = spec
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for c in containers {
            let stated = c
                .pointer(&format!("/resources/{bag}"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten();
            for (k, v) in stated {
                let q = v.as_str().and_then(nanos).unwrap_or(0);
                let slot = sum.entry(k.clone()).or_default();
                *slot = if init {
                    (*slot).max(q)
                } else {
                    slot.saturating_add(q)
                };
            }
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Value {
        json!({"spec": {"containers": containers}})
    }

    #[test]
    fn qos_classes_as_upstream() {
        assert_eq!(qos_class(&pod(json!([{"name": "a"}]))), "BestEffort");
        let both = json!({"cpu": "1", "memory": "1Gi"});
        assert_eq!(
            qos_class(&pod(
                json!([{"resources": {"requests": both, "limits": {"cpu": "1000m", "memory": "1024Mi"}}}])
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(
                json!([{"resources": {"requests": {"cpu": "500m"}, "limits": both}}])
            )),
            "Burstable"
        );
        // One container without limits makes the pod Burstable.
        assert_eq!(
            qos_class(&pod(
                json!([{"resources": {"requests": both, "limits": both}}, {"resources": {"requests": {"cpu": "1"}}}])
            )),
            "Burstable"
        );
        // Zero quantities count as none.
        assert_eq!(
            qos_class(&pod(json!([{"resources": {"requests": {"cpu": "0"}}}]))),
            "BestEffort"
        );
    }

    #[test]
    fn admission_fills_what_upstream_plugins_fill() {
        let mut p = json!({"spec": {"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        ]}, "status": {"phase": "Pending"}});
        POD.admit_create(&mut p);
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        assert!(p["spec"].get("priority").is_none(), "admission::priority's");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
        let t = p["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 1, "admission's, with the server's flags: {t:?}");

        let mut named = json!({"spec": {"serviceAccountName": "builder", "priorityClassName": "high", "tolerations": [{"operator": "Exists"}]}});
        POD.admit_create(&mut named);
        assert_eq!(named["spec"]["serviceAccount"], "builder");
        assert!(named["spec"].get("priority").is_none());
        assert_eq!(named["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}
