//! Placeholder for the cgroups module (being written in another tree): the
//! OCI `linux.cgroupsPath` of a container, and whether its memory cgroup saw
//! an OOM kill. At merge, `cgroups_path` becomes `cgroups::cgroups_path` and
//! `oom_killed` reads `cgroups::stats`.

use std::fs;
use std::path::Path;

/// The skiff subtree every container's cgroup lives under.
pub const DEFAULT_PARENT: &str = "/skiff";

/// `<parent>/<id>`: an absolute path, so libcontainer's v1 and v2 managers put
/// the container at the same place under every hierarchy.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    format!("{}/{id}", parent.trim_end_matches('/'))
}

/// Whether the kernel OOM-killed a process in the cgroup at `path` (v1:
/// `memory.oom_control`'s `oom_kill` counter; v2: `memory.events`). Must be
/// read before the cgroup is removed.
pub fn oom_killed(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/memory")
        .join(rel)
        .join("memory.oom_control");
    let v2 = Path::new("/sys/fs/cgroup").join(rel).join("memory.events");
    [v1, v2].iter().any(|file| {
        fs::read_to_string(file).is_ok_and(|text| counter(&text, "oom_kill").is_some_and(|n| n > 0))
    })
}

fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_under_parent() {
        assert_eq!(cgroups_path("/skiff", "abc"), "/skiff/abc");
        assert_eq!(cgroups_path("/skiff/", "abc"), "/skiff/abc");
    }

    #[test]
    fn oom_counter() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(counter(text, "oom_kill"), Some(2));
        assert_eq!(counter("low 0\n", "oom_kill"), None);
    }
}
