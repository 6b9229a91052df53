//! Labels on containers (`run --label`): kept on the record, shown by
//! inspect, refused when malformed. The records DB's query by label (how a
//! restarted agent finds its containers) is unit-tested in records.rs.

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;
use support::stderr;

#[test]
fn labels_show_in_inspect_and_bad_ones_are_refused() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "tagged",
        "--label",
        "io.skiff.pod=web",
        "-l",
        "tier",
        "-l",
        "expr=a=b",
        "busybox",
        "true",
    ]);
    let v = e.inspect("tagged");
    assert_eq!(
        v["Config"]["Labels"],
        serde_json::json!({"io.skiff.pod": "web", "tier": "", "expr": "a=b"})
    );
    e.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "plain",
        "busybox",
        "true",
    ]);
    assert_eq!(
        e.inspect("plain")["Config"]["Labels"],
        serde_json::json!({})
    );

    let out = e.err(&["run", "--rm", "--label", "=x", "busybox", "true"]);
    assert!(
        stderr(&out).contains("invalid --label \"=x\""),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "tagged", "plain"]);
    e.assert_clean();
}
