//! `pause`/`unpause` (the container's cgroup frozen for real), the
//! "restarting" state between runs under a restart policy, and `attach`
//! with docker's detach keys, driven through a real pty as a user's
//! terminal would.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use containers::Engine;
use support::{stderr, stdout};

/// A counter the container bumps every 50 ms, read through `cp` (which
/// reaches a paused container's files).
fn counter(e: &Engine, name: &str) -> u64 {
    let out = e.skiff(&["cp", &format!("{name}:/tmp/n"), "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A tar stream: the file's content starts at the second block.
    let body = &out.stdout[512..];
    let text: String = body
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    text.parse().unwrap_or(0)
}

const COUNTING: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done";

#[test]
fn pause_freezes_every_process_and_unpause_resumes() {
    let e = Engine::new();
    e.ok(&[
        "run", "-d", "--init", "--name", "box", "busybox", "sh", "-c", COUNTING,
    ]);
    e.wait_for("box", "counting", |_| counter(&e, "box") > 2);

    assert_eq!(e.ok(&["pause", "box"]).trim(), "box");
    let v = e.inspect("box");
    assert_eq!(v["State"]["Status"], "paused");
    assert_eq!(v["State"]["Paused"], true);
    assert_eq!(
        v["State"]["Running"], true,
        "docker counts paused as running"
    );
    // Listed without -a, marked paused.
    let ps = e.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("box Up") && ps.contains("(Paused)"), "{ps}");
    // Frozen: the counter stands still.
    let before = counter(&e, "box");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(counter(&e, "box"), before, "a paused container runs on");

    let again = e.err(&["pause", "box"]);
    assert!(
        stderr(&again).contains("is already paused"),
        "{}",
        stderr(&again)
    );
    let exec = e.err(&["exec", "box", "true"]);
    assert!(
        stderr(&exec).contains("is paused, unpause the container before exec"),
        "{}",
        stderr(&exec)
    );

    assert_eq!(e.ok(&["unpause", "box"]).trim(), "box");
    assert_eq!(e.inspect("box")["State"]["Status"], "running");
    e.wait_for("box", "counting again", |_| counter(&e, "box") > before + 2);
    let not = e.err(&["unpause", "box"]);
    assert!(stderr(&not).contains("is not paused"), "{}", stderr(&not));

    // Stopping a paused container thaws it for its stop signal (or it
    // would only die at the SIGKILL after the timeout, or never on v1).
    e.ok(&["pause", "box"]);
    e.ok(&["stop", "-t", "30", "box"]);
    let v = e.inspect("box");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 143, "ended by SIGTERM, not SIGKILL");

    let stopped = e.err(&["pause", "box"]);
    assert!(
        stderr(&stopped).contains("is not running"),
        "{}",
        stderr(&stopped)
    );
    e.ok(&["rm", "box"]);
    e.assert_clean();
}

#[test]
fn rm_force_of_a_paused_container() {
    let e = Engine::new();
    e.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]);
    e.ok(&["pause", "box"]);
    e.ok(&["rm", "-f", "box"]);
    e.assert_clean();
}

#[test]
fn between_restarts_a_container_is_restarting_and_stop_ends_that() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        "flaky",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    // The back-off doubles from 100 ms: after five restarts it waits 3.2 s
    // and more, so the checks below fall in one wait (on a slow machine a
    // shorter one had ended, and the next run begun, before the exec).
    // On a loaded machine even a wait of seconds can end between two
    // commands: a check that saw the next run begin is made again in the
    // next wait (it must still hold within one).
    let mut tries = 0;
    loop {
        let v = e.wait_for("flaky", "restarting", |v| {
            v["State"]["Status"] == "restarting" && v["RestartCount"].as_i64() >= Some(5)
        });
        assert_eq!(v["State"]["Restarting"], true);
        assert_eq!(v["State"]["ExitCode"], 3);
        let ps = e.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
        let exec = e.err(&["exec", "flaky", "true"]);
        // Still in the same back-off after the exec: the exec was made in
        // it. The count is raised just before a run starts (still
        // "restarting" for a moment), so the same count does not tell a
        // run in between apart: the same end of the last run does.
        let now = e.inspect("flaky");
        let same_wait = now["RestartCount"] == v["RestartCount"]
            && now["State"]["Status"] == "restarting"
            && now["State"]["FinishedAt"] == v["State"]["FinishedAt"];
        tries += 1;
        // Each miss lands in a later, twice as long wait (3.2 s, 6.4 s, …).
        if !same_wait && tries < 8 {
            continue;
        }
        assert!(
            ps.contains("flaky Restarting (3)"),
            "{ps} (try {tries}; seen {} then {} {})",
            v["RestartCount"],
            now["RestartCount"],
            now["State"]["Status"]
        );
        assert!(stderr(&exec).contains("is restarting"), "{}", stderr(&exec));
        break;
    }

    // Stop during a back-off: exited, and it stays so.
    e.wait_for("flaky", "restarting", |v| {
        v["State"]["Status"] == "restarting"
    });
    e.ok(&["stop", "flaky"]);
    let v = e.wait_for("flaky", "stopped", |v| v["State"]["Status"] == "exited");
    assert_eq!(v["State"]["Restarting"], false);
    // The shim that waited out the back-off has gone without starting it.
    for _ in 0..700 {
        if e.shims().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(e.shims().is_empty(), "a shim is left: {:?}", e.shims());
    assert_eq!(e.inspect("flaky")["State"]["Status"], "exited");
    e.ok(&["rm", "flaky"]);
    e.assert_clean();
}

/// Drive `argv` on a fresh pty: for each step, type its input, then read
/// until its expected text shows (bounded); then read to the end. Prints
/// what it read (\r removed) and exits with the command's code.
const DRIVER: &str = r#"
import json, os, pty, select, sys, time
steps = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
out = b""
def read_some(deadline):
    global out
    r, _, _ = select.select([fd], [], [], max(0, deadline - time.time()))
    if not r:
        return False
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    if not data:
        return None
    out += data
    return True
for send, expect in steps:
    os.write(fd, send.encode("latin-1"))
    deadline = time.time() + 30
    while expect.encode() not in out and time.time() < deadline:
        if read_some(deadline) is None:
            break
deadline = time.time() + 30
while time.time() < deadline:
    if read_some(deadline) is None:
        break
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

fn on_pty(e: &Engine, args: &[&str], steps: &[(&str, &str)]) -> (String, Option<i32>) {
    let skiff = e.command(args);
    let out = Command::new("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(serde_json::to_string(steps).unwrap())
        .arg(skiff.get_program())
        .args(skiff.get_args())
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    (stdout(&out), out.status.code())
}

#[test]
fn attach_and_detach_keys() {
    let e = Engine::new();
    e.ok(&["run", "-dit", "--name", "shell", "busybox", "sh"]);
    // Ctrl-P Ctrl-Q leaves it running; the CLI says nothing and succeeds.
    let (out, code) = on_pty(
        &e,
        &["attach", "shell"],
        &[("echo $((6*7))\n", "42"), ("\x10\x11", "")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("42"), "{out}");
    assert_eq!(e.inspect("shell")["State"]["Status"], "running");

    // Another sequence; a key that only begins it reaches the container.
    let (out, code) = on_pty(
        &e,
        &["attach", "--detach-keys", "q,q", "shell"],
        &[("echo q$((3+4))q\n", "q7q"), ("qq", "")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(e.inspect("shell")["State"]["Status"], "running");

    // Attached, the shell's exit is ours.
    let (out, code) = on_pty(&e, &["attach", "shell"], &[("exit 4\n", "")]);
    assert_eq!(code, Some(4), "{out}");
    assert_eq!(e.inspect("shell")["State"]["ExitCode"], 4);

    let stopped = e.err(&["attach", "shell"]);
    assert!(
        stderr(&stopped).contains("You cannot attach to a stopped container, start it first"),
        "{}",
        stderr(&stopped)
    );
    let bad = e.err(&["attach", "--detach-keys", "ctrl-1", "shell"]);
    assert!(
        stderr(&bad).contains("invalid detach keys"),
        "{}",
        stderr(&bad)
    );
    e.ok(&["rm", "shell"]);

    // run -it detaches the same way and leaves the container up.
    let (out, code) = on_pty(
        &e,
        &["run", "-it", "--name", "fg", "busybox", "sh"],
        &[("echo $((5*5))\n", "25"), ("\x10\x11", "")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(e.inspect("fg")["State"]["Status"], "running");
    e.ok(&["rm", "-f", "fg"]);
    e.assert_clean();
}

#[test]
fn attach_without_a_terminal() {
    let e = Engine::new();
    // -i without -t: piped stdin in, output out, the exit code back.
    e.ok(&[
        "run",
        "-di",
        "--name",
        "cat",
        "busybox",
        "sh",
        "-c",
        "cat; exit 7",
    ]);
    let mut child = e
        .command(&["attach", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skiff attach");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");

    // A terminal container refuses a stdin that is not one, as docker.
    e.ok(&["run", "-dit", "--name", "tty", "busybox", "sh"]);
    let out = e.err(&["attach", "tty"]);
    assert!(
        stderr(&out).contains("the input device is not a TTY"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "cat", "tty"]);
    e.assert_clean();
}
