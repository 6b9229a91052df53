use crate::api::rules::by_kind;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::apply_defaults;

fn defaulted(api_version: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(by_kind(api_version, kind), &mut obj);
    obj
}

/// What `kubectl create deployment web --image=nginx` sends.
fn created_deployment() -> Value {
    json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
            },
            "strategy": {}
        },
        "status": {}
    })
}

/// The defaulted pod template spec of a real 1.32 cluster.
fn real_pod_spec(container: Value) -> Value {
    json!({
        "containers": [container],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30
    })
}

fn real_container(name: &str, image: &str, pull: &str) -> Value {
    json!({
        "image": image,
        "imagePullPolicy": pull,
        "name": name,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

#[test]
fn deployment_as_a_real_cluster_stores_it() {
    let got = defaulted("apps/v1", "Deployment", created_deployment());
    let want_spec = json!({
        "progressDeadlineSeconds": 600,
        "replicas": 1,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            "type": "RollingUpdate"
        },
        "template": {
            "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": real_pod_spec(real_container("nginx", "nginx", "Always"))
        }
    });
    assert_eq!(got["spec"], want_spec);
    assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
    // Idempotent.
    assert_eq!(defaulted("apps/v1", "Deployment", got.clone()), got);
}

#[test]
fn deployment_keeps_what_the_user_set() {
    let mut d = created_deployment();
    d["spec"]["replicas"] = json!(0);
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let got = defaulted("apps/v1", "Deployment", d);
    assert_eq!(got["spec"]["replicas"], 0);
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
}

#[test]
fn pod_defaults() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{
            "name": "c", "image": "busybox:1.36",
            "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "1"}},
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5, "timeoutSeconds": 0}
        }],
        "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}},
                    {"name": "h", "hostPath": {"path": "/tmp"}}],
        "serviceAccountName": "robot"}
    });
    let got = defaulted("v1", "Pod", pod);
    let s = &got["spec"];
    assert_eq!(s["restartPolicy"], "Always");
    assert_eq!(s["dnsPolicy"], "ClusterFirst");
    assert_eq!(s["enableServiceLinks"], true);
    assert_eq!(s["serviceAccount"], "robot");
    assert_eq!(s["terminationGracePeriodSeconds"], 30);
    let c = &s["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["resources"]["requests"], json!({"cpu": "1"}));
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
               "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(c["readinessProbe"]["timeoutSeconds"], 1);
    assert_eq!(s["volumes"][0], json!({"name": "v", "emptyDir": {}}));
    assert_eq!(s["volumes"][1]["secret"]["defaultMode"], 420);
    assert_eq!(s["volumes"][2]["hostPath"]["type"], "");
}

#[test]
fn pod_template_has_no_pod_only_defaults() {
    let got = defaulted(
        "apps/v1",
        "ReplicaSet",
        json!({
            "spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}}}
        }),
    );
    assert_eq!(got["spec"]["replicas"], 1);
    let s = &got["spec"]["template"]["spec"];
    assert!(s.get("enableServiceLinks").is_none());
    assert!(s["containers"][0]["resources"].get("requests").is_none());
}

#[test]
fn image_pull_policy_by_tag() {
    for (image, policy) in [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("busybox@sha256:0123", "IfNotPresent"),
        ("localhost:5000/busybox", "Always"),
    ] {
        let got = defaulted(
            "v1",
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": image}]}}),
        );
        assert_eq!(
            got["spec"]["containers"][0]["imagePullPolicy"], policy,
            "{image}"
        );
    }
}

#[test]
fn stateful_set_and_daemon_set() {
    let sts = defaulted(
        "apps/v1",
        "StatefulSet",
        json!({
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
        }),
    );
    let s = &sts["spec"];
    assert_eq!(s["replicas"], 1);
    assert_eq!(s["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        s["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(s["revisionHistoryLimit"], 10);
    assert_eq!(
        s["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    let claim = &s["volumeClaimTemplates"][0];
    assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
    assert_eq!(claim["status"], json!({"phase": "Pending"}));
    assert_eq!(claim["metadata"]["creationTimestamp"], Value::Null);

    let ds = defaulted("apps/v1", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
}

#[test]
fn job_gets_selector_and_labels_from_its_uid() {
    // `kubectl create job j --image=busybox`
    let job = json!({
        "kind": "Job", "apiVersion": "batch/v1",
        "metadata": {"name": "j", "namespace": "default", "uid": "u-1"},
        "spec": {"template": {"metadata": {}, "spec": {
            "containers": [{"name": "j", "image": "busybox", "resources": {}}],
            "restartPolicy": "Never"}}}
    });
    let got = defaulted("batch/v1", "Job", job);
    let labels = json!({
        "batch.kubernetes.io/controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "j",
        "controller-uid": "u-1",
        "job-name": "j"
    });
    assert_eq!(got["metadata"]["labels"], labels);
    let s = &got["spec"];
    assert_eq!(s["template"]["metadata"]["labels"], labels);
    assert_eq!(
        s["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    for (k, v) in [
        ("parallelism", json!(1)),
        ("completions", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("manualSelector", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        assert_eq!(s[k], v, "{k}");
    }
    assert_eq!(s["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(s["template"]["spec"]["dnsPolicy"], "ClusterFirst");

    // No restartPolicy default in Job templates; manual selectors stay.
    let manual = defaulted(
        "batch/v1",
        "Job",
        json!({
            "metadata": {"name": "m", "uid": "u-2", "labels": {"mine": "yes"}},
            "spec": {"manualSelector": true, "parallelism": 3, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}
        }),
    );
    assert_eq!(
        manual["spec"]["selector"],
        json!({"matchLabels": {"a": "b"}})
    );
    assert_eq!(
        manual["spec"]["template"]["metadata"]["labels"],
        json!({"a": "b"})
    );
    assert_eq!(manual["metadata"]["labels"], json!({"mine": "yes"}));
    assert!(manual["spec"].get("completions").is_none());
    assert!(manual["spec"]["template"]["spec"]
        .get("restartPolicy")
        .is_none());
}

#[test]
fn cron_job() {
    let got = defaulted(
        "batch/v1",
        "CronJob",
        json!({
            "metadata": {"name": "cj"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"metadata": {"name": "cj"}, "spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}}
        }),
    );
    let s = &got["spec"];
    assert_eq!(s["concurrencyPolicy"], "Allow");
    assert_eq!(s["suspend"], false);
    assert_eq!(s["successfulJobsHistoryLimit"], 3);
    assert_eq!(s["failedJobsHistoryLimit"], 1);
    assert!(s["jobTemplate"]["spec"].get("backoffLimit").is_none());
    assert_eq!(
        s["jobTemplate"]["metadata"],
        json!({"name": "cj", "creationTimestamp": null})
    );
    assert_eq!(
        s["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
}

#[test]
fn service_and_core_kinds() {
    let svc = defaulted(
        "v1",
        "Service",
        json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}]}}),
    );
    let s = &svc["spec"];
    assert_eq!(s["type"], "ClusterIP");
    assert_eq!(s["sessionAffinity"], "None");
    assert_eq!(s["internalTrafficPolicy"], "Cluster");
    assert!(s.get("externalTrafficPolicy").is_none());
    assert_eq!(
        s["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(
        s["ports"][1],
        json!({"port": 443, "targetPort": "https", "protocol": "UDP"})
    );

    let np = defaulted(
        "v1",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP"}}),
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(np["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        np["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );

    let pvc = defaulted("v1", "PersistentVolumeClaim", json!({"spec": {}}));
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");

    assert_eq!(defaulted("v1", "Secret", json!({}))["type"], "Opaque");
    // stringData is folded into data, winning for the same key, and dropped.
    let s = defaulted(
        "v1",
        "Secret",
        json!({"data": {"a": "b2xk", "b": "Yg=="}, "stringData": {"a": "new", "c": "hello"}}),
    );
    assert_eq!(
        s["data"],
        json!({"a": "bmV3", "b": "Yg==", "c": "aGVsbG8="})
    );
    assert!(s.get("stringData").is_none(), "{s}");
    assert_eq!(
        defaulted("v1", "Secret", json!({"type": "kubernetes.io/tls"}))["type"],
        "kubernetes.io/tls"
    );

    let ns = defaulted("v1", "Namespace", json!({"metadata": {"name": "demo"}}));
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "demo"
    );
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));

    let rb = defaulted(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        json!({
            "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa"}]
        }),
    );
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(rb["subjects"][1].get("apiGroup").is_none());

    let netpol = defaulted(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_eq!(netpol["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(netpol["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
}

#[test]
fn replication_controller_selector_from_template() {
    let rc = defaulted(
        "v1",
        "ReplicationController",
        json!({
            "metadata": {"name": "rc"},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }),
    );
    assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn odd_shapes_are_left_alone() {
    for kind in ["Deployment", "Pod", "Job", "Service"] {
        for v in [
            json!(null),
            json!([]),
            json!({"spec": 3}),
            json!({"spec": {"template": "x", "containers": 7}}),
        ] {
            let mut obj = v.clone();
            let av = if kind == "Job" {
                "batch/v1"
            } else if kind == "Deployment" {
                "apps/v1"
            } else {
                "v1"
            };
            apply_defaults(by_kind(av, kind), &mut obj);
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("spec".to_string()),
                        Just("template".to_string()),
                        Just("containers".to_string()),
                        Just("metadata".to_string()),
                        Just("ports".to_string()),
                        Just("strategy".to_string()),
                        Just("rollingUpdate".to_string()),
                        Just("image".to_string()),
                        Just("labels".to_string()),
                        "[a-z]{1,5}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn random_json_never_panics(v in arb_json()) {
        for (av, kind) in [("apps/v1", "Deployment"), ("v1", "Pod"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
                           ("apps/v1", "StatefulSet"), ("v1", "Service"), ("v1", "Namespace"), ("apps/v1", "DaemonSet")] {
            let mut obj = v.clone();
            apply_defaults(by_kind(av, kind), &mut obj);
            let _ = crate::api::validation::validate_create(by_kind(av, kind), &obj);
            let _ = crate::api::validation::validate_update(by_kind(av, kind), &v, &obj);
            let _ = crate::api::fieldcheck::unknown_fields(av, kind, &obj);
            let _ = crate::api::fieldcheck::decode_error(av, kind, &obj);
        }
    }
}
