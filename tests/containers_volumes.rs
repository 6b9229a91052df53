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
