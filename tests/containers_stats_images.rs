//! `skiff stats` rows from real cgroups, and images that containers use:
//! `rmi` refuses them with docker's wording, `rmi -f` untags but keeps the
//! snapshots a container is stacked on, and `image prune` keeps them too.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::path::PathBuf;

use containers::Engine;
use support::stderr;

#[test]
fn stats_shows_a_running_container() {
    let e = Engine::new();
    let id = e.ok(&[
        "run", "-d", "--name", "sleeper", "--memory", "64m", "busybox", "sleep", "1000",
    ]);
    let out = e.ok(&["stats", "--no-stream"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
    ] {
        assert!(header.contains(col), "{col} in {out}");
    }
    let row = lines
        .find(|l| l.contains("sleeper"))
        .unwrap_or_else(|| panic!("no row for sleeper:\n{out}"));
    assert!(row.starts_with(&id.trim()[..12]), "{row}");
    assert!(row.contains("/ 64MiB"), "the memory limit: {row}");
    let pids: u64 = row
        .split_whitespace()
        .last()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("PIDS column: {row}"));
    assert!(pids >= 1, "{row}");
    let cpu = row
        .split_whitespace()
        .find(|w| w.ends_with('%'))
        .unwrap_or_else(|| panic!("CPU %: {row}"));
    assert!(cpu.trim_end_matches('%').parse::<f64>().is_ok(), "{row}");

    // Named containers only; a stopped one has no cgroup and no row.
    e.ok(&["run", "--name", "done", "busybox", "true"]);
    let out = e.ok(&["stats", "--no-stream", "sleeper", "done"]);
    assert!(out.contains("sleeper") && !out.contains("done"), "{out}");
    e.ok(&["rm", "-f", "sleeper", "done"]);
    e.assert_clean();
}

fn lower_dirs(e: &Engine, name: &str) -> Vec<PathBuf> {
    let v = e.inspect(name);
    v["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[test]
fn images_in_use_are_kept() {
    let e = Engine::new();
    let image_id = e.inspect("busybox")["Id"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("sha256:")
        .to_string();
    assert_eq!(image_id.len(), 64, "image ID");

    // A stopped container holds its image.
    e.ok(&["run", "--name", "stopped", "busybox", "true"]);
    let stopped = e.inspect("stopped")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let out = e.err(&["rmi", "busybox"]);
    let want = format!(
        "conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {}",
        &stopped[..12],
        &image_id[..12]
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert!(e.ok(&["images"]).contains("busybox"), "still tagged");
    e.ok(&["rm", "stopped"]);

    // A running one: -f untags, but its snapshots stay, through prune too.
    e.ok(&["run", "-d", "--name", "live", "busybox", "sleep", "1000"]);
    let lowers = lower_dirs(&e, "live");
    assert!(!lowers.is_empty());
    let out = e.ok(&["rmi", "-f", "busybox"]);
    assert!(
        out.contains("Untagged: docker.io/library/busybox:latest"),
        "{out}"
    );
    assert!(!e.ok(&["images"]).contains("busybox"), "untagged");
    e.ok(&["image", "prune"]);
    for l in &lowers {
        assert!(l.is_dir(), "{} kept for the container", l.display());
    }
    assert_eq!(
        e.ok(&["exec", "live", "echo", "still", "here"]),
        "still here\n"
    );

    // Once the container is gone, prune frees them.
    e.ok(&["rm", "-f", "live"]);
    e.ok(&["image", "prune"]);
    for l in &lowers {
        assert!(!l.exists(), "{} freed", l.display());
    }
    e.assert_clean();
}
