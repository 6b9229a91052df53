//! `system prune` and `image prune` as docker's: every container that is
//! not running goes (created ones too), `-a` takes every image no container
//! uses, the output says what went — and a container being created or
//! started meanwhile is left alone.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containers::Engine;
use support::{run_ok, stderr};

/// Load a second image, `mini` (a few applets: other layers than busybox's).
fn load_mini(e: &Engine) {
    let dir = e.dir.path().join("mini");
    std::fs::create_dir_all(&dir).expect("mini dir");
    let image = support::busybox::oci_image(&dir, support::busybox::Contents::Minimal);
    let archive = dir.join("mini.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(&image)
            .arg(format!("docker-archive:{}:mini:latest", archive.display())),
    );
    e.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
}

fn image_id(e: &Engine, name: &str) -> String {
    e.ok(&["inspect", "-f", "{{.Id}}", name]).trim().to_string()
}

#[test]
fn created_containers_and_images_no_container_uses() {
    let e = Engine::new();
    load_mini(&e);
    let (busybox, mini) = (image_id(&e, "busybox"), image_id(&e, "mini"));
    e.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "60"]);
    // Created and never started: docker's prune takes it.
    let idle = e.ok(&["create", "--name", "idle", "mini", "true"]);
    let out = e.ok(&["system", "prune", "-f"]);
    assert_eq!(
        out,
        format!(
            "Deleted Containers:\n{}\n\nTotal reclaimed space: 0B\n",
            idle.trim()
        )
    );
    assert_eq!(e.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\n");
    // Tagged images stay without -a.
    assert_eq!(e.ok(&["images", "-q"]).lines().count(), 2);

    // -a: every image no container uses, named as docker names them.
    let out = e.ok(&["system", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: mini:latest\ndeleted: {mini}\ndeleted: sha256:"
        )),
        "{out}"
    );
    assert!(out.contains("\n\nTotal reclaimed space: "), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert_eq!(
        e.ok(&["images", "--format", "{{.Repository}}"]),
        "busybox\n"
    );

    // The running container's image stays; once it is gone, so is the image.
    assert_eq!(
        e.ok(&["image", "prune", "-a", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    e.ok(&["rm", "-f", "up"]);
    let out = e.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: busybox:latest\ndeleted: {busybox}\n"
        )),
        "{out}"
    );
    assert_eq!(e.ok(&["images", "-q"]), "");
    e.assert_clean();
}

/// The prompts say what docker's say; no answer removes nothing.
#[test]
fn the_warnings_are_dockers() {
    let e = Engine::new();
    e.ok(&["create", "--name", "idle", "busybox", "true"]);
    let out = e.skiff(&["system", "prune", "-a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "WARNING! This will remove:\n  - all stopped containers\n  - all images without at least \
         one container associated to them\n\nAre you sure you want to continue? [y/N] \n"
    );
    let out = e.skiff(&["system", "prune"]);
    assert!(
        stderr(&out).contains("  - all stopped containers\n  - all dangling images\n"),
        "{}",
        stderr(&out)
    );
    assert_eq!(e.ok(&["ps", "-aq"]).lines().count(), 1);
    assert_eq!(e.ok(&["images", "-q"]).lines().count(), 1);
    e.ok(&["rm", "idle"]);
    e.assert_clean();
}

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
