//! The kubelet API through the server, with the real kubectl: `logs` (tail,
//! timestamps, follow, previous), `exec` with stdin and the exit code, and
//! what a client may not do (only the API server may call the kubelet).

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use pods::{container, server_with_busybox, wait_pod};

const NODE: &str = "kubelet-node";

fn pod(name: &str, script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", {script:?}]
"#
    )
}

#[test]
fn logs_and_exec_go_through_the_kubelet_api() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("talk", "echo one; echo two >&2; echo three; exec sleep 600"),
    );
    wait_pod(&s, "talk", "ran", |v| v["status"]["phase"] == "Running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let logs = loop {
        let out = s.kubectl_ok(&["logs", "talk"]);
        if out.contains("three") || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // stdout and stderr are read apart: only each one's own order holds.
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(lines.contains(&"two"), "{logs}");
    let out: Vec<&str> = lines.into_iter().filter(|l| *l != "two").collect();
    assert_eq!(out, ["one", "three"]);
    let last = format!("{}\n", logs.lines().last().unwrap());
    assert_eq!(s.kubectl_ok(&["logs", "talk", "--tail=1"]), last);
    let stamped = s.kubectl_ok(&["logs", "talk", "--timestamps", "--tail=1"]);
    let (time, text) = stamped.trim_end().split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{stamped}");
    assert_eq!(format!("{text}\n"), last);
    assert_eq!(
        s.kubectl_ok(&["logs", "talk", "--limit-bytes=3"]),
        logs[..3]
    );

    // exec: stdin in, stdout out, and the exit code back.
    let out = s.kubectl_stdin(
        &["exec", "-i", "talk", "--", "sh", "-c", "tr a-z A-Z"],
        "hello\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");
    // A command that writes and exits at once, again and again: kubectl's
    // WebSocket client drops what comes before it has made its streams
    // ("Unknown stream id"), so the kubelet holds its first frames a moment
    // (exec_ws.rs); stdout, stderr and the exit code all come back.
    for i in 0..10 {
        let out = s.kubectl(&[
            "exec",
            "talk",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "run {i}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "out\n",
            "run {i}: {stderr}"
        );
        assert_eq!(stderr.lines().next(), Some("err"), "run {i}: {stderr}");
    }
    let out = s.kubectl(&["exec", "talk", "--", "no-such-command"]);
    assert!(!out.status.success());

    // top: the kubelet's resource metrics through metrics.k8s.io.
    let top = s.kubectl_ok(&["top", "node"]);
    assert!(top.contains(NODE) && top.contains("CPU(cores)"), "{top}");
    let top = s.kubectl_ok(&["top", "pod", "talk", "--containers"]);
    let row: Vec<&str> = top
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row.first(), Some(&"talk"), "{top}");
    assert_eq!(row.get(1), Some(&"main"), "{top}");
    assert!(row.get(3).is_some_and(|m| m.ends_with("Mi")), "{top}");
    let metrics: serde_json::Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/talk",
    ]))
    .unwrap();
    assert_eq!(metrics["kind"], "PodMetrics");
    assert_eq!(metrics["containers"][0]["name"], "main");

    // nodes/proxy reaches the kubelet's own paths: its Summary API and
    // health; it is listed in discovery.
    let summary: serde_json::Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/stats/summary"),
    ]))
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], NODE);
    assert!(summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0));
    assert!(summary["node"]["fs"]["capacityBytes"].as_u64() > Some(0));
    let talk = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "talk")
        .unwrap_or_else(|| panic!("{summary:#}"));
    assert_eq!(talk["containers"][0]["name"], "main");
    assert!(talk["memory"]["workingSetBytes"].as_u64() > Some(0));
    let healthz = s.kubectl_ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/healthz"),
    ]);
    assert_eq!(healthz.trim(), "ok");
    let resources = s.kubectl_ok(&["get", "--raw", "/api/v1"]);
    assert!(resources.contains("\"nodes/proxy\""), "{resources}");

    // follow ends with the container; previous shows the instance before.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "short",
            "echo run-$(cat /proc/uptime | cut -d' ' -f1); sleep 2; exit 1",
        ),
    );
    wait_pod(&s, "short", "ran", |v| v["status"]["phase"] == "Running");
    let followed = s.kubectl_ok(&["logs", "-f", "short"]);
    assert!(followed.starts_with("run-"), "{followed}");
    let v = wait_pod(&s, "short", "restarted", |v| {
        container(v, "main")["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert!(v["status"]["containerStatuses"].is_array());
    let previous = s.kubectl_ok(&["logs", "short", "--previous"]);
    assert!(previous.starts_with("run-"), "{previous}");

    // A service account (every pod has one's token) may read pods, but
    // not run things in them, forward to them or read their logs: kubectl's
    // WebSocket exec is a GET, authorized as `create`.
    // It may read pods (a Role says so), and nothing more.
    s.kubectl_ok(&[
        "create",
        "role",
        "pod-getter",
        "--verb=get",
        "--resource=pods",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "default-gets-pods",
        "--role=pod-getter",
        "--serviceaccount=default:default",
    ]);
    let token = s
        .kubectl_ok(&["create", "token", "default"])
        .trim()
        .to_string();
    let kubeconfig = s.write_file("empty.yaml", "apiVersion: v1\nkind: Config\n");
    let as_sa = |args: &[&str]| {
        s.net()
            .command(support::KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--server", &s.url(""), "--insecure-skip-tls-verify"])
            .args(["--token", &token])
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_sa(&["get", "pod", "talk"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = format!("/api/v1/nodes/{NODE}/proxy/stats/summary");
    for args in [
        &["exec", "talk", "--", "true"][..],
        &["logs", "talk"][..],
        &["attach", "talk"][..],
        &["get", "--raw", &summary][..],
    ] {
        let out = as_sa(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && err.contains("forbidden"),
            "kubectl {args:?} as a service account: {err}"
        );
    }

    // Nobody but the API server is served by the kubelet API.
    let out = s
        .net()
        .command("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://127.0.0.1:10250/containerLogs/default/talk/main",
        ])
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        code == "000" || code == "403",
        "an anonymous caller got {code}"
    );
}
