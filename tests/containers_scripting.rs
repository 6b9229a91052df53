//! The scripting surface docker users rely on, with the real binary:
//! a shell script written for docker run unchanged with `skiff` in its
//! place, `inspect -f` templates, `wait`, `cp` both ways (tar streams with
//! `-`, running and stopped containers), exit statuses.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use containers::Engine;
use support::{run_ok, stderr, stdout};

/// A directory with a `skiff` on it that is this test's engine (its root,
/// run dir and cgroup parent), for scripts that call `skiff` by name.
fn skiff_on_path(e: &Engine) -> std::path::PathBuf {
    let bin = e.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("skiff");
    let common = format!(
        "{} --root {} --run-dir {}",
        env!("CARGO_BIN_EXE_skiff"),
        e.root().display(),
        e.run_dir().display()
    );
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = run ]; then shift; exec {common} run --cgroup-parent {} \"$@\"; fi\nexec {common} \"$@\"\n",
            e.cgroup_parent
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `sh -c SCRIPT` inside the engine's network namespace with `skiff` on PATH.
fn script(e: &Engine, text: &str) -> std::process::Output {
    let bin = skiff_on_path(e);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    e.in_net("sh")
        .args(["-c", text])
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

/// The acceptance script of issue 12, as a docker user writes it.
#[test]
fn a_docker_script_runs_unchanged() {
    let e = Engine::new();
    let out = script(
        &e,
        r#"set -e
ID=$(skiff run -d busybox sh -c 'echo started; sleep 1; exit 3')
skiff inspect -f '{{.State.Status}}' $ID
skiff wait $ID
skiff cp $ID:/etc/hostname -
"#,
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    // running, the exit code, then a tar stream holding `hostname`.
    let text = &out.stdout;
    let first = text.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(&text[..first], b"running");
    let rest = &text[first + 1..];
    let second = rest.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(&rest[..second], b"3");
    let tar = &rest[second + 1..];
    assert_eq!(tar.len() % 512, 0, "a tar stream is whole blocks");
    assert_eq!(&tar[..9], b"hostname\0", "the entry is named hostname");

    // The same stream read by tar, as a script would; the hostname is the
    // short ID, as in docker.
    let out = script(
        &e,
        "ID=$(skiff ps -aq); skiff cp $ID:/etc/hostname - | tar -xO; echo $ID",
    );
    let s = stdout(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 2, "{s}");
    assert_eq!(lines[0], lines[1]);
    assert_eq!(lines[0].len(), 12);
}

#[test]
fn inspect_formats_as_docker() {
    let e = Engine::new();
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "fmt",
        "--label",
        "tier=web",
        "-e",
        "FOO=bar",
        "-v",
        "data:/data",
        "busybox",
        "sleep",
        "60",
    ]);
    let id = id.trim();
    let f = |t: &str| e.ok(&["inspect", "-f", t, "fmt"]);
    assert_eq!(f("{{.State.Status}}"), "running\n");
    assert_eq!(f("{{.Id}}"), format!("{id}\n"));
    assert_eq!(f("{{.Name}}"), "/fmt\n");
    assert_eq!(f("{{index .Config.Labels \"tier\"}}"), "web\n");
    assert_eq!(f("[{{index .Config.Labels \"nope\"}}]"), "[]\n");
    assert_eq!(
        f("{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}"),
        "volume data /data\n"
    );
    assert_eq!(f("{{.Config.Cmd}}"), "[sleep 60]\n");
    // The effective environment: the image's PATH and the -e.
    let env = f("{{json .Config.Env}}");
    let env: Vec<String> = serde_json::from_str(env.trim()).unwrap();
    assert!(env.iter().any(|v| v.starts_with("PATH=")), "{env:?}");
    assert!(env.contains(&"FOO=bar".to_string()), "{env:?}");
    let ip = f("{{.NetworkSettings.IPAddress}}");
    assert!(ip.trim().starts_with("10.42.0."), "{ip}");
    let config: serde_json::Value = serde_json::from_str(&f("{{json .Config}}")).unwrap();
    assert_eq!(config["Labels"]["tier"], "web");
    // Docker's `--format json` and the long flag.
    let all: serde_json::Value =
        serde_json::from_str(&e.ok(&["inspect", "--format", "json", "fmt"])).unwrap();
    assert_eq!(all["Id"], id);
    // Images too.
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox"]),
        "linux/amd64\n"
    );
    // A missing field names itself; a missing object is reported and the
    // others still printed; both exit 1 as docker's.
    let out = e.err(&["inspect", "-f", "{{.Nope}}", "fmt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("template parsing error: template: :1:2: executing \"\" at <.Nope>: map has no entry for key \"Nope\""),
        "{}",
        stderr(&out)
    );
    let out = e.err(&["inspect", "-f", "{{.Name}}", "fmt", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "/fmt\n");
    assert!(
        stderr(&out).contains("No such object: ghost"),
        "{}",
        stderr(&out)
    );
    let out = e.err(&["inspect", "-f", "{{.Name", "fmt"]);
    assert!(
        stderr(&out).contains("template parsing error"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "fmt"]);
    e.ok(&["volume", "rm", "data"]);
    e.assert_clean();
}

#[test]
fn wait_prints_exit_codes() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "w1",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; exit 4",
    ]);
    e.ok(&["run", "-d", "--name", "w2", "busybox", "true"]);
    assert_eq!(e.ok(&["wait", "w1", "w2"]), "4\n0\n");
    // Already stopped: at once, again.
    assert_eq!(e.ok(&["wait", "w1"]), "4\n");
    let out = e.err(&["wait", "w2", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "0\n");
    assert!(
        stderr(&out).contains("no such container: ghost"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "w1", "w2"]);
    e.assert_clean();
}

#[test]
fn cp_both_ways_running_and_stopped() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /srv/d; echo inside > /srv/d/f; ln -s / /srv/up; sleep 60",
    ]);
    e.wait_for("c", "its files", |_| {
        e.skiff(&["exec", "c", "test", "-e", "/srv/up"])
            .status
            .success()
    });
    let host = e.dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    // Out of a running container: a directory into an existing one, a
    // file to a new name.
    e.ok(&["cp", "c:/srv/d", host.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("d/f")).unwrap(),
        "inside\n"
    );
    e.ok(&["cp", "c:/srv/d/f", host.join("g").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(host.join("g")).unwrap(), "inside\n");
    // A symlink the container made to its `/` resolves in the container,
    // never on the host: this is the container's hostname file.
    let hostname = e.ok(&["exec", "c", "hostname"]);
    e.ok(&[
        "cp",
        "c:/srv/up/etc/hostname",
        host.join("h").to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(host.join("h")).unwrap(), hostname);
    // A running container is copied from its live root, tmpfs mounts and
    // all (its stopped filesystem has no /dev/shm content).
    e.ok(&["exec", "c", "sh", "-c", "echo live > /dev/shm/x"]);
    e.ok(&["cp", "c:/dev/shm/x", host.join("shm").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(host.join("shm")).unwrap(), "live\n");
    // The link itself is copied as a link.
    e.ok(&["cp", "c:/srv/up", host.join("up").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_link(host.join("up")).unwrap(),
        std::path::Path::new("/")
    );

    // Into it: a host file, a directory, and a tar stream on stdin.
    std::fs::write(host.join("new"), "from host\n").unwrap();
    e.ok(&["cp", host.join("new").to_str().unwrap(), "c:/srv/"]);
    assert_eq!(e.ok(&["exec", "c", "cat", "/srv/new"]), "from host\n");
    e.ok(&["cp", host.join("d").to_str().unwrap(), "c:/srv/d2"]);
    assert_eq!(e.ok(&["exec", "c", "cat", "/srv/d2/f"]), "inside\n");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&host)
        .args(["-cf", "-", "g"])
        .output()
        .unwrap()
        .stdout;
    let mut child = e
        .command(&["cp", "-", "c:/tmp"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(e.ok(&["exec", "c", "cat", "/tmp/g"]), "inside\n");

    // Stopped: what it wrote is still there, and a copy in lands.
    e.ok(&["stop", "-t", "0", "c"]);
    e.ok(&["cp", "c:/srv/new", host.join("again").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("again")).unwrap(),
        "from host\n"
    );
    e.ok(&["cp", host.join("g").to_str().unwrap(), "c:/srv/late"]);
    e.ok(&["cp", "c:/srv/late", host.join("late").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("late")).unwrap(),
        "inside\n"
    );
    let out = e.err(&["cp", "c:/nope", host.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("Could not find the file /nope in container c"),
        "{}",
        stderr(&out)
    );
    // Nothing of the stopped container's mounts shows on the host.
    assert_eq!(e.mounts(), Vec::<String>::new());
    e.ok(&["rm", "c"]);
    e.assert_clean();
}

#[test]
fn engine_failures_exit_125_and_commands_126_127() {
    let e = Engine::new();
    let out = e.err(&["run", "--rm", "--memory", "1k", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let out = e.err(&["run", "--rm", "--no-such-flag", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let out = e.err(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    let out = e.err(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(out.status.code(), Some(126));
    // The container's own code comes through as it is.
    let out = e.err(&["run", "--rm", "busybox", "sh", "-c", "exit 125"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(stderr(&out), "");
    e.assert_clean();
}

#[test]
fn ps_format_filter_and_limits() {
    let e = Engine::new();
    let a = e.ok(&[
        "run", "-d", "--name", "a", "--label", "tier=web", "busybox", "sleep", "60",
    ]);
    e.err(&["run", "--name", "b", "busybox", "sh", "-c", "exit 3"]);
    let c = e.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "60"]);
    let (a, c) = (a.trim(), c.trim());
    // Running ones, newest first.
    assert_eq!(e.ok(&["ps", "--format", "{{.Names}}"]), "c\na\n");
    assert_eq!(
        e.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
        "c running\nb exited\na running\n"
    );
    assert_eq!(
        e.ok(&["ps", "-q", "--no-trunc", "--filter", "name=a"]),
        format!("{a}\n")
    );
    assert_eq!(e.ok(&["ps", "-l", "-q"]), format!("{}\n", &c[..12]));
    assert_eq!(e.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]), "c\nb\n");
    // A status filter lists stopped ones without -a.
    assert_eq!(
        e.ok(&["ps", "--filter", "status=exited", "--format", "{{.Names}}"]),
        "b\n"
    );
    assert_eq!(
        e.ok(&["ps", "-f", "exited=3", "--format", "{{.Names}}"]),
        "b\n"
    );
    assert_eq!(
        e.ok(&[
            "ps",
            "-f",
            "label=tier=web",
            "--format",
            "{{.Names}} {{.Labels}}"
        ]),
        "a tier=web\n"
    );
    assert_eq!(
        e.ok(&[
            "ps",
            "-a",
            "-f",
            "name=a",
            "-f",
            "name=b",
            "--format",
            "{{.Names}}"
        ]),
        "b\na\n"
    );
    assert_eq!(
        e.ok(&["ps", "-a", "-f", "ancestor=busybox", "-q"])
            .lines()
            .count(),
        3
    );
    let table = e.ok(&["ps", "--format", "table {{.ID}}\t{{.Names}}\t{{.Status}}"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   NAMES   STATUS"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&format!("{}   c       Up", &c[..12])),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(e.ok(&["ps", "-l", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["Names"], "c");
    assert_eq!(json["State"], "running");
    let out = e.err(&["ps", "--filter", "colour=red"]);
    assert!(
        stderr(&out).contains("invalid filter 'colour'"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "a", "b", "c"]);
    e.assert_clean();
}

#[test]
fn images_quiet_format_and_order() {
    let e = Engine::new();
    e.ok(&["tag", "busybox", "example.org/tools/bb:1"]);
    let ids = e.ok(&["images", "-q"]);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0].len(), 12);
    assert_eq!(
        e.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest\nexample.org/tools/bb:1\n"
    );
    assert_eq!(
        e.ok(&["images", "--format", "{{.Tag}}", "example.org/tools/bb"]),
        "1\n"
    );
    assert_eq!(e.ok(&["images", "-q", "busybox:latest"]).lines().count(), 1);
    let table = e.ok(&["images", "--format", "table {{.Repository}}\t{{.Tag}}"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    let full = e.ok(&["images", "-q", "--no-trunc"]);
    assert!(full.starts_with("sha256:"), "{full}");
}

#[test]
fn create_start_restart_keep_the_container() {
    let e = Engine::new();
    let id = e.ok(&[
        "create",
        "--name",
        "cs",
        "-p",
        "8081:80",
        "busybox",
        "sh",
        "-c",
        "echo run >> /count; wc -l < /count; sleep 60",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Status}}", "cs"]),
        "created\n"
    );
    assert!(e.ok(&["ps", "-a"]).contains("Created"));
    // Nothing runs, so nothing to wait for, and ps without -a omits it.
    assert_eq!(e.ok(&["ps", "-q"]), "");
    assert_eq!(e.ok(&["start", "cs"]), "cs\n");
    e.wait_for("cs", "running", |v| v["State"]["Status"] == "running");
    let ip1 = e.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "cs"]);
    assert!(ip1.starts_with("10.42.0."), "{ip1}");
    // Its writable layer is kept across a restart; it runs again.
    assert_eq!(e.ok(&["restart", "-t", "0", "cs"]), "cs\n");
    e.wait_for("cs", "running again", |v| v["State"]["Status"] == "running");
    for _ in 0..100 {
        if e.ok(&["logs", "cs"]) == "1\n2\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(e.ok(&["logs", "cs"]), "1\n2\n");
    assert_eq!(e.ok(&["port", "cs"]), "80/tcp -> 0.0.0.0:8081\n");
    e.ok(&["stop", "-t", "0", "cs"]);
    // start -a: in the foreground, with the container's exit code.
    e.ok(&[
        "create",
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        "echo hi; exit 6",
    ]);
    let out = e.err(&["start", "-a", "fg"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout(&out), "hi\n");
    // A created container is removed without -f.
    e.ok(&["create", "--name", "idle", "busybox", "true"]);
    e.ok(&["rm", "idle"]);
    // Renamed: found by the new name only; a taken name is refused.
    e.ok(&["rename", "cs", "cs2"]);
    assert_eq!(e.ok(&["inspect", "-f", "{{.Name}}", "cs2"]), "/cs2\n");
    assert!(stderr(&e.err(&["rename", "cs2", "fg"])).contains("is already in use"));
    e.ok(&["rm", "cs2", "fg"]);
    e.assert_clean();
}

#[test]
fn restart_policies_are_kept_by_the_shim() {
    let e = Engine::new();
    // on-failure:2 — two restarts after the first failure, then it stays down.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "f",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo ran; exit 3",
    ]);
    let v = e.wait_for("f", "two restarts and down", |v| {
        v["RestartCount"] == 2 && v["State"]["Status"] == "exited"
    });
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    // Let a third (wrong) restart show if there were one.
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(e.inspect("f")["RestartCount"], 2);
    assert_eq!(e.ok(&["logs", "f"]), "ran\nran\nran\n");
    // always: a clean exit restarts too; a stop by hand ends it.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    e.wait_for("a", "a restart", |v| v["RestartCount"].as_u64() >= Some(1));
    e.ok(&["stop", "-t", "1", "a"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let v = e.inspect("a");
    assert_eq!(v["State"]["Status"], "exited", "{v:#}");
    let count = v["RestartCount"].clone();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(e.inspect("a")["RestartCount"], count);
    // Refused with --rm, and a bad policy names the choices (not
    // --registries).
    let out = e.err(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(
        stderr(&out).contains("cannot specify both --restart and --rm"),
        "{}",
        stderr(&out)
    );
    let out = e.err(&["run", "--restart", "sometimes", "busybox", "true"]);
    assert!(
        stderr(&out).contains("expected no, on-failure[:max-retries], always or unless-stopped"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "f", "a"]);
    e.assert_clean();
}

#[test]
fn capabilities_and_stop_signal() {
    let e = Engine::new();
    let caps = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend(["busybox", "grep", "CapEff", "/proc/self/status"]);
        let out = e.ok(&args);
        u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let default = caps(&[]);
    const NET_ADMIN: u64 = 1 << 12;
    const CHOWN: u64 = 1 << 0;
    assert_eq!(default & NET_ADMIN, 0);
    assert_ne!(default & CHOWN, 0);
    assert_eq!(caps(&["--cap-drop", "ALL"]), 0);
    assert_eq!(caps(&["--cap-drop", "chown"]), default & !CHOWN);
    assert_eq!(caps(&["--cap-add", "NET_ADMIN"]), default | NET_ADMIN);
    assert_eq!(
        caps(&["--cap-drop", "ALL", "--cap-add", "CAP_CHOWN"]),
        CHOWN
    );
    let out = e.err(&["run", "--rm", "--cap-add", "SUPERPOWER", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("invalid capability \"SUPERPOWER\""),
        "{}",
        stderr(&out)
    );

    e.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got usr1; exit 0' USR1; echo ready; while :; do sleep 0.1; done",
    ]);
    for _ in 0..100 {
        if e.ok(&["logs", "sig"]).contains("ready") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    e.ok(&["stop", "-t", "5", "sig"]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.ExitCode}}", "sig"]),
        "0\n"
    );
    assert!(e.ok(&["logs", "sig"]).contains("got usr1"));
    e.ok(&["rm", "sig"]);

    // Without --stop-signal, the image's STOPSIGNAL is sent first (as
    // docker; pods' containers stop the same way).
    let layout = e.dir.path().join("oci");
    run_ok(
        Command::new("umoci")
            .args(["config", "--config.stopsignal", "SIGUSR1", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .args(["--tag", "stopsig"]),
    );
    let archive = e.dir.path().join("stopsig.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:stopsig", layout.display()))
            .arg(format!(
                "docker-archive:{}:stopsig:latest",
                archive.display()
            )),
    );
    e.ok(&["load", "-i", archive.to_str().unwrap()]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "imgsig",
        "stopsig",
        "sh",
        "-c",
        "trap 'echo got usr1; exit 0' USR1; echo ready; while :; do sleep 0.1; done",
    ]);
    for _ in 0..100 {
        if e.ok(&["logs", "imgsig"]).contains("ready") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    e.ok(&["stop", "-t", "5", "imgsig"]);
    assert!(e.ok(&["logs", "imgsig"]).contains("got usr1"));
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.ExitCode}}", "imgsig"]),
        "0\n"
    );
    e.ok(&["rm", "imgsig"]);
    e.ok(&["rmi", "stopsig"]);
    // Real-time signals are stop signals too (systemd's SIGRTMIN+3).
    e.ok(&[
        "create",
        "--name",
        "rt",
        "--stop-signal",
        "SIGRTMIN+3",
        "busybox",
        "true",
    ]);
    let out = e.err(&["create", "--stop-signal", "SIGRTMIN+99", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    e.ok(&["rm", "rt"]);
    e.assert_clean();
}

#[test]
fn sysctls_of_the_containers_own_namespaces() {
    let e = Engine::new();
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=81",
        "--sysctl",
        "kernel.shm_rmid_forced=1",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        "/proc/sys/kernel/shm_rmid_forced",
    ]);
    assert_eq!(out, "81\n1\n");
    // Not namespaced, or the host's: refused before anything runs.
    for (args, want) in [
        (
            &["--sysctl", "kernel.hostname=x"][..],
            "not a namespaced sysctl",
        ),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"][..],
            "not allowed in the host's network namespace",
        ),
        (&["--sysctl", "novalue"][..], "expected NAME=VALUE"),
    ] {
        let mut argv = vec!["run", "--rm"];
        argv.extend_from_slice(args);
        argv.extend(["busybox", "true"]);
        let out = e.err(&argv);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    e.assert_clean();
}

#[test]
fn save_and_load_through_pipes_and_logs_until() {
    let e = Engine::new();
    let out = script(
        &e,
        "set -e; skiff save busybox > /tmp/skiff-save-$$.tar; skiff rmi busybox >/dev/null; \
         skiff load < /tmp/skiff-save-$$.tar; skiff save busybox | skiff load; rm /tmp/skiff-save-$$.tar",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Loaded image: docker.io/library/busybox:latest\nLoaded image: docker.io/library/busybox:latest\n"
    );
    assert_eq!(e.ok(&["images", "-q"]).lines().count(), 1);

    e.ok(&[
        "run",
        "--name",
        "l",
        "busybox",
        "sh",
        "-c",
        "echo early; sleep 1.5; echo late",
    ]);
    let all = e.ok(&["logs", "-t", "l"]);
    let early: Vec<&str> = all.lines().collect();
    assert_eq!(early.len(), 2, "{all}");
    // Up to (not including) the second line's time.
    let second = early[1].split_whitespace().next().unwrap();
    assert_eq!(e.ok(&["logs", "--until", second, "l"]), "early\n");
    assert_eq!(e.ok(&["logs", "--since", second, "l"]), "late\n");
    assert_eq!(e.ok(&["logs", "--until", "1h", "l"]), "");
    assert!(stderr(&e.err(&["logs", "--until", "soon", "l"])).contains("invalid --until"));
    e.ok(&["rm", "l"]);
    e.assert_clean();
}

#[test]
fn top_and_history() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "t",
        "busybox",
        "sh",
        "-c",
        "sleep 61 & sleep 62; true",
    ]);
    let mut top = String::new();
    for _ in 0..100 {
        top = e.ok(&["top", "t"]);
        if top.contains("sleep 61") && top.contains("sleep 62") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let lines: Vec<&str> = top.lines().collect();
    assert!(
        lines[0].starts_with("UID") && lines[0].contains("PID") && lines[0].ends_with("CMD"),
        "{top}"
    );
    assert!(top.contains("sh -c sleep 61 & sleep 62; true"), "{top}");
    assert!(
        top.contains("sleep 61") && top.contains("sleep 62"),
        "{top}"
    );
    // Host PIDs, as docker shows them: the init's is the recorded one.
    let pid = e.ok(&["inspect", "-f", "{{.State.Pid}}", "t"]);
    assert!(
        lines[1].split_whitespace().nth(1) == Some(pid.trim()),
        "{top}"
    );
    e.ok(&["rm", "-f", "t"]);
    assert!(stderr(&e.err(&["top", "nope"])).contains("no such container"));

    let history = e.ok(&["image", "history", "busybox"]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY"),
        "{history}"
    );
    let id = e.ok(&["images", "-q", "busybox"]);
    assert!(lines[1].starts_with(id.trim()), "{history}");
    assert_eq!(
        e.ok(&["history", "-q", "busybox"]).lines().next(),
        Some(id.trim())
    );
    e.assert_clean();
}

#[test]
fn publish_all_exposed_ports() {
    let e = Engine::new();
    // busybox exposes nothing: --expose names the ports, -P publishes them
    // on free host ports (and -p keeps its own).
    e.ok(&[
        "run", "-d", "--name", "px", "-P", "--expose", "80", "--expose", "53/udp", "-p", "8082:81",
        "busybox", "sleep", "60",
    ]);
    let ports = e.ok(&["port", "px"]);
    let lines: Vec<&str> = ports.lines().collect();
    assert_eq!(lines.len(), 3, "{ports}");
    assert!(ports.contains("81/tcp -> 0.0.0.0:8082"), "{ports}");
    let p80 = e.ok(&["port", "px", "80"]);
    let host: u16 = p80.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!((32768..=60999).contains(&host), "{p80}");
    assert!(e.ok(&["port", "px", "53/udp"]).starts_with("0.0.0.0:"));
    let out = e.err(&[
        "run",
        "--rm",
        "-P",
        "--expose",
        "80",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let out = e.err(&["run", "--rm", "--expose", "1:2", "busybox", "true"]);
    assert!(
        stderr(&out).contains("invalid --expose"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "px"]);
    e.assert_clean();
}

#[test]
fn system_df_and_prune() {
    let e = Engine::new();
    e.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "60"]);
    let gone = e.ok(&[
        "run",
        "-d",
        "--name",
        "gone",
        "-v",
        "keep:/k",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big",
    ]);
    e.ok(&["wait", "gone"]);
    e.ok(&["volume", "create", "spare"]);
    let df = e.ok(&["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert!(
        lines[0].starts_with("TYPE") && lines[0].ends_with("RECLAIMABLE"),
        "{df}"
    );
    let row = |name: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{df}"));
        line[name.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("Images")[..2], ["1", "1"], "{df}");
    assert_eq!(row("Containers")[..2], ["2", "1"], "{df}");
    assert_eq!(row("Containers")[2], "100kB", "{df}");
    assert_eq!(row("Local Volumes")[..2], ["2", "1"], "{df}");
    // Without -f and no answer: nothing happens.
    e.ok(&["system", "prune"]);
    assert_eq!(e.ok(&["ps", "-aq"]).lines().count(), 2);
    let out = e.ok(&["system", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Containers:\n{}\n", gone.trim())),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space: 100kB"), "{out}");
    assert_eq!(e.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\n");
    // Volumes only with --volumes: both are unused now.
    let out = e.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(
        out.contains("Deleted Volumes:") && out.contains("keep") && out.contains("spare"),
        "{out}"
    );
    assert_eq!(
        e.ok(&["images", "-q"]).lines().count(),
        1,
        "tagged images stay"
    );
    e.ok(&["rm", "-f", "up"]);
    e.assert_clean();
}

#[test]
fn ulimits_and_shm_size() {
    let e = Engine::new();
    let out = e.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=512:1024",
        "--ulimit",
        "nproc=300",
        "--shm-size",
        "16m",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; ulimit -u; df -k /dev/shm | tail -1",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["512", "1024", "300"], "{out}");
    assert_eq!(lines[3].split_whitespace().nth(1), Some("16384"), "{out}");
    // Fewer descriptors than the container's set-up needs: they are the
    // command's, as docker's, not the set-up's (which failed with EMFILE).
    for init in [None, Some("--init")] {
        let mut args = vec!["run", "--rm", "--ulimit", "nofile=10:10"];
        args.extend(init);
        args.extend(["busybox", "sh", "-c", "ulimit -n; ulimit -Hn"]);
        assert_eq!(e.ok(&args), "10\n10\n", "{init:?}");
    }
    // The default /dev/shm is docker's 64m.
    let out = e.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -1",
    ]);
    assert_eq!(out.split_whitespace().nth(1), Some("65536"), "{out}");
    for bad in ["nofile=2:1", "bogus=1", "nofile", "nofile=x"] {
        let out = e.err(&["run", "--rm", "--ulimit", bad, "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125));
        assert!(
            stderr(&out).contains("invalid --ulimit"),
            "{}",
            stderr(&out)
        );
    }
    let out = e.err(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=1:18446744073709551614",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&out).contains("above this host's"),
        "{}",
        stderr(&out)
    );
    e.assert_clean();
}
