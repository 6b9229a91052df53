//! Validation and defaulting of the policy and plumbing kinds, with
//! upstream's messages.

use serde_json::{json, Value};

use super::tests::{check, lines};
use super::validate_update;
use crate::api::defaulting::apply_defaults;
use crate::api::rules::by_kind;

fn named(api_version: &str, kind: &str, name: &str, rest: Value) -> Value {
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let (Some(o), Some(r)) = (obj.as_object_mut(), rest.as_object()) {
        o.extend(r.clone());
    }
    obj
}

#[test]
fn priority_classes() {
    let pc = |name: &str, value: i64| {
        named(
            "scheduling.k8s.io/v1",
            "PriorityClass",
            name,
            json!({"value": value}),
        )
    };
    assert!(check("scheduling.k8s.io/v1", "PriorityClass", pc("high", 1000)).is_empty());
    assert_eq!(
        lines(&check(
            "scheduling.k8s.io/v1",
            "PriorityClass",
            pc("huge", 1_000_000_001)
        )),
        ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    assert_eq!(
        lines(&check("scheduling.k8s.io/v1", "PriorityClass", pc("system-x", 5))),
        ["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-x is not a known system priority class"]
    );
    assert!(check(
        "scheduling.k8s.io/v1",
        "PriorityClass",
        pc("system-node-critical", 2_000_001_000)
    )
    .is_empty());
    let rules = by_kind("scheduling.k8s.io/v1", "PriorityClass");
    let mut old = pc("high", 1000);
    let mut new = pc("high", 2000);
    apply_defaults(rules, &mut old);
    apply_defaults(rules, &mut new);
    assert_eq!(old["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(
        lines(&validate_update(rules, &old, &new)),
        ["value: Forbidden: may not be changed in an update."]
    );
}

#[test]
fn limit_ranges_default_and_order_their_bounds() {
    let rules = by_kind("v1", "LimitRange");
    let mut lr = named(
        "v1",
        "LimitRange",
        "lr",
        json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
    );
    apply_defaults(rules, &mut lr);
    let item = &lr["spec"]["limits"][0];
    assert_eq!(item["default"], json!({"cpu": "2"}));
    assert_eq!(item["defaultRequest"], json!({"cpu": "2", "memory": "1Mi"}));

    let bad = named(
        "v1",
        "LimitRange",
        "lr",
        json!({"spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}}, {"type": "Node"}]}}),
    );
    assert_eq!(
        lines(&check("v1", "LimitRange", bad)),
        [
            "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
            "spec.limits[0].defaultRequest[cpu]: Invalid value: \"1\": min value 2 is greater than default request value 1",
            "spec.limits[0].default[cpu]: Invalid value: \"1\": min value 2 is greater than default value 1",
            "spec.limits[1].type: Unsupported value: \"Node\": supported values: \"Container\", \"PersistentVolumeClaim\", \"Pod\"",
        ]
    );
}

#[test]
fn quotas_and_budgets() {
    let q = named(
        "v1",
        "ResourceQuota",
        "q",
        json!({"spec": {"hard": {"pods": "-1"}, "scopes": ["Sometimes"]}}),
    );
    assert_eq!(
        lines(&check("v1", "ResourceQuota", q)),
        [
            "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.scopes[0]: Unsupported value: \"Sometimes\": supported values: \"BestEffort\", \"CrossNamespacePodAffinity\", \"NotBestEffort\", \"NotTerminating\", \"PriorityClass\", \"Terminating\", \"VolumeAttributesClass\"",
        ]
    );
    let bad_scopes = named(
        "v1",
        "ResourceQuota",
        "q",
        json!({"spec": {"hard": {"foo": "1", "requests.cpu": "1"}, "scopes": ["BestEffort", "NotBestEffort"]}}),
    );
    assert_eq!(
        lines(&check("v1", "ResourceQuota", bad_scopes)),
        [
            "spec.hard[foo]: Invalid value: \"foo\": must be a standard resource for quota",
            "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"BestEffort\", \"NotBestEffort\"}: unsupported scope applied to resource",
            "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"BestEffort\", \"NotBestEffort\"}: conflicting scopes",
        ]
    );
    let fine = named(
        "v1",
        "ResourceQuota",
        "q",
        json!({"spec": {"hard": {"pods": "3", "count/deployments.apps": "2", "example.com/gpu": "1"}}}),
    );
    assert!(check("v1", "ResourceQuota", fine).is_empty());
    let pdb = named(
        "policy/v1",
        "PodDisruptionBudget",
        "p",
        json!({"spec": {"maxUnavailable": "120%"}}),
    );
    assert_eq!(
        lines(&check("policy/v1", "PodDisruptionBudget", pdb)),
        ["spec.maxUnavailable: Invalid value: \"120%\": must not be greater than 100%"]
    );
}

#[test]
fn ingresses_and_classes() {
    let ing = named(
        "networking.k8s.io/v1",
        "Ingress",
        "i",
        json!({"spec": {"rules": [{"host": "a.com", "http": {"paths": [
            {"path": "rel", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
            {"path": "/x", "backend": {"service": {"name": "s"}}}
        ]}}]}}),
    );
    assert_eq!(
        lines(&check("networking.k8s.io/v1", "Ingress", ing)),
        [
            "spec.rules[0].http.paths[0].path: Invalid value: \"rel\": must be an absolute path",
            "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[1].backend.service.port: Required value: port name or number is required",
        ]
    );
    let empty = named("networking.k8s.io/v1", "Ingress", "i", json!({"spec": {}}));
    assert_eq!(
        lines(&check("networking.k8s.io/v1", "Ingress", empty)),
        ["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"]
    );
    let class = named(
        "networking.k8s.io/v1",
        "IngressClass",
        "c",
        json!({"spec": {}}),
    );
    assert_eq!(
        lines(&check("networking.k8s.io/v1", "IngressClass", class)),
        ["spec.controller: Required value"]
    );
}

#[test]
fn storage_and_runtime_classes() {
    let sc = named("storage.k8s.io/v1", "StorageClass", "s", json!({}));
    assert_eq!(
        lines(&check("storage.k8s.io/v1", "StorageClass", sc)),
        ["provisioner: Required value"]
    );
    let rules = by_kind("storage.k8s.io/v1", "StorageClass");
    let mut old = named(
        "storage.k8s.io/v1",
        "StorageClass",
        "s",
        json!({"provisioner": "a.io/x"}),
    );
    apply_defaults(rules, &mut old);
    assert_eq!(old["reclaimPolicy"], "Delete");
    assert_eq!(old["volumeBindingMode"], "Immediate");
    let mut new = old.clone();
    new["provisioner"] = json!("b.io/y");
    assert_eq!(
        lines(&validate_update(rules, &old, &new)),
        ["provisioner: Forbidden: updates to provisioner are forbidden."]
    );
    let rc = named(
        "node.k8s.io/v1",
        "RuntimeClass",
        "r",
        json!({"handler": "Bad_Handler"}),
    );
    assert_eq!(lines(&check("node.k8s.io/v1", "RuntimeClass", rc)).len(), 1);

    let mut csi = named("storage.k8s.io/v1", "CSIDriver", "d", json!({"spec": {}}));
    apply_defaults(by_kind("storage.k8s.io/v1", "CSIDriver"), &mut csi);
    assert_eq!(csi["spec"]["attachRequired"], true);
    assert_eq!(csi["spec"]["volumeLifecycleModes"], json!(["Persistent"]));
}
