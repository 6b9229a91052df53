//! Immutable fields on update.

use crate::api::rules::by_kind;
use serde_json::{json, Value};

use super::tests::{deployment, lines};
use super::validate_update;
use crate::api::defaulting::apply_defaults;

fn update(api_version: &str, kind: &str, old: Value, new: Value) -> Vec<String> {
    let (mut old, mut new) = (old, new);
    apply_defaults(by_kind(api_version, kind), &mut old);
    apply_defaults(by_kind(api_version, kind), &mut new);
    lines(&validate_update(by_kind(api_version, kind), &old, &new))
}

fn pod() -> Value {
    json!({"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox:1.35"}],
        "tolerations": [{"key": "a", "operator": "Exists"}]}})
}

const POD_FORBIDDEN: &str = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

#[test]
fn pod_updates() {
    let mut new = pod();
    new["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    new["spec"]["activeDeadlineSeconds"] = json!(30);
    new["spec"]["tolerations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "b", "operator": "Exists"}));
    new["metadata"]["labels"] = json!({"x": "y"});
    assert_eq!(update("v1", "Pod", pod(), new), Vec::<String>::new());

    let mut new = pod();
    new["spec"]["containers"][0]["command"] = json!(["sh"]);
    assert_eq!(update("v1", "Pod", pod(), new), vec![POD_FORBIDDEN]);

    let mut new = pod();
    new["spec"]["tolerations"] = json!([]);
    assert_eq!(update("v1", "Pod", pod(), new), vec![
        "spec.tolerations[0]: Forbidden: existing toleration can not be modified except its tolerationSeconds"
    ]);

    let mut old = pod();
    old["spec"]["activeDeadlineSeconds"] = json!(30);
    let mut new = old.clone();
    new["spec"]["activeDeadlineSeconds"] = json!(60);
    assert_eq!(update("v1", "Pod", old, new), vec![
        "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"
    ]);
}

#[test]
fn selectors_are_immutable() {
    let mut new = deployment();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    assert_eq!(update("apps/v1", "Deployment", deployment(), new), vec![
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    ]);
    let mut new = deployment();
    new["spec"]["replicas"] = json!(5);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    assert!(update("apps/v1", "Deployment", deployment(), new).is_empty());
}

#[test]
fn service_cluster_ip() {
    let old = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"], "ports": [{"port": 80}]}});
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.43.0.6");
    new["spec"]["clusterIPs"] = json!(["10.43.0.6"]);
    assert_eq!(
        update("v1", "Service", old.clone(), new),
        vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.6\"}: may not change once set"]
    );
    let mut new = old.clone();
    new["spec"]["ports"][0]["port"] = json!(81);
    assert!(update("v1", "Service", old, new).is_empty());
}

#[test]
fn job_template_and_selector() {
    let job = json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": {"spec": {
        "containers": [{"name": "j", "image": "busybox"}], "restartPolicy": "Never"}}}});
    let mut old = job.clone();
    apply_defaults(by_kind("batch/v1", "Job"), &mut old);
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    new["spec"]["parallelism"] = json!(2);
    assert_eq!(
        update("batch/v1", "Job", old.clone(), new),
        vec!["spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"]
    );
    let mut new = old.clone();
    new["spec"]["suspend"] = json!(true);
    assert!(update("batch/v1", "Job", old, new).is_empty());
}

#[test]
fn stateful_set_spec() {
    let old = json!({"metadata": {"name": "s"}, "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(3);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y");
    assert!(update("apps/v1", "StatefulSet", old.clone(), new).is_empty());
    let mut new = old.clone();
    new["spec"]["serviceName"] = json!("t");
    assert_eq!(update("apps/v1", "StatefulSet", old, new), vec![
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
    ]);
}

#[test]
fn immutable_config_maps_and_secrets() {
    let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    new["immutable"] = json!(false);
    assert_eq!(
        update("v1", "ConfigMap", old.clone(), new),
        vec![
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"x": "y"});
    assert!(update("v1", "ConfigMap", old, new).is_empty());
    let mutable = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
    let mut new = mutable.clone();
    new["data"]["a"] = json!("2");
    assert!(update("v1", "ConfigMap", mutable, new).is_empty());

    let s = json!({"metadata": {"name": "s"}, "immutable": true, "data": {"a": "MQ=="}});
    let mut new = s.clone();
    new["type"] = json!("kubernetes.io/basic-auth");
    new["data"] = json!({"username": "dQ=="});
    assert_eq!(
        update("v1", "Secret", s, new),
        vec![
            "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
}

#[test]
fn pvc_spec() {
    let old = json!({"metadata": {"name": "p"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let mut new = old.clone();
    new["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(update("v1", "PersistentVolumeClaim", old.clone(), new.clone()), vec![
        "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
    ]);
    let mut bound = old.clone();
    bound["status"] = json!({"phase": "Bound"});
    assert!(update("v1", "PersistentVolumeClaim", bound.clone(), new).is_empty());
    let mut smaller = bound.clone();
    smaller["spec"]["resources"]["requests"]["storage"] = json!("500Mi");
    assert_eq!(
        update("v1", "PersistentVolumeClaim", bound, smaller),
        vec![
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ]
    );
    let mut named = old.clone();
    named["spec"]["volumeName"] = json!("pv-1");
    assert!(update("v1", "PersistentVolumeClaim", old, named).is_empty());
}
