//! Probes and lifecycle hooks on the server's own node, for real: the test
//! steers each probe through a file in a hostPath volume it shares with the
//! pod. Readiness decides `ready` both ways; a failing liveness probe gets
//! the container restarted; a startup probe holds the others back;
//! HTTP and TCP probes reach the pod's address (and a hostPort reaches the
//! pod from the node); postStart runs after the start and preStop before
//! the stop.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::path::Path;

use pods::{container, server_with_busybox, wait_pod};

const NODE: &str = "probe-node";

fn pod(name: &str, ctl: &Path, script: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 5
  volumes:
  - name: ctl
    hostPath: {{path: {ctl}, type: DirectoryOrCreate}}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", {script:?}]
    volumeMounts:
    - {{name: ctl, mountPath: /ctl}}
{extra}"#,
        ctl = ctl.display()
    )
}

fn ready(v: &serde_json::Value) -> bool {
    container(v, "main")["ready"] == true
}

#[test]
fn probes_steer_readiness_restarts_and_start() {
    let s = server_with_busybox(NODE);
    let ctl = s.dir().join("ctl");
    std::fs::create_dir_all(&ctl).unwrap();

    // Readiness by exec, both ways.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "ready",
            &ctl,
            "exec sleep 600",
            r#"    readinessProbe:
      exec: {command: ["test", "-f", "/ctl/ready"]}
      periodSeconds: 1
      failureThreshold: 1
"#,
        ),
    );
    let v = wait_pod(&s, "ready", "ran", |v| v["status"]["phase"] == "Running");
    assert!(
        !ready(&v),
        "ready before its probe passed: {:#}",
        v["status"]
    );
    std::fs::write(ctl.join("ready"), "").unwrap();
    let v = wait_pod(&s, "ready", "became ready", ready);
    let cond = v["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(cond["status"], "True");
    std::fs::remove_file(ctl.join("ready")).unwrap();
    wait_pod(&s, "ready", "became unready", |v| !ready(v));

    // Liveness: failing, the container is killed and started again.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "live",
            &ctl,
            "exec sleep 600",
            r#"    livenessProbe:
      exec: {command: ["sh", "-c", "! test -f /ctl/die"]}
      periodSeconds: 1
      failureThreshold: 2
"#,
        ),
    );
    wait_pod(&s, "live", "ran", |v| v["status"]["phase"] == "Running");
    std::fs::write(ctl.join("die"), "").unwrap();
    let v = wait_pod(&s, "live", "was restarted", |v| {
        container(v, "main")["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    std::fs::remove_file(ctl.join("die")).unwrap();
    // What happened shows in describe, as kubelet's events.
    let described = s.kubectl_ok(&["describe", "pod", "live"]);
    for line in [
        "Container image \"busybox:latest\" already present on machine",
        "Started container main",
        "Liveness probe failed",
        "Container main failed liveness probe, will be restarted",
    ] {
        assert!(described.contains(line), "{line:?} missing:\n{described}");
    }
    assert!(
        container(&v, "main")["lastState"]["terminated"]["exitCode"].is_i64(),
        "{:#}",
        v["status"]
    );
    wait_pod(&s, "live", "ran again", |v| {
        container(v, "main")["state"]["running"].is_object()
    });

    // A startup probe holds started (and readiness) back.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "slow",
            &ctl,
            "exec sleep 600",
            r#"    startupProbe:
      exec: {command: ["test", "-f", "/ctl/started"]}
      periodSeconds: 1
      failureThreshold: 600
"#,
        ),
    );
    let v = wait_pod(&s, "slow", "ran", |v| v["status"]["phase"] == "Running");
    assert_eq!(container(&v, "main")["started"], false, "{:#}", v["status"]);
    assert!(!ready(&v));
    std::fs::write(ctl.join("started"), "").unwrap();
    let v = wait_pod(&s, "slow", "started", ready);
    assert_eq!(container(&v, "main")["started"], true);

    // HTTP and TCP probes reach the pod's own address.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "web",
            &ctl,
            "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www",
            r#"    ports:
    - {name: http, containerPort: 8080, hostPort: 18080}
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"#,
        ),
    );
    let v = wait_pod(&s, "web", "became ready", ready);
    assert_eq!(container(&v, "main")["restartCount"], 0);
    // Its hostPort answers on the node.
    let out = s
        .net()
        .command("curl")
        .args(["-s", "--max-time", "5", "http://127.0.0.1:18080/healthz"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    // Hooks: postStart after the start, preStop before the stop.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "hooks",
            &ctl,
            "trap '' TERM; exec sleep 600",
            r#"    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo started > /ctl/post-start"]}
      preStop:
        exec: {command: ["sh", "-c", "echo stopping > /ctl/pre-stop"]}
"#,
        ),
    );
    wait_pod(&s, "hooks", "ran", |v| {
        v["status"]["phase"] == "Running" && ready(v)
    });
    assert_eq!(
        std::fs::read_to_string(ctl.join("post-start")).unwrap(),
        "started\n"
    );
    assert!(!ctl.join("pre-stop").exists());
    s.kubectl_ok(&["delete", "pod", "hooks", "--wait=true", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(ctl.join("pre-stop")).unwrap(),
        "stopping\n"
    );
}
