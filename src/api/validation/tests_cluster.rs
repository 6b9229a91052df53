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

#[test]
fn horizontal_pod_autoscalers() {
    let hpa = |spec: Value| {
        named(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "web",
            json!({"spec": spec}),
        )
    };
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    let fine = hpa(json!({"scaleTargetRef": target, "maxReplicas": 3,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}));
    assert!(check("autoscaling/v2", "HorizontalPodAutoscaler", fine.clone()).is_empty());
    // CPU at 80%, one replica at least, and the policies of a behavior set.
    let mut defaulted = fine;
    apply_defaults(
        by_kind("autoscaling/v2", "HorizontalPodAutoscaler"),
        &mut defaulted,
    );
    assert_eq!(defaulted["spec"]["minReplicas"], 1);
    assert_eq!(
        defaulted["spec"]["metrics"][0]["resource"]["target"],
        json!({"type": "Utilization", "averageUtilization": 80})
    );
    assert_eq!(
        defaulted["spec"]["behavior"]["scaleUp"]["policies"],
        json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
               {"type": "Percent", "value": 100, "periodSeconds": 15}])
    );
    assert!(defaulted["spec"]["behavior"]["scaleDown"]
        .get("stabilizationWindowSeconds")
        .is_some_and(|w| w == 0));

    let bad = hpa(json!({
        "scaleTargetRef": {"kind": "Deployment"},
        "minReplicas": 0, "maxReplicas": 0,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 0}}},
            {"type": "Pods", "resource": {"name": "memory",
                "target": {"type": "AverageValue", "averageValue": "1Mi"}}},
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
        ],
        "behavior": {"scaleUp": {"stabilizationWindowSeconds": 4000, "selectPolicy": "Fastest",
            "policies": [{"type": "Nodes", "value": 0, "periodSeconds": 2000}]}},
    }));
    assert_eq!(
        lines(&check("autoscaling/v2", "HorizontalPodAutoscaler", bad)),
        [
            "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
            "spec.maxReplicas: Invalid value: 0: must be greater than 0",
            "spec.scaleTargetRef.name: Required value",
            "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
            "spec.metrics[1].pods: Required value: must populate information for the given metric source",
            "spec.metrics[2].resource.target.averageUtilization: Required value: must set either a target raw value or a target utilization",
            "spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600",
            "spec.behavior.scaleUp.selectPolicy: Unsupported value: \"Fastest\": supported values: \"Disabled\", \"Max\", \"Min\"",
            "spec.behavior.scaleUp.policies[0].type: Unsupported value: \"Nodes\": supported values: \"Percent\", \"Pods\"",
            "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
            "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 2000: must be less than or equal to 1800",
        ]
    );

    // v1 is checked through its v2 form, with v2's paths, as upstream.
    let v1 = named(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        "web",
        json!({"spec": {"scaleTargetRef": target, "maxReplicas": 3,
            "targetCPUUtilizationPercentage": 0}}),
    );
    assert_eq!(
        lines(&check("autoscaling/v1", "HorizontalPodAutoscaler", v1)),
        ["spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"]
    );
    let broken = named(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        "web",
        json!({"metadata": {"name": "web",
                "annotations": {"autoscaling.alpha.kubernetes.io/metrics": "{"}},
            "spec": {"scaleTargetRef": target, "maxReplicas": 3}}),
    );
    assert_eq!(
        lines(&check("autoscaling/v1", "HorizontalPodAutoscaler", broken)),
        ["metadata.annotations[autoscaling.alpha.kubernetes.io/metrics]: Invalid value: \"{\": must hold the JSON its autoscaling/v2 field takes"]
    );
    // JSON of the wrong shape: what the stored v2 object could not hold.
    let mistyped = named(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        "web",
        json!({"metadata": {"name": "web", "annotations": {
                "autoscaling.alpha.kubernetes.io/metrics":
                    "[{\"type\":\"Resource\",\"resource\":{\"name\":\"memory\",\"targetAverageUtilization\":\"50\"}}]"}},
            "spec": {"scaleTargetRef": target, "maxReplicas": 3}}),
    );
    let out = lines(&check(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        mistyped,
    ));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].starts_with("metadata.annotations: Invalid value: "),
        "{out:?}"
    );
}
