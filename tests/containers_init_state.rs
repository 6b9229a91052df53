//! `--init` (skiff's own init as PID 1: signals forwarded, orphans reaped)
//! and state that survives a shim killed with SIGKILL.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::time::Duration;

use containers::Engine;

/// Poll `check` (bounded; a limit on waiting, not an assertion on time).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never: {what}");
}

/// The state letter of `pid` inside container `name` (None once reaped).
fn proc_state(e: &Engine, name: &str, pid: &str) -> Option<String> {
    let out = e.skiff(&["exec", name, "cat", &format!("/proc/{pid}/stat")]);
    if !out.status.success() {
        return None;
    }
    let stat = support::stdout(&out);
    // "pid (comm) S ...": the state follows the command's closing paren.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(String::from)
}

/// Start a container whose PID 1 never reaps: an orphan is left behind
/// (its PID in /tmp/orphan); returns that PID. The orphan outlives the
/// subshell by a second, so it dies only once PID 1 is `sleep` (a shell as
/// PID 1 would reap it while waiting for the subshell).
fn orphan_maker(e: &Engine, name: &str, init: bool) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    if init {
        args.push("--init");
    }
    args.extend([
        "busybox",
        "sh",
        "-c",
        "(sleep 1 & echo $! > /tmp/orphan); exec sleep 1000",
    ]);
    e.ok(&args);
    let mut pid = String::new();
    eventually("the orphan's PID is written", || {
        pid = e
            .ok(&["exec", name, "cat", "/tmp/orphan"])
            .trim()
            .to_string();
        !pid.is_empty()
    });
    pid
}

#[test]
fn init_reaps_orphans_and_forwards_signals() {
    let e = Engine::new();
    // Without an init, the orphan stays a zombie (this is what --init fixes).
    let pid = orphan_maker(&e, "plain", false);
    eventually("a zombie without --init", || {
        proc_state(&e, "plain", &pid).as_deref() == Some("Z")
    });
    e.ok(&["rm", "-f", "plain"]);

    let pid = orphan_maker(&e, "reaped", true);
    eventually("the orphan is reaped under --init", || {
        proc_state(&e, "reaped", &pid).is_none()
    });
    let ps = e.ok(&["exec", "reaped", "ps", "-o", "pid,stat,args"]);
    let pid1 = ps
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(pid1.contains("/dev/init -- sh -c"), "{ps}");
    assert!(
        !ps.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("Z")),
        "no zombies: {ps}"
    );
    e.ok(&["rm", "-f", "reaped"]);

    // `sleep` as PID 1 would ignore SIGTERM; under init it gets it and dies
    // of it: 143, not the 137 of the SIGKILL after the timeout.
    e.ok(&[
        "run", "-d", "--init", "--name", "sleeper", "busybox", "sleep", "1000",
    ]);
    e.ok(&["stop", "-t", "60", "sleeper"]);
    assert_eq!(e.inspect("sleeper")["State"]["ExitCode"], 143);
    e.ok(&["rm", "sleeper"]);
    e.assert_clean();
}

/// SIGKILL a shim this test started (through skiff run), by its PID, and
/// wait until it is gone.
fn kill_shim(shim: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &shim.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    eventually("the shim is gone", || {
        !std::path::Path::new(&format!("/proc/{shim}")).exists()
            || std::fs::read_to_string(format!("/proc/{shim}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
}

fn shim_of(e: &Engine, id: &str) -> u32 {
    e.shims()
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(id))
        })
        .unwrap_or_else(|| panic!("no shim for {id}"))
}

#[test]
fn killed_shim_is_reconciled_and_others_keep_running() {
    let e = Engine::new();
    let victim = e.ok(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"]);
    let other = e.ok(&["run", "-d", "--name", "other", "busybox", "sleep", "1000"]);
    let shim = shim_of(&e, victim.trim());
    kill_shim(shim);

    // Each command is a fresh CLI process reading the shared state.
    let ps = e.ok(&["ps", "-a"]);
    let line = |name: &str| {
        ps.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {ps}"))
            .to_string()
    };
    assert!(line("victim").contains("Exited (255)"), "{ps}");
    assert!(line("other").contains("Up "), "{ps}");
    assert!(e.ok(&["ps", "-q"]).contains(&other.trim()[..12]));
    assert_eq!(e.ok(&["exec", "other", "echo", "alive"]), "alive\n");

    e.ok(&["rm", "victim"]);
    e.ok(&["rm", "-f", "other"]);
    e.assert_clean();
}

/// The rootfs is mounted in the shim's own mount namespace (which it leaves
/// once the container runs) and lives on in the container's, never in the
/// host's; a directory that no record names (a `--rm` shim killed between
/// dropping the record and deleting the files) goes at the next command.
#[test]
fn rootfs_stays_private_and_orphan_dirs_go() {
    let e = Engine::new();
    let id = e.ok(&["run", "-d", "--name", "quiet", "busybox", "sleep", "1000"]);
    let id = id.trim();
    let in_host: Vec<String> = e.mounts().into_iter().filter(|m| m.contains(id)).collect();
    // (The network namespace handle is a mount on the host, by design.)
    assert!(
        in_host.iter().all(|m| m.contains("/netns/")),
        "the host sees the rootfs: {in_host:?}"
    );
    let shim = shim_of(&e, id);
    let own_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    // `run -d` returns once the shim has created the container; the shim
    // starts it and leaves its namespace right after (a bounded wait, not
    // a timing assertion).
    let mut shim_ns = std::fs::read_link(format!("/proc/{shim}/ns/mnt")).unwrap();
    for _ in 0..200 {
        if shim_ns == own_ns {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        shim_ns = std::fs::read_link(format!("/proc/{shim}/ns/mnt")).unwrap();
    }
    assert_eq!(
        shim_ns, own_ns,
        "the shim is still in its private namespace"
    );
    let pid = e.inspect("quiet")["State"]["Pid"].as_i64().unwrap();
    let root = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .map(String::from)
        .unwrap_or_default();
    assert!(root.contains(" - overlay "), "the container's root: {root}");
    assert_eq!(
        e.ok(&["exec", "quiet", "cat", "/etc/hostname"]),
        format!("{}\n", &id[..12])
    );
    e.ok(&["rm", "-f", "quiet"]);

    let orphan = e.root().join("containers").join("ab".repeat(32));
    std::fs::create_dir_all(orphan.join("upper/etc")).unwrap();
    std::fs::write(orphan.join("upper/etc/hosts"), "x").unwrap();
    e.ok(&["ps", "-a"]);
    assert!(!orphan.exists(), "{} is still there", orphan.display());
    e.assert_clean();
}

/// `killall` after a shim was killed (its container still running, its
/// record still saying so): nothing is left, cgroups included.
#[test]
fn killall_after_a_killed_shim_leaves_nothing() {
    let e = Engine::new();
    let id = e.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]);
    let shim = shim_of(&e, id.trim());
    kill_shim(shim);
    e.ok(&["killall"]);
    e.assert_clean();
}

/// A container under `--restart always` whose shim was killed is started
/// again by the next command that reads the records, as docker's daemon
/// restarts one whose shim died; the old process went with the shim.
#[test]
fn a_killed_shim_s_container_is_restarted_by_its_policy() {
    let e = Engine::new();
    let id = e.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        "kept",
        "busybox",
        "sleep",
        "1000",
    ]);
    let old_pid = e.inspect("kept")["State"]["Pid"].as_i64().unwrap();
    let shim = shim_of(&e, id.trim());
    kill_shim(shim);
    e.ok(&["ps"]);
    let v = e.wait_for("kept", "running again", |v| {
        v["State"]["Status"] == "running"
    });
    assert_eq!(v["RestartCount"], 1);
    let new_pid = v["State"]["Pid"].as_i64().unwrap();
    assert_ne!(new_pid, old_pid);
    // Gone, or a zombie its new parent (whoever reaps orphans here) has
    // not collected yet.
    let stat = std::fs::read_to_string(format!("/proc/{old_pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the old container process outlived its shim: {stat}"
    );
    assert_eq!(e.ok(&["exec", "kept", "echo", "back"]), "back\n");
    // Stopped by hand, it is not restarted.
    e.ok(&["stop", "-t", "1", "kept"]);
    e.ok(&["ps"]);
    assert_eq!(e.inspect("kept")["State"]["Status"], "exited");
    e.ok(&["rm", "kept"]);
    e.assert_clean();
}
