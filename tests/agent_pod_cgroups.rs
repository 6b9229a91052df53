//! A pod's own cgroup, as kubelet's cgroupfs driver lays it out: the
//! pod's containers run under `skiff/kubepods/<qos>/pod<uid>`, which holds
//! the pod's memory limit and CPU quota (the sums of its containers'), and
//! it goes with the pod.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pods::{server_with_busybox, wait_pod};

const NODE: &str = "cgroups-node";

/// The pod cgroup's directory in the hierarchy holding `controller`
/// (cgroup v1), or in the unified one (v2).
fn pod_dir(controller: &str, class: &str, uid: &str) -> PathBuf {
    let base = if PathBuf::from("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup/skiff/kubepods")
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/skiff/kubepods"))
    };
    if class.is_empty() {
        base.join(format!("pod{uid}"))
    } else {
        base.join(class).join(format!("pod{uid}"))
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn a_pod_is_bounded_by_its_own_cgroup() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: bounded}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
    resources:
      requests: {{cpu: 100m, memory: 32Mi}}
      limits: {{cpu: 500m, memory: 64Mi}}
  - name: b
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
    resources:
      limits: {{cpu: 250m, memory: 32Mi}}
"#
        ),
    );
    let v = wait_pod(&s, "bounded", "ran", |v| {
        v["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|c| c["ready"] == true))
    });
    assert_eq!(v["status"]["qosClass"], "Burstable");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    let mem = pod_dir("memory", "burstable", &uid);
    let cpu = pod_dir("cpu", "burstable", &uid);
    let unified = mem == cpu;
    // 64Mi + 32Mi, and 750m of CPU per 100 ms period.
    if unified {
        assert_eq!(read(mem.join("memory.max")), (96u64 << 20).to_string());
        assert_eq!(read(cpu.join("cpu.max")), "75000 100000");
    } else {
        assert_eq!(
            read(mem.join("memory.limit_in_bytes")),
            (96u64 << 20).to_string()
        );
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "75000");
        // 100m + 250m requested (b's request defaults to its limit).
        assert_eq!(read(cpu.join("cpu.shares")), "358");
    }
    // Both containers live below it.
    let leaves = std::fs::read_dir(&mem)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(leaves, 2, "{}", mem.display());

    s.kubectl_ok(&["delete", "pod", "bounded", "--wait=true", "--timeout=60s"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while mem.exists() || cpu.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is left\n{}",
            mem.display(),
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Guaranteed pod's cgroup sits right under kubepods, and the pod runs
/// also where the agent may not lower OOM scores (no CAP_SYS_RESOURCE, as
/// in an unprivileged container): its containers then keep the agent's own
/// score instead of failing to start.
#[test]
fn a_guaranteed_pod_runs_under_kubepods() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: guaranteed}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /proc/self/oom_score_adj; exec sleep 600"]
    resources:
      limits: {{cpu: 100m, memory: 32Mi}}
"#
        ),
    );
    let v = wait_pod(&s, "guaranteed", "ran", |v| {
        v["status"]["phase"] == "Running"
    });
    assert_eq!(v["status"]["qosClass"], "Guaranteed");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    let mem = pod_dir("memory", "", &uid);
    let file = if mem == pod_dir("cpu", "", &uid) {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(read(mem.join(file)), (32u64 << 20).to_string());
    let adj: i32 = s
        .kubectl_ok(&["logs", "guaranteed"])
        .trim()
        .parse()
        .unwrap();
    let privileged = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|c| c & (1 << 24) != 0);
    if privileged {
        assert_eq!(adj, -997);
    } else {
        assert!(adj >= 0, "{adj}");
    }
    s.kubectl_ok(&[
        "delete",
        "pod",
        "guaranteed",
        "--wait=true",
        "--timeout=60s",
    ]);
}

/// Pods outlive their agent by design; `skiff killall` then removes them,
/// their cgroups included.
#[test]
fn killall_removes_the_pod_cgroups_of_its_root() {
    let mut s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: left}}
spec:
  nodeName: {NODE}
  containers:
  - name: a
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
"#
        ),
    );
    let v = wait_pod(&s, "left", "ran", |v| v["status"]["phase"] == "Running");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    let mem = pod_dir("memory", "besteffort", &uid);
    assert!(mem.exists());
    s.kill();
    pods::skiff(&s, &["killall"]);
    assert!(!mem.exists(), "{} is left", mem.display());
}
