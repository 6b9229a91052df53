//! Terminals and stdin: `run -it` and `exec -it` give the shell a real
//! controlling terminal made inside the container (driven here through a pty
//! from python3's pty module, as a user's terminal would), and `run -i`
//! without -t passes piped stdin through.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use containers::Engine;
use support::stdout;

/// Run `argv` on a fresh pty, type `input` into it, and return everything it
/// printed (\r removed) and its exit code.
const DRIVER: &str = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
os.write(fd, sys.stdin.buffer.read())
out = b""
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

fn on_pty(e: &Engine, args: &[&str], input: &str) -> (String, Option<i32>) {
    let skiff = e.command(args);
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(DRIVER).arg(skiff.get_program());
    cmd.args(skiff.get_args());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("type");
    let out = child.wait_with_output().expect("driver");
    (stdout(&out), out.status.code())
}

/// What the shell typed back: `tty`, 42, and its controlling terminal
/// (field 7 of /proc/self/stat, tty_nr: 0 means none).
const SCRIPT: &str = "tty; echo $((6*7)); echo ctty=$(cut -d' ' -f7 /proc/self/stat); exit 5\n";

fn check_shell_output(out: &str) {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("/dev/pts/")),
        "tty names a pty: {out}"
    );
    assert!(lines.contains(&"42"), "{out}");
    let ctty = lines
        .iter()
        .find_map(|l| l.strip_prefix("ctty="))
        .unwrap_or_else(|| panic!("no ctty line: {out}"));
    assert_ne!(ctty, "0", "the shell has a controlling terminal: {out}");
    assert!(!out.contains("can't access tty"), "job control: {out}");
}

#[test]
fn run_it_and_exec_it_have_a_controlling_terminal() {
    let e = Engine::new();
    let (out, code) = on_pty(&e, &["run", "-it", "--rm", "busybox", "sh"], SCRIPT);
    check_shell_output(&out);
    assert_eq!(code, Some(5), "{out}");

    e.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let (out, code) = on_pty(&e, &["exec", "-it", "box", "sh"], SCRIPT);
    check_shell_output(&out);
    assert_eq!(code, Some(5), "{out}");
    e.ok(&["rm", "-f", "box"]);
    e.assert_clean();
}

#[test]
fn run_i_passes_piped_stdin() {
    let e = Engine::new();
    let mut child = e
        .command(&["run", "-i", "--rm", "busybox", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("skiff run -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hi\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(stdout(&out), "hi\n");
    e.assert_clean();
}
