//! Errors as a docker user expects them: `-it` without a terminal refused at
//! once, a signal ending a `-t` CLI, working directories created or
//! refused clearly, messages that say a thing once and put the reason
//! outside the quoted value.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use containers::Engine;
use support::{stderr, stdout};

/// Wait for `child` at most `limit` (a bound on a hang, not an assertion on
/// speed); kill it by its PID and fail when it does not end.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("{what} hung\nstderr:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn it_without_a_terminal_is_refused_at_once() {
    let e = Engine::new();
    let child = e
        .command(&["run", "-it", "--rm", "busybox", "sh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = wait_bounded(child, Duration::from_secs(30), "run -it");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the input device is not a TTY"),
        "{}",
        stderr(&out)
    );
    e.ok(&["run", "-d", "--name", "x", "busybox", "sleep", "60"]);
    let child = e
        .command(&["exec", "-it", "x", "sh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = wait_bounded(child, Duration::from_secs(30), "exec -it");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the input device is not a TTY"),
        "{}",
        stderr(&out)
    );
    // Nothing was created by the refused run.
    assert_eq!(e.ok(&["ps", "-aq"]).lines().count(), 1);
    e.ok(&["rm", "-f", "x"]);
    e.assert_clean();
}

/// As docker: with a terminal, signals are not proxied; SIGTERM ends the
/// CLI and the container runs on.
#[test]
fn sigterm_ends_a_tty_cli() {
    let e = Engine::new();
    let child = e
        .command(&["run", "-t", "--name", "t", "busybox", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The record appears once the CLI has made it.
    for _ in 0..300 {
        if e.skiff(&["inspect", "-f", "{{.State.Status}}", "t"]).stdout == b"running\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = wait_bounded(child, Duration::from_secs(30), "run -t after SIGTERM");
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert_eq!(e.inspect("t")["State"]["Status"], "running");
    e.ok(&["rm", "-f", "t"]);
    e.assert_clean();
}

#[test]
fn working_directories() {
    let e = Engine::new();
    // Missing: created, as docker does.
    assert_eq!(
        e.ok(&["run", "--rm", "-w", "/missing/deep", "busybox", "pwd"]),
        "/missing/deep\n"
    );
    // Relative: refused before anything is made, engine failure (125).
    let out = e.err(&["run", "--rm", "-w", "rel", "busybox", "pwd"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out)
            .contains("the working directory \"rel\" is invalid, it needs to be an absolute path"),
        "{}",
        stderr(&out)
    );
    e.ok(&["run", "-d", "--name", "w", "busybox", "sleep", "60"]);
    let out = e.err(&["exec", "-w", "/nope", "w", "pwd"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        stderr(&out).contains("cannot change to the working directory \"/nope\""),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("unix syscall"), "{}", stderr(&out));
    assert_eq!(e.ok(&["exec", "-w", "/etc", "w", "pwd"]), "/etc\n");
    e.ok(&["rm", "-f", "w"]);
    e.assert_clean();
}

#[test]
fn messages_say_it_once() {
    let e = Engine::new();
    let out = e.err(&["run", "--rm", "--memory", "1k", "busybox", "true"]);
    assert_eq!(
        stderr(&out).trim(),
        "skiff: error: invalid memory value \"1k\": the minimum memory limit is 6m"
    );
    e.ok(&[
        "run", "-d", "--name", "p1", "-p", "8080:80", "busybox", "sleep", "60",
    ]);
    let out = e.err(&[
        "run", "-d", "--name", "p2", "-p", "8080:80", "busybox", "sleep", "60",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let text = stderr(&out);
    assert_eq!(text.matches("already published").count(), 1, "{text}");
    assert!(text.contains("8080"), "{text}");
    // No library's log lines reach the user.
    assert!(!text.contains("WARN"), "{text}");
    assert_eq!(stdout(&out), "");
    e.ok(&["rm", "-f", "p1"]);
    e.assert_clean();
}

/// A container that fails to start in its shim (here: a working directory
/// that is a file) stays, Created, as docker keeps one whose start failed;
/// `rm` removes it, and with `--rm` nothing stays.
#[test]
fn a_failed_start_leaves_a_created_container() {
    let e = Engine::new();
    let out = e.err(&["run", "--name", "w", "-w", "/etc/passwd", "busybox", "pwd"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("/etc/passwd"), "{}", stderr(&out));
    assert_eq!(
        e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]),
        "w Created\n"
    );
    // Nothing of it runs or holds the network; its directory is all.
    assert_eq!(e.shims(), Vec::<u32>::new());
    assert_eq!(e.cgroups(), Vec::<std::path::PathBuf>::new());
    e.ok(&["rm", "w"]);
    e.assert_clean();
    let out = e.err(&["run", "--rm", "-w", "/etc/passwd", "busybox", "pwd"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    e.assert_clean();
}
