//! Horizontal scaling on CPU, end to end with the real agent, its kubelet
//! metrics and kubectl: `kubectl autoscale` on a Deployment whose pods
//! burn CPU scales it out; the same autoscaler through autoscaling/v2 with
//! a behavior that does not wait scales it back in once they stop. And what
//! the API says about autoscalers it refuses.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::time::{Duration, Instant};

use support::Server;

/// Pods asking 100m and held to 200m (the cgroup's CPU quota), each
/// spinning until told to stop: 200% of the request while they burn.
const BURN: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: burn
spec:
  replicas: 1
  selector:
    matchLabels: {app: burn}
  template:
    metadata:
      labels: {app: burn}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "while [ ! -f /tmp/stop ]; do :; done; exec sleep 3600"]
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 200m}
"#;

/// The same autoscaler as `kubectl autoscale` made, through v2, scaling
/// in as soon as the usage drops.
const HPA_V2: &str = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burn
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 0}
"#;

fn json(s: &Server, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&s.kubectl_ok(args)).unwrap()
}

fn wait_for<T>(s: &Server, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}\n{}\n{}\n{}",
            s.kubectl_ok(&["describe", "hpa", "burn"]),
            s.kubectl_ok(&["get", "pods", "-o", "wide"]),
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn replicas(s: &Server) -> i64 {
    json(s, &["get", "deploy", "burn", "-o", "json"])["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1)
}

fn running(s: &Server) -> Vec<String> {
    let list = json(s, &["get", "pods", "-l", "app=burn", "-o", "json"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_hpa_scales_a_cpu_burning_deployment_out_and_back_in() {
    let s = Server::start_with_args(&[
        "--node-name",
        "hpa-node",
        "--horizontal-pod-autoscaler-sync-period",
        "3s",
    ]);
    let archive = containers::build_busybox_archive(s.dir());
    let out = s
        .net()
        .command(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(s.data_dir())
        .arg("--run-dir")
        .arg(s.dir().join("run"))
        .args(["load", "-i", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], BURN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.kubectl_ok(&["rollout", "status", "deploy/burn", "--timeout=90s"]);

    // kubectl 1.32 makes an autoscaling/v1 object.
    let out = s.kubectl_ok(&[
        "autoscale",
        "deploy",
        "burn",
        "--min=1",
        "--max=3",
        "--cpu-percent=50",
    ]);
    assert_eq!(
        out.trim(),
        "horizontalpodautoscaler.autoscaling/burn autoscaled"
    );
    wait_for(&s, "scaled out to 3", || (replicas(&s) == 3).then_some(()));
    // REPLICAS is what the autoscaler saw on its last pass.
    let hpa = wait_for(&s, "the autoscaler seeing 3", || {
        let hpa = json(&s, &["get", "hpa", "burn", "-o", "json"]);
        (hpa["status"]["currentReplicas"] == 3).then_some(hpa)
    });
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    let current = &hpa["status"]["currentMetrics"][0]["resource"]["current"];
    assert!(
        current["averageUtilization"]
            .as_i64()
            .is_some_and(|u| u > 55),
        "{hpa:#}"
    );
    assert!(current["averageValue"].is_string(), "{hpa:#}");
    let table = s.kubectl_ok(&["get", "hpa"]);
    let row = table.lines().nth(1).unwrap_or_default().to_string();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..2], ["burn", "Deployment/burn"], "{table}");
    assert_eq!(cells[2], "cpu:", "{table}");
    assert!(cells[3].ends_with("%/50%"), "{table}");
    assert_eq!(cells[4..7], ["1", "3", "3"], "{table}");
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=SuccessfulRescale",
    ]);
    assert!(
        events.contains(
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{events}"
    );
    // The v1 view of it: the CPU target and figure in v1's own fields.
    let v1: serde_json::Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/burn",
    ]))
    .unwrap();
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50, "{v1:#}");
    assert!(
        v1["status"]["currentCPUUtilizationPercentage"].is_i64(),
        "{v1:#}"
    );
    assert!(v1["spec"].get("metrics").is_none(), "{v1:#}");

    // Through v2, with no wait before scaling in; then the burning stops.
    let out = s.kubectl_stdin(&["apply", "-f", "-"], HPA_V2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = wait_for(&s, "three pods running", || {
        let p = running(&s);
        (p.len() == 3).then_some(p)
    });
    for p in &pods {
        s.kubectl_ok(&["exec", p, "--", "touch", "/tmp/stop"]);
    }
    wait_for(&s, "scaled back in to 1", || {
        (replicas(&s) == 1).then_some(())
    });
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=SuccessfulRescale",
    ]);
    assert!(
        events.contains("New size: 1; reason: All metrics below target"),
        "{events}"
    );
    let hpa = json(&s, &["get", "hpa", "burn", "-o", "json"]);
    let conditions = hpa["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let reason = |t: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| c["reason"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        reason("ScalingActive").as_deref(),
        Some("ValidMetricFound"),
        "{hpa:#}"
    );
    assert!(reason("AbleToScale").is_some(), "{hpa:#}");
}

#[test]
fn refused_autoscalers_say_why() {
    let s = Server::start();
    let bad = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 1
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 0}}
"#;
    let out = s.kubectl_stdin(&["apply", "-f", "-"], bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("The HorizontalPodAutoscaler \"web\" is invalid")
            && err.contains("spec.maxReplicas: Invalid value: 1: must be greater than or equal to `minReplicas`")
            && err.contains("spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"),
        "{err}"
    );
    // A v1 client cannot write status through the annotations v1 keeps
    // it in, and gets its v1 form back.
    let v1 = r#"apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: old
  annotations:
    autoscaling.alpha.kubernetes.io/conditions: '[{"type":"AbleToScale","status":"False","reason":"Forged"}]'
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 2
"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], v1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = json(&s, &["get", "hpa", "old", "-o", "json"]);
    // (The controller writes its own conditions: the target is missing.)
    let forged = stored["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["reason"] == "Forged");
    assert!(!forged, "{stored:#}");
    assert_eq!(
        stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80,
        "no target is CPU at 80%: {stored:#}"
    );
    let seen: serde_json::Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/old",
    ]))
    .unwrap();
    assert_eq!(
        seen["spec"]["targetCPUUtilizationPercentage"], 80,
        "{seen:#}"
    );
    assert_eq!(seen["status"]["currentReplicas"], 0, "{seen:#}");

    // Served in both versions, v2 preferred, under its short name.
    let resources = s.kubectl_ok(&["api-resources", "--api-group=autoscaling"]);
    assert!(
        resources.contains("horizontalpodautoscalers")
            && resources.contains("hpa")
            && resources.contains("autoscaling/v2"),
        "{resources}"
    );
    let v1 = s.kubectl_ok(&["get", "--raw", "/apis/autoscaling/v1"]);
    assert!(v1.contains("horizontalpodautoscalers/status"), "{v1}");
}
