//! Overlapping the kernel's cgroup-migration grace period with other work
//! (cgroup v2).
//!
//! Moving a process between cgroups (what libcontainer does when it writes a
//! PID into `cgroup.procs`) takes the kernel's global cgroup-threadgroup lock
//! for writing. When no migration happened in the last few milliseconds, that
//! first costs a full RCU grace period (`rcu_sync_enter`: 5–15 ms on an idle
//! host), spent asleep; migrations that follow within a grace period of the
//! previous one are quick.
//!
//! On cgroup v1 the container's process joins through `tasks` instead, which
//! skips that lock (vendor/libcgroups/SKIFF-PATCH.md), so there is nothing to
//! overlap. On v2 a process cannot join that way, so the start of a container
//! "touches" the lock from a helper thread, by writing our own PID into the
//! cgroup we are already in (a no-op move), while the caller resolves the
//! image, records the container and mounts its rootfs. By the time the
//! container's own processes join their cgroup, the grace period has passed or
//! is well under way. Any failure only loses the overlap.

use std::path::PathBuf;

use super::{Hierarchies, Kind};

/// Start the grace period in the background; returns at once. Only the
/// first call in a process does anything.
pub fn start() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(spawn);
}

fn spawn() {
    let Some(procs) = own_procs_file() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("cgroup-warmup".into())
        .spawn(move || {
            // Our own PID into our own cgroup: nothing moves.
            if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
                tracing::debug!(path = %procs.display(), error = %e, "cgroup warm-up write failed");
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cgroup warm-up thread not started");
    }
}

/// `cgroup.procs` of the cgroup this process is in, in the hierarchy that
/// holds the pids controller (or the unified one).
fn own_procs_file() -> Option<PathBuf> {
    let hierarchies = Hierarchies::detect().ok()?;
    let h = hierarchies.controller("pids")?;
    // On v1 a warm-up would only make the container wait: the kernel holds
    // cgroup_mutex through the grace period, and joining needs it too.
    if !matches!(h.kind, Kind::V2) {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own_path(&own, &h.kind)?;
    Some(Hierarchies::dir(h, path).join("cgroup.procs"))
}

/// Our path in hierarchy `kind`, from /proc/self/cgroup
/// (`ID:CONTROLLERS:PATH` lines; cgroup v2 is `0::PATH`).
fn own_path<'a>(proc_cgroup: &'a str, kind: &Kind) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match kind {
            Kind::V2 => controllers.is_empty(),
            Kind::V1 {
                controllers: want,
                name,
            } => {
                let have: Vec<&str> = controllers.split(',').collect();
                match name {
                    Some(n) => have.contains(&format!("name={n}").as_str()),
                    None => !want.is_empty() && want.iter().all(|c| have.contains(&c.as_str())),
                }
            }
        };
        matches.then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "12:pids:/user.slice\n9:name=systemd:/user.slice/session-1.scope\n4:cpu,cpuacct:/x\n0::/user.slice/session-1.scope\n";

    #[test]
    fn finds_our_path_per_hierarchy() {
        let pids = Kind::V1 {
            controllers: vec!["pids".into()],
            name: None,
        };
        assert_eq!(own_path(HYBRID, &pids), Some("/user.slice"));
        let cpu = Kind::V1 {
            controllers: vec!["cpu".into(), "cpuacct".into()],
            name: None,
        };
        assert_eq!(own_path(HYBRID, &cpu), Some("/x"));
        let systemd = Kind::V1 {
            controllers: vec![],
            name: Some("systemd".into()),
        };
        assert_eq!(
            own_path(HYBRID, &systemd),
            Some("/user.slice/session-1.scope")
        );
        assert_eq!(
            own_path(HYBRID, &Kind::V2),
            Some("/user.slice/session-1.scope")
        );
        assert_eq!(own_path("", &Kind::V2), None);
    }
}
