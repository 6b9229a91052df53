//! Label and field selectors, `--show-labels`, and the other everyday
//! write verbs (create from literals, patch, replace, scale).

mod support;

use support::{json, row, stderr, stdout, table, Server};

fn names(s: &Server, args: &[&str]) -> Vec<String> {
    let mut full = vec!["get", "cm", "-n", "sel", "-o", "name"];
    full.extend_from_slice(args);
    let mut v: Vec<String> = s
        .kubectl_ok(&full)
        .lines()
        .map(|l| l.trim_start_matches("configmap/").to_string())
        // Kubernetes publishes kube-root-ca.crt in every namespace; skiff
        // may or may not: leave it out of the comparisons.
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    v.sort();
    v
}

/// `kubectl apply -f -` (a JSON body), for set-up.
fn apply(s: &Server, yaml: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "apply: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn seed(s: &Server) {
    s.namespace("sel");
    let mut docs = String::new();
    for (name, labels) in [
        ("a-prod", "app: a\n    env: prod"),
        ("a-dev", "app: a\n    env: dev"),
        ("b-prod", "app: b\n    env: prod"),
        ("plain", ""),
    ] {
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("  labels:\n    {labels}\n")
        };
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: sel\n{labels}data:\n  k: v\n"
        ));
    }
    let file = s.write_file("cms.yaml", &docs);
    s.kubectl_ok(&["apply", "-f", &file]);
}

#[test]
fn label_selectors() {
    let s = Server::start();
    seed(&s);
    assert_eq!(names(&s, &["-l", "app=a"]), ["a-dev", "a-prod"]);
    assert_eq!(names(&s, &["-l", "app==a,env=prod"]), ["a-prod"]);
    assert_eq!(names(&s, &["-l", "app!=a"]), ["b-prod", "plain"]);
    assert_eq!(names(&s, &["-l", "env in (prod)"]), ["a-prod", "b-prod"]);
    assert_eq!(names(&s, &["-l", "env notin (prod),app"]), ["a-dev"]);
    assert_eq!(names(&s, &["-l", "env"]), ["a-dev", "a-prod", "b-prod"]);
    assert!(names(&s, &["-l", "!env"]).contains(&"plain".to_string()));
    assert!(!names(&s, &["-l", "!env"]).contains(&"a-dev".to_string()));
    let out = s.kubectl(&["get", "cm", "-n", "sel", "-l", "app=zzz"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).trim_end(),
        "No resources found in sel namespace."
    );
}

#[test]
fn field_selectors() {
    // No node, so the pod below stays Pending and unbound.
    let s = Server::start_with_args(&["--disable-agent"]);
    seed(&s);
    assert_eq!(
        names(&s, &["--field-selector", "metadata.name=a-dev"]),
        ["a-dev"]
    );
    let not = names(
        &s,
        &["--field-selector", "metadata.name!=a-dev", "-l", "app"],
    );
    assert_eq!(not, ["a-prod", "b-prod"]);
    let out = s.kubectl_ok(&[
        "get",
        "cm",
        "-A",
        "--field-selector",
        "metadata.namespace=sel,metadata.name=b-prod",
        "-o",
        "name",
    ]);
    assert_eq!(out, "configmap/b-prod\n");
    // Pods by status.phase and spec.nodeName (no node: Pending, empty nodeName).
    let pod = s.write_file("pod.yaml", &support::pod_manifest("p", "sel", &[]));
    s.kubectl_ok(&["apply", "-f", &pod]);
    let pending = s.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "sel",
        "--field-selector",
        "status.phase=Pending",
        "-o",
        "name",
    ]);
    assert_eq!(pending, "pod/p\n");
    let running = s.kubectl(&[
        "get",
        "pods",
        "-n",
        "sel",
        "--field-selector",
        "status.phase=Running",
        "-o",
        "name",
    ]);
    assert!(running.status.success(), "{}", stderr(&running));
    assert_eq!(stdout(&running), "");
    let unbound = s.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=",
        "-o",
        "name",
    ]);
    assert_eq!(unbound, "pod/p\n");
    // An unknown field is refused with BadRequest.
    let err = s.kubectl_err(&["get", "cm", "-n", "sel", "--field-selector", "data.k=v"]);
    assert!(
        stderr(&err).contains("Error from server (BadRequest)"),
        "{}",
        stderr(&err)
    );
}

#[test]
fn show_labels_column() {
    let s = Server::start();
    seed(&s);
    let out = s.kubectl_ok(&["get", "cm", "-n", "sel", "--show-labels"]);
    let rows = table(&out);
    assert_eq!(rows[0], ["NAME", "DATA", "AGE", "LABELS"], "{out}");
    assert_eq!(row(&rows, "a-prod")[1], "1", "{out}");
    assert_eq!(row(&rows, "a-prod")[3], "app=a,env=prod", "{out}");
    assert_eq!(row(&rows, "plain")[3], "<none>", "{out}");
    // -L adds one column per key.
    let out = s.kubectl_ok(&["get", "cm", "-n", "sel", "-L", "env", "-l", "app"]);
    let rows = table(&out);
    assert_eq!(rows[0], ["NAME", "DATA", "AGE", "ENV"], "{out}");
    assert_eq!(row(&rows, "a-dev")[3], "dev", "{out}");
}

#[test]
fn create_from_literals_sends_protobuf() {
    let s = Server::start();
    // `create configmap` sends a protobuf body.
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=2"
        ]),
        "configmap/cfg created\n"
    );
    let cm = json(&s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"]));
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": "2"}));
    // Other typed generators send protobuf too.
    assert_eq!(
        s.kubectl_ok(&["create", "deployment", "web", "--image=nginx:1.27"]),
        "deployment.apps/web created\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=p=s3cret"
        ]),
        "secret/pw created\n"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "secret", "pw", "-o", "jsonpath={.data.p}"]),
        "czNjcmV0"
    );
}

#[test]
fn patch_strategic_merge_json_merge_and_json_patch() {
    let s = Server::start();
    apply(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n  b: \"2\"\n",
    );
    // JSON merge patch.
    s.kubectl_ok(&[
        "patch",
        "cm",
        "cfg",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"d":"4"}}"#,
    ]);
    // JSON patch.
    s.kubectl_ok(&[
        "patch",
        "cm",
        "cfg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/data/d"}]"#,
    ]);
    // Strategic merge patch (the default for built-in kinds).
    assert_eq!(
        s.kubectl_ok(&["patch", "cm", "cfg", "-p", r#"{"data":{"c":"3"}}"#]),
        "configmap/cfg patched\n"
    );
    // JSON merge patch.
    s.kubectl_ok(&[
        "patch",
        "cm",
        "cfg",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":null}}"#,
    ]);
    // JSON patch.
    s.kubectl_ok(&[
        "patch",
        "cm",
        "cfg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/b","value":"20"}]"#,
    ]);
    let cm = json(&s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"]));
    assert_eq!(cm["data"], serde_json::json!({"b": "20", "c": "3"}));
    // A patch that changes nothing.
    assert_eq!(
        s.kubectl_ok(&["patch", "cm", "cfg", "-p", r#"{"data":{"c":"3"}}"#]),
        "configmap/cfg patched (no change)\n"
    );
}

#[test]
fn replace_with_stale_resource_version_conflicts() {
    let s = Server::start();
    apply(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n",
    );
    let original = s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"]);
    // A change in between makes the saved copy stale.
    s.kubectl_ok(&["label", "cm", "cfg", "x=y"]);
    let mut stale = json(&original);
    stale["data"]["a"] = "2".into();
    let file = s.write_file("stale.json", &stale.to_string());
    let err = s.kubectl_err(&["replace", "-f", &file]);
    assert!(
        stderr(&err).contains("Error from server (Conflict)"),
        "{}",
        stderr(&err)
    );
    assert!(
        stderr(&err).contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{}",
        stderr(&err)
    );
    // With the current version it goes through.
    let mut fresh = json(&s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"]));
    fresh["data"]["a"] = "2".into();
    let file = s.write_file("fresh.json", &fresh.to_string());
    assert_eq!(
        s.kubectl_ok(&["replace", "-f", &file]),
        "configmap/cfg replaced\n"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"]),
        "2"
    );
}

#[test]
fn scale_deployment() {
    let s = Server::start();
    apply(
        &s,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.27\n",
    );
    assert_eq!(
        s.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let scale = json(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]));
    assert_eq!(scale["kind"], "Scale", "{scale}");
    assert_eq!(scale["apiVersion"], "autoscaling/v1", "{scale}");
    assert_eq!(scale["spec"]["replicas"], 3, "{scale}");
}

#[test]
fn invalid_object_is_rejected_with_causes() {
    let s = Server::start();
    let file = s.write_file(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\ndata:\n  k: v\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &file]);
    let e = stderr(&err);
    assert!(e.contains("is invalid"), "{e}");
    assert!(e.contains("metadata.name"), "{e}");
}
