//! Native sidecars (init containers with `restartPolicy: Always`), as
//! upstream runs them: started in order among the init containers and
//! before the containers, running beside them, and stopped after them —
//! when the pod is deleted (the containers first, then the sidecars) and
//! when the containers of a pod that does not restart have finished.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::{container, server_with_busybox, wait_pod};

const NODE: &str = "sidecar-node";

/// A pod whose containers note what they do in `dir` (a hostPath, so the
/// notes outlive the pod).
fn pod(name: &str, dir: &str, policy: &str, main: &str) -> String {
    let note = |what: &str| format!("echo {what} >> /notes/order");
    let side = format!(
        "trap '{}; exit 0' TERM; {}; while true; do sleep 1; done",
        note("side-stop"),
        note("side-start")
    );
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {NODE}
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 20
  volumes: [{{name: notes, hostPath: {{path: {dir}, type: Directory}}}}]
  initContainers:
  - name: first
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", {first:?}]
    volumeMounts: [{{name: notes, mountPath: /notes}}]
  - name: side
    image: busybox:latest
    imagePullPolicy: Never
    restartPolicy: Always
    command: ["sh", "-c", {side:?}]
    volumeMounts: [{{name: notes, mountPath: /notes}}]
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", {main:?}]
    volumeMounts: [{{name: notes, mountPath: /notes}}]
"#,
        first = note("first"),
    )
}

fn order(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("order"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn wait_order(s: &support::Server, dir: &std::path::Path, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while order(dir) != want {
        assert!(
            Instant::now() < deadline,
            "order {:?}, want {want:?}\n{}",
            order(dir),
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_sidecar_starts_before_and_outlives_the_containers() {
    let s = server_with_busybox(NODE);
    let dir = s.dir().join("notes-delete");
    std::fs::create_dir_all(&dir).unwrap();
    let main = "trap 'echo main-stop >> /notes/order; exit 0' TERM; echo main >> /notes/order; while true; do sleep 1; done";
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("deleted", dir.to_str().unwrap(), "Always", main),
    );
    let v = wait_pod(&s, "deleted", "ran", |v| {
        container(v, "main")["ready"] == true && container(v, "side")["started"] == true
    });
    assert_eq!(v["status"]["phase"], "Running");
    wait_order(&s, &dir, &["first", "side-start", "main"]);
    // Deleted: the container stops first, the sidecar after it.
    s.kubectl_ok(&["delete", "pod", "deleted", "--wait=true", "--timeout=60s"]);
    assert_eq!(
        order(&dir),
        ["first", "side-start", "main", "main-stop", "side-stop"]
    );

    // A pod that does not restart: once its container has finished, the
    // sidecar is stopped and the pod has succeeded.
    let dir = s.dir().join("notes-done");
    std::fs::create_dir_all(&dir).unwrap();
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "finished",
            dir.to_str().unwrap(),
            "Never",
            "echo main >> /notes/order",
        ),
    );
    wait_pod(&s, "finished", "succeeded", |v| {
        v["status"]["phase"] == "Succeeded"
    });
    wait_order(&s, &dir, &["first", "side-start", "main", "side-stop"]);
    s.kubectl_ok(&["delete", "pod", "finished", "--wait=true", "--timeout=60s"]);

    // An init container that fails under Never fails the pod, and the
    // sidecar started before it is stopped rather than left running.
    let dir = s.dir().join("notes-init-failed");
    std::fs::create_dir_all(&dir).unwrap();
    let side = "trap 'echo side-stop >> /notes/order; exit 0' TERM; echo side-start >> /notes/order; while true; do sleep 1; done";
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: init-failed}}
spec:
  nodeName: {NODE}
  restartPolicy: Never
  volumes: [{{name: notes, hostPath: {{path: {dir}, type: Directory}}}}]
  initContainers:
  - name: side
    image: busybox:latest
    imagePullPolicy: Never
    restartPolicy: Always
    command: ["sh", "-c", {side:?}]
    volumeMounts: [{{name: notes, mountPath: /notes}}]
  - name: bad
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo bad >> /notes/order; exit 3"]
    volumeMounts: [{{name: notes, mountPath: /notes}}]
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["true"]
"#,
        dir = dir.display()
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    let v = wait_pod(&s, "init-failed", "failed", |v| {
        v["status"]["phase"] == "Failed"
    });
    let bad = &v["status"]["initContainerStatuses"][1];
    assert_eq!(bad["state"]["terminated"]["exitCode"], 3, "{v}");
    wait_order(&s, &dir, &["side-start", "bad", "side-stop"]);
    let out = s.kubectl_ok(&["get", "pod", "init-failed", "--no-headers"]);
    assert!(out.contains("Init:Error"), "{out}");
    s.kubectl_ok(&[
        "delete",
        "pod",
        "init-failed",
        "--wait=true",
        "--timeout=60s",
    ]);
}
