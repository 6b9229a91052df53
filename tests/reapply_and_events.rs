//! Client-side re-apply yields exactly the object the changed manifest
//! describes; typed `kubectl create` generators work; Events show up in
//! `kubectl events` and `kubectl describe`.

mod support;

use support::{json, Server};

const V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 2
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers:
      - name: c
        image: busybox:1.35
        env: [{name: A, value: '1'}, {name: B, value: '2'}]
        ports: [{containerPort: 80}]
";

const V2: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 3
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers:
      - name: c
        image: busybox:1.36
        env: [{name: A, value: '1'}]
        ports: [{containerPort: 80}, {containerPort: 443}]
";

#[test]
fn reapply_of_a_changed_manifest() {
    let server = Server::start();
    let v1 = server.write_file("v1.yaml", V1);
    let v2 = server.write_file("v2.yaml", V2);
    assert!(server
        .kubectl_ok(&["apply", "-f", &v1])
        .contains("deployment.apps/app created"));
    // Another writer's change to a field the manifest doesn't set survives.
    server.kubectl_ok(&[
        "patch",
        "deploy",
        "app",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","workingDir":"/srv"}]}}}}"#,
    ]);
    assert!(server
        .kubectl_ok(&["apply", "-f", &v2])
        .contains("deployment.apps/app configured"));
    let obj = json(&server.kubectl_ok(&["get", "deploy", "app", "-o", "json"]));
    let c = &obj["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(c["image"], "busybox:1.36");
    assert_eq!(c["env"], serde_json::json!([{"name": "A", "value": "1"}]));
    assert_eq!(
        c["ports"],
        serde_json::json!([
            {"containerPort": 80, "protocol": "TCP"},
            {"containerPort": 443, "protocol": "TCP"}
        ])
    );
    assert_eq!(c["workingDir"], "/srv");
    assert_eq!(obj["metadata"]["generation"], 3);
    assert!(server
        .kubectl_ok(&["apply", "-f", &v2])
        .contains("deployment.apps/app unchanged"));
}

#[test]
fn typed_create_generators() {
    let server = Server::start();
    let data = server.write_file("greeting.txt", "hello\n");
    for (args, expect) in [
        (
            vec!["create", "secret", "generic", "s", "--from-literal=a=b"],
            "secret/s created",
        ),
        (
            vec!["create", "configmap", "c", &format!("--from-file={data}")],
            "configmap/c created",
        ),
        (
            vec![
                "create",
                "deployment",
                "web",
                "--image=busybox",
                "--replicas=2",
            ],
            "deployment.apps/web created",
        ),
        (
            vec!["create", "service", "clusterip", "web", "--tcp=80:8080"],
            "service/web created",
        ),
        (
            vec!["create", "job", "j", "--image=busybox"],
            "job.batch/j created",
        ),
        (
            vec![
                "create",
                "cronjob",
                "cj",
                "--image=busybox",
                "--schedule=*/5 * * * *",
            ],
            "cronjob.batch/cj created",
        ),
        (
            vec!["create", "serviceaccount", "robot"],
            "serviceaccount/robot created",
        ),
    ] {
        let out = server.kubectl_ok(&args);
        assert!(out.contains(expect), "{args:?}: {out}");
    }
    let secret = json(&server.kubectl_ok(&["get", "secret", "s", "-o", "json"]));
    assert_eq!(secret["data"]["a"], "Yg==");
    assert_eq!(secret["type"], "Opaque");
    let cm = json(&server.kubectl_ok(&["get", "cm", "c", "-o", "json"]));
    assert_eq!(cm["data"]["greeting.txt"], "hello\n");
    let job = json(&server.kubectl_ok(&["get", "job", "j", "-o", "json"]));
    let uid = job["metadata"]["uid"].as_str().expect("job uid");
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    let svc = json(&server.kubectl_ok(&["get", "svc", "web", "-o", "json"]));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
}

#[test]
fn events_show_in_kubectl_events_and_describe() {
    let server = Server::start();
    server.kubectl_ok(&["create", "configmap", "target", "--from-literal=a=b"]);
    let uid = server.kubectl_ok(&["get", "cm", "target", "-o", "jsonpath={.metadata.uid}"]);
    let event = server.write_file(
        "event.yaml",
        &format!(
            "apiVersion: v1
kind: Event
metadata: {{name: target.1, namespace: default}}
involvedObject: {{kind: ConfigMap, name: target, namespace: default, apiVersion: v1, uid: {uid}}}
reason: Tested
message: an event about the target
type: Warning
count: 1
firstTimestamp: '2026-01-01T00:00:00Z'
lastTimestamp: '2026-01-01T00:00:00Z'
source: {{component: skiff-test}}
"
        ),
    );
    server.kubectl_ok(&["apply", "-f", &event]);
    let events = server.kubectl_ok(&["events"]);
    assert!(
        events.contains("Warning")
            && events.contains("Tested")
            && events.contains("ConfigMap/target"),
        "{events}"
    );
    let by_selector = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=target,type=Warning",
        "-o",
        "name",
    ]);
    assert_eq!(by_selector.trim(), "event/target.1");
    let described = server.kubectl_ok(&["describe", "configmap", "target"]);
    assert!(
        described.contains("Events:") && described.contains("an event about the target"),
        "{described}"
    );
}
