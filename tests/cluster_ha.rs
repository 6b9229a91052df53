//! Two servers on one PostgreSQL database and an agent (support/cluster.rs,
//! support/postgres.rs): the `kubernetes` endpoints list both servers; the
//! agent learns them; when the first server is cut off the network, and
//! then killed, the agent goes on through the second (its node stays
//! Ready, its pods run), the second
//! takes the controllers over, a Deployment scaled afterwards gets its new
//! pod running on the agent, and exec reaches the agent's pods.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/containers.rs"]
mod containers;
mod support;

use cluster::{Cluster, Options};
use support::postgres::PgCluster;

fn deployment(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: pinned}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: pinned}}}}
  template:
    metadata: {{labels: {{app: pinned}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: a1}}
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sleep", "3600"]
"#
    )
}

/// The `ip:port`s of the kubernetes endpoints.
fn api_endpoints(c: &Cluster) -> Vec<String> {
    let v = c.json(&["get", "endpoints", "kubernetes"]);
    let mut out = Vec::new();
    for subset in v["subsets"].as_array().into_iter().flatten() {
        let port = &subset["ports"][0]["port"];
        for a in subset["addresses"].as_array().into_iter().flatten() {
            out.push(format!("{}:{port}", a["ip"].as_str().unwrap_or("")));
        }
    }
    out.sort();
    out
}

fn node_lease_renewed(c: &Cluster, node: &str) -> String {
    c.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        node,
        "-o",
        "jsonpath={.spec.renewTime}",
    ])
}

#[test]
fn an_agent_fails_over_to_the_server_left_and_its_pods_go_on() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let url = pg.url(&db);
    let server_args = [
        "--datastore-endpoint",
        url.as_str(),
        "--token",
        "ha-cluster-secret",
        "--leader-elect-lease-duration",
        "6",
        "--leader-elect-renew-deadline",
        "4",
        "--leader-elect-retry-period",
        "1",
    ];
    let mut c = Cluster::start(Options {
        agents: 1,
        server_args: &server_args,
        ..Options::default()
    });
    c.add_server("s2", &server_args);
    c.wait_node_ready("s2", true);
    c.load_busybox();
    // Both servers are the kubernetes Service's endpoints.
    c.wait_for("both servers in the kubernetes endpoints", |c| {
        api_endpoints(c) == ["192.168.80.1:6443", "192.168.80.3:6443"]
    });
    // The agent learns them (it joined through the first).
    let state = c.node("a1").root().join("agent/servers.json");
    c.wait_for("the agent knows both servers", |_| {
        std::fs::read_to_string(&state)
            .is_ok_and(|s| s.contains("192.168.80.1:6443") && s.contains("192.168.80.3:6443"))
    });
    c.apply(&deployment(1));
    c.wait_for("the pinned pod running on a1", |c| {
        c.pods("app=pinned").iter().any(|(_, node, _)| node == "a1")
    });

    // The first server is cut off the network (still running, still on
    // the database): the agent's connections to it go silent, not closed,
    // and the agent carries on through the second.
    c.nodes[0].partition();
    c.use_api("s2");
    let before = node_lease_renewed(&c, "a1");
    c.wait_for("a1's node lease renewed through the second server", |c| {
        node_lease_renewed(c, "a1") != before
    });
    let logs = c.node("a1").logs();
    assert!(
        logs.contains("the API server in use does not answer"),
        "{logs}"
    );
    // Then it goes altogether (killed); the second leads the controllers.
    c.nodes[0].kill();
    let before = node_lease_renewed(&c, "a1");
    c.wait_for("a1's node lease renewed again", |c| {
        node_lease_renewed(c, "a1") != before
    });
    assert_eq!(c.node_ready("a1"), Some(true));
    // The second server leads the controllers now: a scale converges, and
    // the agent runs the new pod.
    c.apply(&deployment(2));
    c.wait_for("two pinned pods running on a1", |c| {
        c.pods("app=pinned")
            .iter()
            .filter(|(_, node, _)| node == "a1")
            .count()
            == 2
    });
    // exec reaches the agent's pods through the server left.
    let pod = c.pods("app=pinned")[0].0.clone();
    let out = c.exec(&pod, &["echo", "still-here"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(support::stdout(&out).trim(), "still-here");
    let logs = c.node("a1").logs();
    assert!(
        logs.contains("the API load balancer moved to another server"),
        "{logs}"
    );
    // The endpoints drop the server that is gone once its Lease expires.
    c.wait_for("only the second server in the endpoints", |c| {
        api_endpoints(c) == ["192.168.80.3:6443"]
    });
}
