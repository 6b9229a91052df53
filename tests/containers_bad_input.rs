//! Bad input to `skiff run`: clear errors, non-zero exit, nothing left
//! behind (mounts, cgroups, shims, state directories).

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;
use support::stderr;

fn fails_with(e: &Engine, args: &[&str], needle: &str) {
    let out = e.err(args);
    assert!(
        stderr(&out).contains(needle),
        "skiff {args:?}: expected {needle:?} in:\n{}",
        stderr(&out)
    );
}

#[test]
fn bad_flags_and_names_leave_nothing_behind() {
    let e = Engine::new();
    // An image that is neither local nor reachable (127.0.0.1:9 refuses at once).
    fails_with(&e, &["run", "--rm", "127.0.0.1:9/nope:1", "true"], "nope");
    fails_with(
        &e,
        &["run", "--rm", "--memory", "-64m", "busybox", "true"],
        "invalid memory value",
    );
    fails_with(
        &e,
        &["run", "--rm", "--cpus", "0", "busybox", "true"],
        "invalid --cpus value",
    );
    fails_with(
        &e,
        &["run", "--rm", "--pids-limit", "0", "busybox", "true"],
        "invalid --pids-limit",
    );
    fails_with(
        &e,
        &["run", "--rm", "-v", "/tmp", "busybox", "true"],
        "invalid volume specification",
    );
    fails_with(
        &e,
        &["run", "--rm", "-v", "/tmp:data", "busybox", "true"],
        "must be absolute",
    );
    fails_with(
        &e,
        &[
            "run",
            "--rm",
            "-v",
            "/does/not/exist:/data",
            "busybox",
            "true",
        ],
        "does not exist",
    );
    fails_with(
        &e,
        &["run", "--rm", "--network", "bridge0", "busybox", "true"],
        "invalid network",
    );
    fails_with(
        &e,
        &["run", "--rm", "--name", "bad/name", "busybox", "true"],
        "invalid container name",
    );
    fails_with(
        &e,
        &["run", "--rm", "--entrypoint", "", "busybox"],
        "no command specified",
    );
    let out = e.err(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    e.assert_clean();

    e.ok(&["run", "--name", "taken", "busybox", "true"]);
    fails_with(
        &e,
        &["run", "--name", "taken", "busybox", "true"],
        "is already in use",
    );
    assert_eq!(e.ok(&["ps", "-aq"]).lines().count(), 1);
    fails_with(&e, &["stop", "nothing-here"], "no such container");
    e.ok(&["rm", "taken"]);
    e.assert_clean();
}
