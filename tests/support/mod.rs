//! Test harness for integration tests: a private network namespace per test,
//! a real `skiff server` running inside it, and the real `/usr/bin/kubectl`
//! (also run inside it) with a per-test kubeconfig and discovery cache.
//!
//! Everything is cleaned up by `Drop` guards, also when a test panics: the
//! server process (killed by its PID), any background kubectl (by PID), the
//! network namespace and the temporary directory. When a test fails, the
//! server's log is printed so that the failure can be diagnosed from the
//! test output alone.
//!
//! Nothing here touches the host's own network namespace: all traffic goes
//! to 127.0.0.1 inside the test's namespace. Waits are bounded retries, never
//! assertions on time.

#![allow(dead_code)]

pub mod busybox;
pub mod device_image;
pub mod postgres;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The real kubectl (Google Cloud SDK's dispatcher picks kubectl 1.32 from the
/// server's `/version`).
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// The port the API server listens on inside the test's own namespace (every
/// port is free there, so tests never collide; it is not the default 6443 so
/// that `--https-listen-port` is exercised).
pub const PORT: u16 = 16443;

/// How long to wait for the server to become ready before failing (a bound on
/// a retry loop, not an assertion on speed).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Run a command to completion and panic with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// The stdout of a kubectl run that must have succeeded (else a panic
/// with its output).
fn succeeded(args: &[&str], out: Output) -> String {
    if !out.status.success() {
        panic!(
            "kubectl {} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            args.join(" "),
            out.status,
            stdout(&out),
            stderr(&out)
        );
    }
    stdout(&out)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A network namespace of its own, with `lo` up; deleted on drop.
pub struct TestNet {
    name: String,
    /// Made by this value (deleted when it goes), or only joined.
    owned: bool,
}

impl TestNet {
    pub fn new() -> TestNet {
        let name = format!("skiff-t{}", unique_suffix());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        // From here on, Drop deletes the namespace even if bringing lo up fails.
        let net = TestNet { name, owned: true };
        run_ok(Command::new("ip").args(["-n", &net.name, "link", "set", "lo", "up"]));
        net
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Another handle on `other`'s namespace (say, a server beside a test
    /// registry); the namespace stays until `other` goes.
    pub fn join(other: &TestNet) -> TestNet {
        TestNet {
            name: other.name.clone(),
            owned: false,
        }
    }

    /// A command that runs `program` inside this namespace. nsenter execs
    /// the program in place, so the child's PID is the program's PID. Not
    /// `ip netns exec`: it also mounts a fresh /sys in a mount namespace of
    /// its own, which hides the cgroup filesystem from an agent that runs
    /// pods.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        cmd
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A `skiff server` running in its own network namespace, with its own data
/// directory, kubeconfig and kubectl discovery cache.
pub struct Server {
    // Drop order matters: `drop` kills the process, then the namespace goes,
    // then the temporary directory.
    child: Option<Child>,
    net: TestNet,
    dir: tempfile::TempDir,
    starts: u32,
    extra_args: Vec<String>,
    /// Environment variables the server runs with.
    env: Vec<(String, String)>,
}

impl Server {
    /// Start a server on a fresh data directory and wait until it is ready.
    pub fn start() -> Server {
        Server::start_with_args(&[])
    }

    pub fn start_with_args(extra: &[&str]) -> Server {
        Server::start_in(TestNet::new(), extra)
    }

    /// Start on a data directory `prepare` fills first (given its path).
    pub fn start_prepared(extra: &[&str], prepare: impl FnOnce(&Path)) -> Server {
        Server::start_full(TestNet::new(), extra, &[], prepare)
    }

    /// Start with `extra` arguments and environment variables `env`.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_inner(TestNet::new(), extra, env)
    }

    /// Start in `net` (a namespace of its own, or one joined).
    pub fn start_in(net: TestNet, extra: &[&str]) -> Server {
        Server::start_inner(net, extra, &[])
    }

    fn start_inner(net: TestNet, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_full(net, extra, env, |_| {})
    }

    fn start_full(
        net: TestNet,
        extra: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("skiff-test-")
            .tempdir()
            .expect("create temp dir");
        let mut server = Server {
            child: None,
            net,
            dir,
            starts: 0,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        prepare(&server.data_dir());
        server.spawn();
        server.wait_ready();
        server
    }

    pub fn net(&self) -> &TestNet {
        &self.net
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("kube-cache")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{PORT}{path}")
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("server-{n}.log"))
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let log = fs::File::create(self.log_path(self.starts)).expect("create server log");
        let log2 = log.try_clone().expect("dup log");
        let mut cmd = self.net.command(env!("CARGO_BIN_EXE_skiff"));
        // The engine's run directory and the pods' logs are this test's
        // own too, as the data directory is.
        cmd.arg("--run-dir")
            .arg(self.dir.path().join("run"))
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--pod-log-dir")
            .arg(self.dir.path().join("pod-logs"))
            .args(["--bind-address", "127.0.0.1"])
            .args(["--https-listen-port", &PORT.to_string()])
            .arg("--write-kubeconfig")
            .arg(self.kubeconfig())
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        self.child = Some(child);
    }

    /// Poll `/readyz` inside the namespace until it answers `ok`; panic (with
    /// the server's log) if the process exits or it never becomes ready.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("server is not running")
                .try_wait()
                .expect("try_wait")
            {
                self.child = None;
                // Drop prints the server's log.
                panic!("skiff server exited before it was ready ({status})");
            }
            let out = self
                .net
                .command("curl")
                .args(["-sk", "--max-time", "2"])
                .arg(self.url("/readyz"))
                .output()
                .expect("run curl");
            if out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim() == "ok"
                && self.kubeconfig().exists()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "skiff server not ready after {READY_TIMEOUT:?}: last /readyz: {:?} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL the server (no chance to clean up) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's Child::kill sends SIGKILL to exactly this PID.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restart with other extra arguments (in place of those it started
    /// with).
    pub fn restart_with_args(&mut self, extra: &[&str]) {
        self.extra_args = extra.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// Start again on the same data directory with `extra` in place of
    /// the arguments it runs with, expecting the start to fail: the log of
    /// that start. The arguments it ran with are kept for `restart`.
    pub fn restart_fails_with_args(&mut self, extra: &[&str]) -> String {
        self.kill();
        let saved = std::mem::replace(
            &mut self.extra_args,
            extra.iter().map(|s| s.to_string()).collect(),
        );
        self.spawn();
        self.extra_args = saved;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut child = self.child.take().expect("spawned");
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("skiff server with {extra:?} did not fail to start");
            }
            thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "skiff server with {extra:?}: {status}");
        fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    /// Start the server again on the same data directory and wait until it
    /// is ready. Kills it first if it is still running.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready();
    }

    /// Everything the server wrote to stdout/stderr, for every start.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for n in 1..=self.starts {
            let text = fs::read_to_string(self.log_path(n)).unwrap_or_default();
            s.push_str(&format!("--- skiff server log (start {n}) ---\n{text}\n"));
        }
        s
    }

    fn kubectl_command(&self) -> Command {
        let mut cmd = self.net.command(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(Stdio::null());
        cmd
    }

    /// Run kubectl (inside the namespace, with this server's kubeconfig).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = self.kubectl_command();
        cmd.args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    /// Run kubectl with `stdin` as its standard input (`apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.kubectl_command();
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .expect("write kubectl stdin");
        child.wait_with_output().expect("wait kubectl")
    }

    /// [`Server::kubectl_stdin`] that must succeed; returns stdout.
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        succeeded(args, self.kubectl_stdin(args, stdin))
    }

    /// Run kubectl and panic with its output if it fails; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        succeeded(args, self.kubectl(args))
    }

    /// Run kubectl, expect it to fail; returns the output.
    pub fn kubectl_err(&self, args: &[&str]) -> Output {
        let out = self.kubectl(args);
        if out.status.success() {
            panic!(
                "kubectl {} succeeded but should have failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                args.join(" "),
                stdout(&out),
                stderr(&out)
            );
        }
        out
    }

    /// Create a namespace with `kubectl apply` (a JSON body), for tests whose
    /// subject is something else (`kubectl create namespace` sends protobuf
    /// and has a test of its own).
    pub fn namespace(&self, name: &str) {
        let out = self.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
        );
        assert!(
            out.status.success(),
            "kubectl apply namespace {name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    /// Write `contents` to a file in the test's directory; returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> String {
        let path = self.dir.path().join(name);
        fs::write(&path, contents).expect("write file");
        path.to_str().unwrap().to_string()
    }

    /// Start kubectl in the background (e.g. `get -w`); its stdout and
    /// stderr go to files that [`Background::wait_for`] polls.
    pub fn kubectl_background(&self, args: &[&str]) -> Background {
        let n = unique_suffix();
        let out_path = self.dir.path().join(format!("bg-{n}.out"));
        let err_path = self.dir.path().join(format!("bg-{n}.err"));
        let mut cmd = self.kubectl_command();
        cmd.args(args)
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        Background {
            child: Some(child),
            out_path,
            err_path,
            what: format!("kubectl {}", args.join(" ")),
        }
    }

    /// Run curl inside the namespace: `curl -sk --max-time 10 ARGS...`.
    pub fn curl(&self, args: &[&str]) -> Output {
        let mut cmd = self.net.command("curl");
        cmd.args(["-sk", "--max-time", "10"]).args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    /// GET `path` with curl (no credentials unless `args` adds some); returns
    /// (HTTP status code, body).
    pub fn curl_get(&self, path: &str, args: &[&str]) -> (u16, String) {
        let url = self.url(path);
        let mut all: Vec<&str> = vec!["-w", "\n%{http_code}"];
        all.extend_from_slice(args);
        all.push(&url);
        let out = self.curl(&all);
        let text = stdout(&out);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let code = code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl {path}: no HTTP status ({}): {text} {}",
                out.status,
                stderr(&out)
            )
        });
        (code, body.to_string())
    }

    /// A client certificate and key signed by the test server's cluster CA with
    /// the real openssl CLI: subject `/O=<group>.../CN=<user>`.
    pub fn client_cert(&self, name: &str, user: &str, groups: &[&str]) -> (PathBuf, PathBuf) {
        let s = self;
        let tls = s.data_dir().join("server/tls");
        let key = s.dir().join(format!("{name}.key"));
        let csr = s.dir().join(format!("{name}.csr"));
        let crt = s.dir().join(format!("{name}.crt"));
        // A v3 client certificate, as the verifier requires.
        let ext = s.dir().join("client.ext");
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        let subject: String = groups
            .iter()
            .map(|g| format!("/O={g}"))
            .chain(std::iter::once(format!("/CN={user}")))
            .collect();
        run_ok(
            Command::new("openssl")
                .args([
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                ])
                .arg(&key),
        );
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-key"])
                .arg(&key)
                .args(["-subj", &subject, "-out"])
                .arg(&csr),
        );
        run_ok(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(tls.join("server-ca.crt"))
                .arg("-CAkey")
                .arg(tls.join("server-ca.key"))
                .arg("-CAserial")
                .arg(s.dir().join("ca.srl"))
                .arg("-CAcreateserial")
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&crt),
        );
        (crt, key)
    }

    /// A kubeconfig for a client certificate of `user` in `groups` (see
    /// [`Server::client_cert`]), for [`Server::kubectl_with`].
    pub fn user_kubeconfig(&self, name: &str, user: &str, groups: &[&str]) -> PathBuf {
        let (crt, key) = self.client_cert(name, user, groups);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: {name}\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: skiff\n    user: {name}\ncurrent-context: {name}\n",
            self.url(""),
            crt.display(),
            key.display(),
        );
        let path = self.dir().join(format!("{name}.kubeconfig"));
        fs::write(&path, text).unwrap();
        path
    }

    /// Run kubectl with another kubeconfig (and its own cache).
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut cmd = self.net.command(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(kubeconfig.with_extension("cache"))
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    /// Wait until the root CA publisher has put `kube-root-ca.crt` in
    /// namespace `ns` (it counts against quotas and shows in lists, as
    /// upstream's).
    pub fn wait_root_ca(&self, ns: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .kubectl(&["get", "cm", "kube-root-ca.crt", "-n", ns])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "no kube-root-ca.crt in {ns}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The admin bearer token: the first line of `server/cred/tokens.csv`.
    pub fn admin_token(&self) -> String {
        let path = self.data_dir().join("server/cred/tokens.csv");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let first = text.lines().next().expect("tokens.csv is empty");
        first.split(',').next().unwrap().trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // Pods' containers outlive their agent by design: the test's own
        // go with their shims, mounts, cgroups and network.
        if self.data_dir().join("containers").exists() {
            let _ = self
                .net
                .command(env!("CARGO_BIN_EXE_skiff"))
                .arg("--root")
                .arg(self.data_dir())
                .arg("--run-dir")
                .arg(self.dir.path().join("run"))
                .arg("killall")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A background process (kubectl -w) killed by its PID on drop.
pub struct Background {
    child: Option<Child>,
    out_path: PathBuf,
    err_path: PathBuf,
    what: String,
}

impl Background {
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err_path).unwrap_or_default()
    }

    /// Poll stdout until `pred` holds (bounded); panic with the output if it
    /// never does or the process exits first.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.stdout();
            if pred(&out) {
                return out;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                // One last look: the output may have landed just before exit.
                let out = self.stdout();
                if pred(&out) {
                    return out;
                }
                panic!(
                    "{}: never saw {what} (exit: {exited:?})\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                    self.what,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the process (SIGKILL by PID) and return its stdout.
    pub fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stdout()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Split kubectl table output into rows of cells. Cells are separated by
/// two or more spaces (kubectl pads with at least three), so headers such as
/// `NOMINATED NODE` stay one cell.
pub fn table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(split_cells)
        .collect()
}

pub fn split_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut spaces = 0;
    for ch in line.trim_end().chars() {
        if ch == ' ' {
            spaces += 1;
            continue;
        }
        if spaces >= 2 && !cur.is_empty() {
            cells.push(std::mem::take(&mut cur));
        } else if spaces == 1 {
            cur.push(' ');
        }
        spaces = 0;
        cur.push(ch);
    }
    if !cur.is_empty() {
        cells.push(cur);
    }
    cells
}

/// The row of `rows` whose first cell is `name`; panics with the table if
/// there is none.
pub fn row<'a>(rows: &'a [Vec<String>], name: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name:?} in {rows:#?}"))
}

/// Parse `kubectl ... -o json` output.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The multi-document manifest used by several tests: a Namespace, a
/// ConfigMap, a Deployment and a Service.
pub const DEMO_MANIFEST: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: demo
  labels:
    app: web
data:
  greeting: hello
  mode: production
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
    protocol: TCP
"#;

/// A bare Pod (no controller, no node: it stays Pending in this version).
pub fn pod_manifest(name: &str, namespace: &str, labels: &[(&str, &str)]) -> String {
    let mut l = String::new();
    for (k, v) in labels {
        l.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    let labels = if l.is_empty() {
        String::new()
    } else {
        format!("  labels:\n{l}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{labels}spec:\n  containers:\n  - name: main\n    image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\n"
    )
}

/// One HTTP exchange made with curl.
pub struct Curl {
    /// The status as curl reports it (`000`: no response).
    pub code: String,
    /// The response headers, then curl's own complaint if it had one, for
    /// failure messages.
    pub headers: String,
    pub body: String,
}

impl Curl {
    /// The status as a number (0: no response).
    pub fn status(&self) -> u16 {
        self.code.parse().unwrap_or(0)
    }
}

/// curl `url` from inside `net` (the server's certificate not checked, at
/// most 20 s), with `args` before the URL.
pub fn curl(net: &TestNet, args: &[&str], url: &str) -> Curl {
    let dir = tempfile::tempdir().expect("a directory for curl's output");
    let (headers, body) = (dir.path().join("headers"), dir.path().join("body"));
    let out = net
        .command("curl")
        .args(["-sSk", "--max-time", "20", "-w", "%{http_code}", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    Curl {
        code: stdout(&out).trim().to_string(),
        headers: fs::read_to_string(&headers).unwrap_or_default() + &stderr(&out),
        body: fs::read_to_string(&body).unwrap_or_default(),
    }
}

/// Start a server in `dir` (a namespace of its own, no agent) with `extra`
/// flags, expecting it to refuse to start; its standard error.
pub fn refused_start(dir: &Path, extra: &[&std::ffi::OsStr]) -> String {
    let net = TestNet::new();
    let out = net
        .command(env!("CARGO_BIN_EXE_skiff"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("server")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--bind-address", "127.0.0.1", "--disable-agent"])
        .arg("--write-kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server started");
    stderr(&out)
}
