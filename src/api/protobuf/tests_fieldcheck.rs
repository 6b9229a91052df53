//! Unknown, duplicate and undecodable fields against the schema table.

use serde_json::json;

use super::fieldcheck::*;

#[test]
fn unknown_fields_nested_in_lists_and_maps() {
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "bogusField": 1, "labels": {"any": "thing"}, "annotations": {"a": "b"},
                     "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:anything": {}}}}]},
        "spec": {
            "replicas": 1,
            "foo": true,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "a", "operator": "In", "values": [], "extra": 1}]},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "x"},
                        {"name": "d", "imagee": "y", "resources": {"limits": {"cpu": "1"}}, "ports": [{"containerPort": 80, "prot": "TCP"}],
                         "livenessProbe": {"httpGet": {"port": "http", "path": "/"}, "timeoutSecond": 1}}
                    ],
                    "volumes": [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "p", "mod": 1}]}}],
                    "nodeSelector": {"kubernetes.io/os": "linux"}
                }
            }
        },
        "status": {"replicas": 1, "nope": 2}
    });
    let mut got = unknown_fields("apps/v1", "Deployment", &d);
    got.sort();
    assert_eq!(
        got,
        vec![
            "metadata.bogusField",
            "spec.foo",
            "spec.selector.matchExpressions[0].extra",
            "spec.template.spec.containers[1].imagee",
            "spec.template.spec.containers[1].livenessProbe.timeoutSecond",
            "spec.template.spec.containers[1].ports[0].prot",
            "spec.template.spec.volumes[0].configMap.items[0].mod",
            "status.nope",
        ]
    );
}

#[test]
fn inline_and_special_types() {
    // envFrom.configMapRef.name comes from an inlined LocalObjectReference.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "creationTimestamp": null},
        "spec": {"containers": [{"name": "c", "image": "x",
            "envFrom": [{"configMapRef": {"name": "cm", "optional": true}}],
            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "nam": "x"}}}]}]}});
    assert_eq!(
        unknown_fields("v1", "Pod", &pod),
        vec!["spec.containers[0].env[0].valueFrom.configMapKeyRef.nam"]
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "y"}, "immutable": true, "datta": {}});
    assert_eq!(unknown_fields("v1", "ConfigMap", &cm), vec!["datta"]);
    // Custom resources are not checked.
    assert!(unknown_fields("example.com/v1", "Widget", &json!({"spec": {"x": 1}})).is_empty());
    assert!(unknown_fields("v1", "PodSpec", &json!({"x": 1})).is_empty());
    // Non-objects have no fields.
    assert!(unknown_fields("v1", "Pod", &json!([1, 2])).is_empty());
}

#[test]
fn decode_errors() {
    let d = |spec: serde_json::Value| {
        decode_error(
            "apps/v1",
            "Deployment",
            &json!({"metadata": {"name": "d"}, "spec": spec}),
        )
    };
    assert_eq!(d(json!({"replicas": 1})), None);
    assert_eq!(d(json!({"replicas": "3"})).as_deref(),
        Some("json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"));
    assert_eq!(d(json!({"replicas": 1.5})).as_deref(),
        Some("json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"));
    assert_eq!(d(json!({"template": {"spec": {"containers": "x"}}})).as_deref(),
        Some("json: cannot unmarshal string into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container"));
    assert_eq!(d(json!({"template": {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}}})).as_deref(),
        Some(crate::api::validation::quantity::QUANTITY_REGEX_ERR));
    assert_eq!(
        d(
            json!({"template": {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 2}}, "ports": [{"containerPort": 80}]}]}}})
        ),
        None
    );
    assert_eq!(
        d(
            json!({"strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}, "paused": null})
        ),
        None
    );
    let s = decode_error("v1", "Secret", &json!({"data": {"a": "not base64!"}}));
    assert_eq!(s.as_deref(), Some("illegal base64 data at input byte 3"));
    assert_eq!(
        decode_error("v1", "Secret", &json!({"data": {"a": "eA=="}})),
        None
    );
    assert_eq!(
        cannot_be_handled("apps/v1", "Deployment", "boom"),
        "Deployment in version \"v1\" cannot be handled as a Deployment: boom"
    );
}

#[test]
fn duplicates_and_messages() {
    let raw = br#"{"metadata": {"name": "a", "name": "b"}, "spec": {"containers": [{"name": "x", "image": "y", "image": "z"}]}}"#;
    assert_eq!(
        duplicate_fields(raw),
        vec!["metadata.name", "spec.containers[0].image"]
    );
    assert!(duplicate_fields(b"{not json").is_empty());
    assert!(duplicate_fields(br#"{"a": [1, {"b": 2}], "c": {"b": 3}}"#).is_empty());
    let problems = field_problems(
        "v1",
        "ConfigMap",
        &json!({"metadata": {"name": "b", "bogusField": 1}, "spec": {}}),
        Some(br#"{"metadata": {"name": "a", "name": "b", "bogusField": 1}, "spec": {}}"#),
    );
    assert_eq!(
        problems,
        vec![
            FieldProblem::Duplicate("metadata.name".into()),
            FieldProblem::Unknown("metadata.bogusField".into()),
            FieldProblem::Unknown("spec".into()),
        ]
    );
    assert_eq!(
        strict_error_message(&problems),
        "strict decoding error: duplicate field \"metadata.name\", unknown field \"metadata.bogusField\", unknown field \"spec\""
    );
    assert_eq!(
        warning_header(&problems[1]),
        r#"299 - "unknown field \"metadata.bogusField\"""#
    );
}

#[test]
fn every_served_kind_walks() {
    for (av, kind) in [
        ("v1", "Pod"),
        ("v1", "Service"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "CronJob"),
        ("networking.k8s.io/v1", "Ingress"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ] {
        let obj = json!({"apiVersion": av, "kind": kind, "metadata": {"name": "x"}, "zzz": 1});
        assert_eq!(unknown_fields(av, kind, &obj), vec!["zzz"], "{kind}");
    }
}

#[test]
fn check_body_by_mode() {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "bogusField": 1}});
    assert_eq!(Mode::parse(None), Ok(Mode::Warn));
    assert_eq!(Mode::parse(Some("Strict")), Ok(Mode::Strict));
    assert!(Mode::parse(Some("strict")).is_err());
    assert_eq!(
        check_body(Mode::Strict, "v1", "ConfigMap", &obj, None).unwrap_err(),
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"metadata.bogusField\""
    );
    assert_eq!(
        check_body(Mode::Warn, "v1", "ConfigMap", &obj, None).unwrap(),
        vec![r#"299 - "unknown field \"metadata.bogusField\"""#.to_string()]
    );
    assert!(check_body(Mode::Ignore, "v1", "ConfigMap", &obj, None)
        .unwrap()
        .is_empty());
    let bad = json!({"metadata": {"name": "c"}, "data": {"a": 1}});
    assert_eq!(
        check_body(Mode::Ignore, "v1", "ConfigMap", &bad, None).unwrap_err(),
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number 1 into Go struct field ConfigMap.data of type string"
    );
}

#[test]
fn pruning_drops_exactly_the_unknown_fields() {
    let mut obj = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w", "bogus": 1, "labels": {"any.key/x": "kept"}},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [
                {"name": "c", "image": "i", "imagee": "x", "ports": [{"containerPort": 80, "nope": true}]}
            ]}}
        },
        "extra": {}
    });
    crate::api::fieldcheck::prune_unknown_fields("apps/v1", "Deployment", &mut obj);
    assert_eq!(
        obj,
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "w", "labels": {"any.key/x": "kept"}},
            "spec": {
                "replicas": 1,
                "template": {"spec": {"containers": [
                    {"name": "c", "image": "i", "ports": [{"containerPort": 80}]}
                ]}}
            }
        })
    );
    assert!(crate::api::fieldcheck::unknown_fields("apps/v1", "Deployment", &obj).is_empty());
}
