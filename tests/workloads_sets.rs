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

const STATEFUL: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "echo $(hostname) v${V:-1}; sleep 3600"]
"#;

/// The set's members now: (ordinal, ready, being deleted).
fn members(s: &Server) -> Vec<(u32, bool, bool)> {
    let list = json(s, &["get", "pods", "-l", "app=web", "-o", "json"]);
    let mut out: Vec<(u32, bool, bool)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap();
            let ord = name.strip_prefix("web-").unwrap().parse().unwrap();
            let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            (ord, ready, !p["metadata"]["deletionTimestamp"].is_null())
        })
        .collect();
    out.sort();
    out
}

/// OrderedReady, sampled: the members are always 0..k, and every one but
/// the last is Ready.
fn check_ordered(m: &[(u32, bool, bool)]) {
    for (i, (ord, ready, _)) in m.iter().enumerate() {
        assert_eq!(*ord as usize, i, "a gap in the members: {m:?}");
        if i + 1 < m.len() {
            assert!(
                *ready,
                "web-{} made before web-{ord} was ready: {m:?}",
                i + 1
            );
        }
    }
}

#[test]
fn a_statefulset_comes_up_in_order_with_stable_names() {
    let s = server_with_busybox("sts-node");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], STATEFUL);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(&s, "three ready members", || {
        let m = members(&s);
        check_ordered(&m);
        (m.len() == 3 && m.iter().all(|x| x.1)).then_some(())
    });
    let out = s.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=30s"]);
    assert!(out.contains("roll out complete"), "{out}");
    for i in 0..3 {
        let log = s.kubectl_ok(&["logs", &format!("web-{i}")]);
        assert_eq!(log.trim(), format!("web-{i} v1"));
        let pod = json(&s, &["get", "pod", &format!("web-{i}"), "-o", "json"]);
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(
            pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
            i.to_string()
        );
    }

    // A deleted member comes back under its name.
    let uid = json(&s, &["get", "pod", "web-1", "-o", "json"])["metadata"]["uid"].clone();
    s.kubectl_ok(&["delete", "pod", "web-1", "--wait=false"]);
    wait_for(&s, "web-1 back", || {
        let p = json(&s, &["get", "pods", "-l", "app=web", "-o", "json"]);
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| {
                p["metadata"]["name"] == "web-1"
                    && p["metadata"]["uid"] != uid
                    && p["status"]["phase"] == "Running"
            })
            .then_some(())
    });

    // A new template rolls from the highest ordinal down, one at a time.
    s.kubectl_ok(&["set", "env", "sts/web", "V=2"]);
    let out = s.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=90s"]);
    assert!(out.contains("roll out complete"), "{out}");
    let sts = json(&s, &["get", "sts", "web", "-o", "json"]);
    assert_eq!(
        sts["status"]["currentRevision"], sts["status"]["updateRevision"],
        "{:#}",
        sts["status"]
    );
    assert_eq!(sts["status"]["updatedReplicas"], 3);
    wait_for(&s, "all at v2", || {
        (0..3)
            .all(|i| s.kubectl_ok(&["logs", &format!("web-{i}")]).trim() == format!("web-{i} v2"))
            .then_some(())
    });

    // Scaled down: the highest ordinal goes first, one at a time: the
    // members stay 0..k and only the last may be on its way out.
    s.kubectl_ok(&["scale", "sts/web", "--replicas=1"]);
    wait_for(&s, "one member", || {
        let m = members(&s);
        for (i, (ord, _, leaving)) in m.iter().enumerate() {
            assert_eq!(*ord as usize, i, "a gap in the members: {m:?}");
            assert!(
                !leaving || i + 1 == m.len(),
                "web-{ord} leaves before a higher one: {m:?}"
            );
        }
        (m.len() == 1).then_some(())
    });
}
