//! Acceptance of issue 2 as a new user would check it: the real kubectl
//! against a real `skiff server`, one test per item.

mod support;

use support::{row, stderr, stdout, table, Server, DEMO_MANIFEST};

/// Apply the demo manifest and check that the first apply creates everything.
fn apply_demo(s: &Server) {
    let file = s.write_file("demo.yaml", DEMO_MANIFEST);
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "namespace/demo created",
            "configmap/app-config created",
            "deployment.apps/web created",
            "service/web created",
        ],
        "kubectl apply output"
    );
}

#[test]
fn version_reports_v1_32_skiff() {
    let s = Server::start();
    let out = s.kubectl_ok(&["version"]);
    let server_line = out
        .lines()
        .find(|l| l.starts_with("Server Version: "))
        .unwrap_or_else(|| panic!("no Server Version line in:\n{out}"));
    let v = server_line.trim_start_matches("Server Version: ");
    assert!(
        v.starts_with("v1.32.") && v.ends_with("-skiff"),
        "server version {v:?}"
    );
    // The dispatcher picked kubectl 1.32 for a 1.32 server.
    assert!(
        out.contains("Client Version: v1.32."),
        "client version in:\n{out}"
    );
    // No version-skew warning.
    let all = s.kubectl(&["version"]);
    assert!(
        !stderr(&all).contains("WARNING"),
        "stderr: {}",
        stderr(&all)
    );

    let json = support::json(&s.kubectl_ok(&["version", "-o", "json"]));
    let sv = &json["serverVersion"];
    assert_eq!(sv["major"], "1", "{json}");
    assert_eq!(sv["minor"], "32", "{json}");
    assert_eq!(sv["platform"], "linux/amd64", "{json}");
}

#[test]
fn get_namespaces_lists_the_four_system_namespaces() {
    let s = Server::start();
    let out = s.kubectl_ok(&["get", "ns"]);
    let rows = table(&out);
    assert_eq!(rows[0], ["NAME", "STATUS", "AGE"], "header in:\n{out}");
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"],
        "namespaces (sorted by name) in:\n{out}"
    );
    for r in &rows[1..] {
        assert_eq!(r.len(), 3, "row {r:?} in:\n{out}");
        assert_eq!(r[1], "Active", "row {r:?}");
    }
}

#[test]
fn api_resources_lists_short_names_and_verbs() {
    let s = Server::start();
    let out = s.kubectl_ok(&["api-resources"]);
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "header in:\n{out}"
    );
    let expect: &[(&str, &str, &str, &str, &str)] = &[
        ("configmaps", "cm", "v1", "true", "ConfigMap"),
        ("endpoints", "ep", "v1", "true", "Endpoints"),
        ("events", "ev", "v1", "true", "Event"),
        ("namespaces", "ns", "v1", "false", "Namespace"),
        ("nodes", "no", "v1", "false", "Node"),
        (
            "persistentvolumeclaims",
            "pvc",
            "v1",
            "true",
            "PersistentVolumeClaim",
        ),
        ("persistentvolumes", "pv", "v1", "false", "PersistentVolume"),
        ("pods", "po", "v1", "true", "Pod"),
        ("serviceaccounts", "sa", "v1", "true", "ServiceAccount"),
        ("services", "svc", "v1", "true", "Service"),
        ("daemonsets", "ds", "apps/v1", "true", "DaemonSet"),
        ("deployments", "deploy", "apps/v1", "true", "Deployment"),
        ("replicasets", "rs", "apps/v1", "true", "ReplicaSet"),
        ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
        ("cronjobs", "cj", "batch/v1", "true", "CronJob"),
    ];
    for (name, short, gv, namespaced, kind) in expect {
        let r = rows
            .iter()
            .find(|r| r[0] == *name && r.get(2).map(String::as_str) == Some(gv))
            .unwrap_or_else(|| panic!("no {name} ({gv}) in:\n{out}"));
        assert_eq!(
            r,
            &[*name, *short, *gv, *namespaced, *kind],
            "row for {name} in:\n{out}"
        );
    }
    // Resources without short names (4 cells).
    for (name, gv, kind) in [
        ("secrets", "v1", "Secret"),
        ("jobs", "batch/v1", "Job"),
        ("leases", "coordination.k8s.io/v1", "Lease"),
        ("endpointslices", "discovery.k8s.io/v1", "EndpointSlice"),
    ] {
        let r = rows
            .iter()
            .find(|r| r[0] == name && r.get(1).map(String::as_str) == Some(gv))
            .unwrap_or_else(|| panic!("no {name} ({gv}) in:\n{out}"));
        assert_eq!(r[3], kind, "row {r:?}");
    }
    // events.k8s.io/v1 events too.
    assert!(
        rows.iter()
            .any(|r| r[0] == "events" && r.iter().any(|c| c == "events.k8s.io/v1")),
        "no events.k8s.io/v1 events in:\n{out}"
    );

    // Verbs (-o wide).
    let wide = s.kubectl_ok(&["api-resources", "-o", "wide"]);
    let full = "create,delete,deletecollection,get,list,patch,update,watch";
    for name in ["configmaps", "pods", "deployments", "secrets"] {
        let line = wide
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{wide}"));
        assert!(line.contains(full), "verbs of {name}: {line}");
    }
    // As in Kubernetes, services have no deletecollection.
    let line = wide
        .lines()
        .find(|l| l.split_whitespace().next() == Some("services"))
        .unwrap_or_else(|| panic!("no services in:\n{wide}"));
    assert!(
        line.contains("create,delete,get,list,patch,update,watch"),
        "verbs of services: {line}"
    );
    let line = wide
        .lines()
        .find(|l| l.split_whitespace().next() == Some("namespaces"))
        .unwrap_or_else(|| panic!("no namespaces in:\n{wide}"));
    assert!(
        line.contains("create,delete,get,list,patch,update,watch"),
        "verbs of namespaces: {line}"
    );

    // Short names resolve.
    let out = s.kubectl_ok(&["get", "cm", "-n", "kube-system"]);
    let _ = out;
    s.kubectl_ok(&["get", "deploy,svc,po,sa,ds,sts,rs,ep,pvc"]);
}

#[test]
fn create_namespace() {
    let s = Server::start();
    let out = s.kubectl_ok(&["create", "namespace", "demo"]);
    assert_eq!(out, "namespace/demo created\n");
    let rows = table(&s.kubectl_ok(&["get", "ns", "demo"]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], "demo");
    assert_eq!(rows[1][1], "Active");
    let ns = support::json(&s.kubectl_ok(&["get", "ns", "demo", "-o", "json"]));
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    assert!(
        ns["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36),
        "{ns}"
    );
    assert!(ns["metadata"]["creationTimestamp"].is_string(), "{ns}");
    assert!(ns["metadata"]["resourceVersion"].is_string(), "{ns}");

    // A second create is refused with AlreadyExists.
    let err = s.kubectl_err(&["create", "namespace", "demo"]);
    assert_eq!(err.status.code(), Some(1));
    assert_eq!(
        stderr(&err).trim_end(),
        r#"Error from server (AlreadyExists): namespaces "demo" already exists"#
    );
}

#[test]
fn apply_multi_document_file_creates_everything() {
    let s = Server::start();
    apply_demo(&s);
    let cm = support::json(&s.kubectl_ok(&["get", "cm", "app-config", "-n", "demo", "-o", "json"]));
    assert_eq!(cm["data"]["greeting"], "hello");
    assert_eq!(cm["data"]["mode"], "production");
    assert!(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string(),
        "{cm}"
    );
    let dep = support::json(&s.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(dep["metadata"]["generation"], 1, "{dep}");
    assert!(s
        .kubectl_ok(&["get", "svc", "web", "-n", "demo"])
        .contains("web"));
}

#[test]
fn apply_again_is_unchanged_and_changes_are_configured() {
    let s = Server::start();
    apply_demo(&s);
    let file = s.write_file("demo.yaml", DEMO_MANIFEST);
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "namespace/demo unchanged",
            "configmap/app-config unchanged",
            "deployment.apps/web unchanged",
            "service/web unchanged",
        ]
    );
    let dep = support::json(&s.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    let gen1 = dep["metadata"]["generation"].as_i64().expect("generation");

    let changed = DEMO_MANIFEST
        .replace("greeting: hello", "greeting: bonjour")
        .replace("replicas: 2", "replicas: 3");
    let file = s.write_file("demo2.yaml", &changed);
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "namespace/demo unchanged",
            "configmap/app-config configured",
            "deployment.apps/web configured",
            "service/web unchanged",
        ]
    );
    let cm = s.kubectl_ok(&[
        "get",
        "cm",
        "app-config",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.greeting}",
    ]);
    assert_eq!(cm, "bonjour");
    let dep = support::json(&s.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(
        dep["metadata"]["generation"].as_i64(),
        Some(gen1 + 1),
        "generation must be bumped on a spec change: {dep}"
    );
}

/// Wait until the demo Deployment's controller has made its pods.
fn demo_rolled(s: &Server) {
    s.kubectl_ok(&[
        "wait",
        "-n",
        "demo",
        "deploy/web",
        "--for=jsonpath={.status.updatedReplicas}=2",
        "--timeout=60s",
    ]);
}

#[test]
fn get_all_in_namespace() {
    let s = Server::start();
    apply_demo(&s);
    demo_rolled(&s);
    let out = s.kubectl_ok(&["get", "all", "-n", "demo"]);
    let rows = table(&out);
    let svc_header = rows
        .iter()
        .position(|r| r.len() > 1 && r[1] == "TYPE")
        .unwrap_or_else(|| panic!("no service table in:\n{out}"));
    assert_eq!(
        rows[svc_header],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    let svc = row(&rows, "service/web");
    assert_eq!(svc[1], "ClusterIP", "{out}");
    assert_eq!(svc[3], "<none>", "{out}");
    assert_eq!(svc[4], "80/TCP", "{out}");

    let dep_header = rows
        .iter()
        .position(|r| {
            r.len() > 1 && r[1] == "READY" && r.get(2).map(String::as_str) == Some("UP-TO-DATE")
        })
        .unwrap_or_else(|| panic!("no deployment table in:\n{out}"));
    assert_eq!(
        rows[dep_header],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    let dep = row(&rows, "deployment.apps/web");
    // Its pods exist (the image cannot be pulled here): none ready.
    assert_eq!(&dep[1..4], ["0/2", "2", "0"], "{out}");
    // The ConfigMap is not in category "all".
    assert!(!out.contains("app-config"), "{out}");
}

#[test]
fn get_deployments_wide() {
    let s = Server::start();
    apply_demo(&s);
    demo_rolled(&s);
    let out = s.kubectl_ok(&["get", "deploy", "-n", "demo", "-o", "wide"]);
    let rows = table(&out);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{out}"
    );
    let r = row(&rows, "web");
    assert_eq!(&r[1..4], ["0/2", "2", "0"], "{out}");
    assert_eq!(&r[5..], ["nginx", "nginx:1.27", "app=web"], "{out}");
    // AGE is a duration such as 0s, 5s, 2m.
    assert!(
        r[4].chars().next().is_some_and(|c| c.is_ascii_digit()),
        "AGE {:?}",
        r[4]
    );
}

#[test]
fn get_configmap_yaml() {
    let s = Server::start();
    apply_demo(&s);
    let out = s.kubectl_ok(&["get", "cm", "app-config", "-n", "demo", "-o", "yaml"]);
    for needle in [
        "apiVersion: v1\n",
        "kind: ConfigMap\n",
        "data:\n  greeting: hello\n  mode: production\n",
        "  name: app-config\n",
        "  namespace: demo\n",
        "  labels:\n    app: web\n",
        "  uid: ",
        "  resourceVersion: \"",
        "  creationTimestamp: \"",
        "kubectl.kubernetes.io/last-applied-configuration",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    // A list, too.
    let list = s.kubectl_ok(&["get", "cm", "-n", "demo", "-o", "yaml"]);
    assert!(list.starts_with("apiVersion: v1\nitems:\n"), "{list}");
    assert!(list.contains("kind: List\n"), "{list}");
    assert!(list.contains("name: app-config"), "{list}");
}

#[test]
fn get_pods_watch_shows_added_and_modified_rows() {
    let s = Server::start();
    s.namespace("watch");
    let mut w =
        s.kubectl_background(&["get", "pods", "-n", "watch", "-w", "--output-watch-events"]);

    let pod = s.write_file(
        "pod.yaml",
        &support::pod_manifest("w1", "watch", &[("app", "w")]),
    );
    assert_eq!(s.kubectl_ok(&["apply", "-f", &pod]), "pod/w1 created\n");
    let is_row = |event: &'static str| {
        move |out: &str| {
            out.lines().any(|l| {
                let c = support::split_cells(l);
                c.first().map(String::as_str) == Some(event)
                    && c.get(1).map(String::as_str) == Some("w1")
            })
        }
    };
    w.wait_for("an ADDED row for w1", is_row("ADDED"));
    assert_eq!(
        s.kubectl_ok(&["label", "pod", "w1", "-n", "watch", "tier=a"]),
        "pod/w1 labeled\n"
    );
    w.wait_for("a MODIFIED row for w1", is_row("MODIFIED"));
    s.kubectl_ok(&["delete", "pod", "w1", "-n", "watch", "--wait=false"]);
    let out = w.wait_for("a DELETED row for w1", is_row("DELETED"));
    w.stop();

    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    let added = rows.iter().find(|r| r[0] == "ADDED").unwrap();
    assert_eq!(&added[1..5], ["w1", "0/1", "Pending", "0"], "{out}");
    // Exactly one header (the watch form of the table does not repeat it).
    assert_eq!(rows.iter().filter(|r| r[0] == "EVENT").count(), 1, "{out}");
}

#[test]
fn get_pods_watch_without_events_prints_rows() {
    let s = Server::start();
    s.namespace("watch");
    let pod = s.write_file("p0.yaml", &support::pod_manifest("p0", "watch", &[]));
    s.kubectl_ok(&["apply", "-f", &pod]);
    let mut w = s.kubectl_background(&["get", "pods", "-n", "watch", "-w"]);
    w.wait_for("the initial row for p0", |o| {
        o.lines().any(|l| l.starts_with("p0 "))
    });
    let pod = s.write_file("p1.yaml", &support::pod_manifest("p1", "watch", &[]));
    s.kubectl_ok(&["apply", "-f", &pod]);
    let out = w.wait_for("a row for p1", |o| o.lines().any(|l| l.starts_with("p1 ")));
    w.stop();
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert_eq!(&row(&rows, "p1")[1..4], ["0/1", "Pending", "0"], "{out}");
}

#[test]
fn label_configmap() {
    let s = Server::start();
    apply_demo(&s);
    assert_eq!(
        s.kubectl_ok(&["label", "cm", "app-config", "-n", "demo", "tier=backend"]),
        "configmap/app-config labeled\n"
    );
    let labels = support::json(&s.kubectl_ok(&[
        "get",
        "cm",
        "app-config",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.labels}",
    ]));
    assert_eq!(labels, serde_json::json!({"app": "web", "tier": "backend"}));
    // Changing an existing label needs --overwrite.
    let err = s.kubectl_err(&["label", "cm", "app-config", "-n", "demo", "tier=db"]);
    assert!(
        stderr(&err).contains("--overwrite is false"),
        "{}",
        stderr(&err)
    );
    s.kubectl_ok(&[
        "label",
        "cm",
        "app-config",
        "-n",
        "demo",
        "--overwrite",
        "tier=db",
    ]);
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "app-config",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ]),
        "db"
    );
    assert_eq!(
        s.kubectl_ok(&["label", "cm", "app-config", "-n", "demo", "tier-"]),
        "configmap/app-config unlabeled\n"
    );
    let labels = support::json(&s.kubectl_ok(&[
        "get",
        "cm",
        "app-config",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.labels}",
    ]));
    assert_eq!(labels, serde_json::json!({"app": "web"}));
}

#[test]
fn annotate_deployment() {
    let s = Server::start();
    apply_demo(&s);
    let before =
        support::json(&s.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    assert_eq!(
        s.kubectl_ok(&[
            "annotate",
            "deploy",
            "web",
            "-n",
            "demo",
            "note=hello world"
        ]),
        "deployment.apps/web annotated\n"
    );
    let after = support::json(&s.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    assert_eq!(
        after["metadata"]["annotations"]["note"], "hello world",
        "{after}"
    );
    // Metadata changes do not bump generation; resourceVersion changes.
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    s.kubectl_ok(&["annotate", "deploy", "web", "-n", "demo", "note-"]);
    let ann = s.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.annotations.note}",
    ]);
    assert_eq!(ann, "");
}

#[test]
fn delete_f_removes_the_objects() {
    let s = Server::start();
    s.namespace("demo");
    // The objects of the demo manifest without the Namespace document.
    let objects = DEMO_MANIFEST.split_once("---\n").unwrap().1;
    let file = s.write_file("objects.yaml", objects);
    s.kubectl_ok(&["apply", "-f", &file]);
    let out = s.kubectl_ok(&["delete", "-f", &file]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            r#"configmap "app-config" deleted"#,
            r#"deployment.apps "web" deleted"#,
            r#"service "web" deleted"#,
        ]
    );
    // The namespace's kube-root-ca.crt (the root CA publisher's) stays,
    // as upstream.
    let out = s.kubectl_ok(&["get", "cm,deploy,svc", "-n", "demo", "-o", "name"]);
    let left: Vec<&str> = out
        .lines()
        .filter(|l| *l != "configmap/kube-root-ca.crt")
        .collect();
    assert!(left.is_empty(), "{out}");
    let out = s.kubectl(&["get", "deploy,svc", "-n", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).trim_end(),
        "No resources found in demo namespace."
    );
    let err = s.kubectl_err(&["delete", "-f", &file]);
    assert!(
        stderr(&err).contains(r#"Error from server (NotFound): error when deleting"#),
        "{}",
        stderr(&err)
    );
}

#[test]
fn get_missing_configmap_is_not_found() {
    let s = Server::start();
    let out = s.kubectl_err(&["get", "cm", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).trim_end(),
        r#"Error from server (NotFound): configmaps "nosuch" not found"#
    );
    let out = s.kubectl_err(&["get", "deploy", "nope", "-n", "kube-system"]);
    assert_eq!(
        stderr(&out).trim_end(),
        r#"Error from server (NotFound): deployments.apps "nope" not found"#
    );
}

#[test]
fn get_pods_all_namespaces() {
    // No node: the pods stay Pending, unbound.
    let s = Server::start_with_args(&["--disable-agent"]);
    s.namespace("a");
    s.namespace("b");
    let docs = format!(
        "{}---\n{}",
        support::pod_manifest("pa", "a", &[]),
        support::pod_manifest("pb", "b", &[])
    );
    let file = s.write_file("pods.yaml", &docs);
    s.kubectl_ok(&["apply", "-f", &file]);
    let out = s.kubectl_ok(&["get", "pods", "-A"]);
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert_eq!(
        &row(&rows, "a")[1..5],
        ["pa", "0/1", "Pending", "0"],
        "{out}"
    );
    assert_eq!(
        &row(&rows, "b")[1..5],
        ["pb", "0/1", "Pending", "0"],
        "{out}"
    );
    assert_eq!(rows.len(), 3, "{out}");

    let wide = s.kubectl_ok(&["get", "pods", "-n", "a", "-o", "wide"]);
    let rows = table(&wide);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{wide}"
    );
    assert_eq!(
        &row(&rows, "pa")[5..],
        ["<none>", "<none>", "<none>", "<none>"],
        "{wide}"
    );
}

#[test]
fn delete_namespace_removes_its_contents() {
    let s = Server::start();
    apply_demo(&s);
    // kubectl waits until the namespace is gone (bounded by --timeout).
    let out = s.kubectl_ok(&["delete", "namespace", "demo", "--timeout=60s"]);
    assert_eq!(out, "namespace \"demo\" deleted\n");
    let err = s.kubectl_err(&["get", "ns", "demo"]);
    assert_eq!(
        stderr(&err).trim_end(),
        r#"Error from server (NotFound): namespaces "demo" not found"#
    );
    // Its objects went with it.
    let out = s.kubectl_ok(&["get", "cm,deploy,svc", "-A", "-o", "name"]);
    assert!(
        !out.lines()
            .any(|l| l.ends_with("/app-config") || l.ends_with("/web")),
        "left over after deleting namespace demo:\n{out}"
    );
}

#[test]
fn unknown_resource_type_is_reported() {
    let s = Server::start();
    let err = s.kubectl_err(&["get", "foos"]);
    assert_eq!(
        stderr(&err).trim_end(),
        r#"error: the server doesn't have a resource type "foos""#
    );
}
