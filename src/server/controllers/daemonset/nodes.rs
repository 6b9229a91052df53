//! Which nodes a DaemonSet runs on, and the pod it puts there, as
//! upstream's: a node gets a daemon pod when it matches the template's
//! nodeSelector and required node affinity and its NoSchedule/NoExecute
//! taints are tolerated; a pod already there stays while its node's
//! NoExecute taints are tolerated. Daemon pods tolerate the taints of
//! node conditions (not ready, unreachable, pressure, cordon), so they
//! keep running through them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::node_match;

pub const GENERATION_LABEL: &str = "pod-template-generation";

/// Whether a daemon pod should be started on `node`, and whether one
/// already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub run: bool,
    pub keep: bool,
}

/// The tolerations every daemon pod gets (upstream's
/// AddOrUpdateDaemonPodTolerations).
fn daemon_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut want = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        want.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let mut out = spec.tolerations.clone().unwrap_or_default();
    for (key, effect) in want {
        let have = out.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
                && t.toleration_seconds.is_none()
        });
        if !have {
            out.retain(|t| !(t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect)));
            out.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            });
        }
    }
    out
}

/// Where the template may run, with the daemon tolerations.
fn effective_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    spec.tolerations = Some(daemon_tolerations(&spec));
    spec
}

/// Whether `ds` runs on `node`.
pub fn fit(ds: &DaemonSet, node: &Node) -> Fit {
    let spec = effective_spec(ds);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let named_elsewhere = spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name);
    if named_elsewhere || !node_match::selects(&spec, node) {
        return Fit {
            run: false,
            keep: false,
        };
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let schedulable = node_match::untolerated(&spec, &taints, |t| {
        matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
    })
    .is_none();
    let keep = node_match::untolerated(&spec, &taints, |t| t.effect == "NoExecute").is_none();
    Fit {
        run: schedulable,
        keep,
    }
}

/// The node a daemon pod is for: its node once bound, else the one its
/// node affinity names.
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|r| {
            let one = r.key == "metadata.name" && r.operator == "In";
            match r.values.as_deref() {
                Some([v]) if one => Some(v.as_str()),
                _ => None,
            }
        })
    })
}

/// A new daemon pod of `ds` for `node`, labelled with the revision `hash`;
/// the scheduler binds it (its required node affinity names the node).
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = tmeta.labels.unwrap_or_default();
    labels.insert(
        super::super::history::POD_REVISION_LABEL.into(),
        hash.into(),
    );
    if let Some(g) = ds.metadata.generation {
        labels.insert(GENERATION_LABEL.into(), g.to_string());
    }
    let mut spec = effective_spec(ds);
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    // The node was chosen against the template's own affinity: the pod's
    // required affinity is now that node alone.
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    let name = ds.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

pub fn owner_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns", "uid": "u1", "generation": 3},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}}
        }))
        .unwrap()
    }

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": labels},
            "spec": {"taints": taints}
        }))
        .unwrap()
    }

    #[test]
    fn selectors_and_taints_decide() {
        let plain = ds(json!({"containers": [{"name": "c", "image": "i"}]}));
        let yes = Fit {
            run: true,
            keep: true,
        };
        assert_eq!(fit(&plain, &node(json!({}), json!([]))), yes);
        // Condition taints are tolerated: daemons run through them.
        let sick = node(
            json!({}),
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                   {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        );
        assert_eq!(fit(&plain, &sick), yes);
        // A NoSchedule taint: no new pod, the one there stays.
        let dedicated = node(json!({}), json!([{"key": "gpu", "effect": "NoSchedule"}]));
        assert_eq!(
            fit(&plain, &dedicated),
            Fit {
                run: false,
                keep: true
            }
        );
        // NoExecute: neither.
        let evicting = node(json!({}), json!([{"key": "gpu", "effect": "NoExecute"}]));
        assert_eq!(
            fit(&plain, &evicting),
            Fit {
                run: false,
                keep: false
            }
        );
        let picky = ds(
            json!({"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "i"}]}),
        );
        assert!(!fit(&picky, &node(json!({}), json!([]))).run);
        assert!(fit(&picky, &node(json!({"disk": "ssd"}), json!([]))).run);
    }

    #[test]
    fn pods_are_pinned_to_their_node_and_labelled() {
        let d = ds(json!({"containers": [{"name": "c", "image": "i"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "x", "operator": "Exists"}]}]}}}}));
        let p = pod_for(&d, "n7", "abc");
        assert_eq!(target_node(&p), Some("n7"));
        let labels = p.metadata.labels.clone().unwrap();
        assert_eq!(labels["controller-revision-hash"], "abc");
        assert_eq!(labels["pod-template-generation"], "3");
        assert_eq!(labels["a"], "b");
        let tol = p.spec.as_ref().unwrap().tolerations.clone().unwrap();
        assert!(tol
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")));
        assert_eq!(p.metadata.owner_references.unwrap()[0].kind, "DaemonSet");
    }
}
