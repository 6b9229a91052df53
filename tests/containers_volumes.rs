//! Named volumes: data written by one container is there in the next, and a
//! volume a container uses cannot be removed.

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;
use support::stderr;

#[test]
fn named_volume_outlives_its_container() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/file",
    ]);
    let ls = e.ok(&["volume", "ls", "-q"]);
    assert_eq!(ls.trim(), "data");
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data:/mnt:ro",
        "busybox",
        "cat",
        "/mnt/file",
    ]);
    assert_eq!(out.trim(), "kept");
    // Read-only is enforced on a named volume too.
    let out = e.err(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data:/mnt:ro",
        "busybox",
        "sh",
        "-c",
        "echo x > /mnt/other",
    ]);
    assert!(!out.status.success());
    // A container (even stopped) that uses it keeps it from removal.
    e.ok(&[
        "run",
        "--name",
        "holder",
        "--network",
        "none",
        "-v",
        "data:/data",
        "busybox",
        "true",
    ]);
    let out = e.err(&["volume", "rm", "data"]);
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    e.ok(&["rm", "holder"]);
    e.ok(&["volume", "rm", "data"]);
    assert_eq!(e.ok(&["volume", "ls", "-q"]).trim(), "");
    e.assert_clean();
}

/// `--mount`, docker's long form: a named volume, a read-only host
/// directory and a tmpfs, and docker's complaint for a missing target.
#[test]
fn mount_flag_takes_volumes_binds_and_tmpfs() {
    let e = Engine::new();
    let host = e.dir.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from host\n").unwrap();
    let bind = format!(
        "type=bind,source={},target=/h,readonly",
        host.to_str().unwrap()
    );
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "source=vol,target=/v",
        "--mount",
        &bind,
        "--mount",
        "type=tmpfs,dst=/scratch",
        "busybox",
        "sh",
        "-c",
        "echo v > /v/x && cat /h/f && ! touch /h/nope 2>/dev/null && grep -c ' /scratch tmpfs ' /proc/mounts",
    ]);
    assert_eq!(out, "from host\n1\n");
    assert_eq!(e.ok(&["volume", "ls", "-q"]).trim(), "vol");
    let out = e.err(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/tmp",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&out).contains(
            "invalid argument \"type=bind,source=/tmp\" for \"--mount\" flag: target is required"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(125));
    e.ok(&["volume", "rm", "vol"]);
    e.assert_clean();
}
