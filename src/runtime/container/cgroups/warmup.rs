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
    // Finding the file reads mountinfo: that too is done off the caller's path.
    let spawned = std::thread::Builder::new()
        .name("cgroup-warmup".into())
        .spawn(|| {
            let Some(procs) = own_procs_file() else {
                return;
            };
            // Our own PID into our own cgroup: nothing moves.
            if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
                tracing::debug!(path = %procs.display(), error = %e, "cgroup warm-up write failed");
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cgroup warm-up thread not started");
    }
}

/// `cgroup.procs` of the cgroup this process is in, on a cgroup v2 host (the
/// hierarchy that holds the pids controller is the unified one).
fn own_procs_file() -> Option<PathBuf> {
    let hierarchies = Hierarchies::detect().ok()?;
    let h = hierarchies.controller("pids")?;
    // On v1 a warm-up would only make the container wait: the kernel holds
    // cgroup_mutex through the grace period, and joining needs it too.
    if !matches!(h.kind, Kind::V2) {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    Some(Hierarchies::dir(h, own_v2_path(&own)?).join("cgroup.procs"))
}

/// Our path in the unified hierarchy, from /proc/self/cgroup (`0::PATH`).
fn own_v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_unified_path() {
        let hybrid = "12:pids:/user.slice\n9:name=systemd:/user.slice/session-1.scope\n0::/user.slice/session-1.scope\n";
        assert_eq!(own_v2_path(hybrid), Some("/user.slice/session-1.scope"));
        assert_eq!(own_v2_path("4:cpu,cpuacct:/x\n"), None);
        assert_eq!(own_v2_path(""), None);
    }
}
