//! `skiff run` in the foreground against the real kernel: output, exit
//! codes, the image's command and overrides, read-only rootfs, bind mounts.

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;
use support::{stderr, stdout};

#[test]
fn echo_hello_and_exit_codes() {
    let e = Engine::new();
    assert_eq!(
        e.ok(&["run", "--rm", "busybox", "echo", "hello"]),
        "hello\n"
    );
    let out = e.err(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    // The exited container stays, with its code.
    let ps = e.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (3)"), "{ps}");
    e.ok(&["rm", e.ok(&["ps", "-aq"]).trim()]);
    e.assert_clean();
}

#[test]
fn missing_command_is_127_with_dockers_message() {
    let e = Engine::new();
    let out = e.err(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    e.assert_clean();
}

#[test]
fn env_user_workdir_entrypoint() {
    let e = Engine::new();
    let env_file = e.dir.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    let out = e.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE $(pwd) $(id -u) $(id -g) $HOME",
    ]);
    assert_eq!(out, "1 yes /tmp 65534 65534 /nonexistent\n");
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            "busybox",
            "via",
            "entrypoint"
        ]),
        "via entrypoint\n"
    );
    let out = e.err(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert!(
        stderr(&out).contains("unable to find user nosuchuser"),
        "{}",
        stderr(&out)
    );
    e.assert_clean();
}

#[test]
fn read_only_rootfs_refuses_writes() {
    let e = Engine::new();
    let out = e.err(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    // --tmpfs gives a writable place, and without --read-only / is writable.
    e.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "busybox",
        "touch",
        "/scratch/x",
    ]);
    e.ok(&["run", "--rm", "busybox", "touch", "/x"]);
    e.assert_clean();
}

#[test]
fn bind_mounts_and_read_only_binds() {
    let e = Engine::new();
    let host = e.dir.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in"), "from host").unwrap();
    let rw = format!("{}:/data", host.display());
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "-v",
            &rw,
            "busybox",
            "sh",
            "-c",
            "cat /data/in; echo out > /data/out"
        ]),
        "from host"
    );
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "out\n");
    let ro = format!("{}:/data:ro", host.display());
    let out = e.err(&["run", "--rm", "-v", &ro, "busybox", "touch", "/data/new"]);
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!host.join("new").exists());
    e.assert_clean();
}

/// A command that cannot be run fails the create, as runc's does: `run
/// -d` exits 127/126 too (it printed an ID and succeeded before), and the
/// container stays Created, as docker keeps it; `start` fails the same way.
#[test]
fn missing_command_fails_the_create_and_the_container_stays_created() {
    let e = Engine::new();
    let out = e.err(&["run", "-d", "--name", "bad", "busybox", "/no/such"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exec: \"/no/such\": stat /no/such: no such file or directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]),
        "bad Created\n"
    );
    let out = e.err(&["start", "bad"]);
    assert!(
        stderr(&out).contains("no such file or directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(e.inspect("bad")["State"]["Status"], "created");
    // Not executable: 126.
    let out = e.err(&["run", "-d", "--name", "dir", "busybox", "/etc"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    e.ok(&["rm", "bad", "dir"]);
    // A command found along the container's own PATH runs.
    e.ok(&["run", "--rm", "-e", "PATH=/bin", "busybox", "true"]);
    e.assert_clean();
}
