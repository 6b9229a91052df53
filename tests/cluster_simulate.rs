//! `skiff agent --simulate N`: N simulated nodes in one process beside a
//! control-plane-only server (support::Server, `--disable-agent`). The
//! nodes join with their own credentials, turn Ready and keep Leases; pods
//! pinned to them become Running with addresses from their nodes' pod
//! subnets (status-only fakes: no container runs), go when scaled away,
//! and the nodes turn NotReady once the simulator stops.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Server, PORT};

const NODES: usize = 5;
const WAIT: Duration = Duration::from_secs(120);

/// The simulator's process, killed (by its PID) when dropped.
struct Simulator {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Simulator {
    fn start(server: &Server, dir: &std::path::Path) -> Simulator {
        let log = dir.join("simulator.log");
        let out = fs::File::create(&log).unwrap();
        let child = server
            .net()
            .command(env!("CARGO_BIN_EXE_skiff"))
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .args([
                "agent",
                "--simulate",
                &NODES.to_string(),
                "--node-name",
                "box",
            ])
            .arg("--server")
            .arg(format!("https://127.0.0.1:{PORT}"))
            .arg("--token-file")
            .arg(server.data_dir().join("server").join("token"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Simulator {
            child: Some(child),
            log,
        }
    }

    fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and wait for it to end.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- simulator ---\n{}", self.logs());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn json(server: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&server.kubectl_ok(&all)).unwrap()
}

fn wait_for(sim: &Simulator, what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(
            Instant::now() < deadline,
            "never: {what}\n--- simulator ---\n{}",
            sim.logs()
        );
        thread::sleep(Duration::from_millis(250));
    }
}

fn names() -> Vec<String> {
    (0..NODES).map(|i| format!("box-sim-{i}")).collect()
}

/// Each simulated node's Ready status and pod CIDR.
fn nodes(server: &Server) -> Vec<(String, String, String)> {
    let v = json(server, &["get", "nodes", "-l", "skiff.io/simulated=true"]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .and_then(|c| c["status"].as_str())
                .unwrap_or("")
                .to_string();
            (
                n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                ready,
                n["spec"]["podCIDR"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn deployment(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: fake}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: fake}}}}
  template:
    metadata: {{labels: {{app: fake}}}}
    spec:
      nodeSelector: {{skiff.io/simulated: "true"}}
      containers:
      - {{name: pause, image: "registry.k8s.io/pause:3.10"}}
"#
    )
}

#[test]
fn simulated_nodes_run_fake_pods_and_go_not_ready_when_stopped() {
    let server = Server::start_with_args(&["--disable-agent", "--node-monitor-grace-period", "8s"]);
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Simulator::start(&server, dir.path());

    wait_for(&sim, "5 simulated nodes Ready", || {
        let n = nodes(&server);
        n.len() == NODES && n.iter().all(|(_, ready, _)| ready == "True")
    });
    let registered = nodes(&server);
    let mut got: Vec<String> = registered.iter().map(|n| n.0.clone()).collect();
    got.sort();
    assert_eq!(got, names());
    let cidrs: BTreeSet<&String> = registered.iter().map(|n| &n.2).collect();
    assert_eq!(cidrs.len(), NODES, "a pod subnet each: {registered:?}");
    // Each with its Lease, held by itself and renewed.
    for name in names() {
        let lease = json(&server, &["get", "lease", "-n", "kube-node-lease", &name]);
        assert_eq!(lease["spec"]["holderIdentity"], name.as_str(), "{lease}");
        assert!(lease["spec"]["renewTime"].is_string(), "{lease}");
    }
    // The node authorizer sees each as itself: its own credentials.
    let kubeconfig = dir
        .path()
        .join("data/agent/sim/box-sim-0/kubelet.kubeconfig");
    assert!(kubeconfig.exists());

    server.kubectl_stdin_ok(&["apply", "-f", "-"], &deployment(10));
    let mut pods: Vec<(String, String, String)> = Vec::new();
    wait_for(&sim, "10 fake pods Running with addresses", || {
        let v = json(&server, &["get", "pods", "-l", "app=fake"]);
        pods = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string())
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["spec"]["nodeName"].as_str().unwrap().to_string(),
                    p["status"]["podIP"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        pods.len() == 10
    });
    let ips: BTreeSet<&String> = pods.iter().map(|p| &p.2).collect();
    assert_eq!(ips.len(), 10, "distinct addresses: {pods:?}");
    for (pod, node, ip) in &pods {
        let cidr = &registered.iter().find(|n| &n.0 == node).unwrap().2;
        let prefix = cidr.trim_end_matches("0/24");
        assert!(
            cidr.ends_with(".0/24") && ip.starts_with(prefix),
            "{pod} on {node} ({cidr}) has {ip}"
        );
    }
    let on: BTreeSet<&String> = pods.iter().map(|p| &p.1).collect();
    assert!(on.len() > 1, "spread over the nodes: {pods:?}");
    // A fake says it is one.
    let one = json(&server, &["get", "pod", &pods[0].0]);
    let id = one["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default();
    assert!(id.starts_with("simulated://"), "{one}");
    assert_eq!(
        one["status"]["conditions"].as_array().map(|c| c
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")),
        Some(true)
    );

    server.kubectl_ok(&["scale", "deployment", "fake", "--replicas", "0"]);
    wait_for(&sim, "the fake pods gone", || {
        server
            .kubectl_ok(&["get", "pods", "-l", "app=fake", "-o", "name"])
            .trim()
            .is_empty()
    });

    sim.stop();
    wait_for(&sim, "the simulated nodes NotReady", || {
        let n = nodes(&server);
        n.len() == NODES && n.iter().all(|(_, ready, _)| ready != "True")
    });
}
