//! The kubelet API's streams through the server, with the real kubectl:
//! `port-forward` carrying HTTP to busybox httpd in a pod (tunnelled in a
//! WebSocket, and raw SPDY as kubectl's fallback), an unreachable port;
//! `exec` over SPDY with stdin and the exit code; `exec -it` with a real
//! terminal (`script`) and a resize; `attach`, with and without a terminal.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pods::{server_with_busybox, wait_pod};
use support::{stderr, stdout, Server};

const NODE: &str = "streams-node";

fn pod(name: &str, extra: &str, command: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", {command:?}]
{extra}"#
    )
}

fn run_pod(s: &Server, name: &str, extra: &str, command: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &pod(name, extra, command));
    assert!(out.status.success(), "{}", stderr(&out));
    wait_pod(s, name, "ran", |v| v["status"]["phase"] == "Running");
}

/// kubectl in the test's namespace with this server's config, and `env`
/// (the switches that make kubectl skip the WebSocket for SPDY).
fn kubectl(s: &Server, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = s.net().command("/usr/bin/kubectl");
    cmd.arg("--kubeconfig")
        .arg(s.kubeconfig())
        .arg("--cache-dir")
        .arg(s.cache_dir())
        .args(args)
        .env("KUBECONFIG", s.kubeconfig());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The command line of a kubectl as above, for a shell (`script -c`).
fn kubectl_line(s: &Server, env: &[(&str, &str)], args: &str) -> String {
    let env: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    format!(
        "{env}/usr/bin/kubectl --kubeconfig {} --cache-dir {} {args}",
        s.kubeconfig().display(),
        s.cache_dir().display()
    )
}

fn with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A background process, killed (by its PID) on drop; its output in files.
struct Bg {
    child: std::process::Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Bg {
    fn start(s: &Server, mut cmd: Command, name: &str) -> Bg {
        let out = s.dir().join(format!("{name}.out"));
        let err = s.dir().join(format!("{name}.err"));
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        Bg {
            child: cmd.spawn().unwrap(),
            out,
            err,
        }
    }

    fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default(),
        )
    }

    /// Wait (bounded) until `pred` holds of (stdout, stderr).
    fn wait(&mut self, what: &str, pred: impl Fn(&str, &str) -> bool) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (o, e) = self.output();
            if pred(&o, &e) {
                return (o, e);
            }
            let exited = self.child.try_wait().ok().flatten();
            // One last look: the output may have landed just before the exit.
            let (o, e) = self.output();
            if pred(&o, &e) {
                return (o, e);
            }
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "never saw {what} (exit {exited:?})\n--- stdout ---\n{o}\n--- stderr ---\n{e}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` inside the test's namespace: (exit code, body).
fn curl(s: &Server, url: &str) -> (Option<i32>, String) {
    let out = s
        .net()
        .command("curl")
        .args(["-s", "--max-time", "10", url])
        .output()
        .unwrap();
    (out.status.code(), stdout(&out))
}

/// On the pod's loopback only: kubelet forwards to the pod's localhost.
const HTTPD: &str = "mkdir -p /www && echo hello-from-the-pod > /www/index.html && \
                     exec httpd -f -p 127.0.0.1:8080 -h /www";

fn forwards_http(s: &Server, env: &[(&str, &str)], local: u16, name: &str) {
    let ports = format!("{local}:8080");
    let mut pf = Bg::start(
        s,
        kubectl(s, env, &["port-forward", "pod/web", &ports]),
        name,
    );
    pf.wait("the forward", |o, _| {
        o.contains("Forwarding from 127.0.0.1")
    });
    let url = format!("http://127.0.0.1:{local}/index.html");
    // Several connections, one after the other and at once, in one session.
    for _ in 0..3 {
        assert_eq!(curl(s, &url), (Some(0), "hello-from-the-pod\n".into()));
    }
    std::thread::scope(|scope| {
        let all: Vec<_> = (0..4).map(|_| scope.spawn(|| curl(s, &url))).collect();
        for h in all {
            assert_eq!(h.join().unwrap(), (Some(0), "hello-from-the-pod\n".into()));
        }
    });
    assert!(pf.running(), "{:?}", pf.output());
}

#[test]
fn port_forward_carries_http_in_a_websocket_and_over_raw_spdy() {
    let s = server_with_busybox(NODE);
    run_pod(&s, "web", "", HTTPD);
    forwards_http(&s, &[], 18080, "pf-ws");
    forwards_http(
        &s,
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
        18081,
        "pf-spdy",
    );

    // Nothing listens on 9999: kubectl hears why from the error stream.
    let mut pf = Bg::start(
        &s,
        kubectl(&s, &[], &["port-forward", "pod/web", "18082:9999"]),
        "pf-bad",
    );
    pf.wait("the forward", |o, _| {
        o.contains("Forwarding from 127.0.0.1")
    });
    let (code, body) = curl(&s, "http://127.0.0.1:18082/");
    assert!(code != Some(0) && body.is_empty(), "{code:?} {body}");
    let (_, err) = pf.wait("the error", |_, e| e.contains("error forwarding port 9999"));
    assert!(
        err.contains("an error occurred forwarding 18082 -> 9999"),
        "{err}"
    );
    assert!(
        err.contains("uid ") && err.contains("Connection refused"),
        "{err}"
    );
    // kubectl 1.32 itself closes the session after an error on an error
    // stream ("lost connection to pod"; the agent's session would go on:
    // portforward.rs's unit tests). The pod forwards again at once.
    pf.wait("kubectl's end", |_, e| e.contains("lost connection to pod"));
    forwards_http(&s, &[], 18083, "pf-again");
}

/// The terminal's size once kubectl's first resize has arrived (the
/// process may start before it).
const SIZE: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size 2>/dev/null); \
                    case $s in \"\"|\"0 0\") sleep 0.3;; *) break;; esac; done; echo size-$s";

const SPDY: &[(&str, &str)] = &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];

#[test]
fn exec_falls_back_to_spdy_with_stdin_a_terminal_and_the_exit_code() {
    let s = server_with_busybox(NODE);
    run_pod(&s, "box", "", "exec sleep 600");
    // -v=6 shows which transport kubectl took: a POST is the SPDY upgrade.
    let out = with_stdin(
        kubectl(
            &s,
            SPDY,
            &[
                "exec",
                "-v=6",
                "-i",
                "box",
                "--",
                "sh",
                "-c",
                "tr a-z A-Z; echo err >&2; exit 3",
            ],
        ),
        b"hello\nworld\n",
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "HELLO\nWORLD\n");
    let err = stderr(&out);
    assert!(
        err.contains("POST https://") && err.contains("/exec?"),
        "{err}"
    );
    assert!(err.lines().any(|l| l == "err"), "{err}");
    let out = kubectl(&s, SPDY, &["exec", "box", "--", "cat", "/proc/1/cmdline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "sleep\x00600\x00", "the pod's own process");

    // -it through a real terminal, on both transports: the size kubectl
    // starts with, then a resize (the terminal changed while it runs).
    for env in [&[][..], SPDY] {
        let line = format!(
            "stty cols 123 rows 45; (sleep 3; stty cols 99 rows 33 </dev/tty) & {} exec -it box -- sh -c '{SIZE}; sleep 6; stty size; read x; echo got-$x; exit 5'",
            kubectl_line(&s, env, "")
        );
        let mut script = s.net().command("script");
        script.args(["-qec", &line, "/dev/null"]);
        let out = with_stdin(script, b"typed\r");
        let text = stdout(&out);
        assert!(
            text.contains("size-45 123"),
            "{env:?}: {text}\n{}",
            stderr(&out)
        );
        assert!(text.contains("33 99"), "{env:?}: {text}");
        assert!(text.contains("got-typed"), "{env:?}: {text}");
        assert_eq!(out.status.code(), Some(5), "{env:?}: {text}");
    }
}

#[test]
fn attach_to_a_containers_main_process() {
    let s = server_with_busybox(NODE);
    run_pod(
        &s,
        "ticker",
        "",
        "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.3; done",
    );
    for (env, name) in [(&[][..], "attach-ws"), (SPDY, "attach-spdy")] {
        let mut a = Bg::start(
            &s,
            kubectl(&s, env, &["attach", "ticker", "-c", "main"]),
            name,
        );
        a.wait("ticks", |o, _| o.matches("tick-").count() >= 3);
    }

    // stdin without a terminal: the container reads what the client sends.
    run_pod(
        &s,
        "reader",
        "    stdin: true\n",
        "read line; echo got-$line; exit 4",
    );
    let out = with_stdin(
        kubectl(&s, SPDY, &["attach", "-i", "reader", "-c", "main"]),
        b"spdy-line\n",
    );
    assert!(
        stdout(&out).contains("got-spdy-line"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A terminal: the container's shell is the one kubectl talks to.
    run_pod(&s, "shell", "    stdin: true\n    tty: true\n", "exec sh");
    let line = format!(
        "stty cols 77 rows 22; {}",
        kubectl_line(&s, &[], "attach -it shell -c main")
    );
    // kubectl attach sends a size one larger each way and then the real
    // one, so that the program redraws: the shell waits for the second.
    let size = "for i in $(seq 20); do s=$(stty size 2>/dev/null); \
                [ \"$s\" = \"22 77\" ] && break; sleep 0.3; done; echo size-$s";
    let typed = format!("\r{size}; echo $((6*7))-answer; exit 0\r");
    let mut script = s.net().command("script");
    script.args(["-qec", &line, "/dev/null"]);
    let out = with_stdin(script, typed.as_bytes());
    let text = stdout(&out);
    assert!(text.contains("42-answer"), "{text}\n{}", stderr(&out));
    assert!(text.contains("size-22 77"), "{text}");
    wait_pod(&s, "shell", "ended", |v| {
        v["status"]["phase"] == "Succeeded"
    });
}

/// A container's stdin outlives an attach unless it has `stdinOnce`
/// (upstream's rule): a second attach still reaches the same process.
#[test]
fn stdin_stays_open_across_attaches_unless_stdin_once() {
    let s = server_with_busybox(NODE);
    let script = "while read l; do echo got-$l; done; echo stdin-closed; sleep 600";
    run_pod(&s, "echoer", "    stdin: true\n", script);
    run_pod(&s, "once", "    stdin: true\n    stdinOnce: true\n", script);
    // kubectl attach -i stays while the container runs: bounded here.
    let attach = |name: &str, line: &str| -> String {
        let mut cmd = s.net().command("timeout");
        cmd.arg("6")
            .arg("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(s.kubeconfig())
            .arg("--cache-dir")
            .arg(s.cache_dir())
            .args(["attach", "-i", name, "-c", "main"]);
        stdout(&with_stdin(cmd, format!("{line}\n").as_bytes()))
    };
    assert!(attach("echoer", "one").contains("got-one"));
    let second = attach("echoer", "two");
    assert!(second.contains("got-two"), "{second}");
    assert!(!second.contains("stdin-closed"), "{second}");
    let v = wait_pod(&s, "echoer", "ran", |v| v["status"]["phase"] == "Running");
    assert_eq!(v["status"]["containerStatuses"][0]["restartCount"], 0);
    // With stdinOnce the first attach's end is the end of its input.
    let first = attach("once", "only");
    assert!(first.contains("got-only"), "{first}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = s.kubectl_ok(&["logs", "once"]);
        if logs.contains("stdin-closed") {
            break;
        }
        assert!(Instant::now() < deadline, "{logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
