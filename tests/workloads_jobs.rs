//! Jobs on the server's own node, end to end with the real agent and
//! kubectl: completions with parallelism, a failing Job that stops at its
//! backoffLimit, and an Indexed Job whose pods see their index.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::server_with_busybox;
use support::Server;

const NODE: &str = "job-node";

fn job(name: &str, extra_spec: &str, script: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", {script:?}]
"#
    )
}

fn get(s: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&s.kubectl_ok(&["get", "job", name, "-o", "json"])).unwrap()
}

fn wait_job(
    s: &Server,
    name: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let j = get(s, name);
        if f(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {name} never {what}: {:#}\n{}",
            j["status"],
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn condition(j: &serde_json::Value, kind: &str) -> bool {
    j["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

#[test]
fn jobs_complete_fail_at_their_limit_and_index_their_pods() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &job("five", "  completions: 5\n  parallelism: 2", "sleep 1"),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &job("failing", "  backoffLimit: 1", "exit 3"),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &job(
            "indexed",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
            "echo index=$JOB_COMPLETION_INDEX host=$(hostname)",
        ),
    );

    // completions=5, parallelism=2: never more than two at once, five
    // successes, Complete.
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let j = get(&s, "five");
        most = most.max(j["status"]["active"].as_i64().unwrap_or(0));
        if condition(&j, "Complete") {
            assert_eq!(j["status"]["succeeded"], 5, "{:#}", j["status"]);
            assert!(j["status"]["completionTime"].is_string());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never complete: {:#}",
            j["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most <= 2, "{most} pods ran at once");
    let out = s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/five",
        "--timeout=10s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    // Every pod was counted and released: no tracking finalizer is left.
    let pods = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "job-name=five",
        "-o",
        "jsonpath={.items[*].metadata.finalizers}",
    ]);
    assert!(!pods.contains("job-tracking"), "{pods}");

    // backoffLimit 1: two failures, then Failed; no third pod.
    let j = wait_job(&s, "failing", "failed", |j| condition(j, "Failed"));
    assert_eq!(j["status"]["failed"], 2, "{:#}", j["status"]);
    let reason = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .map(|c| c["reason"].clone());
    assert_eq!(reason, Some(serde_json::json!("BackoffLimitExceeded")));
    let count = s.kubectl_ok(&["get", "pods", "-l", "job-name=failing", "-o", "name"]);
    assert_eq!(count.lines().count(), 2, "{count}");

    // Indexed: each pod sees its index and is named for it.
    let j = wait_job(&s, "indexed", "complete", |j| condition(j, "Complete"));
    assert_eq!(j["status"]["completedIndexes"], "0-2");
    let names = s.kubectl_ok(&["get", "pods", "-l", "job-name=indexed", "-o", "name"]);
    for i in 0..3 {
        let pod = names
            .lines()
            .find(|n| n.starts_with(&format!("pod/indexed-{i}-")))
            .unwrap_or_else(|| panic!("no pod for index {i}: {names}"));
        let log = s.kubectl_ok(&["logs", pod]);
        assert_eq!(log.trim(), format!("index={i} host=indexed-{i}"));
    }
}
