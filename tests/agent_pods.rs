//! Pods on the server's own node, run by its agent for real: a pod bound
//! to the node gets a sandbox with its own address and its containers, its
//! status as kubelet writes it (phase, podIP, container states, restarts),
//! restarts under its restartPolicy with back-off, and goes within its grace
//! period when deleted, leaving no container behind.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::{get, server_with_busybox, skiff, wait_pod};

const NODE: &str = "pods-node";

/// Killing the server (and its agent) with SIGKILL and starting it again
/// leaves running pods running: the new agent adopts them, same
/// container, address and restart count.
#[test]
fn a_restarted_agent_adopts_running_pods() {
    let mut s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("kept", "Always", "exec sleep 600"),
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("job", "Never", "exit 0"));
    let before = wait_pod(&s, "kept", "ran", |v| v["status"]["phase"] == "Running");
    wait_pod(&s, "job", "succeeded", |v| {
        v["status"]["phase"] == "Succeeded"
    });
    let job_before = skiff(&s, &["ps", "-aq"]);
    s.restart();
    // Give the new agent time to look at its pods, then compare.
    std::thread::sleep(Duration::from_secs(3));
    let after = wait_pod(&s, "kept", "adopted", |v| v["status"]["phase"] == "Running");
    assert_eq!(
        main_state(&after)["containerID"],
        main_state(&before)["containerID"],
        "the container was replaced: {:#}",
        after["status"]
    );
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(main_state(&after)["restartCount"], 0);
    // The finished pod did not run again.
    assert_eq!(skiff(&s, &["ps", "-aq"]), job_before);
    assert_eq!(get(&s, "job")["status"]["phase"], "Succeeded");
    s.kubectl_ok(&[
        "delete",
        "pod",
        "kept",
        "job",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert_eq!(skiff(&s, &["ps", "-aq"]), "", "containers are left");
}

/// What pods deleted while no agent ran left on the node (a sandbox and
/// containers the agent made, here made by hand with its names and
/// labels) goes when the agent starts and lists its pods.
#[test]
fn orphans_of_gone_pods_are_swept() {
    let mut s = server_with_busybox(NODE);
    skiff(&s, &["sandbox", "create", "k8s_ghost_default_0123-gone"]);
    skiff(
        &s,
        &[
            "run",
            "-d",
            "--sandbox",
            "k8s_ghost_default_0123-gone",
            "--label",
            "io.kubernetes.pod.uid=0123-gone",
            "busybox:latest",
            "sleep",
            "600",
        ],
    );
    // Someone else's container and sandbox are not the agent's to touch.
    skiff(&s, &["sandbox", "create", "mine"]);
    let theirs = skiff(
        &s,
        &[
            "run",
            "-d",
            "--name",
            "theirs",
            "busybox:latest",
            "sleep",
            "600",
        ],
    );
    s.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ls = skiff(&s, &["sandbox", "ls"]);
        let ps = skiff(&s, &["ps", "-aq"]);
        if !ls.contains("k8s_ghost") && ps.lines().count() == 1 {
            assert!(ls.contains("mine"), "{ls}");
            assert!(theirs.starts_with(ps.trim()), "{ps}");
            break;
        }
        assert!(Instant::now() < deadline, "the orphans stay: {ls}\n{ps}");
        std::thread::sleep(Duration::from_millis(200));
    }
    skiff(&s, &["rm", "-f", "theirs"]);
    skiff(&s, &["sandbox", "rm", "mine"]);
}

fn pod_yaml(name: &str, policy: &str, script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {NODE}
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", {script:?}]
"#
    )
}

fn main_state(v: &serde_json::Value) -> &serde_json::Value {
    &v["status"]["containerStatuses"][0]
}

#[test]
fn pods_run_restart_complete_and_go() {
    let s = server_with_busybox(NODE);
    // The node takes pods now.
    let node: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "node", NODE, "-o", "json"])).unwrap();
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready["status"], "True", "{ready}");

    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("web", "Always", "echo hello; exec sleep 600"),
    );
    let v = wait_pod(&s, "web", "ran", |v| v["status"]["phase"] == "Running");
    let ip = v["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(ip.starts_with("10.42."), "{ip}");
    assert_eq!(v["status"]["hostIP"], "127.0.0.1");
    assert!(main_state(&v)["state"]["running"]["startedAt"].is_string());
    assert_eq!(main_state(&v)["ready"], true);
    assert!(main_state(&v)["containerID"]
        .as_str()
        .unwrap()
        .starts_with("skiff://"));
    let wide = s.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.contains("Running") && wide.contains(&ip), "{wide}");

    // A crashing container is restarted, with back-off.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("crash", "Always", "exit 3"),
    );
    let v = wait_pod(&s, "crash", "restarted twice", |v| {
        main_state(v)["restartCount"].as_i64().unwrap_or(0) >= 2
    });
    assert_eq!(
        main_state(&v)["lastState"]["terminated"]["exitCode"],
        3,
        "{:#}",
        v["status"]
    );
    wait_pod(&s, "crash", "backed off", |v| {
        main_state(v)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });

    // Never: it completes, and the pod with it.
    s.kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("once", "Never", "exit 0"));
    let v = wait_pod(&s, "once", "succeeded", |v| {
        v["status"]["phase"] == "Succeeded"
    });
    assert_eq!(main_state(&v)["state"]["terminated"]["reason"], "Completed");
    // Finished, it gives its address back (else completed pods would use
    // up the node's pool); its container stays until the pod is deleted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ls = skiff(&s, &["sandbox", "ls"]);
        if !ls.contains("k8s_once_") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the finished pod keeps its sandbox: {ls}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!skiff(&s, &["ps", "-aq"]).is_empty());
    s.kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("fails", "Never", "exit 4"));
    let v = wait_pod(&s, "fails", "failed", |v| v["status"]["phase"] == "Failed");
    assert_eq!(main_state(&v)["state"]["terminated"]["exitCode"], 4);

    // An image that is not here under Never.
    let missing = pod_yaml("noimage", "Always", "true").replace("busybox:latest", "nosuch:1");
    s.kubectl_stdin(&["apply", "-f", "-"], &missing);
    wait_pod(&s, "noimage", "waited for its image", |v| {
        main_state(v)["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    });

    // Deleted: stopped within its grace period (sh ignores SIGTERM as PID
    // 1), removed, and the pod object goes.
    s.kubectl_ok(&["delete", "pod", "web", "--wait=true", "--timeout=60s"]);
    let out = s.kubectl(&["get", "pod", "web"]);
    assert!(!out.status.success());
    for name in ["crash", "once", "fails", "noimage"] {
        s.kubectl_ok(&["delete", "pod", name, "--wait=true", "--timeout=60s"]);
    }
    assert_eq!(skiff(&s, &["ps", "-aq"]), "", "containers are left");
    assert!(
        !skiff(&s, &["sandbox", "ls"]).contains("k8s_"),
        "sandboxes are left"
    );
}

/// Pods made at once each get a network of their own (their sandboxes'
/// links once shared a name, and only the first pod ran), and reach one
/// another by pod IP.
#[test]
fn pods_made_together_each_get_an_address_and_reach_each_other() {
    let s = server_with_busybox(NODE);
    let manifest: String = (0..4)
        .map(|i| {
            format!(
                "---\n{}",
                pod_yaml(
                    &format!("peer-{i}"),
                    "Always",
                    "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www",
                )
            )
        })
        .collect();
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    let mut ips = Vec::new();
    for i in 0..4 {
        let v = wait_pod(&s, &format!("peer-{i}"), "ran", |v| {
            v["status"]["phase"] == "Running"
        });
        ips.push(v["status"]["podIP"].as_str().unwrap().to_string());
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{ips:?}");
    // peer-0 fetches every other's page by pod IP.
    for (i, ip) in ips.iter().enumerate().skip(1) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = s.kubectl(&[
                "exec",
                "peer-0",
                "--",
                "wget",
                "-qO-",
                &format!("http://{ip}:8080/index.html"),
            ]);
            let page = String::from_utf8_lossy(&out.stdout).to_string();
            if page.trim() == format!("peer-{i}") {
                break;
            }
            assert!(Instant::now() < deadline, "peer-{i} at {ip}: {page:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The pod's resources and security context reach its process as kubelet
/// makes them: CPU shares from the request, the OOM score of a Burstable
/// container from its memory request and the node's memory, the pod's
/// supplementalGroups and fsGroup as groups, and fsGroup owning its
/// volumes (a non-root user reads a Secret of mode 0400 through the group,
/// and files made in an emptyDir take the group).
#[test]
fn resources_and_groups_reach_the_process() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {pw: sesame}
---
apiVersion: v1
kind: Pod
metadata: {name: limits}
spec:
  nodeName: pods-node
  restartPolicy: Never
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    supplementalGroups: [3000]
    fsGroup: 2000
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: creds, secret: {secretName: creds, defaultMode: 0400}}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    resources:
      requests: {cpu: 250m, memory: 64Mi}
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: creds, mountPath: /creds}
    command: ["sh", "-c"]
    args:
    - |
      set -e
      echo adj=$(cat /proc/self/oom_score_adj)
      echo groups=$(id -G)
      echo shares=$(cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight)
      touch /scratch/f
      echo scratch=$(stat -c %g /scratch/f)
      echo secret=$(cat /creds/pw)
"#,
    );
    let v = wait_pod(&s, "limits", "finished", |v| {
        matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let logs = s.kubectl_ok(&["logs", "limits"]);
    assert_eq!(
        v["status"]["phase"], "Succeeded",
        "{logs}\n{:#}",
        v["status"]
    );
    let line = |key: &str| -> String {
        logs.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {logs}"))
            .to_string()
    };
    let mem_kib: i64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let adj = (1000 - (1000 * (64 << 20)) / (mem_kib * 1024)).clamp(3, 999);
    assert_eq!(line("adj"), adj.to_string(), "{logs}");
    let groups: Vec<String> = line("groups").split(' ').map(String::from).collect();
    for g in ["1000", "2000", "3000"] {
        assert!(groups.iter().any(|x| x == g), "{g} in {groups:?}");
    }
    // 256 shares on cgroup v1, the weight they become on v2.
    assert!(["256", "10"].contains(&line("shares").as_str()), "{logs}");
    assert_eq!(line("scratch"), "2000");
    assert_eq!(line("secret"), "sesame");
}

/// A hostNetwork pod runs in the node's own network (and UTS) namespace:
/// its address is the node's, a server it starts is reached on the node's
/// address, its hostname is the node's; deleting it leaves no pinned
/// namespace behind.
#[test]
fn a_host_network_pod_shares_the_nodes_network() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Pod
metadata: {name: on-host}
spec:
  nodeName: pods-node
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c"]
    args:
    - |
      echo host=$(hostname)
      mkdir -p /www && echo served-from-the-node > /www/index.html
      exec httpd -f -p 18090 -h /www
"#,
    );
    let v = wait_pod(&s, "on-host", "ran", |v| v["status"]["phase"] == "Running");
    let host_ip = v["status"]["hostIP"].as_str().unwrap().to_string();
    assert_eq!(v["status"]["podIP"].as_str(), Some(host_ip.as_str()));
    let url = format!("http://{host_ip}:18090/index.html");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = s
            .net()
            .command("curl")
            .args(["-s", "--max-time", "2", &url])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout) == "served-from-the-node\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = s.kubectl_ok(&["logs", "on-host"]);
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert!(logs.contains(&format!("host={hostname}")), "{logs}");
    s.kubectl_ok(&["delete", "pod", "on-host", "--wait=true", "--timeout=60s"]);
    let sandboxes = s.dir().join("run/sandboxes");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pinned = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(sandboxes.to_str().unwrap()))
            .count();
        if pinned == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pinned} sandbox mounts left");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl set image` on a pod: its container is stopped and started again
/// with the new image, whatever the restartPolicy (kubelet restarts a
/// container whose definition changed; the image is the one part of a
/// pod's container that may change).
#[test]
fn a_new_image_restarts_the_container() {
    let s = server_with_busybox(NODE);
    skiff(&s, &["tag", "busybox:latest", "busybox:v2"]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("swap", "Never", "exec sleep 600"),
    );
    wait_pod(&s, "swap", "ran", |v| v["status"]["phase"] == "Running");
    s.kubectl_ok(&["set", "image", "pod/swap", "main=busybox:v2"]);
    let v = wait_pod(&s, "swap", "restarted with the new image", |v| {
        let c = main_state(v);
        c["restartCount"] == 1 && c["state"]["running"].is_object()
    });
    assert_eq!(main_state(&v)["image"], "busybox:v2");
    assert_eq!(v["status"]["phase"], "Running");
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=swap",
    ]);
    assert!(
        events.contains("Container main definition changed, will be restarted"),
        "{events}"
    );
}

/// A later delete that shortens the grace period (or a `--force` one)
/// reaches a pod already stopping: its containers do not wait out the
/// first grace period.
#[test]
fn a_shorter_grace_period_cuts_a_stopping_pod_short() {
    let s = server_with_busybox(NODE);
    let stubborn = |name: &str| {
        pod_yaml(
            name,
            "Always",
            "trap '' TERM; echo up; while true; do sleep 1; done",
        )
        .replace(
            "terminationGracePeriodSeconds: 2",
            "terminationGracePeriodSeconds: 600",
        )
    };
    for name in ["shortened", "forced"] {
        s.kubectl_stdin(&["apply", "-f", "-"], &stubborn(name));
        wait_pod(&s, name, "ran", |v| v["status"]["phase"] == "Running");
        s.kubectl_ok(&["delete", "pod", name, "--wait=false"]);
        let v = get(&s, name);
        assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 600);
    }
    // Shortened: the server takes the shorter period, the agent kills the
    // container when it ends, and the pod goes.
    let first = get(&s, "shortened")["metadata"]["deletionTimestamp"].clone();
    s.kubectl_ok(&[
        "delete",
        "pod",
        "shortened",
        "--wait=false",
        "--grace-period=5",
    ]);
    let shortened = get(&s, "shortened");
    assert_eq!(shortened["metadata"]["deletionGracePeriodSeconds"], 5);
    // As upstream: the deadline moves by the difference (595 s earlier).
    let at =
        |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(
        (at(&first) - at(&shortened["metadata"]["deletionTimestamp"])).num_seconds(),
        595
    );
    s.kubectl_ok(&["wait", "--for=delete", "pod/shortened", "--timeout=60s"]);
    // Forced, after a shortened delete whose period has not ended: the
    // object goes at once; the containers follow.
    s.kubectl_ok(&[
        "delete",
        "pod",
        "forced",
        "--wait=false",
        "--grace-period=300",
    ]);
    s.kubectl_ok(&["delete", "pod", "forced", "--grace-period=0", "--force"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ps = skiff(
            &s,
            &[
                "ps",
                "-q",
                "--filter",
                "label=io.kubernetes.pod.name=forced",
            ],
        );
        if ps.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the forced pod still runs: {ps}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// As kubelet since 1.27: a deleted pod's containers are stopped and its
/// terminal phase written before the object goes, so a finalizer holder
/// (a Job counting its pods) sees how it ended: Succeeded when every
/// container exited 0 on the stop signal, Failed when one had to be killed.
#[test]
fn a_deleted_pod_ends_in_a_terminal_phase() {
    let s = server_with_busybox(NODE);
    let held = |name: &str, script: &str| {
        pod_yaml(name, "Always", script).replace(
            &format!("  name: {name}\n"),
            &format!("  name: {name}\n  finalizers: [\"example.com/hold\"]\n"),
        )
    };
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &held(
            "graceful",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ),
    );
    // PID 1 without a handler ignores SIGTERM: killed when the grace ends.
    s.kubectl_stdin(&["apply", "-f", "-"], &held("killed", "exec sleep 600"));
    for name in ["graceful", "killed"] {
        wait_pod(&s, name, "ran", |v| v["status"]["phase"] == "Running");
        s.kubectl_ok(&["delete", "pod", name, "--wait=false"]);
    }
    let v = wait_pod(&s, "graceful", "succeeded", |v| {
        v["status"]["phase"] == "Succeeded"
    });
    let t = &main_state(&v)["state"]["terminated"];
    assert_eq!(
        (&t["exitCode"], &t["reason"]),
        (&0.into(), &"Completed".into()),
        "{:#}",
        v["status"]
    );
    assert_eq!(main_state(&v)["ready"], false);
    let v = wait_pod(&s, "killed", "failed", |v| v["status"]["phase"] == "Failed");
    let t = &main_state(&v)["state"]["terminated"];
    assert_eq!(
        (&t["exitCode"], &t["reason"]),
        (&137.into(), &"Error".into()),
        "{:#}",
        v["status"]
    );
    // The finalizer's holder lets go: the objects go.
    for name in ["graceful", "killed"] {
        s.kubectl_ok(&[
            "patch",
            "pod",
            name,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ]);
        s.kubectl_ok(&[
            "wait",
            "--for=delete",
            &format!("pod/{name}"),
            "--timeout=60s",
        ]);
    }
    assert_eq!(skiff(&s, &["ps", "-aq"]), "", "containers are left");
}

/// A pod deleted while no agent ran is stopped as any deleted pod is when
/// the agent comes back: its running containers are taken over first, so
/// they get their stop signal and grace period, and the status says how
/// they ended (here exit 0 on SIGTERM: Succeeded), not that they were
/// lost.
#[test]
fn a_pod_deleted_while_the_agent_was_away_ends_as_its_containers_did() {
    let mut s = server_with_busybox(NODE);
    let held = pod_yaml(
        "away",
        "Always",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    )
    .replace(
        "  name: away\n",
        "  name: away\n  finalizers: [\"example.com/hold\"]\n",
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &held);
    let before = wait_pod(&s, "away", "ran", |v| v["status"]["phase"] == "Running");
    // The server comes back without its agent; the pod is deleted then.
    s.restart_with_args(&["--node-name", NODE, "--disable-agent"]);
    s.kubectl_ok(&["delete", "pod", "away", "--wait=false"]);
    s.restart_with_args(&["--node-name", NODE]);
    let v = wait_pod(&s, "away", "ended", |v| {
        matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let t = &main_state(&v)["state"]["terminated"];
    assert_eq!(
        (&v["status"]["phase"], &t["exitCode"], &t["reason"]),
        (&"Succeeded".into(), &0.into(), &"Completed".into()),
        "{:#}",
        v["status"]
    );
    assert_eq!(
        main_state(&v)["containerID"],
        main_state(&before)["containerID"]
    );
    s.kubectl_ok(&[
        "patch",
        "pod",
        "away",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    s.kubectl_ok(&["wait", "--for=delete", "pod/away", "--timeout=60s"]);
    assert_eq!(skiff(&s, &["ps", "-aq"]), "", "containers are left");
}
