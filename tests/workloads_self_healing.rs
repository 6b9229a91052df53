//! Pods that name no node are scheduled onto the server's own node and run
//! there; a ReplicaSet keeps its count of them: a deleted pod is replaced,
//! a scale to zero removes them all, and nothing is left behind. The real
//! agent and kubectl, end to end.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::{server_with_busybox, skiff};
use support::Server;

const NODE: &str = "heal-node";

const RS: &str = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 2
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
        command: ["sleep", "3600"]
"#;

/// The names of the pods of app=web that are Running and not going, once
/// there are `n` of them.
fn running(s: &Server, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = s.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let live: Vec<String> = items
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| p["status"]["phase"] == "Running")
            .filter(|p| p["spec"]["nodeName"] == NODE)
            .map(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if live.len() == n && items.len() == n {
            return live;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} running pods: {:#}\n{}",
            v["items"],
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_deleted_pod_is_replaced_on_the_node() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(&["apply", "-f", "-"], RS);
    let first = running(&s, 2);
    let events = s.kubectl_ok(&["get", "events", "--field-selector", "reason=Scheduled"]);
    assert!(
        events.contains(&format!("to {NODE}")),
        "no Scheduled event: {events}"
    );
    s.kubectl_ok(&["delete", "pod", &first[0], "--wait=true", "--timeout=60s"]);
    let after = running(&s, 2);
    assert!(!after.contains(&first[0]), "{after:?}");
    assert!(after.contains(&first[1]), "the other pod was replaced too");
    let rs = s.kubectl_ok(&["get", "rs", "web", "-o", "jsonpath={.status.readyReplicas}"]);
    assert_eq!(rs, "2");
    s.kubectl_ok(&["scale", "rs", "web", "--replicas=0"]);
    running(&s, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !skiff(&s, &["ps", "-q"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "containers are left");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The controllers and the scheduler run under Leases, as upstream's: the
/// server takes them at start, and again at once after being killed (its
/// identity is the same), so a ReplicaSet made after the restart is filled.
#[test]
fn the_controllers_lead_through_leases_and_again_after_a_kill() {
    let mut s = server_with_busybox(NODE);
    let holder = |s: &Server, name: &str| {
        s.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            "kube-system",
            name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let h = s.kubectl(&[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-scheduler",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        if h.status.success() && !h.stdout.is_empty() {
            break String::from_utf8_lossy(&h.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "no scheduler lease");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(holder(&s, "kube-controller-manager"), before);
    // SIGKILL: no Lease is released.
    s.restart();
    s.kubectl_stdin(&["apply", "-f", "-"], RS);
    running(&s, 2);
    assert_eq!(holder(&s, "kube-scheduler"), before);
}

/// A Service's Endpoints and EndpointSlice follow the ready pods its
/// selector picks, with named target ports resolved per pod.
#[test]
fn a_services_endpoints_follow_its_ready_pods() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(&["apply", "-f", "-"], RS);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n",
    );
    let pods = running(&s, 2);
    let ips = |s: &Server| {
        let mut v: Vec<String> = s
            .kubectl_ok(&[
                "get",
                "endpoints",
                "web",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ])
            .split_whitespace()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let pod_ips = |s: &Server| {
        let mut v: Vec<String> = s
            .kubectl_ok(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "--field-selector",
                "status.phase=Running",
                "-o",
                "jsonpath={.items[*].status.podIP}",
            ])
            .split_whitespace()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ips(&s) != pod_ips(&s) || ips(&s).len() != 2 {
        assert!(
            Instant::now() < deadline,
            "endpoints {:?} != pods {:?}",
            ips(&s),
            pod_ips(&s)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let port = s.kubectl_ok(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[0].ports[0].port}",
    ]);
    assert_eq!(port, "8080");
    let slice = s.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
        "-o",
        "jsonpath={.items[*].endpoints[*].addresses[0]}",
    ]);
    assert_eq!(slice.split_whitespace().count(), 2, "{slice}");
    // One pod goes: the endpoints follow.
    s.kubectl_ok(&["delete", "pod", &pods[0], "--wait=true", "--timeout=60s"]);
    running(&s, 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ips(&s) != pod_ips(&s) || ips(&s).len() != 2 {
        assert!(
            Instant::now() < deadline,
            "endpoints {:?} != pods {:?}",
            ips(&s),
            pod_ips(&s)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The Service asks for PreferClose, then the node gets a zone (only the
    // node changes then): each endpoint carries the zone and a hint for it
    // (the proxy keeps traffic in the zone by them).
    s.kubectl_ok(&[
        "patch",
        "service",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"trafficDistribution":"PreferClose"}}"#,
    ]);
    s.kubectl_ok(&["label", "node", NODE, "topology.kubernetes.io/zone=z1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let zones = s.kubectl_ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].zone} {.items[*].endpoints[*].hints.forZones[*].name}",
        ]);
        if zones.split_whitespace().collect::<Vec<_>>() == ["z1"; 4] {
            break;
        }
        assert!(Instant::now() < deadline, "zones and hints: {zones:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The older ReplicationController keeps its count as a ReplicaSet does.
#[test]
fn a_replication_controller_keeps_its_count() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sleep", "3600"]
"#,
    );
    let first = running(&s, 2);
    let owner = s.kubectl_ok(&[
        "get",
        "pod",
        &first[0],
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(owner, "ReplicationController");
    s.kubectl_ok(&["scale", "rc", "web", "--replicas=3"]);
    running(&s, 3);
    let ready = s.kubectl_ok(&["get", "rc", "web", "-o", "jsonpath={.status.readyReplicas}"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = ready;
    while ready != "3" {
        assert!(Instant::now() < deadline, "readyReplicas {ready}");
        std::thread::sleep(Duration::from_millis(200));
        ready = s.kubectl_ok(&["get", "rc", "web", "-o", "jsonpath={.status.readyReplicas}"]);
    }
}

const GUARDED: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: guarded
spec:
  replicas: 3
  selector:
    matchLabels: {app: guarded}
  template:
    metadata:
      labels: {app: guarded}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sleep", "3600"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: guarded
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: guarded}
"#;

fn pdb_status(s: &Server) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "pdb", "guarded", "-o", "json"])).unwrap();
    v["status"].clone()
}

/// The Running pods of app=guarded, not being deleted.
fn guarded(s: &Server) -> usize {
    let v: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "pods", "-l", "app=guarded", "-o", "json"]))
            .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .count()
}

#[test]
fn a_drain_evicts_only_what_the_disruption_budget_allows() {
    let s = server_with_busybox(NODE);
    let out = s.kubectl_stdin(&["apply", "-f", "-"], GUARDED);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.kubectl_ok(&["rollout", "status", "deploy/guarded", "--timeout=90s"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = pdb_status(&s);
        if st["currentHealthy"] == 3 && st["disruptionsAllowed"] == 1 {
            assert_eq!(st["desiredHealthy"], 2, "{st:#}");
            assert_eq!(st["expectedPods"], 3, "{st:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pdb status never settled: {st:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let table = s.kubectl_ok(&["get", "pdb", "guarded"]);
    assert!(table.contains("ALLOWED DISRUPTIONS"), "{table}");

    // The drain cordons the node and evicts one pod; the replacement cannot
    // land on the cordoned node, so the budget allows no second eviction
    // and the drain gives up at its timeout with two pods still serving.
    let out = s.kubectl(&[
        "drain",
        NODE,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=20s",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    let text = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success(), "the drain broke the budget: {text}");
    assert!(text.contains("evicted"), "{text}");
    assert!(text.contains("disruption budget"), "{text}");
    assert_eq!(guarded(&s), 2, "{text}");
    let node: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "node", NODE, "-o", "json"])).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    // A direct eviction of a Running pod is refused the same way: a 429
    // naming the budget (the Pending replacement needs no budget to go, as
    // upstream).
    let pod = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=guarded",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let eviction = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
    );
    let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
    let out = s.kubectl_stdin(&["create", "--raw", &path, "-f", "-"], &eviction);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "evicted past the budget");
    assert!(
        err.contains("disruption budget") || err.contains("TooManyRequests") || err.contains("429"),
        "{err}"
    );

    // Uncordoned, the replacement lands and the budget is whole again.
    s.kubectl_ok(&["uncordon", NODE]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while guarded(&s) < 3 || pdb_status(&s)["disruptionsAllowed"] != 1 {
        assert!(
            Instant::now() < deadline,
            "never back to three: {:#}",
            pdb_status(&s)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Live pods as (name, node).
type Placed = [(String, String)];

/// Keeps Node `name` (no agent backs it) alive as its kubelet would: the
/// Ready condition posted and its Lease renewed, every second, until
/// `stop` is set.
fn heartbeat(s: &Server, name: &str, stop: &std::sync::atomic::AtomicBool) {
    let status = |now: &str| {
        serde_json::json!({"status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
        .to_string()
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let now = chrono::Utc::now();
        let renew = serde_json::json!({"spec": {"renewTime": now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}});
        s.kubectl(&[
            "patch",
            "lease",
            name,
            "-n",
            "kube-node-lease",
            "--type=merge",
            "-p",
            &renew.to_string(),
        ]);
        let now = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        s.kubectl(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status(&now),
        ]);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Node failure, end to end through the server's flags: two nodes no agent
/// backs, kept alive by the test; one stops renewing its Lease, goes
/// Unknown after `--node-monitor-grace-period`, is tainted unreachable,
/// and its pods are evicted after the tolerations admission gave them
/// (`--default-unreachable-toleration-seconds`): the Deployment's pods all
/// end up on the other node.
#[test]
fn a_node_whose_lease_stops_has_its_pods_replaced_elsewhere() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = Server::start_with_args(&[
        "--disable-agent",
        "--node-monitor-grace-period",
        "6s",
        "--default-unreachable-toleration-seconds",
        "2",
        "--default-not-ready-toleration-seconds",
        "3",
    ]);
    for n in ["sim-a", "sim-b"] {
        s.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{sim: \"yes\"}}}}\n---\n\
                 apiVersion: coordination.k8s.io/v1\nkind: Lease\n\
                 metadata: {{name: {n}, namespace: kube-node-lease}}\n\
                 spec: {{holderIdentity: {n}, leaseDurationSeconds: 40}}\n"
            ),
        );
    }
    let (stop_a, stop_b) = (AtomicBool::new(false), AtomicBool::new(false));
    /// The heartbeats end however the test does (the scope waits for them).
    struct Stop<'a>(&'a AtomicBool, &'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            self.1.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let _stop = Stop(&stop_a, &stop_b);
        scope.spawn(|| heartbeat(&s, "sim-a", &stop_a));
        scope.spawn(|| heartbeat(&s, "sim-b", &stop_b));
        let placed = |pred: &dyn Fn(&Placed) -> bool, what: &str| {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let out = s.kubectl_ok(&["get", "pods", "-l", "app=sim", "-o", "json"]);
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                let live: Vec<(String, String)> = v["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                    .map(|p| {
                        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                        (s(&p["metadata"]["name"]), s(&p["spec"]["nodeName"]))
                    })
                    .collect();
                if pred(&live) {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "never {what}: {live:?}\n{}",
                    s.logs()
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        };
        // Both nodes Ready before the pods come: the scheduler treats a
        // node that has not posted its Ready condition yet as unreachable,
        // and under load one heartbeat thread's first post can come after
        // all four pods were placed on the other node.
        s.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            "node/sim-a",
            "node/sim-b",
            "--timeout=60s",
        ]);
        s.kubectl_stdin(
            &["apply", "-f", "-"],
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: sim}
spec:
  replicas: 4
  selector: {matchLabels: {app: sim}}
  template:
    metadata: {labels: {app: sim}}
    spec:
      nodeSelector: {sim: "yes"}
      containers: [{name: c, image: busybox:latest}]
"#,
        );
        let v = placed(
            &|live| live.len() == 4 && live.iter().any(|(_, n)| n == "sim-a"),
            "4 pods bound, some to sim-a",
        );
        // Admission gave each pod the server's bounded tolerations.
        let tolerations = &v["items"][0]["spec"]["tolerations"];
        let secs = |key: &str| {
            tolerations
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["key"] == key)
                .map(|t| t["tolerationSeconds"].clone())
        };
        assert_eq!(
            secs("node.kubernetes.io/unreachable"),
            Some(2.into()),
            "{tolerations}"
        );
        assert_eq!(
            secs("node.kubernetes.io/not-ready"),
            Some(3.into()),
            "{tolerations}"
        );

        stop_a.store(true, Ordering::Relaxed);
        placed(
            &|live| live.len() == 4 && live.iter().all(|(_, n)| n == "sim-b"),
            "every pod replaced on sim-b",
        );
        let ready = s.kubectl_ok(&[
            "get",
            "node",
            "sim-a",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        assert_eq!(ready, "Unknown");
    });
}
