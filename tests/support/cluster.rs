//! A cluster on one machine: a `skiff server` and N `skiff agent`s, each a
//! real process with its own data dir, run dir and network namespace; the
//! nodes' namespaces are joined by veths to a test switch (a bridge in a
//! namespace of its own), or, in the routed topology, to two switches with
//! a router namespace between them (the nodes of one subnet cannot reach
//! the other's pod routes directly: only VXLAN crosses).
//!
//! ```text
//! OneLink:  s 192.168.80.1, a1 .2, a2 .3 ... on switch br0 (192.168.80.0/24)
//! Routed:   s .81.1 and a1 .81.2 on br-a; a2 .82.2 on br-b; router .81.254/.82.254
//! ```
//!
//! A node can be stopped (SIGTERM), killed (SIGKILL: its pods stay, as
//! they would on a real box), started again, and cut off from the switch
//! (its port set down) and restored. Everything goes on drop: processes by
//! their PIDs, the pods' leftovers through `skiff killall` on each root,
//! the namespaces and the temporary directory. Nothing touches the host's
//! own network namespace.
//!
//! Include with `mod support; #[path = "support/containers.rs"] mod
//! containers; #[path = "support/cluster.rs"] mod cluster;`.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{run_ok, stderr, stdout, TestNet, KUBECTL};

pub const API_PORT: u16 = 6443;
const WAIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    OneLink,
    Routed,
}

/// A node: its namespace, address, directories and process.
pub struct Node {
    pub name: String,
    pub ip: String,
    pub net: TestNet,
    /// The switch port of its veth (in the switch's namespace).
    port: String,
    switch_ns: String,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
    args: Vec<String>,
}

impl Node {
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn log(&self, n: u32) -> PathBuf {
        self.dir.join(format!("skiff-{n}.log"))
    }

    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                format!(
                    "--- {} (start {n}) ---\n{}\n",
                    self.name,
                    fs::read_to_string(self.log(n)).unwrap_or_default()
                )
            })
            .collect()
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let log = fs::File::create(self.log(self.starts)).expect("log file");
        let mut cmd = self.net.command(env!("CARGO_BIN_EXE_skiff"));
        cmd.arg("--root")
            .arg(self.root())
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(&self.args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")));
    }

    /// SIGKILL, as a power cut would: its pods keep running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for it to end (SIGKILL after a while).
    pub fn stop(&mut self) {
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

    pub fn start(&mut self) {
        self.spawn();
    }

    /// Cut the node off the switch, and put it back.
    pub fn partition(&self) {
        run_ok(Command::new("ip").args(["-n", &self.switch_ns, "link", "set", &self.port, "down"]));
    }

    pub fn restore(&self) {
        run_ok(Command::new("ip").args(["-n", &self.switch_ns, "link", "set", &self.port, "up"]));
    }

    /// The skiff CLI on this node's engine (its root and run dir).
    pub fn skiff(&self, args: &[&str]) -> Output {
        self.net
            .command(env!("CARGO_BIN_EXE_skiff"))
            .arg("--root")
            .arg(self.root())
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(args)
            .output()
            .expect("run skiff")
    }

    /// A command run in this node's network namespace.
    pub fn command(&self, program: &str) -> Command {
        self.net.command(program)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if self.root().join("containers").exists() {
            let _ = self
                .net
                .command(env!("CARGO_BIN_EXE_skiff"))
                .arg("--root")
                .arg(self.root())
                .arg("--run-dir")
                .arg(self.run_dir())
                .arg("killall")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A server and its agents.
pub struct Cluster {
    /// Dropped first: agents, then the server (its node is nodes[0]).
    pub nodes: Vec<Node>,
    switches: Vec<TestNet>,
    pub dir: tempfile::TempDir,
    pub topology: Topology,
    /// `Options::node_args`, for agents added later.
    node_args: Vec<String>,
    /// The node whose namespace kubectl runs in (a server: the first
    /// unless `use_api` says another).
    api: usize,
}

/// How a cluster is made.
pub struct Options<'a> {
    pub agents: usize,
    pub topology: Topology,
    /// Flags for `skiff server` (after its own).
    pub server_args: &'a [&'a str],
    /// Flags for every `skiff agent` and the server's own node.
    pub node_args: &'a [&'a str],
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            agents: 2,
            topology: Topology::OneLink,
            server_args: &[],
            node_args: &[],
        }
    }
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

impl Cluster {
    pub fn start(opts: Options<'_>) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("skiff-cluster-")
            .tempdir()
            .expect("temp dir");
        let mut c = Cluster {
            nodes: Vec::new(),
            switches: Vec::new(),
            dir,
            topology: opts.topology,
            node_args: opts.node_args.iter().map(|s| s.to_string()).collect(),
            api: 0,
        };
        // Switches: one, or two with a router between them.
        let subnets: Vec<(&str, &str)> = match opts.topology {
            Topology::OneLink => vec![("br0", "192.168.80")],
            Topology::Routed => vec![("br-a", "192.168.81"), ("br-b", "192.168.82")],
        };
        let sw = TestNet::new();
        for (br, subnet) in &subnets {
            ip(&["-n", sw.name(), "link", "add", br, "type", "bridge"]);
            ip(&["-n", sw.name(), "link", "set", br, "up"]);
            if opts.topology == Topology::Routed {
                // The switch namespace routes between its two bridges.
                ip(&[
                    "-n",
                    sw.name(),
                    "addr",
                    "add",
                    &format!("{subnet}.254/24"),
                    "dev",
                    br,
                ]);
            }
        }
        if opts.topology == Topology::Routed {
            run_ok(sw.command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        }
        c.switches.push(sw);
        for i in 0..=opts.agents {
            let name = if i == 0 {
                "s".to_string()
            } else {
                format!("a{i}")
            };
            // Routed: the last agent alone on the second subnet.
            let on_b = opts.topology == Topology::Routed && i == opts.agents && i > 0;
            let (br, subnet) = subnets[usize::from(on_b)];
            let host = if on_b { 2 } else { i + 1 };
            let node_ip = format!("{subnet}.{host}");
            let (net, port) = c.plug(&name, br, subnet, &node_ip);
            let node_dir = c.dir.path().join(&name);
            fs::create_dir_all(&node_dir).expect("node dir");
            let mut args: Vec<String> = Vec::new();
            let server_ip = c.nodes.first().map(|s: &Node| s.ip.clone());
            match &server_ip {
                None => {
                    args.extend([
                        "server".into(),
                        "--https-listen-port".into(),
                        API_PORT.to_string(),
                    ]);
                    args.extend(["--advertise-address".into(), node_ip.clone()]);
                    args.push("--write-kubeconfig".into());
                    args.push(c.dir.path().join("kubeconfig.yaml").display().to_string());
                    args.extend(opts.server_args.iter().map(|s| s.to_string()));
                }
                Some(server) => {
                    args.extend([
                        "agent".into(),
                        "--server".into(),
                        format!("https://{server}:{API_PORT}"),
                    ]);
                    args.push("--token-file".into());
                    args.push(c.token_path().display().to_string());
                }
            }
            args.extend(["--node-name".into(), name.clone()]);
            args.push("--pod-log-dir".into());
            args.push(node_dir.join("pod-logs").display().to_string());
            args.extend(["--cgroup-root".into(), c.cgroup_root(&name)]);
            args.extend(opts.node_args.iter().map(|s| s.to_string()));
            let mut node = Node {
                name,
                ip: node_ip,
                net,
                port,
                switch_ns: c.switches[0].name().to_string(),
                dir: node_dir,
                child: None,
                starts: 0,
                args,
            };
            node.spawn();
            c.nodes.push(node);
            if i == 0 {
                c.wait_api();
            }
        }
        let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
        for n in &names {
            c.wait_node_ready(n, true);
        }
        c
    }

    /// A namespace for node `name` at `node_ip`, its eth0 a veth to a
    /// port of switch `br`: the namespace and the port's name.
    fn plug(&self, name: &str, br: &str, subnet: &str, node_ip: &str) -> (TestNet, String) {
        let net = TestNet::new();
        let port = format!("p-{name}");
        let sw = self.switches[0].name();
        ip(&[
            "-n",
            net.name(),
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            sw,
        ]);
        ip(&["-n", sw, "link", "set", &port, "master", br]);
        ip(&["-n", sw, "link", "set", &port, "up"]);
        let cidr = format!("{node_ip}/24");
        ip(&["-n", net.name(), "addr", "add", &cidr, "dev", "eth0"]);
        ip(&["-n", net.name(), "link", "set", "eth0", "up"]);
        if self.topology == Topology::Routed {
            let via = format!("{subnet}.254");
            ip(&["-n", net.name(), "route", "add", "default", "via", &via]);
        }
        (net, port)
    }

    /// Node `name`'s cgroup root: its own, as each node of a real cluster
    /// has its own host (`skiff/test-<cluster dir>-<node>`).
    pub fn cgroup_root(&self, name: &str) -> String {
        let dir = self
            .dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x");
        format!("skiff/test-{}-{name}", dir.trim_start_matches('.'))
    }

    /// Start one more agent, `name`, joining with `token` (and the
    /// cluster's `node_args`) on the switch; it is not waited for.
    pub fn add_agent(&mut self, name: &str, token: &str) -> &mut Node {
        assert_eq!(
            self.topology,
            Topology::OneLink,
            "add_agent: one switch only"
        );
        let lead = vec![
            "agent".into(),
            "--server".into(),
            format!("https://{}:{API_PORT}", self.server().ip),
            "--token".into(),
            token.into(),
        ];
        self.add_node(name, |_| lead)
    }

    /// Start one more server, `name`, with `server_args` (a datastore the
    /// first server shares, and its token) on the switch, and wait for its
    /// API. Its own kubeconfig is `<name>-kubeconfig.yaml`; the first
    /// server's works against it too (one CA).
    pub fn add_server(&mut self, name: &str, server_args: &[&str]) -> &mut Node {
        let kubeconfig = self.dir.path().join(format!("{name}-kubeconfig.yaml"));
        let config = kubeconfig.display().to_string();
        self.add_node(name, |ip| {
            let mut lead: Vec<String> = vec![
                "server".into(),
                "--https-listen-port".into(),
                API_PORT.to_string(),
                "--advertise-address".into(),
                ip.into(),
                "--write-kubeconfig".into(),
                config,
            ];
            lead.extend(server_args.iter().map(|s| s.to_string()));
            lead
        });
        let idx = self.nodes.len() - 1;
        self.wait_api_of(idx, &kubeconfig);
        &mut self.nodes[idx]
    }

    /// A node `name` plugged into the switch at the next address, run as
    /// `lead(its address)` followed by the node flags; started, not waited
    /// for.
    fn add_node(&mut self, name: &str, lead: impl FnOnce(&str) -> Vec<String>) -> &mut Node {
        let subnet = "192.168.80";
        let node_ip = format!("{subnet}.{}", self.nodes.len() + 1);
        let (net, port) = self.plug(name, "br0", subnet, &node_ip);
        let node_dir = self.dir.path().join(name);
        fs::create_dir_all(&node_dir).expect("node dir");
        let mut args = lead(&node_ip);
        args.extend([
            "--node-name".into(),
            name.into(),
            "--pod-log-dir".into(),
            node_dir.join("pod-logs").display().to_string(),
            "--cgroup-root".into(),
            self.cgroup_root(name),
        ]);
        args.extend(self.node_args.iter().cloned());
        let mut node = Node {
            name: name.to_string(),
            ip: node_ip,
            net,
            port,
            switch_ns: self.switches[0].name().to_string(),
            dir: node_dir,
            child: None,
            starts: 0,
            args,
        };
        node.spawn();
        self.nodes.push(node);
        self.nodes.last_mut().expect("just pushed")
    }

    /// Run kubectl from node `name`'s namespace (a server's) from now on.
    pub fn use_api(&mut self, name: &str) {
        self.api = self
            .nodes
            .iter()
            .position(|n| n.name == name)
            .expect("no such node");
    }

    pub fn token_path(&self) -> PathBuf {
        self.nodes[0].root().join("server").join("token")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    pub fn server(&self) -> &Node {
        &self.nodes[0]
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .expect("no such node")
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("no such node")
    }

    pub fn logs(&self) -> String {
        self.nodes.iter().map(Node::logs).collect()
    }

    /// Start the server again (after `nodes[0].kill()` or `.stop()`) and
    /// wait for its API.
    pub fn start_server(&mut self) {
        self.nodes[0].spawn();
        self.wait_api();
    }

    fn wait_api(&mut self) {
        let kubeconfig = self.kubeconfig();
        self.wait_api_of(0, &kubeconfig);
    }

    fn wait_api_of(&mut self, idx: usize, kubeconfig: &Path) {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self.nodes[idx]
                .net
                .command("curl")
                .args(["-sk", "--max-time", "2"])
                .arg(format!("https://127.0.0.1:{API_PORT}/readyz"))
                .output()
                .expect("curl");
            if stdout(&out).trim() == "ok" && kubeconfig.exists() {
                return;
            }
            assert!(
                self.nodes[idx].running(),
                "the server exited\n{}",
                self.logs()
            );
            assert!(
                Instant::now() < deadline,
                "the server never got ready\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// kubectl against the server, from the server's namespace.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.nodes[self.api]
            .net
            .command(KUBECTL)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}{}\n{}",
            args.join(" "),
            stdout(&out),
            stderr(&out),
            self.logs()
        );
        stdout(&out)
    }

    pub fn apply(&self, yaml: &str) {
        let path = self
            .dir
            .path()
            .join(format!("manifest-{}.yaml", rand_suffix()));
        fs::write(&path, yaml).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", path.to_str().expect("utf-8")]);
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all)).expect("kubectl json")
    }

    /// Poll until `pred` holds (a bound on waiting, not on speed).
    pub fn wait_for(&self, what: &str, mut pred: impl FnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self) {
            assert!(Instant::now() < deadline, "never: {what}\n{}", self.logs());
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether node `name` is Ready.
    pub fn node_ready(&self, name: &str) -> Option<bool> {
        let out = self.kubectl(&["get", "node", name, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let conds = v.pointer("/status/conditions")?.as_array()?;
        let ready = conds.iter().find(|c| c["type"] == "Ready")?;
        Some(ready["status"] == "True")
    }

    pub fn wait_node_ready(&self, name: &str, ready: bool) {
        self.wait_for(&format!("node {name} Ready={ready}"), |c| {
            c.node_ready(name) == Some(ready)
        });
    }

    /// Load the busybox image into every node's engine.
    pub fn load_busybox(&self) {
        let archive = crate::containers::build_busybox_archive(self.dir.path());
        for n in &self.nodes {
            let out = n.skiff(&["load", "-i", archive.to_str().expect("utf-8")]);
            assert!(out.status.success(), "load on {}: {}", n.name, stderr(&out));
        }
    }

    /// Run `program args` in a pod (kubectl exec); its output.
    pub fn exec(&self, pod: &str, args: &[&str]) -> Output {
        let mut all = vec!["exec", pod, "--"];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    /// The Running pods of `selector`: (name, node, IP).
    pub fn pods(&self, selector: &str) -> Vec<(String, String, String)> {
        let v = self.json(&["get", "pods", "-l", selector]);
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                    p["status"]["podIP"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // Agents first, the server last, each cleaning its pods.
        while let Some(n) = self.nodes.pop() {
            drop(n);
        }
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A path as a &str for command lines.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
