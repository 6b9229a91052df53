//! A server and its agents on one machine (support/cluster.rs): every node
//! a real skiff process in a network namespace of its own, joined over a
//! test switch, driven with the real kubectl.
//!
//! - joining: nodes Ready with their own pod subnets; a wrong token, a
//!   forged CA hash and a node name held by another box are refused;
//! - the pod network: a Deployment spread over the nodes, its pods reaching
//!   each other by IP and by Service name over VXLAN (also across a
//!   router) and host-gw, NodePorts on every node;
//! - logs, exec and port-forward for pods on agents;
//! - node credentials: one node cannot read another node's pods' Secrets;
//! - outages: a killed agent's pods are replaced elsewhere and it comes
//!   back clean; a partitioned agent keeps its pods.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/containers.rs"]
mod containers;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use cluster::{Cluster, Options, Topology, API_PORT};
use support::{stderr, stdout};

/// busybox httpd answering with its pod's name, spread over the nodes,
/// behind a NodePort Service.
fn web(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {{matchLabels: {{app: web}}}}}}
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -v -p 8080 -h /www"]
        ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: 30080}}]
"#
    )
}

/// Wait for `n` Running web pods; (name, node, IP) each.
fn running_web(c: &Cluster, n: usize) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    c.wait_for(&format!("{n} running web pods"), |c| {
        found = c.pods("app=web");
        found.len() == n
    });
    found
}

/// What `url` answers from inside `pod` (busybox wget, bounded by
/// `timeout`: the static busybox's `wget -T` crashes).
fn fetch(c: &Cluster, pod: &str, url: &str) -> String {
    let out = c.exec(pod, &["sh", "-c", &format!("timeout 5 wget -qO- {url}")]);
    format!("{}{}", stdout(&out).trim(), stderr(&out).trim())
}

/// Every web pod reaches every other by IP, and the Service by its name
/// in the cluster's `domain`.
fn pods_reach_each_other(c: &Cluster, pods: &[(String, String, String)], domain: &str) {
    for (from, from_node, _) in pods {
        for (to, to_node, ip) in pods {
            if from_node == to_node {
                continue;
            }
            assert_eq!(
                fetch(c, from, &format!("http://{ip}:8080/")),
                *to,
                "{from} on {from_node} → {to} on {to_node} ({ip})\n{}",
                c.logs()
            );
        }
        let names: BTreeSet<String> = pods.iter().map(|p| p.0.clone()).collect();
        let by_name = fetch(c, from, &format!("http://web.default.svc.{domain}/"));
        assert!(names.contains(&by_name), "{from} → web: {by_name:?}");
    }
}

fn nodes_of(pods: &[(String, String, String)]) -> BTreeSet<String> {
    pods.iter().map(|p| p.1.clone()).collect()
}

#[test]
fn agents_join_and_pods_talk_across_nodes_over_vxlan() {
    let c = Cluster::start(Options::default());
    // Ready, each with a subnet of its own, as kubectl shows them.
    let wide = c.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    for n in ["s", "a1", "a2"] {
        let line = wide
            .lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_default();
        assert!(line.contains(" Ready "), "{wide}");
    }
    let v = c.json(&["get", "nodes"]);
    let cidrs: BTreeSet<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["spec"]["podCIDR"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(cidrs.len(), 3, "{cidrs:?}");
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.42.") && c.ends_with(".0/24")),
        "{cidrs:?}"
    );
    let a1 = &v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["metadata"]["name"] == "a1")
        .unwrap();
    assert_eq!(a1["status"]["addresses"][0]["address"], c.node("a1").ip);
    assert!(
        a1["metadata"]["annotations"]["skiff.io/vxlan-mac"].is_string(),
        "{a1}"
    );

    c.load_busybox();
    c.apply(&web(6));
    let pods = running_web(&c, 6);
    assert_eq!(
        nodes_of(&pods).len(),
        3,
        "spread over the three nodes: {pods:?}"
    );
    pods_reach_each_other(&c, &pods, "cluster.local");
    pods_are_in_their_nodes_cgroup_trees(&c);

    // A NodePort on every node, from the server's namespace.
    for n in &c.nodes {
        let out = c
            .server()
            .command("curl")
            .args(["-s", "--max-time", "5"])
            .arg(format!("http://{}:30080/", n.ip))
            .output()
            .unwrap();
        assert!(
            stdout(&out).starts_with("web-"),
            "NodePort on {}: {out:?}",
            n.name
        );
    }

    // logs, exec and port-forward of a pod on an agent the server cannot
    // dial (a firewall on a1 drops the server's connections to its kubelet,
    // as NAT would): through a1's tunnel.
    let a1 = c.node("a1");
    for rule in [
        vec!["add", "table", "inet", "block"],
        vec![
            "add",
            "chain",
            "inet",
            "block",
            "in",
            "{ type filter hook input priority 0; }",
        ],
        vec![
            "add",
            "rule",
            "inet",
            "block",
            "in",
            "ip",
            "saddr",
            c.server().ip.as_str(),
            "tcp",
            "dport",
            "10250",
            "drop",
        ],
    ] {
        support::run_ok(a1.command("nft").args(&rule));
    }
    let direct = c
        .server()
        .command("curl")
        .args(["-sk", "--max-time", "3"])
        .arg(format!("https://{}:10250/", a1.ip))
        .output()
        .unwrap();
    assert!(
        !direct.status.success(),
        "the server still dials a1's kubelet"
    );
    let (on_s, _, _) = pods.iter().find(|p| p.1 == "s").unwrap().clone();
    assert_eq!(stdout(&c.exec(&on_s, &["hostname"])).trim(), on_s);
    let (on_a1, _, _) = pods.iter().find(|p| p.1 == "a1").unwrap().clone();
    assert_eq!(stdout(&c.exec(&on_a1, &["hostname"])).trim(), on_a1);
    let logs = c.kubectl_ok(&["logs", &on_a1]);
    assert!(
        logs.contains("GET") || logs.contains("response"),
        "httpd -v logs: {logs}"
    );
    let mut pf = c
        .server()
        .command(support::KUBECTL)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["port-forward", &format!("pod/{on_a1}"), "18080:8080"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let out = c
            .server()
            .command("curl")
            .args(["-s", "--max-time", "3", "http://127.0.0.1:18080/"])
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break stdout(&out);
        }
        thread::sleep(Duration::from_millis(200));
    };
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(got.trim(), on_a1);

    node_credentials_reach_only_their_own_pods_secrets(&c);
    joins_are_refused_with_a_clear_message(&c);
    // Each node's cgroup tree goes with it.
    let roots: Vec<PathBuf> = c
        .nodes
        .iter()
        .map(|n| cgroup_dir(&c.cgroup_root(&n.name)))
        .collect();
    drop(c);
    for r in roots {
        assert!(!r.exists(), "{} left behind", r.display());
    }
}

/// Where cgroup path `path` is in the memory hierarchy (v1) or the
/// unified one (v2).
fn cgroup_dir(path: &str) -> PathBuf {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        base.join(path)
    } else {
        base.join("memory").join(path)
    }
}

/// Every web pod's cgroup is under its own node's `--cgroup-root`, none
/// under another's.
fn pods_are_in_their_nodes_cgroup_trees(c: &Cluster) {
    let v = c.json(&["get", "pods", "-l", "app=web"]);
    for p in v["items"].as_array().unwrap() {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        let uid = p["metadata"]["uid"].as_str().unwrap();
        let in_tree = |n: &str| {
            let kubepods = cgroup_dir(&c.cgroup_root(n)).join("kubepods");
            ["", "burstable", "besteffort"]
                .iter()
                .any(|class| kubepods.join(class).join(format!("pod{uid}")).is_dir())
        };
        assert!(
            in_tree(node),
            "pod {uid} on {node}: not in its node's cgroup tree"
        );
        for other in c.nodes.iter().filter(|n| n.name != node) {
            assert!(
                !in_tree(&other.name),
                "pod {uid} on {node} is in {}'s tree",
                other.name
            );
        }
    }
}

/// The node authorizer, with a node's real credentials (the kubeconfig
/// its join wrote): a1 reads the Secret of a pod bound to a1, not that of
/// a pod bound to a2.
fn node_credentials_reach_only_their_own_pods_secrets(c: &Cluster) {
    for (n, secret) in [("a1", "mine"), ("a2", "theirs")] {
        c.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}}}\nstringData: {{k: v}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: uses-{secret}}}\nspec:\n  nodeName: {n}\n  \
             containers: [{{name: c, image: busybox:latest, imagePullPolicy: Never, command: [sleep, '3600'], \
             env: [{{name: K, valueFrom: {{secretKeyRef: {{name: {secret}, key: k}}}}}}]}}]\n"
        ));
    }
    let kubeconfig = c.node("a1").root().join("agent/kubelet.kubeconfig");
    let as_a1 = |args: &[&str]| {
        c.server()
            .command(support::KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap()
    };
    let own = as_a1(&["get", "secret", "mine", "-o", "name"]);
    assert!(
        own.status.success(),
        "a1 reads its pod's secret: {}",
        stderr(&own)
    );
    let other = as_a1(&["get", "secret", "theirs"]);
    assert!(!other.status.success(), "a1 read a2's pod's secret");
    assert!(
        stderr(&other).contains("Forbidden") || stderr(&other).contains("forbidden"),
        "{}",
        stderr(&other)
    );
    // NodeRestriction: a node labels itself only as kubelet may, and
    // touches no other Node.
    let role = as_a1(&[
        "label",
        "node",
        "a1",
        "node-role.kubernetes.io/control-plane=true",
    ]);
    assert!(!role.status.success(), "a1 gave itself a role");
    assert!(
        stderr(&role).contains("is not allowed to modify labels"),
        "{}",
        stderr(&role)
    );
    let own = as_a1(&["label", "node", "a1", "example.com/rack=4"]);
    assert!(own.status.success(), "{}", stderr(&own));
    let other = as_a1(&["label", "node", "a2", "example.com/rack=4"]);
    assert!(!other.status.success(), "a1 labelled a2");
    // Nor does it rewrite the status of a pod bound elsewhere.
    let status = as_a1(&[
        "patch",
        "pod",
        "uses-theirs",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"message":"from a1"}}"#,
    ]);
    assert!(!status.status.success(), "a1 patched a2's pod's status");
    assert!(stderr(&status).contains("Forbidden"), "{}", stderr(&status));
    // Nor deletes it (its own, yes).
    let delete = as_a1(&["delete", "pod", "uses-theirs", "--wait=false"]);
    assert!(!delete.status.success(), "a1 deleted a2's pod");
    assert!(
        stderr(&delete).contains("can only delete pods with spec.nodeName set to itself"),
        "{}",
        stderr(&delete)
    );
    let delete = as_a1(&["delete", "pod", "uses-mine", "--wait=false"]);
    assert!(delete.status.success(), "{}", stderr(&delete));
}

/// `skiff agent` from a spare box on the switch, with bad credentials.
fn joins_are_refused_with_a_clear_message(c: &Cluster) {
    let token = std::fs::read_to_string(c.token_path())
        .unwrap()
        .trim()
        .to_string();
    let (hash, secret) = token.trim_start_matches("K10").split_once("::").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A box on the server's namespace's loopback is enough to try a join.
    let server = format!("https://127.0.0.1:{API_PORT}");
    let join = |token: &str, name: &str, data: &str| {
        let out = c
            .server()
            .command(env!("CARGO_BIN_EXE_skiff"))
            .arg("--root")
            .arg(dir.path().join(data))
            .arg("--run-dir")
            .arg(dir.path().join(format!("{data}-run")))
            .args([
                "agent",
                "--server",
                &server,
                "--token",
                token,
                "--node-name",
                name,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "the join succeeded: {}",
            stderr(&out)
        );
        stderr(&out)
    };
    let wrong = join(&format!("K10{hash}::not-the-secret"), "box", "d1");
    assert!(
        wrong.contains("refused to join") && wrong.contains("join token is not valid"),
        "{wrong}"
    );
    let forged = join(&format!("K10{}::{secret}", "0".repeat(64)), "box", "d2");
    assert!(
        forged.contains("presents a cluster CA whose sha256 is"),
        "{forged}"
    );
    let malformed = join("K10nothex::x", "box", "d3");
    assert!(malformed.contains("malformed"), "{malformed}");
    // a1 exists and holds its name: another box (another password) may not
    // take it, even with the right token.
    let stolen = join(&token, "a1", "d4");
    assert!(
        stolen.contains("already registered by another host"),
        "{stolen}"
    );
    // Nothing of the refused boxes was stored.
    let nodes = c.kubectl_ok(&["get", "nodes", "-o", "name"]);
    assert!(!nodes.contains("node/box"), "{nodes}");
    // A box that keeps guessing is held off for a minute (one failure so
    // far from this address: the wrong secret).
    let guess = |i: usize| {
        let out = c
            .server()
            .command("curl")
            .args(["-sk", "--max-time", "10", "-u"])
            .arg(format!("node:K10{hash}::guess-{i}"))
            .args(["-H", "Content-Type: application/json", "-d"])
            .arg(r#"{"nodeName":"box","password":"0123456789abcdef0123456789abcdef","clientRequest":"","servingRequest":""}"#)
            .arg(format!("{server}/v1-skiff/node-certificates"))
            .output()
            .unwrap();
        stdout(&out)
    };
    for i in 0..9 {
        let refused = guess(i);
        assert!(refused.contains("\"code\":401"), "{refused}");
    }
    let held = guess(9);
    assert!(
        held.contains("\"code\":429") && held.contains("too many failed joins from 127.0.0.1"),
        "{held}"
    );
}

#[test]
fn vxlan_carries_pods_across_a_router() {
    let c = Cluster::start(Options {
        agents: 2,
        topology: Topology::Routed,
        ..Default::default()
    });
    // a2 is alone behind the router: no route of host-gw's could reach it.
    c.load_busybox();
    c.apply(&web(3));
    let pods = running_web(&c, 3);
    assert_eq!(nodes_of(&pods).len(), 3, "{pods:?}");
    pods_reach_each_other(&c, &pods, "cluster.local");
}

#[test]
fn host_gw_routes_pods_and_nodes_fail_and_come_back() {
    let mut c = Cluster::start(Options {
        agents: 2,
        server_args: &[
            // Past the agents' 10 s lease renewal, or a healthy node
            // would flap.
            "--node-monitor-grace-period",
            "20s",
            "--default-unreachable-toleration-seconds",
            "2",
            "--default-not-ready-toleration-seconds",
            "2",
            // A plan of the user's: agents take it, and the pod network,
            // from the server.
            "--pod-network",
            "host-gw",
            "--cluster-cidr",
            "10.60.0.0/16",
            "--service-cidr",
            "10.61.0.0/20",
            "--cluster-domain",
            "edge.test",
        ],
        ..Default::default()
    });
    // host-gw: plain routes via the other nodes' addresses, no device.
    let routes = stdout(&c.node("a1").command("ip").args(["route"]).output().unwrap());
    assert!(
        routes.contains(&format!("via {} dev eth0", c.server().ip)),
        "{routes}"
    );
    let links = stdout(&c.node("a1").command("ip").args(["link"]).output().unwrap());
    assert!(!links.contains("skiff.vxlan"), "{links}");
    c.load_busybox();
    c.apply(&web(3));
    let pods = running_web(&c, 3);
    assert_eq!(nodes_of(&pods).len(), 3, "{pods:?}");
    for (_, _, ip) in &pods {
        assert!(ip.starts_with("10.60."), "{pods:?}");
    }
    let svc_ip = c.kubectl_ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(svc_ip.starts_with("10.61."), "{svc_ip}");
    let api_ip = c.kubectl_ok(&[
        "get",
        "service",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(api_ip.trim(), "10.61.0.1");
    let resolv = stdout(&c.exec(&pods[0].0, &["cat", "/etc/resolv.conf"]));
    assert!(
        resolv.contains("nameserver 10.61.0.10") && resolv.contains("svc.edge.test"),
        "{resolv}"
    );
    pods_reach_each_other(&c, &pods, "edge.test");

    // Cut off from the switch for a moment (less than the grace period),
    // a1's pod goes on serving on its node, untouched.
    let (on_a1, _, ip) = pods.iter().find(|p| p.1 == "a1").unwrap().clone();
    c.node("a1").partition();
    thread::sleep(Duration::from_secs(3));
    let out = c
        .node("a1")
        .command("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{ip}:8080/"))
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), on_a1, "a1's pod while a1 is cut off");
    c.node("a1").restore();
    c.wait_node_ready("a1", true);
    let after = running_web(&c, 3);
    assert!(
        after.iter().any(|p| p.0 == on_a1),
        "the pod on a1 was replaced: {after:?}"
    );
    let restarts = c.kubectl_ok(&[
        "get",
        "pod",
        &on_a1,
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts.trim(), "0");

    // Killed: NotReady, its pod replaced on the others; back: Ready, with
    // no duplicate and none of the old pods left on it.
    c.node_mut("a1").kill();
    c.wait_node_ready("a1", false);
    c.wait_for("a1's pod replaced elsewhere", |c| {
        let p = c.pods("app=web");
        p.len() == 3 && p.iter().all(|(_, n, _)| n != "a1")
    });
    // While a1 is away its Node is pointed at the server's address, where
    // another kubelet (the server's node's) answers with a certificate of
    // the same CA: the server refuses to talk to it as a1's.
    let s_ip = c.server().ip.clone();
    c.kubectl_ok(&[
        "patch",
        "node",
        "a1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{s_ip}"}}]}}}}"#),
    ]);
    let proxied = c.kubectl(&["get", "--raw", "/api/v1/nodes/a1/proxy/healthz"]);
    assert!(
        !proxied.status.success() && stderr(&proxied).contains("not for node a1"),
        "the server's kubelet answered as a1's: {proxied:?}"
    );
    let own = c.kubectl_ok(&["get", "--raw", "/api/v1/nodes/s/proxy/healthz"]);
    assert_eq!(own.trim(), "ok");
    c.node_mut("a1").start();
    c.wait_node_ready("a1", true);
    c.wait_for("a1's old pod gone from the API", |c| {
        let out = c.kubectl(&["get", "pod", &on_a1]);
        !out.status.success() && stderr(&out).contains("NotFound")
    });
    c.wait_for("a1 runs none of the old pods", |c| {
        let ps = c.node("a1").skiff(&["ps", "-a", "--format", "{{.Names}}"]);
        !stdout(&ps).contains(&on_a1)
    });
    let final_pods = running_web(&c, 3);
    let names: BTreeSet<&String> = final_pods.iter().map(|p| &p.0).collect();
    assert_eq!(names.len(), 3, "{final_pods:?}");
}

/// The server killed and started again: no pod anywhere restarts, the
/// agents find it again (watches, leases, tunnels). An agent cut off from
/// the server while its pods were scheduled catches up once it is back.
#[test]
fn pods_ride_out_a_server_restart_and_a_cut_off_agent_catches_up() {
    let mut c = Cluster::start(Options::default());
    c.load_busybox();
    c.apply(&web(3));
    let pods = running_web(&c, 3);
    let (on_a1, _, _) = pods.iter().find(|p| p.1 == "a1").unwrap().clone();
    let (_, _, ip_a2) = pods.iter().find(|p| p.1 == "a2").unwrap().clone();

    c.nodes[0].kill();
    // Pods go on serving each other across nodes while no server runs.
    let out = c
        .node("a1")
        .command("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{ip_a2}:8080/"))
        .output()
        .unwrap();
    assert!(
        stdout(&out).starts_with("web-"),
        "a1 → a2's pod with the server down: {out:?}"
    );
    thread::sleep(Duration::from_secs(3));
    c.start_server();
    for n in ["s", "a1", "a2"] {
        c.wait_node_ready(n, true);
    }
    let after = running_web(&c, 3);
    assert_eq!(
        after.iter().map(|p| &p.0).collect::<BTreeSet<_>>(),
        pods.iter().map(|p| &p.0).collect::<BTreeSet<_>>(),
        "the same pods after the restart"
    );
    for (name, _, _) in &after {
        let restarts = c.kubectl_ok(&[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ]);
        assert_eq!(restarts.trim(), "0", "{name} restarted");
    }
    // a1's tunnel is back: exec reaches its pod.
    c.wait_for("exec on a1 after the restart", |c| {
        stdout(&c.exec(&on_a1, &["hostname"])).trim() == on_a1
    });

    // a1 cut off while three more pods are placed, some on it: once back
    // it starts them, and its first pod was never touched.
    c.node("a1").partition();
    c.kubectl_ok(&["scale", "deployment", "web", "--replicas", "6"]);
    c.wait_for("the new pods bound, some to a1", |c| {
        let v = c.json(&["get", "pods", "-l", "app=web"]);
        let items = v["items"].as_array().cloned().unwrap_or_default();
        items.len() == 6
            && items.iter().all(|p| p["spec"]["nodeName"].is_string())
            && items
                .iter()
                .filter(|p| p["spec"]["nodeName"] == "a1")
                .count()
                >= 2
    });
    c.node("a1").restore();
    let all = running_web(&c, 6);
    assert!(all.iter().filter(|p| p.1 == "a1").count() >= 2, "{all:?}");
    let restarts = c.kubectl_ok(&[
        "get",
        "pod",
        &on_a1,
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts.trim(), "0");
}

/// Node certificates that live 45 s (a hidden server flag): the agent
/// renews them with a third of their life left, without a restart of the
/// process or of its pods, and keeps working past the first ones' expiry
/// (leases, kubelet calls through the tunnel on the renewed serving
/// certificate).
#[test]
fn agents_renew_their_certificates_before_they_expire() {
    let mut c = Cluster::start(Options {
        agents: 1,
        server_args: &["--node-certificate-lifetime", "45s"],
        ..Default::default()
    });
    let kubeconfig = c.node("a1").root().join("agent/kubelet.kubeconfig");
    let first = std::fs::read_to_string(&kubeconfig).unwrap();
    let serving = c.node("a1").root().join("agent/kubelet.crt");
    let first_serving = std::fs::read_to_string(&serving).unwrap();
    c.load_busybox();
    c.apply(&web(2));
    let pods = running_web(&c, 2);
    let (on_a1, _, _) = pods.iter().find(|p| p.1 == "a1").unwrap().clone();
    let joined = Instant::now();
    c.wait_for("the agent's certificates renewed", |_| {
        std::fs::read_to_string(&kubeconfig).unwrap() != first
            && std::fs::read_to_string(&serving).unwrap() != first_serving
    });
    // Past the first certificates' end.
    let expiry = Duration::from_secs(50);
    if let Some(left) = expiry.checked_sub(joined.elapsed()) {
        thread::sleep(left);
    }
    c.wait_node_ready("a1", true);
    c.wait_for("exec on a1 past the first certificates' expiry", |c| {
        stdout(&c.exec(&on_a1, &["hostname"])).trim() == on_a1
    });
    let restarts = c.kubectl_ok(&[
        "get",
        "pod",
        &on_a1,
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts.trim(), "0");
    assert!(c.nodes[1].running(), "the agent process ended");
    // The lease is still renewed with the new certificate.
    let renew = || {
        c.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "a1",
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    let before = renew();
    c.wait_for("a1's lease renewed again", |_| renew() != before);
}

/// A node deleted while its agent is away, its subnet given to another
/// node meanwhile: back, it registers with a new subnet, its bridge (made
/// for the old one) is removed once no container uses it, and its pods
/// run on the new subnet, reached from the other nodes.
#[test]
fn a_node_made_again_with_another_subnet_makes_its_bridge_again() {
    let mut c = Cluster::start(Options {
        agents: 1,
        ..Default::default()
    });
    c.load_busybox();
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: pinned}}}}\nspec:\n  nodeName: a1\n  terminationGracePeriodSeconds: 1\n  \
             containers: [{{name: c, image: busybox:latest, imagePullPolicy: Never, \
             command: [sh, -c, 'echo {name} > /i; exec httpd -f -p 8080 -h /']}}]\n"
        )
    };
    let cidr_of =
        |c: &Cluster, n: &str| c.kubectl_ok(&["get", "node", n, "-o", "jsonpath={.spec.podCIDR}"]);
    // A pod on a1 makes its bridge, for a1's first subnet.
    c.apply(&pod("first"));
    c.wait_for("the first pod running", |c| c.pods("app=pinned").len() == 1);
    let old = cidr_of(&c, "a1");
    c.kubectl_ok(&["delete", "pod", "first"]);
    c.wait_for("the first pod gone", |c| {
        c.kubectl_ok(&["get", "pods", "-l", "app=pinned", "-o", "name"])
            .trim()
            .is_empty()
    });
    c.node_mut("a1").kill();
    c.kubectl_ok(&["delete", "node", "a1"]);
    let token = std::fs::read_to_string(c.token_path())
        .unwrap()
        .trim()
        .to_string();
    c.add_agent("a3", &token);
    c.wait_node_ready("a3", true);
    assert_eq!(cidr_of(&c, "a3"), old, "a3 takes the subnet a1 had");
    c.node_mut("a1").start();
    c.wait_node_ready("a1", true);
    let new = cidr_of(&c, "a1");
    assert!(!new.is_empty() && new != old, "{new} after {old}");
    c.apply(&pod("second"));
    let mut ip = String::new();
    c.wait_for("the second pod running", |c| {
        let p = c.pods("app=pinned");
        ip = p.first().map(|p| p.2.clone()).unwrap_or_default();
        p.len() == 1
    });
    let net = new.trim_end_matches(".0/24");
    assert!(
        ip.starts_with(&format!("{net}.")),
        "{ip} not in {new}\n{}",
        c.logs()
    );
    let fetch = |c: &Cluster| {
        let out = c
            .server()
            .command("curl")
            .args(["-s", "--max-time", "3"])
            .arg(format!("http://{ip}:8080/i"))
            .output()
            .unwrap();
        stdout(&out).trim().to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while fetch(&c) != "second" && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(300));
    }
    let show =
        |n: &str, args: &[&str]| stdout(&c.node(n).command("ip").args(args).output().unwrap());
    assert_eq!(
        fetch(&c),
        "second",
        "s routes: {}\na1 routes: {}\na1 addrs: {}",
        show("s", &["route"]),
        show("a1", &["route"]),
        show("a1", &["-4", "addr"])
    );
}
