//! `system prune` as docker's: every container that is not running goes
//! (created ones too) — and a container being created or started
//! meanwhile is left alone.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use containers::Engine;
use support::stderr;

/// A container in the middle of its creation (or its start) looks like a
/// created one that nobody started; prune waits for the launch and leaves
/// the container. Held here by hand: the lock a launch holds until its
/// shim is up.
#[test]
fn prune_waits_for_a_launch_under_way() {
    let e = Engine::new();
    e.ok(&["create", "--name", "idle", "busybox", "true"]);
    let lock = std::fs::File::open(e.root().join("containers/launch.lock")).expect("lock file");
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockShared)
        .map_err(|(_, e)| e)
        .expect("flock");
    let mut prune = e
        .command(&["system", "prune", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prune");
    std::thread::sleep(Duration::from_millis(500));
    assert!(prune.try_wait().expect("try_wait").is_none(), "prune ran");
    assert_eq!(e.ok(&["ps", "-a", "--format", "{{.Names}}"]), "idle\n");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    while prune.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = prune.kill();
            panic!("prune hung after the launch ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = prune.wait_with_output().expect("output");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    e.assert_clean();
}

/// Runs racing prunes: every run gets its container started.
#[test]
fn runs_racing_prunes_all_start() {
    let e = Engine::new();
    let runs: Vec<_> = (0..6)
        .map(|i| {
            e.command(&[
                "run",
                "-d",
                "--name",
                &format!("r{i}"),
                "busybox",
                "sleep",
                "60",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn run")
        })
        .collect();
    let mut runs: Vec<_> = runs.into_iter().map(Some).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut outputs = Vec::new();
    while runs.iter().any(Option::is_some) {
        assert!(Instant::now() < deadline, "runs hung");
        e.ok(&["system", "prune", "-f"]);
        for slot in runs.iter_mut() {
            let done = slot
                .as_mut()
                .is_some_and(|c| c.try_wait().expect("try_wait").is_some());
            if done {
                if let Some(child) = slot.take() {
                    outputs.push(child.wait_with_output().expect("output"));
                }
            }
        }
    }
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    e.ok(&["system", "prune", "-f"]);
    assert_eq!(
        e.ok(&["ps", "--format", "{{.Names}}"]).lines().count(),
        6,
        "{}",
        e.ok(&["ps", "-a"])
    );
    let all: Vec<String> = (0..6).map(|i| format!("r{i}")).collect();
    let mut args = vec!["rm", "-f"];
    args.extend(all.iter().map(String::as_str));
    e.ok(&args);
    e.assert_clean();
}
