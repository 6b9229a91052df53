//! Health checks as docker's (`--health-cmd` and friends): probed inside
//! the running container by its shim, statuses starting → healthy ⇄
//! unhealthy in `inspect` and `ps`, timeouts that end the probe.

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;
use support::stderr;

fn health(v: &serde_json::Value) -> &serde_json::Value {
    &v["State"]["Health"]
}

#[test]
fn healthy_unhealthy_and_back() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 600",
    ]);
    let v = e.inspect("web");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /tmp/ok && echo fine"])
    );
    assert_eq!(v["Config"]["Healthcheck"]["Interval"], 200_000_000);

    let v = e.wait_for("web", "healthy", |v| health(v)["Status"] == "healthy");
    let log = health(&v)["Log"].as_array().unwrap();
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "fine\n");
    let ps = e.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("(healthy)"), "{ps}");
    assert_eq!(
        e.ok(&["ps", "-q", "--filter", "health=healthy"])
            .lines()
            .count(),
        1
    );
    assert_eq!(e.ok(&["ps", "-q", "--filter", "health=unhealthy"]), "");

    e.ok(&["exec", "web", "rm", "/tmp/ok"]);
    let v = e.wait_for("web", "unhealthy", |v| health(v)["Status"] == "unhealthy");
    assert!(health(&v)["FailingStreak"].as_i64().unwrap() >= 2, "{v:#}");
    assert!(health(&v)["Log"].as_array().unwrap().len() <= 5);
    let ps = e.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.contains("(unhealthy)"), "{ps}");

    e.ok(&["exec", "web", "touch", "/tmp/ok"]);
    let v = e.wait_for("web", "healthy again", |v| health(v)["Status"] == "healthy");
    assert_eq!(health(&v)["FailingStreak"], 0);

    e.ok(&["rm", "-f", "web"]);
    e.assert_clean();
}

#[test]
fn a_probe_that_overruns_its_timeout_is_ended() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 2; touch /tmp/survived",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "500ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "600",
    ]);
    let v = e.wait_for("slow", "unhealthy", |v| health(v)["Status"] == "unhealthy");
    let last = health(&v)["Log"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["ExitCode"], -1);
    assert_eq!(last["Output"], "Health check exceeded timeout (300ms)");
    // Each probe is ended at its timeout, inside the container too: none
    // lives to its second line.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let survived = e.skiff(&["exec", "slow", "test", "-e", "/tmp/survived"]);
    assert_eq!(survived.status.code(), Some(1), "a timed-out probe ran on");
    e.ok(&["rm", "-f", "slow"]);
    e.assert_clean();
}

#[test]
fn health_flags_are_checked_as_docker_does() {
    let e = Engine::new();
    for (args, msg) in [
        (
            vec!["--no-healthcheck", "--health-cmd", "true"],
            "--no-healthcheck conflicts with --health-* options",
        ),
        (
            vec!["--health-interval", "-1s"],
            "--health-interval cannot be negative",
        ),
        (
            vec!["--health-cmd", "true", "--health-timeout", "1us"],
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        (
            vec!["--health-interval", "soon"],
            "invalid duration \"soon\"",
        ),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(args);
        full.extend(["busybox", "true"]);
        let out = e.err(&full);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(stderr(&out).contains(msg), "{msg}: {}", stderr(&out));
    }
    // No check: no Health in inspect, nothing in ps.
    e.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"]);
    let v = e.inspect("plain");
    assert!(v["State"].get("Health").is_none(), "{v:#}");
    assert!(v["Config"]["Healthcheck"].is_null());
    e.ok(&["rm", "-f", "plain"]);
    e.assert_clean();
}
