//! Pod spec rules: containers, ports, env, volumes and mounts, resources,
//! probes and the pod-level enums.

use serde_json::{json, Value};

use super::tests::{check, lines};

fn pod(spec: Value) -> Vec<String> {
    lines(&check(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": spec}),
    ))
}

fn one(container: Value) -> Vec<String> {
    pod(json!({"containers": [container]}))
}

#[test]
fn containers_required_and_named() {
    assert_eq!(pod(json!({})), vec!["spec.containers: Required value"]);
    assert_eq!(
        pod(json!({"containers": []})),
        vec!["spec.containers: Required value"]
    );
    assert_eq!(
        one(json!({"image": "x"})),
        vec!["spec.containers[0].name: Required value"]
    );
    assert_eq!(
        one(json!({"name": "c"})),
        vec!["spec.containers[0].image: Required value"]
    );
    assert_eq!(one(json!({"name": "c", "image": " x"})), vec![
        "spec.containers[0].image: Invalid value: \" x\": must not have leading or trailing whitespace"
    ]);
    let l = one(json!({"name": "Web_1", "image": "x"}));
    assert_eq!(l.len(), 1);
    assert!(l[0].starts_with(
        "spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label"
    ));
    assert_eq!(
        pod(json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]})),
        vec!["spec.containers[1].name: Duplicate value: \"a\""]
    );
    assert_eq!(
        pod(
            json!({"initContainers": [{"name": "a", "image": "x"}], "containers": [{"name": "a", "image": "y"}]})
        ),
        vec!["spec.containers[0].name: Duplicate value: \"a\""]
    );
}

#[test]
fn enums() {
    assert_eq!(pod(json!({"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Sometimes", "terminationMessagePolicy": "Log"}],
        "restartPolicy": "Maybe", "dnsPolicy": "Google"})), vec![
        "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
        "spec.containers[0].terminationMessagePolicy: Unsupported value: \"Log\": supported values: \"File\", \"FallbackToLogsOnError\"",
        "spec.restartPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
    ]);
    assert!(pod(json!({"containers": [{"name": "c", "image": "x"}], "restartPolicy": "OnFailure", "dnsPolicy": "None"})).is_empty());
    assert_eq!(
        pod(
            json!({"containers": [{"name": "c", "image": "x"}], "terminationGracePeriodSeconds": -1, "activeDeadlineSeconds": 0})
        ),
        vec![
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
    ]
    );
}

#[test]
fn ports() {
    assert_eq!(one(json!({"name": "c", "image": "x", "ports": [
        {"containerPort": 0}, {"containerPort": 70000, "protocol": "HTTP"}, {"containerPort": 80, "name": "web", "hostPort": -1},
        {"containerPort": 81, "name": "web"}, {"containerPort": 82, "name": "Web--x"}]})), vec![
        "spec.containers[0].ports[0].containerPort: Required value",
        "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        "spec.containers[0].ports[2].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[3].name: Duplicate value: \"web\"",
        "spec.containers[0].ports[4].name: Invalid value: \"Web--x\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "spec.containers[0].ports[4].name: Invalid value: \"Web--x\": must not contain consecutive hyphens",
    ]);
    let l = one(
        json!({"name": "c", "image": "x", "ports": [{"containerPort": 1, "name": "12345"}, {"containerPort": 2, "name": "abcdefghijklmnop"}]}),
    );
    assert_eq!(l, vec![
        "spec.containers[0].ports[0].name: Invalid value: \"12345\": must contain at least one letter (a-z)",
        "spec.containers[0].ports[1].name: Invalid value: \"abcdefghijklmnop\": must be no more than 15 characters",
    ]);
}

#[test]
fn env() {
    assert_eq!(one(json!({"name": "c", "image": "x", "env": [
        {"value": "v"}, {"name": "A=B"}, {"name": "OK", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "weird.but-fine_1", "value": ""}, {"name": "E", "valueFrom": {}}]})), vec![
        "spec.containers[0].env[0].name: Required value",
        "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
        "spec.containers[0].env[2].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
        "spec.containers[0].env[4].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
    ]);
}

#[test]
fn volumes_and_mounts() {
    assert_eq!(pod(json!({
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}, {"name": "Bad", "emptyDir": {}},
                    {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"emptyDir": {}}],
        "containers": [{"name": "c", "image": "x", "volumeMounts": [
            {"name": "data", "mountPath": "/d"}, {"name": "nope", "mountPath": "/d"}, {"name": "data"}, {"mountPath": "/e", "name": "data", "subPath": "../x"}]}]
    })), vec![
        "spec.volumes[1].name: Duplicate value: \"data\"",
        "spec.volumes[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        "spec.volumes[3]: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[4].name: Required value",
        "spec.containers[0].volumeMounts[1].name: Not found: \"nope\"",
        "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
        "spec.containers[0].volumeMounts[2].mountPath: Required value",
        "spec.containers[0].volumeMounts[3].subPath: Invalid value: \"../x\": must not contain '..'",
    ]);
    // A volume without source is defaulted to emptyDir, hence valid.
    assert!(pod(json!({"volumes": [{"name": "v"}], "containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]})).is_empty());
}

#[test]
fn resources() {
    assert_eq!(one(json!({"name": "c", "image": "x", "resources": {
        "limits": {"cpu": "500m", "memory": "-1Gi", "cpuu": "1"},
        "requests": {"cpu": "1", "example.com/gpu": "1"}}})), vec![
        "spec.containers[0].resources.limits[cpuu]: Invalid value: \"cpuu\": must be a standard resource type or fully qualified",
        "spec.containers[0].resources.limits[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0",
        "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
        // Pods copy limits into missing requests before validation.
        "spec.containers[0].resources.requests[cpuu]: Invalid value: \"cpuu\": must be a standard resource type or fully qualified",
        "spec.containers[0].resources.requests[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0",
    ]);
    assert!(one(json!({"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": 1000}}})).is_empty());
}

#[test]
fn probes() {
    assert_eq!(one(json!({"name": "c", "image": "x",
        "livenessProbe": {"successThreshold": 2, "exec": {"command": ["true"]}},
        "readinessProbe": {"periodSeconds": -1},
        "startupProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 0}}})), vec![
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].startupProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].startupProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive",
    ]);
    assert!(one(json!({"name": "c", "image": "x", "readinessProbe": {"httpGet": {"port": "http"}, "successThreshold": 3}})).is_empty());
}

#[test]
fn pod_misc() {
    assert_eq!(pod(json!({"containers": [{"name": "c", "image": "x"}], "serviceAccountName": "Robot", "nodeSelector": {"k": "-v"}})).len(), 2);
    assert!(pod(json!({"containers": [{"name": "c", "image": "x"}], "hostname": "web-0", "subdomain": "web"})).is_empty());
}

#[test]
fn a_shared_process_namespace_is_not_the_hosts() {
    let c = json!([{"name": "c", "image": "x"}]);
    assert_eq!(
        pod(json!({"containers": c, "shareProcessNamespace": true, "hostPID": true})),
        vec!["spec.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"]
    );
    assert!(pod(json!({"containers": c, "shareProcessNamespace": true})).is_empty());
    assert!(pod(json!({"containers": c, "hostPID": true})).is_empty());
}
