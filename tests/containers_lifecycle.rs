//! Detached containers: ps, logs -f, exec, stop (TERM handled / ignored),
//! kill, rm.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use containers::Engine;
use support::{stderr, stdout};

#[test]
fn detached_ps_logs_follow_and_exec() {
    let e = Engine::new();
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo first; read x < /dev/null; while true; do echo tick; sleep 0.2; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = e.ok(&["ps"]);
    let line = ps
        .lines()
        .find(|l| l.contains("web"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(line.starts_with(&id[..12]) && line.contains("Up "), "{ps}");
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    assert_eq!(e.ok(&["ps", "-q"]).trim(), &id[..12]);

    // logs -f streams lines as they come.
    let mut follow = e
        .command(&["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let mut reader = BufReader::new(follow.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        reader.read_line(&mut l).expect("read logs -f");
        lines.push(l);
    }
    assert_eq!(lines, ["first\n", "tick\n", "tick\n"]);

    // exec runs inside: the container's hostname and PID namespace.
    let hostname = e.ok(&["exec", "web", "hostname"]);
    assert_eq!(hostname.trim(), &id[..12]);
    let ps = e.ok(&["exec", "web", "ps", "-o", "pid,args"]);
    let pid1 = ps
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(pid1.contains("sh -c echo first"), "{ps}");
    let out = e.skiff(&["exec", "web", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    // -u is looked up in the container's own /etc/passwd.
    assert_eq!(
        e.ok(&["exec", "-u", "nobody", "web", "id", "-u"]),
        "65534
"
    );
    // A missing program: docker's message and 127, and nothing of the
    // runtime's own logs on the user's terminal.
    let out = e.skiff(&["exec", "web", "no-such-program"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "exec: \"no-such-program\": executable file not found in $PATH",
        "{}",
        stderr(&out)
    );
    let out = e.err(&["exec", "-u", "nosuchuser", "web", "true"]);
    assert!(
        stderr(&out).contains("unable to find user nosuchuser"),
        "{}",
        stderr(&out)
    );

    e.ok(&["stop", "-t", "1", "web"]);
    // logs -f ends once the container has exited.
    let status = follow.wait().expect("logs -f exits");
    assert!(status.success());
    let v = e.inspect("web");
    assert_eq!(v["State"]["Status"], "exited");
    e.ok(&["rm", "web"]);
    e.assert_clean();
}

#[test]
fn stop_handled_and_ignored_term() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' TERM; while true; do sleep 0.1; done",
    ]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    // Let the shells install their traps.
    e.wait_for("polite", "running", |v| v["State"]["Running"] == true);
    std::thread::sleep(std::time::Duration::from_millis(300));
    e.ok(&["stop", "polite"]);
    assert_eq!(
        e.inspect("polite")["State"]["ExitCode"],
        42,
        "the TERM handler ran"
    );
    e.ok(&["stop", "-t", "1", "stubborn"]);
    let v = e.inspect("stubborn");
    assert_eq!(
        v["State"]["ExitCode"], 137,
        "SIGKILL after the timeout: {v:#}"
    );
    assert_eq!(v["State"]["Status"], "exited");
    e.ok(&["rm", "polite", "stubborn"]);
    e.assert_clean();
}

#[test]
fn kill_and_force_remove() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while true; do sleep 0.1; done",
    ]);
    e.ok(&["run", "-d", "--name", "b", "busybox", "sleep", "1000"]);
    e.wait_for("a", "running", |v| v["State"]["Running"] == true);
    std::thread::sleep(std::time::Duration::from_millis(300));
    e.ok(&["kill", "-s", "USR1", "a"]);
    let v = e.wait_for("a", "exited", |v| v["State"]["Status"] == "exited");
    assert_eq!(v["State"]["ExitCode"], 5);
    let out = e.err(&["rm", "b"]);
    assert!(
        support::stderr(&out).contains("stop the container before removing it"),
        "{}",
        support::stderr(&out)
    );
    e.ok(&["rm", "-f", "a", "b"]);
    assert_eq!(stdout(&e.skiff(&["ps", "-aq"])), "");
    e.assert_clean();
}

#[test]
fn rm_flag_removes_detached_container_on_exit() {
    let e = Engine::new();
    e.ok(&[
        "run", "-d", "--rm", "--name", "gone", "busybox", "sh", "-c", "exit 0",
    ]);
    for _ in 0..300 {
        if e.ok(&["ps", "-aq"]).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    e.assert_clean();
}
