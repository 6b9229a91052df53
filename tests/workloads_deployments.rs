//! Deployments on the server's own node, end to end with the real agent
//! and kubectl: a rolling update keeps the allowed availability
//! throughout, `kubectl rollout undo` goes back, a rollout to an image
//! that cannot be had stalls with ProgressDeadlineExceeded while the old
//! pods keep serving, and with `skiff.dev/rollback-on-failure` goes back
//! by itself.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::{server_with_busybox, skiff};
use support::Server;

const NODE: &str = "deploy-node";

fn deployment(extra_annotations: &str, deadline: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {{{extra_annotations}}}
spec:
  replicas: 4
  progressDeadlineSeconds: {deadline}
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 1}}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sleep", "3600"]
        readinessProbe:
          exec: {{command: ["true"]}}
          periodSeconds: 1
"#
    )
}

fn json(s: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&all)).unwrap()
}

/// Ready pods of app=web (not being deleted), by image.
fn ready_images(s: &Server) -> Vec<String> {
    let v = json(s, &["pods", "-l", "app=web"]);
    v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn wait(s: &Server, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = json(s, &["deploy", "web"]);
        if f(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {:#}\n{}",
            d["status"],
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rolled_out(image: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == image
            && d["status"]["updatedReplicas"] == 4
            && d["status"]["availableReplicas"] == 4
            && d["status"]["replicas"] == 4
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
    }
}

fn condition(d: &serde_json::Value, kind: &str) -> serde_json::Value {
    d["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or_default()
}

#[test]
fn a_rolling_update_keeps_availability_and_undo_goes_back() {
    let s = server_with_busybox(NODE);
    skiff(&s, &["tag", "busybox:latest", "busybox:v2"]);
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment("", 600));
    wait(&s, "rolled out", rolled_out("busybox:latest"));
    let status = s.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");

    s.kubectl_ok(&["set", "image", "deploy/web", "main=busybox:v2"]);
    // Sample throughout: never fewer than replicas - maxUnavailable ready.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lowest = usize::MAX;
    loop {
        let ready = ready_images(&s);
        lowest = lowest.min(ready.len());
        if ready.len() == 4 && ready.iter().all(|i| i == "busybox:v2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout never finished: {ready:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lowest >= 3, "only {lowest} pods were ready at one point");
    let d = wait(&s, "rolled out to v2", rolled_out("busybox:v2"));
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        condition(&d, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
    assert_eq!(condition(&d, "Available")["status"], "True");
    let history = s.kubectl_ok(&["rollout", "history", "deploy/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    s.kubectl_ok(&["rollout", "undo", "deploy/web"]);
    wait(&s, "rolled back to latest", rolled_out("busybox:latest"));
    let rs = json(&s, &["rs", "-l", "app=web"]);
    let sizes: Vec<(String, i64)> = rs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes.contains(&("busybox:latest".into(), 4)), "{sizes:?}");
    assert!(sizes.contains(&("busybox:v2".into(), 0)), "{sizes:?}");
}

#[test]
fn a_stalled_rollout_reports_its_deadline_and_can_roll_back_by_itself() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment("", 5));
    wait(&s, "rolled out", rolled_out("busybox:latest"));
    // An image that is not on the node, and may not be pulled.
    s.kubectl_ok(&["set", "image", "deploy/web", "main=busybox:missing"]);
    let d = wait(&s, "past its deadline", |d| {
        condition(d, "Progressing")["reason"] == "ProgressDeadlineExceeded"
    });
    assert_eq!(condition(&d, "Progressing")["status"], "False");
    // The old pods keep serving: at least replicas - maxUnavailable.
    let ready = ready_images(&s);
    assert!(ready.len() >= 3, "{ready:?}");
    assert!(ready.iter().all(|i| i == "busybox:latest"), "{ready:?}");
    let out = s.kubectl(&["rollout", "status", "deploy/web", "--timeout=20s"]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("exceeded its progress deadline"),
        "{}",
        support::stderr(&out)
    );

    // Opting in to automatic rollback: back to the last complete revision.
    s.kubectl_ok(&[
        "annotate",
        "deploy/web",
        "skiff.dev/rollback-on-failure=true",
    ]);
    let d = wait(&s, "rolled back by itself", rolled_out("busybox:latest"));
    let rolled = condition(&d, "RolledBack");
    assert_eq!(rolled["status"], "True", "{:#}", d["status"]);
    assert!(
        rolled["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Rolled back to revision 1"),
        "{rolled}"
    );
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=DeploymentRollback",
    ]);
    assert!(events.contains("Rolled back to revision 1"), "{events}");
}

/// The names of what is left of the Deployment's ReplicaSets and pods.
fn left(s: &Server) -> String {
    s.kubectl_ok(&["get", "rs,pods", "-l", "app=web", "-o", "name"])
}

#[test]
fn deleting_a_deployment_takes_its_replicasets_and_pods_with_it() {
    let s = server_with_busybox(NODE);
    // Background (kubectl's default): the Deployment goes at once, the
    // garbage collector takes the rest.
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment("", 600));
    wait(&s, "rolled out", rolled_out("busybox:latest"));
    s.kubectl_ok(&["delete", "deploy", "web"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !left(&s).trim().is_empty() {
        assert!(Instant::now() < deadline, "left behind: {}", left(&s));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Foreground: kubectl waits until the dependents are gone, then the
    // Deployment.
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment("", 600));
    wait(&s, "rolled out again", rolled_out("busybox:latest"));
    s.kubectl_ok(&[
        "delete",
        "deploy",
        "web",
        "--cascade=foreground",
        "--timeout=90s",
    ]);
    assert_eq!(
        left(&s).trim(),
        "",
        "dependents outlived a foreground deletion"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !skiff(&s, &["ps", "-q"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "containers are left");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The names of the live pods of app=web.
fn pod_names(s: &Server) -> Vec<String> {
    let v = json(s, &["pods", "-l", "app=web"]);
    let mut names: Vec<String> = v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn a_paused_rollout_waits_for_resume_and_restart_replaces_every_pod() {
    let s = server_with_busybox(NODE);
    skiff(&s, &["tag", "busybox:latest", "busybox:v2"]);
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &deployment("", 600));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(&s, "rolled out", rolled_out("busybox:latest"));

    // Paused: a new image is recorded but nothing rolls.
    let out = s.kubectl_ok(&["rollout", "pause", "deploy/web"]);
    assert!(out.contains("paused"), "{out}");
    let before = pod_names(&s);
    s.kubectl_ok(&["set", "image", "deploy/web", "main=busybox:v2"]);
    let d = wait(&s, "reporting the pause", |d| {
        condition(d, "Progressing")["reason"] == "DeploymentPaused"
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
    });
    assert_eq!(
        condition(&d, "Progressing")["status"],
        "Unknown",
        "{:#}",
        d["status"]
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pod_names(&s), before, "no pod replaced while paused");
    let sets = json(&s, &["rs", "-l", "app=web"]);
    assert_eq!(
        sets["items"].as_array().map(Vec::len),
        Some(1),
        "no new ReplicaSet while paused"
    );

    // Resumed: it rolls to the new image.
    let out = s.kubectl_ok(&["rollout", "resume", "deploy/web"]);
    assert!(out.contains("resumed"), "{out}");
    let out = s.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait(&s, "rolled out to v2", rolled_out("busybox:v2"));

    // Restarted: same image, every pod new, through a new ReplicaSet.
    let before = pod_names(&s);
    let out = s.kubectl_ok(&["rollout", "restart", "deploy/web"]);
    assert!(out.contains("restarted"), "{out}");
    let out = s.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = wait(&s, "restarted", rolled_out("busybox:v2"));
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{:#}",
        d["spec"]["template"]
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = pod_names(&s);
        if now.len() == 4 && now.iter().all(|n| !before.contains(n)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old pods stayed: {before:?} → {now:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let history = s.kubectl_ok(&["rollout", "history", "deploy/web"]);
    assert!(history.contains("3 "), "three revisions: {history}");
}
