//! The agent's node, as kubectl sees it: `skiff server` registers its own
//! machine as a Node (through the agent's own TLS client and node
//! certificate), with kubelet's capacity, allocatable, node info, labels,
//! conditions and a Lease it renews; flags set its name, labels, taints and
//! reservations; `--disable-agent` leaves the cluster without a node.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use support::Server;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).expect("JSON from kubectl")
}

/// Poll until the node `name` has a status with conditions (bounded; a limit
/// on waiting, not an assertion on time).
fn node_with_status(s: &Server, name: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = s.kubectl(&["get", "node", name, "-o", "json"]);
        if out.status.success() {
            let v = json(&String::from_utf8_lossy(&out.stdout));
            if v["status"]["conditions"].is_array() {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {name} never got a status\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn condition<'a>(node: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} condition: {node:#}"))
}

#[test]
fn the_server_registers_its_node_with_kubelets_status_and_a_lease() {
    let mut s = Server::start_with_args(&[
        "--node-name",
        "edge-1",
        "--node-label",
        "site=lab",
        "--node-taint",
        "dedicated=edge:NoSchedule",
        "--kube-reserved",
        "cpu=100m,memory=64Mi",
        "--system-reserved",
        "memory=32Mi",
    ]);
    let node = node_with_status(&s, "edge-1");
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["site"], "lab");
    assert_eq!(labels["kubernetes.io/hostname"], "edge-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["node-role.kubernetes.io/control-plane"], "true");
    let taints = node["spec"]["taints"].as_array().expect("taints");
    assert_eq!(taints.len(), 1, "{node:#}");
    assert_eq!(taints[0]["key"], "dedicated");
    assert_eq!(taints[0]["effect"], "NoSchedule");

    let status = &node["status"];
    assert_eq!(status["capacity"]["pods"], "110");
    assert!(status["capacity"]["cpu"].is_string());
    let memory = status["capacity"]["memory"].as_str().unwrap();
    assert!(
        ["Ki", "Mi", "Gi"].iter().any(|u| memory.ends_with(u)),
        "{memory}"
    );
    assert!(status["allocatable"]["ephemeral-storage"].is_string());
    let info = &status["nodeInfo"];
    assert_eq!(info["operatingSystem"], "linux");
    assert!(info["containerRuntimeVersion"]
        .as_str()
        .unwrap()
        .starts_with("skiff://"));
    assert!(!info["kernelVersion"].as_str().unwrap().is_empty());
    assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
    let addresses = status["addresses"].as_array().unwrap();
    assert!(
        addresses
            .iter()
            .any(|a| a["type"] == "InternalIP" && a["address"] == "127.0.0.1"),
        "{addresses:?}"
    );
    // Measured for real: whichever way each goes here, status and reason
    // agree, with kubelet's words.
    for (kind, ok, pressed) in [
        (
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "KubeletHasInsufficientMemory",
        ),
        (
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "KubeletHasDiskPressure",
        ),
        (
            "PIDPressure",
            "KubeletHasSufficientPID",
            "KubeletHasInsufficientPID",
        ),
    ] {
        let c = condition(&node, kind);
        let want = if c["status"] == "False" { ok } else { pressed };
        assert_eq!(c["reason"], want, "{c}");
    }
    // Its pod workers run: the node takes pods.
    assert_eq!(condition(&node, "Ready")["status"], "True");
    assert_eq!(condition(&node, "Ready")["reason"], "KubeletReady");

    // Written by the agent, as its node identity, over its own client.
    let full = json(&s.kubectl_ok(&[
        "get",
        "node",
        "edge-1",
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    let managers: Vec<&str> = full["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"skiff-agent"), "{managers:?}");
    let kubeconfig = s.data_dir().join("agent/kubelet.kubeconfig");
    let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{kubeconfig:?}");
    let dir_mode = std::fs::metadata(kubeconfig.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "the agent's directory is private");

    // The Lease, owned by the Node.
    let lease = json(&s.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        "edge-1",
        "-o",
        "json",
    ]));
    assert_eq!(lease["spec"]["holderIdentity"], "edge-1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["uid"],
        node["metadata"]["uid"]
    );
    let wide = s.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    assert!(wide.contains("edge-1"), "{wide}");
    assert!(wide.contains(" Ready "), "{wide}");
    assert!(wide.contains("control-plane"), "{wide}");

    // Another writer's condition stays; a Ready someone else set to
    // Unknown (as the node lifecycle controller does) is put right by the
    // agent's next report, not after its five-minute one.
    s.kubectl_ok(&[
        "patch",
        "node",
        "edge-1",
        "--subresource=status",
        "--type=strategic",
        "-p",
        r#"{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","reason":"RouteCreated","message":"set by a test"},{"type":"Ready","status":"Unknown","reason":"NodeStatusUnknown","message":"Kubelet stopped posting node status."}]}}"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = node_with_status(&s, "edge-1");
        if condition(&n, "Ready")["status"] == "True" {
            assert_eq!(
                condition(&n, "NetworkUnavailable")["reason"],
                "RouteCreated"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Ready was never put right: {n:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // After a restart the same Node is found again, not made anew; a label
    // someone else set stays.
    s.kubectl_ok(&["label", "node", "edge-1", "owner=ops"]);
    let uid = node["metadata"]["uid"].clone();
    s.restart();
    let again = node_with_status(&s, "edge-1");
    assert_eq!(again["metadata"]["uid"], uid);
    assert_eq!(again["metadata"]["labels"]["owner"], "ops");
    assert_eq!(again["metadata"]["labels"]["site"], "lab");
}

#[test]
fn disable_agent_runs_the_control_plane_alone_and_bad_flags_fail_the_start() {
    let s = Server::start_with_args(&["--disable-agent"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = s.kubectl_ok(&["get", "nodes", "-o", "name"]);
    assert_eq!(out.trim(), "", "{out}");
    assert!(!s.data_dir().join("agent").exists());
    drop(s);

    let bin = env!("CARGO_BIN_EXE_skiff");
    for (flag, value, says) in [
        ("--node-name", "Bad_Name", "invalid --node-name"),
        ("--node-taint", "k=v", "invalid --node-taint"),
        ("--node-label", "=v", "invalid --node-label"),
        ("--kube-reserved", "cpu=lots", "--kube-reserved"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(bin)
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .args(["--https-listen-port", "1", "--bind-address", "127.0.0.1"])
            .arg("--write-kubeconfig")
            .arg(dir.path().join("kc.yaml"))
            .args([flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

/// The agent's own credentials reach only what is its node's: its Node and
/// Lease, and the pods bound to it (upstream's node authorizer and
/// NodeRestriction).
#[test]
fn a_node_identity_writes_only_its_own_node_lease_and_pods() {
    let s = Server::start_with_args(&["--node-name", "self-node"]);
    node_with_status(&s, "self-node");
    let as_node = s
        .data_dir()
        .join("agent/kubelet.kubeconfig")
        .to_string_lossy()
        .into_owned();
    let node_kubectl = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", as_node.as_str()];
        all.extend_from_slice(args);
        s.kubectl(&all)
    };
    for (name, node) in [("mine", "self-node"), ("theirs", "other-node")] {
        s.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: nosuch:1\n    imagePullPolicy: Never\n"
            ),
        );
    }
    let out = node_kubectl(&["delete", "pod", "theirs", "--wait=false"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"node "self-node" can only delete pods with spec.nodeName set to itself"#),
        "{err}"
    );
    let out = node_kubectl(&[
        "patch",
        "pod",
        "theirs",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can only update pod status for pods"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = node_kubectl(&["label", "node", "self-node", "x=y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = s.kubectl_stdin(
        &["--kubeconfig", &as_node, "apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: impostor\n",
    );
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr)
            .contains(r#"node "self-node" is not allowed to modify node "impostor""#),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    let out = node_kubectl(&["get", "secrets", "-A"]);
    assert!(!out.status.success(), "a node lists secrets");
    // Its own pod it may delete (the agent does, once it has stopped it).
    let out = node_kubectl(&["delete", "pod", "mine", "--grace-period=0", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The agent's trouble does not stop the control plane beside it: with its
/// image store unusable the server keeps serving and the agent retries,
/// and registers once the store is back.
#[test]
fn an_agent_that_cannot_start_leaves_the_server_serving() {
    let mut s = Server::start_with_args(&["--node-name", "flaky-node"]);
    node_with_status(&s, "flaky-node");
    s.kill();
    let blobs = s.data_dir().join("images/blobs/sha256");
    let aside = s.data_dir().join("images/blobs/sha256.aside");
    std::fs::rename(&blobs, &aside).unwrap();
    std::fs::write(&blobs, "not a directory").unwrap();
    s.restart();
    std::thread::sleep(Duration::from_secs(2));
    s.kubectl_ok(&["get", "ns", "default"]);
    assert!(s.logs().contains("starting the agent"), "{}", s.logs());
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(&aside, &blobs).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.logs().matches("registered the node").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the agent never recovered:\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    s.kubectl_ok(&["get", "ns", "default"]);
}
