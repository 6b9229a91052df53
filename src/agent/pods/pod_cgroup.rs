//! A pod's own cgroup, as kubelet's cgroupfs driver lays it out: the
//! containers of a pod live under `<cgroup root>/kubepods/<qos>/pod<uid>`
//! (a Guaranteed pod's directly under `kubepods`; the root is the agent's
//! `--cgroup-root`, `skiff` unless two nodes share a host), and that cgroup holds the
//! pod's memory limit, CFS quota and CPU weight, so a pod is limited and
//! accounted as one, whatever its containers do between restarts. The
//! BestEffort class as a whole gets the least CPU weight, as upstream.
//!
//! The limits are upstream's ResourceConfigForPod: CPU weight from the sum
//! of requests; quota and memory only when every container has a limit
//! (otherwise the pod is not bounded); an init container counts as much as
//! the largest of them, since they run one at a time.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::spec::{self, SpecError};
use crate::runtime::container::cgroups::{self, CgroupError, CgroupMode, Hierarchies};
use crate::runtime::container::containerspec::{CpuQuota, Resources};

/// The QoS class's directory under kubepods ("" for Guaranteed).
fn class_dir(qos: &str) -> &'static str {
    match qos {
        "Guaranteed" => "",
        "BestEffort" => "besteffort",
        _ => "burstable",
    }
}

/// The agent's `--cgroup-root` unless it is given: the engine's parent
/// (`cgroups::default_parent`), so a node's pods sit beside its `skiff
/// run` containers.
pub const DEFAULT_ROOT: &str = "skiff";

pub fn default_root() -> &'static str {
    DEFAULT_ROOT
}

/// `<root>/kubepods`.
pub fn kubepods(root: &str) -> String {
    format!("{}/kubepods", root.trim_matches('/'))
}

/// The `kubepods` a pod cgroup lies in (its last such component), if any:
/// what a path noted by any agent, whatever its root, is swept against.
fn kubepods_of(pod_parent: &str) -> Option<String> {
    let parts: Vec<&str> = pod_parent.trim_matches('/').split('/').collect();
    let i = parts[..parts.len().saturating_sub(1)]
        .iter()
        .rposition(|p| *p == "kubepods")?;
    Some(parts[..=i].join("/"))
}

/// The cgroup parent of the pod's containers (a `--cgroup-parent` value)
/// under the agent's cgroup `root`.
pub fn parent(root: &str, pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let class = class_dir(&spec::qos_of(pod));
    if class.is_empty() {
        format!("{}/pod{uid}", kubepods(root))
    } else {
        format!("{}/{class}/pod{uid}", kubepods(root))
    }
}

/// The pod's limits: upstream's ResourceConfigForPod.
pub fn limits(pod: &Pod) -> Result<Resources, SpecError> {
    let Some(ps) = pod.spec.as_ref() else {
        return Ok(Resources::default());
    };
    let init = ps.init_containers.as_deref().unwrap_or_default();
    let mut main = Vec::new();
    for c in &ps.containers {
        main.push((spec::resources(c)?, spec::cpu_request_milli(c)?));
    }
    let mut inits = Vec::new();
    for c in init {
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        inits.push((sidecar, spec::resources(c)?, spec::cpu_request_milli(c)?));
    }
    // Upstream's PodLimits/PodRequests: init containers run in order, each
    // beside the sidecars started before it; then the containers beside
    // all the sidecars. A value the pod has only when every container has
    // it.
    let sum_or_max = |f: &dyn Fn(&Resources, i128) -> Option<i128>| -> Option<i128> {
        let mut sidecars = 0i128;
        let mut peak = 0i128;
        for (sidecar, r, m) in &inits {
            let v = f(r, *m)?;
            if *sidecar {
                sidecars += v;
                peak = peak.max(sidecars);
            } else {
                peak = peak.max(sidecars + v);
            }
        }
        let mut sum = sidecars;
        for (r, m) in &main {
            sum += f(r, *m)?;
        }
        Some(sum.max(peak))
    };
    let memory = sum_or_max(&|r, _| r.memory.map(i128::from));
    let quota = sum_or_max(&|r, _| r.cpu.map(|q| i128::from(q.quota)));
    let requested = sum_or_max(&|_, m| Some(m)).unwrap_or(0);
    let best_effort = spec::qos_of(pod) == "BestEffort";
    Ok(Resources {
        memory: memory
            .filter(|m| *m > 0)
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        cpu: quota.filter(|q| *q > 0).map(|q| CpuQuota {
            quota: i64::try_from(q).unwrap_or(i64::MAX),
            period: CpuQuota::PERIOD,
        }),
        cpu_shares: Some(if best_effort {
            spec::MIN_SHARES as u64
        } else {
            spec::shares(requested)
        }),
        ..Resources::default()
    })
}

/// cgroup v2's weight for v1 shares (the runtimes' conversion).
fn weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Make the cgroup at `path` in every hierarchy that holds one of
/// `controllers` and, on cgroup v2, enable them down to it (a new cgroup
/// has none of its parent's controllers until they are delegated).
fn make(h: &Hierarchies, path: &str) -> Result<(), CgroupError> {
    cgroups::validate_path(path)?;
    for ctl in ["memory", "cpu"] {
        let Some(hier) = h.controller(ctl) else {
            continue;
        };
        let dir = Hierarchies::dir(hier, path);
        std::fs::create_dir_all(&dir).map_err(|source| CgroupError::Io {
            path: dir.clone(),
            source,
        })?;
        if h.mode() == CgroupMode::Unified {
            // Each ancestor delegates the controllers to the next one;
            // best effort, as one that lacks a controller cannot give it.
            let mut cur = hier.mountpoint.clone();
            for part in path.trim_matches('/').split('/') {
                for c in ["+cpu", "+memory", "+pids"] {
                    let _ = std::fs::write(cur.join("cgroup.subtree_control"), c);
                }
                cur.push(part);
            }
        }
    }
    Ok(())
}

/// Set the pod's cgroup up with its limits (blocking: cgroupfs writes).
pub fn set_up(pod_parent: &str, limits: &Resources) -> Result<(), CgroupError> {
    let h = Hierarchies::detect()?;
    let v2 = h.mode() == CgroupMode::Unified;
    let top = kubepods_of(pod_parent).unwrap_or_default();
    let best_effort = format!("{top}/besteffort");
    if !top.is_empty() && pod_parent.starts_with(&format!("{best_effort}/")) {
        make(&h, &best_effort)?;
        if let Some(cpu) = h.controller("cpu") {
            let dir = Hierarchies::dir(cpu, &best_effort);
            if v2 {
                write(
                    &dir.join("cpu.weight"),
                    &weight(spec::MIN_SHARES as u64).to_string(),
                )?;
            } else {
                write(&dir.join("cpu.shares"), &spec::MIN_SHARES.to_string())?;
            }
        }
    }
    make(&h, pod_parent)?;
    let burstable = format!("{top}/burstable/");
    if let Some(mem) = h.controller("memory") {
        let dir = Hierarchies::dir(mem, pod_parent);
        if let Some(bytes) = limits.memory {
            let file = if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            write(&dir.join(file), &bytes.to_string())?;
        }
    }
    if let Some(cpu) = h.controller("cpu") {
        let dir = Hierarchies::dir(cpu, pod_parent);
        let shares = limits.cpu_shares.unwrap_or(1024);
        if v2 {
            write(&dir.join("cpu.weight"), &weight(shares).to_string())?;
            if let Some(q) = limits.cpu {
                write(&dir.join("cpu.max"), &format!("{} {}", q.quota, q.period))?;
            }
        } else {
            write(&dir.join("cpu.shares"), &shares.to_string())?;
            if let Some(q) = limits.cpu {
                write(&dir.join("cpu.cfs_period_us"), &q.period.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &q.quota.to_string())?;
            }
        }
    }
    if !top.is_empty() && pod_parent.starts_with(&burstable) {
        weigh_burstable(&h, &top);
    }
    Ok(())
}

/// v1 shares for a v2 weight (the inverse of [`weight`]).
fn shares_of_weight(w: u64) -> u64 {
    2 + (w.saturating_sub(1) * 262_142) / 9999
}

/// The Burstable class weighs what its pods request together (upstream's
/// QoS manager), so requests count against Guaranteed pods beside it;
/// best effort, as the pods' own weights are set either way.
fn weigh_burstable(h: &Hierarchies, kubepods: &str) {
    let Some(cpu) = h.controller("cpu") else {
        return;
    };
    let v2 = h.mode() == CgroupMode::Unified;
    let dir = Hierarchies::dir(cpu, &format!("{kubepods}/burstable"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut total = 0u64;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("pod") {
            continue;
        }
        let file = e.path().join(if v2 { "cpu.weight" } else { "cpu.shares" });
        let v = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        total = total.saturating_add(if v2 { shares_of_weight(v) } else { v });
    }
    let shares = total.clamp(spec::MIN_SHARES as u64, 262_144);
    let (file, value) = if v2 {
        ("cpu.weight", weight(shares))
    } else {
        ("cpu.shares", shares)
    };
    if let Err(e) = write(&dir.join(file), &value.to_string()) {
        tracing::debug!("weighing the Burstable class: {e}");
    }
}

/// Remove the pod's cgroup once its containers are gone (blocking). One
/// that still holds a process stays (and is reported): nothing is killed.
pub fn tear_down(pod_parent: &str) -> Result<(), CgroupError> {
    let h = Hierarchies::detect()?;
    h.remove(pod_parent)?;
    if let Some(top) = kubepods_of(pod_parent) {
        if pod_parent.starts_with(&format!("{top}/burstable/")) {
            weigh_burstable(&h, &top);
        }
    }
    Ok(())
}

/// Remove the `kubepods` under cgroup `root`, its QoS classes and then the
/// root itself where nothing is left in them (no pod of any agent, no
/// container of the engine): a plain rmdir, which the kernel refuses for a
/// cgroup with children or processes, so nobody else's is touched.
pub fn remove_empty_tree(root: &str) {
    let Ok(h) = Hierarchies::detect() else {
        return;
    };
    let top = kubepods(root);
    let mut paths = vec![
        format!("{top}/besteffort"),
        format!("{top}/burstable"),
        top.clone(),
    ];
    // A root of its own (`--cgroup-root skiff/node-1`) goes with its pods,
    // and nothing above it (not made by the agent); the engine's parent is
    // left to the engine.
    if root.trim_matches('/') != default_root() {
        paths.push(root.trim_matches('/').to_string());
    }
    for path in paths {
        for hierarchy in h.list() {
            let _ = std::fs::remove_dir(Hierarchies::dir(hierarchy, &path));
        }
    }
}

/// Where the agent notes the pod cgroups it made (`<root>/agent/cgroups/
/// <uid>` holding the path): the cgroup tree is the host's, shared with
/// any other agent or engine on it, so only what this agent noted is ever
/// swept.
fn marks(root: &Path) -> std::path::PathBuf {
    root.join("agent").join("cgroups")
}

/// Note that pod `uid`'s cgroup is `parent` (before it is made).
pub fn mark(root: &Path, uid: &str, parent: &str) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = marks(root);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    // Whole or not at all: a torn note would never be swept.
    let tmp = dir.join(format!(".{uid}.tmp"));
    std::fs::write(&tmp, parent)?;
    std::fs::rename(&tmp, dir.join(uid))
}

/// Note the agent's cgroup root (`.root` beside the pods' notes), so that
/// `skiff killall` on this data directory clears its tree even when no pod
/// is left in it.
pub fn record_root(root: &Path, cgroup_root: &str) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = marks(root);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let tmp = dir.join(".root.tmp");
    std::fs::write(&tmp, cgroup_root)?;
    std::fs::rename(&tmp, dir.join(".root"))
}

/// The cgroup root the agent of this data directory last ran with.
pub fn recorded_root(root: &Path) -> Option<String> {
    let r = std::fs::read_to_string(marks(root).join(".root")).ok()?;
    cgroups::validate_path(&r).is_ok().then_some(r)
}

/// The cgroup noted for pod `uid`, if any.
pub fn marked(root: &Path, uid: &str) -> Option<String> {
    std::fs::read_to_string(marks(root).join(uid)).ok()
}

/// Forget pod `uid`'s cgroup (once it is gone).
pub fn unmark(root: &Path, uid: &str) {
    let _ = std::fs::remove_file(marks(root).join(uid));
}

/// The pod cgroups this agent made under cgroup root `cgroup_root` and has
/// not removed: (uid, parent, when noted).
pub fn existing(root: &Path, cgroup_root: &str) -> Vec<(String, String, std::time::SystemTime)> {
    let under = format!("{}/", kubepods(cgroup_root));
    let Ok(entries) = std::fs::read_dir(marks(root)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let uid = e.file_name().to_str()?.to_string();
            if uid.starts_with('.') {
                return None;
            }
            let parent = std::fs::read_to_string(e.path()).ok()?;
            let at = e.metadata().ok()?.modified().ok()?;
            // Only ever a pod cgroup of this root's kubepods.
            let ok = parent.starts_with(&under)
                && kubepods_of(&parent).as_deref() == Some(kubepods(cgroup_root).as_str())
                && parent.ends_with(&format!("/pod{uid}"))
                && cgroups::validate_path(&parent).is_ok();
            ok.then_some((uid, parent, at))
        })
        .collect()
}

#[cfg(test)]
#[path = "pod_cgroup_tests.rs"]
mod tests;
