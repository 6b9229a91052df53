//! API rules a user meets through kubectl: protected namespaces, namespace
//! existence and termination, dry runs, generated names and graceful pod
//! deletion.

mod support;

use support::{stderr, Server};

#[test]
fn system_namespaces_cannot_be_deleted() {
    let server = Server::start();
    for ns in ["default", "kube-system", "kube-public"] {
        let out = server.kubectl_err(&["delete", "namespace", ns]);
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "Error from server (Forbidden): namespaces \"{ns}\" is forbidden: this namespace may not be deleted"
            )),
            "{err}"
        );
    }
    server.kubectl_ok(&["get", "namespace", "default"]);
}

#[test]
fn objects_need_a_live_namespace() {
    let server = Server::start();
    let file = server.write_file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: nowhere\ndata:\n  a: b\n",
    );
    let out = server.kubectl_err(&["create", "-f", &file]);
    assert!(
        stderr(&out).contains("Error from server (NotFound): error when creating")
            && stderr(&out).contains("namespaces \"nowhere\" not found"),
        "{}",
        stderr(&out)
    );
    server.kubectl_ok(&["create", "namespace", "going"]);
    server.kubectl_ok(&[
        "create",
        "configmap",
        "held",
        "-n",
        "going",
        "--from-literal=a=b",
    ]);
    // Hold the namespace in Terminating with a finalizer on its content.
    server.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "going",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    server.kubectl_ok(&["delete", "namespace", "going", "--wait=false"]);
    let phase = server.kubectl_ok(&[
        "get",
        "namespace",
        "going",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Terminating");
    let out = server.kubectl_err(&[
        "create",
        "configmap",
        "late",
        "-n",
        "going",
        "--from-literal=a=b",
    ]);
    assert!(
        stderr(&out).contains(
            "unable to create new content in namespace going because it is being terminated"
        ),
        "{}",
        stderr(&out)
    );
    // Releasing the finalizer lets the namespace controller finish.
    server.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "going",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    server.kubectl_ok(&["wait", "--for=delete", "namespace/going", "--timeout=60s"]);
}

#[test]
fn dry_run_and_generated_names() {
    let server = Server::start();
    let out = server.kubectl_ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ]);
    assert!(
        out.contains("configmap/dry created (server dry run)"),
        "{out}"
    );
    let out = server.kubectl_err(&["get", "configmap", "dry"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    let file = server.write_file(
        "gen.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: gen-\ndata:\n  a: b\n",
    );
    let out = server.kubectl_ok(&["create", "-f", &file]);
    let name = out
        .trim()
        .strip_prefix("configmap/")
        .and_then(|s| s.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("unexpected output {out}"));
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    server.kubectl_ok(&["get", "configmap", name]);
}

#[test]
fn pods_on_a_node_terminate_gracefully() {
    let server = Server::start();
    let file = server.write_file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: node-1\n  containers:\n  - name: c\n    image: busybox\n",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&["delete", "pod", "bound", "--wait=false"]);
    let table = server.kubectl_ok(&["get", "pod", "bound"]);
    assert!(table.contains("Terminating"), "{table}");
    let grace = server.kubectl_ok(&[
        "get",
        "pod",
        "bound",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds}",
    ]);
    assert_eq!(grace, "30");
    server.kubectl_ok(&["delete", "pod", "bound", "--force", "--grace-period=0"]);
    let out = server.kubectl_err(&["get", "pod", "bound"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    // Its last finalizer taken off while it terminates, it stays until its
    // node ends it (upstream removes an object on that update only when
    // its deletionGracePeriodSeconds is 0).
    let file = server.write_file(
        "held.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\nspec:\n  nodeName: node-1\n  containers:\n  - name: c\n    image: busybox\n",
    );
    let drop_finalizers = || {
        server.kubectl_ok(&[
            "patch",
            "pod",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
    };
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&["delete", "pod", "held", "--wait=false"]);
    drop_finalizers();
    let table = server.kubectl_ok(&["get", "pod", "held"]);
    assert!(table.contains("Terminating"), "{table}");
    server.kubectl_ok(&["delete", "pod", "held", "--force", "--grace-period=0"]);
    let out = server.kubectl_err(&["get", "pod", "held"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    // With the finalizer still on, the final delete leaves it marked, with
    // grace 0: the finalizer's removal then removes it.
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&["delete", "pod", "held", "--wait=false"]);
    server.kubectl_ok(&[
        "delete",
        "pod",
        "held",
        "--force",
        "--grace-period=0",
        "--wait=false",
    ]);
    server.kubectl_ok(&["get", "pod", "held"]);
    drop_finalizers();
    let out = server.kubectl_err(&["get", "pod", "held"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    // A pod no node runs goes at once.
    // (A node selector no node has keeps the scheduler from binding it
    // first, which under load it could.)
    server.kubectl_ok(&[
        "run",
        "loose",
        "--image=busybox",
        r#"--overrides={"spec":{"nodeSelector":{"skiff.test/none":"x"}}}"#,
    ]);
    server.kubectl_ok(&["delete", "pod", "loose", "--wait=false"]);
    let out = server.kubectl_err(&["get", "pod", "loose"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
}
