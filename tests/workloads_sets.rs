//! DaemonSets and StatefulSets on the server's own node, end to end with the
//! real agent and kubectl: a daemon on the node, rolled to a new template
//! and back with `kubectl rollout`; a StatefulSet that comes up in order
//! with stable names.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::server_with_busybox;
use support::Server;

const DAEMON: &str = r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "echo version=${V:-1}; sleep 3600"]
"#;

fn json(s: &Server, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&s.kubectl_ok(args)).unwrap()
}

/// The running pods of `selector`: (name, node, log).
fn running(s: &Server, selector: &str) -> Vec<(String, String, String)> {
    let list = json(s, &["get", "pods", "-l", selector, "-o", "json"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            let log = s.kubectl(&["logs", &name]);
            (
                name,
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                String::from_utf8_lossy(&log.stdout).trim().to_string(),
            )
        })
        .collect()
}

fn wait_for<T>(s: &Server, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "never {what}\n{}", s.logs());
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_daemonset_runs_on_the_node_and_rolls_both_ways() {
    let s = server_with_busybox("ds-node");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], DAEMON);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = running(&s, "app=agent");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0].1, "ds-node");
    assert_eq!(pods[0].2, "version=1");
    let ds = json(&s, &["get", "ds", "agent", "-o", "json"]);
    let st = &ds["status"];
    assert_eq!(
        (
            &st["desiredNumberScheduled"],
            &st["currentNumberScheduled"],
            &st["numberReady"]
        ),
        (&1.into(), &1.into(), &1.into()),
        "{st:#}"
    );

    // A new template: the daemon is replaced; rollout status waits for it.
    s.kubectl_ok(&["set", "env", "ds/agent", "V=2"]);
    let out = s.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for(&s, "version 2 running", || {
        let p = running(&s, "app=agent");
        (p.len() == 1 && p[0].2 == "version=2").then_some(())
    });
    let history = s.kubectl_ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );

    // Undo: the first template comes back, as the newest revision.
    s.kubectl_ok(&["rollout", "undo", "ds/agent"]);
    s.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    wait_for(&s, "version 1 running again", || {
        let p = running(&s, "app=agent");
        (p.len() == 1 && p[0].2 == "version=1").then_some(())
    });
    let revs = json(&s, &["get", "controllerrevisions", "-o", "json"]);
    let mut numbers: Vec<i64> = revs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [2, 3], "{revs:#}");

    // A deleted daemon pod comes back; deleting the DaemonSet takes it.
    let name = running(&s, "app=agent")[0].0.clone();
    s.kubectl_ok(&["delete", "pod", &name, "--wait=false"]);
    wait_for(&s, "the daemon replaced", || {
        let p = running(&s, "app=agent");
        (p.len() == 1 && p[0].0 != name).then_some(())
    });
    s.kubectl_ok(&[
        "delete",
        "ds",
        "agent",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    let left = s.kubectl_ok(&["get", "pods,controllerrevisions", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");
}
