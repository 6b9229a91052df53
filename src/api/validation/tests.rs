//! Table-driven checks of validate_create for metadata, workloads and the
//! core kinds, on defaulted objects as the server would validate them.

use crate::api::rules::by_kind;
use serde_json::{json, Value};

use super::validate_create;
use crate::api::defaulting::apply_defaults;
use crate::api::status::{ApiError, Cause};

/// Defaults, then validation, as the server runs them.
pub(super) fn check(api_version: &str, kind: &str, mut obj: Value) -> Vec<Cause> {
    apply_defaults(by_kind(api_version, kind), &mut obj);
    validate_create(by_kind(api_version, kind), &obj)
}

/// "field: message" of each cause.
pub(super) fn lines(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

pub(super) fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "busybox", "image": "busybox"}]}
            }
        }
    })
}

#[test]
fn valid_objects_pass() {
    assert_eq!(
        lines(&check("apps/v1", "Deployment", deployment())),
        Vec::<String>::new()
    );
    let cases = [
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "c.1"}, "data": {"a.b": "x", "K_2": "y"}}),
        ),
        (
            "v1",
            "Secret",
            json!({"metadata": {"name": "s"}, "data": {"a": "Yg=="}}),
        ),
        ("v1", "Namespace", json!({"metadata": {"name": "demo"}})),
        (
            "v1",
            "Service",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        (
            "v1",
            "Service",
            json!({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None"}}),
        ),
        (
            "v1",
            "Service",
            json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": {"spec": {"containers": [{"name": "j", "image": "busybox"}], "restartPolicy": "Never"}}}}),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"metadata": {"name": "cj"}, "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "OnFailure"}}}}}}),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        ),
        (
            "apps/v1",
            "StatefulSet",
            json!({"metadata": {"name": "s"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "serviceName": "s",
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            json!({"metadata": {"name": "system:Weird_Name"}}),
        ),
    ];
    for (av, kind, obj) in cases {
        assert_eq!(
            lines(&check(av, kind, obj.clone())),
            Vec::<String>::new(),
            "{kind} {obj}"
        );
    }
}

#[test]
fn names_per_kind() {
    let cm = check("v1", "ConfigMap", json!({"metadata": {"name": "Bad_Name"}}));
    assert_eq!(lines(&cm), vec![
        "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
    ]);
    assert_eq!(cm[0].reason, "FieldValueInvalid");
    let ns = check("v1", "Namespace", json!({"metadata": {"name": "a.b"}}));
    assert_eq!(lines(&ns), vec![
        "metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
    ]);
    let svc = check(
        "v1",
        "Service",
        json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}),
    );
    assert_eq!(lines(&svc), vec![
        "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string()
    ]);
    let long = "a".repeat(254);
    let c = check("v1", "ConfigMap", json!({"metadata": {"name": long}}));
    assert!(
        c[0].message
            .ends_with("must be no more than 253 characters"),
        "{c:?}"
    );
    let c = check("v1", "ConfigMap", json!({"metadata": {}}));
    assert_eq!(
        lines(&c),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    assert!(check(
        "v1",
        "ConfigMap",
        json!({"metadata": {"generateName": "x-"}})
    )
    .is_empty());
    // generateName is checked as a prefix (issue 10: a multibyte character
    // across byte 58 crashed the server; upstream answers 422).
    let c = check(
        "v1",
        "ConfigMap",
        json!({"metadata": {"generateName": "a\u{e9}-"}}),
    );
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].field, "metadata.generateName");
    let cj = check(
        "batch/v1",
        "CronJob",
        json!({"metadata": {"name": "c".repeat(53)}, "spec": {"schedule": "@daily",
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}}}),
    );
    assert_eq!(lines(&cj).len(), 1);
    assert!(cj[0]
        .message
        .ends_with("must be no more than 52 characters"));
    let role = check(
        "rbac.authorization.k8s.io/v1",
        "Role",
        json!({"metadata": {"name": "a/b"}}),
    );
    assert_eq!(
        lines(&role),
        vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
    );
}

#[test]
fn labels_and_annotations() {
    let c = check(
        "v1",
        "ConfigMap",
        json!({"metadata": {"name": "c", "labels": {"-bad-": "x", "ok": "-v-"}, "annotations": {"a b": "x"}}}),
    );
    let l = lines(&c);
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(l[0].starts_with("metadata.labels: Invalid value: \"-bad-\": name part must consist of alphanumeric characters"));
    assert!(l[1].starts_with("metadata.labels: Invalid value: \"-v-\": a valid label must be an empty string or consist of"));
    assert!(
        l[2].starts_with("metadata.annotations: Invalid value: \"a b\": name part must consist of")
    );
    let big = "x".repeat(300 * 1024);
    let c = check(
        "v1",
        "ConfigMap",
        json!({"metadata": {"name": "c", "annotations": {"a": big}}}),
    );
    assert_eq!(
        lines(&c),
        vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
}

#[test]
fn deployment_rules() {
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    assert_eq!(lines(&check("apps/v1", "Deployment", d)), vec![
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
    ]);

    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(lines(&check("apps/v1", "Deployment", d)), vec![
        "spec.selector: Required value",
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
    ]);

    let mut d = deployment();
    d["spec"]["selector"] = json!({});
    let l = lines(&check("apps/v1", "Deployment", d));
    assert_eq!(l, vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]);

    let mut d = deployment();
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let c = check("apps/v1", "Deployment", d);
    assert_eq!(lines(&c), vec![
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.template.spec.containers[0].image: Required value",
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
    ]);
    assert_eq!(c[2].reason, "FieldValueNotSupported");
    let e = ApiError::invalid("apps", "Deployment", "web", c);
    assert!(e
        .message
        .starts_with("Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1"));

    let mut d = deployment();
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
    d["spec"]["progressDeadlineSeconds"] = json!(5);
    d["spec"]["minReadySeconds"] = json!(10);
    assert_eq!(lines(&check("apps/v1", "Deployment", d)), vec![
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0",
        "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
    ]);

    let mut d = deployment();
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
    assert_eq!(lines(&check("apps/v1", "Deployment", d)), vec![
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    ]);
    let mut d = deployment();
    d["spec"]["strategy"] = json!({"type": "Sideways"});
    assert_eq!(lines(&check("apps/v1", "Deployment", d)), vec![
        "spec.strategy.type: Unsupported value: \"Sideways\": supported values: \"Recreate\", \"RollingUpdate\""
    ]);
    let mut d = deployment();
    d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": "150%", "maxUnavailable": "x"}});
    let l = lines(&check("apps/v1", "Deployment", d));
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(
        l[0].contains("a valid percent string must be a numeric string followed by an ending '%'")
    );
    assert!(l[1].ends_with("must not be greater than 100%"));
}

#[test]
fn selector_expressions_match() {
    let mut d = deployment();
    d["spec"]["selector"] =
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]});
    assert!(check("apps/v1", "Deployment", d.clone()).is_empty());
    d["spec"]["selector"]["matchExpressions"][0]["operator"] = json!("NotIn");
    assert_eq!(check("apps/v1", "Deployment", d).len(), 1);
}

#[test]
fn other_workloads() {
    let rs = json!({"metadata": {"name": "r"}, "spec": {"replicas": -2, "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "x"}], "activeDeadlineSeconds": 5}}}});
    assert_eq!(lines(&check("apps/v1", "ReplicaSet", rs)), vec![
        "spec.replicas: Invalid value: -2: must be greater than or equal to 0",
        "spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"c\"}: `selector` does not match template `labels`",
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
    ]);
    let sts = json!({"metadata": {"name": "s"}, "spec": {"podManagementPolicy": "Random", "selector": {"matchLabels": {"a": "b"}},
        "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    assert_eq!(lines(&check("apps/v1", "StatefulSet", sts)), vec![
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
        "spec.updateStrategy.rollingUpdate: Invalid value: {...}: only allowed for updateStrategy 'RollingUpdate'",
    ]);
    let ds = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "OnFailure"}}}});
    assert_eq!(lines(&check("apps/v1", "DaemonSet", ds)), vec![
        "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""
    ]);
    // A DaemonSet's maxSurge defaults to 0, so maxUnavailable 0 alone is refused.
    let ds = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    assert_eq!(lines(&check("apps/v1", "DaemonSet", ds)), vec![
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"
    ]);
    let rc = json!({"metadata": {"name": "rc"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    assert_eq!(
        lines(&check("v1", "ReplicationController", rc)),
        vec!["spec.selector: Required value"]
    );
}

#[test]
fn job_rules() {
    let job = |restart: Value| {
        json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": {"spec": {
        "containers": [{"name": "j", "image": "busybox"}], "restartPolicy": restart}}}})
    };
    assert_eq!(
        lines(&check("batch/v1", "Job", job(Value::Null))),
        vec![
        "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
    ]
    );
    let c = check("batch/v1", "Job", job(json!("Sometimes")));
    assert_eq!(lines(&c), vec![
        "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"",
    ]);
    let mut j = job(json!("Never"));
    j["spec"]["backoffLimit"] = json!(-1);
    j["spec"]["completionMode"] = json!("Sorted");
    assert_eq!(lines(&check("batch/v1", "Job", j)), vec![
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
        "spec.completionMode: Unsupported value: \"Sorted\": supported values: \"NonIndexed\", \"Indexed\"",
    ]);
    let mut manual = job(json!("Never"));
    manual["spec"]["manualSelector"] = json!(true);
    // As upstream: a nil selector matches nothing, so the labels mismatch too.
    assert_eq!(lines(&check("batch/v1", "Job", manual)), vec![
        "spec.selector: Required value",
        "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`",
    ]);
    // Policies that need an Indexed Job, restartPolicy Never, or each other.
    let mut p = job(json!("OnFailure"));
    p["spec"]["backoffLimitPerIndex"] = json!(1);
    p["spec"]["successPolicy"] = json!({"rules": [{"succeededCount": 1}]});
    p["spec"]["podFailurePolicy"] = json!({"rules": [{"action": "FailIndex",
        "onExitCodes": {"operator": "In", "values": [3]}}]});
    p["spec"]["podReplacementPolicy"] = json!("TerminatingOrFailed");
    let out = lines(&check("batch/v1", "Job", p));
    for want in [
        "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
        "spec.successPolicy: Invalid value: ",
        "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
    ] {
        assert!(out.iter().any(|l| l.starts_with(want)), "{want}\n{out:#?}");
    }
    let mut fi = job(json!("Never"));
    fi["spec"]["podFailurePolicy"] = json!({"rules": [{"action": "FailIndex",
        "onExitCodes": {"operator": "In", "values": [3]}}]});
    assert_eq!(
        lines(&check("batch/v1", "Job", fi)),
        ["spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"]
    );
}

#[test]
fn cron_job_rules() {
    let cj = json!({"metadata": {"name": "cj"}, "spec": {"schedule": "61 * * * *", "concurrencyPolicy": "Sometimes",
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}});
    assert_eq!(lines(&check("batch/v1", "CronJob", cj)), vec![
        "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
        "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
        "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
    ]);
    let none = json!({"metadata": {"name": "cj"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}}});
    assert_eq!(
        lines(&check("batch/v1", "CronJob", none)),
        vec!["spec.schedule: Required value"]
    );
}

#[test]
fn service_rules() {
    let svc = |spec: Value| {
        check(
            "v1",
            "Service",
            json!({"metadata": {"name": "s"}, "spec": spec}),
        )
    };
    assert_eq!(
        lines(&svc(json!({"selector": {"a": "b"}}))),
        vec!["spec.ports: Required value"]
    );
    assert_eq!(
        lines(&svc(json!({"ports": [{"port": 0}]}))),
        vec![
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        ]
    );
    assert_eq!(
        lines(&svc(
            json!({"ports": [{"port": 80, "name": "http"}, {"port": 81, "targetPort": 70000}]})
        )),
        vec![
        "spec.ports[1].name: Required value",
        "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ]
    );
    assert_eq!(lines(&svc(json!({"ports": [{"port": 80, "name": "a", "protocol": "HTTP"}, {"port": 81, "name": "a", "targetPort": "Bad_Name"}]}))), vec![
        "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        "spec.ports[1].name: Duplicate value: \"a\"",
        "spec.ports[1].targetPort: Invalid value: \"Bad_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    ]);
    assert_eq!(lines(&svc(json!({"type": "Magic", "sessionAffinity": "Sticky", "ports": [{"port": 80, "nodePort": 30080}]}))), vec![
        "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
        "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
    ]);
    assert_eq!(
        lines(&svc(json!({"ports": [{"port": 80, "nodePort": 30080}]}))),
        vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
    assert!(
        svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})).is_empty()
    );
    assert_eq!(
        lines(&svc(json!({"type": "ExternalName"}))),
        vec!["spec.externalName: Required value"]
    );
    let dup = svc(json!({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}));
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0].field, "spec.ports[1]");
    assert_eq!(dup[0].reason, "FieldValueDuplicate");
}

#[test]
fn config_maps_and_secrets() {
    let c = check(
        "v1",
        "ConfigMap",
        json!({"metadata": {"name": "c"}, "data": {"a b": "x", "k": "1"}, "binaryData": {"k": "eA=="}}),
    );
    assert_eq!(lines(&c), vec![
        "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        "data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
        "binaryData[k]: Invalid value: \"k\": duplicate of key present in data",
    ]);
    let big = "x".repeat(1024 * 1024 + 1);
    assert_eq!(
        lines(&check(
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "c"}, "data": {"a": big}})
        )),
        vec![": Too long: may not be more than 1048576 bytes"]
    );
    let tls = check(
        "v1",
        "Secret",
        json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
    );
    assert_eq!(lines(&tls), vec!["data[tls.key]: Required value"]);
    let docker = check(
        "v1",
        "Secret",
        json!({"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson", "data": {}}),
    );
    assert_eq!(
        lines(&docker),
        vec!["data[.dockerconfigjson]: Required value"]
    );
    let ok = check(
        "v1",
        "Secret",
        json!({"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}}),
    );
    assert!(ok.is_empty(), "{ok:?}");
    let sa = check(
        "v1",
        "Secret",
        json!({"metadata": {"name": "t"}, "type": "kubernetes.io/service-account-token"}),
    );
    assert_eq!(
        lines(&sa),
        vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    );
}

#[test]
fn pvc_rules() {
    let c = check(
        "v1",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "p"}, "spec": {"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "0"}}}}),
    );
    assert_eq!(lines(&c), vec![
        "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
        "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
    ]);
    let c = check(
        "v1",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "p"}, "spec": {}}),
    );
    assert_eq!(
        lines(&c),
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value",
        ]
    );
}

#[test]
fn unknown_kinds_only_get_metadata_checks() {
    assert!(check(
        "example.com/v1",
        "Widget",
        json!({"metadata": {"name": "w"}, "spec": {"anything": 1}})
    )
    .is_empty());
    assert_eq!(
        check(
            "example.com/v1",
            "Widget",
            json!({"metadata": {"name": "W"}})
        )
        .len(),
        1
    );
}

fn config_map(meta: Value) -> Value {
    let mut m = json!({"name": "c", "namespace": "default"});
    if let (Some(m), Some(extra)) = (m.as_object_mut(), meta.as_object()) {
        m.extend(extra.clone());
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": m})
}

#[test]
fn finalizers_are_qualified_names() {
    let bad = check(
        "v1",
        "ConfigMap",
        config_map(
            json!({"finalizers": ["", "a/b/c", "exämple.com/x", "ok.io/fine", "kubernetes"]}),
        ),
    );
    let l = lines(&bad);
    assert_eq!(l.len(), 4, "{l:#?}");
    assert_eq!(
        l[0],
        r#"metadata.finalizers: Invalid value: "": name part must be non-empty"#
    );
    assert!(
        l[1].starts_with(r#"metadata.finalizers: Invalid value: "": name part must consist of"#),
        "{l:#?}"
    );
    assert!(
        l[2].starts_with(
            r#"metadata.finalizers: Invalid value: "a/b/c": a qualified name must consist of"#
        ),
        "{l:#?}"
    );
    assert!(l[3].starts_with(r#"metadata.finalizers: Invalid value: "exämple.com/x": prefix part a lowercase RFC 1123 subdomain"#), "{l:#?}");
    let both = check(
        "v1",
        "ConfigMap",
        config_map(json!({"finalizers": ["orphan", "foregroundDeletion"]})),
    );
    assert_eq!(
        lines(&both),
        [
            r#"metadata.finalizers: Invalid value: []string{"orphan", "foregroundDeletion"}: finalizer foregroundDeletion and orphan cannot be both set"#
        ]
    );
}

#[test]
fn owner_references_need_every_field() {
    let bad = check(
        "v1",
        "ConfigMap",
        config_map(json!({"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            {"apiVersion": "a/b/c", "uid": "u"},
        ]})),
    );
    assert_eq!(
        lines(&bad),
        [
            r#"metadata.ownerReferences.uid: Invalid value: "": must not be empty"#,
            r#"metadata.ownerReferences.apiVersion: Invalid value: "a/b/c": version must not be empty"#,
            r#"metadata.ownerReferences.kind: Invalid value: "": must not be empty"#,
            r#"metadata.ownerReferences.name: Invalid value: "": must not be empty"#,
        ]
    );
    let good = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "1", "controller": true});
    assert!(check(
        "v1",
        "ConfigMap",
        config_map(json!({"ownerReferences": [good]}))
    )
    .is_empty());
    let two = check(
        "v1",
        "ConfigMap",
        config_map(json!({"ownerReferences": [good, good]})),
    );
    assert_eq!(two.len(), 1, "{two:#?}");
    assert!(two[0]
        .message
        .ends_with("Found \"true\" in references for ReplicaSet/r and ReplicaSet/r"));
    // Many controllers: still one cause (one per extra controller, each
    // echoing the whole list, grew with the square of the body).
    let many = check(
        "v1",
        "ConfigMap",
        config_map(json!({"ownerReferences": vec![good.clone(); 2000]})),
    );
    assert_eq!(many.len(), 1);
}

#[test]
fn generation_is_not_negative() {
    assert_eq!(
        lines(&check(
            "v1",
            "ConfigMap",
            config_map(json!({"generation": -1}))
        )),
        ["metadata.generation: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert!(check("v1", "ConfigMap", config_map(json!({"generation": 0}))).is_empty());
}

#[test]
fn cluster_ips_are_ip_addresses() {
    let svc = |spec: Value| {
        let mut s = json!({"ports": [{"port": 80}]});
        if let (Some(m), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
            m.extend(extra.clone());
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": s})
    };
    let ip_err = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
    assert_eq!(
        lines(&check(
            "v1",
            "Service",
            svc(json!({"clusterIP": "999.1.1.1"}))
        )),
        [format!(
            r#"spec.clusterIPs[0]: Invalid value: "999.1.1.1": {ip_err}"#
        )]
    );
    assert_eq!(
        lines(&check(
            "v1",
            "Service",
            svc(json!({"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9", "fd00::x"]}))
        )),
        [format!(
            r#"spec.clusterIPs[1]: Invalid value: "fd00::x": {ip_err}"#
        )]
    );
    assert_eq!(
        lines(&check(
            "v1",
            "Service",
            svc(json!({"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.8"]}))
        )),
        [
            r#"spec.clusterIPs: Invalid value: []string{"10.43.0.8"}: first value must match `clusterIP`"#
        ]
    );
    for ok in ["None", "10.43.0.9", "010.043.000.009", "fd00::9", ""] {
        assert!(
            check("v1", "Service", svc(json!({"clusterIP": ok}))).is_empty(),
            "{ok}"
        );
    }
}
