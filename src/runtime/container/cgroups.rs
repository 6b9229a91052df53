//! cgroups: where a container's cgroup lives, what it uses, and cleaning up.
//!
//! libcontainer's cgroupfs manager creates a container's cgroup and applies
//! its limits from the OCI spec's `linux.cgroupsPath`; this module computes
//! that path, reads usage back for `skiff stats`, tells an OOM kill from any
//! other SIGKILL, and removes leaves that a crash or reboot left behind.
//!
//! Three host layouts exist (DESIGN.md, Known traps):
//! - legacy: only cgroup v1 hierarchies;
//! - hybrid: v1 hierarchies hold the controllers and a cgroup2 mount (usually
//!   /sys/fs/cgroup/unified) holds almost none; the controllers are read from
//!   v1, the unified tree only tracks membership;
//! - unified: pure cgroup v2, as on current distributions.
//!
//! skiff owns only its own subtree (`--cgroup-parent`, default `skiff`):
//! nothing here moves, kills or removes anything outside it, and removal is
//! an `rmdir`, which the kernel refuses while a process is still inside.

#[cfg(test)]
mod device_filter_tests;
pub mod freezer;
mod mountinfo;
#[cfg(test)]
mod tests;
pub mod warmup;

use std::io;
use std::path::{Path, PathBuf};

pub use mountinfo::{Hierarchy, Kind};

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CgroupMode {
    /// cgroup v1 only.
    Legacy,
    /// v1 controllers plus a cgroup2 mount (e.g. /sys/fs/cgroup/unified)
    /// holding few or no controllers.
    Hybrid,
    /// Pure cgroup v2.
    Unified,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no cgroup filesystem is mounted (see /proc/self/mountinfo; `ip netns exec` mounts a fresh /sys without one: enter a network namespace with `nsenter --net=/run/netns/NAME` instead)")]
    NotMounted,
    #[error("cgroup {0} does not exist")]
    NotFound(String),
    #[error("cgroup {0} still has processes or child cgroups")]
    Busy(String),
    #[error("unexpected content {value:?} in {path}")]
    Parse { path: PathBuf, value: String },
    #[error("invalid cgroup path {0:?}: use names separated by '/', without '.' or '..'")]
    InvalidPath(String),
}

/// Usage and limits of one container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub memory_usage_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub memory_max_usage_bytes: Option<u64>,
    /// Page cache the kernel can drop first: usage less this is the
    /// working set kubelet reports (and evicts by).
    pub memory_inactive_file_bytes: u64,
    pub cpu_usage_nanos: u64,
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
    pub oom_kills: u64,
}

/// The default `--cgroup-parent`.
pub fn default_parent() -> &'static str {
    "skiff"
}

/// The OCI spec's `linux.cgroupsPath` for a container: an absolute path,
/// which libcontainer's cgroupfs manager places under every hierarchy's
/// root (`/sys/fs/cgroup/memory/skiff/<id>` on v1, `/sys/fs/cgroup/skiff/<id>`
/// on v2). `parent` may be given with or without slashes around it.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    let parent = parent.trim_matches('/');
    if parent.is_empty() {
        format!("/{id}")
    } else {
        format!("/{parent}/{id}")
    }
}

/// Check a `--cgroup-parent` (or any cgroup path) before it is used, so a bad
/// flag fails early instead of escaping the subtree through `..`.
pub fn validate_path(path: &str) -> Result<(), CgroupError> {
    let trimmed = path.trim_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidPath(path.to_string()))
    }
}

/// The host's cgroup layout, from /proc/self/mountinfo.
pub fn detect() -> Result<CgroupMode, CgroupError> {
    Ok(Hierarchies::detect()?.mode())
}

/// Usage and limits of the cgroup at `path` (a `cgroups_path` value).
pub fn stats(path: &str) -> Result<Stats, CgroupError> {
    Hierarchies::detect()?.stats(path)
}

/// Whether the kernel's OOM killer has killed a process in the cgroup.
pub fn oom_killed(path: &str) -> Result<bool, CgroupError> {
    Hierarchies::detect()?.oom_killed(path)
}

/// Remove the cgroup's leaf directory in every hierarchy. Only empty
/// cgroups can go: nothing is moved or killed. A leaf already gone is fine.
pub fn remove(path: &str) -> Result<(), CgroupError> {
    Hierarchies::detect()?.remove(path)
}

/// SIGKILL every process left in the cgroup and below it (a container that
/// shared its PID namespace leaves its children behind when its own
/// process ends; nothing else would end them).
pub fn kill_all(path: &str) -> Result<(), CgroupError> {
    validate_path(path)?;
    let hierarchies = Hierarchies::detect()?;
    // Every v1 hierarchy holds the same processes: the first that has the
    // cgroup is enough.
    if let Some(dir) = hierarchies
        .list()
        .iter()
        .map(|h| Hierarchies::dir(h, path))
        .find(|d| d.join("cgroup.procs").exists())
    {
        kill_in(&dir);
    }
    Ok(())
}

fn kill_in(dir: &Path) {
    // cgroup v2's cgroup.kill ends the whole subtree at once, with no PID
    // read first that could be reused before the kill.
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 1 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    for name in subdirs(dir).unwrap_or_default() {
        kill_in(&dir.join(name));
    }
}

/// Where a container sees the cgroup filesystems libcontainer mounts for
/// it: /sys/fs/cgroup and, on v1, one directory per host hierarchy mounted
/// under it (named as on the host). An unreadable mount table is an error:
/// guessing would leave v1 hierarchies writable in the container.
pub fn container_mounts() -> Result<Vec<String>, CgroupError> {
    container_mounts_from(Path::new("/proc/self/mountinfo"))
}

fn container_mounts_from(mountinfo: &Path) -> Result<Vec<String>, CgroupError> {
    let root = Path::new(CGROUP_ROOT);
    let mut out = vec![CGROUP_ROOT.to_string()];
    let text = std::fs::read_to_string(mountinfo).map_err(|source| CgroupError::Io {
        path: mountinfo.to_path_buf(),
        source,
    })?;
    for m in mountinfo::v1_mountpoints(&text) {
        if m.parent() != Some(root) {
            continue;
        }
        if let Some(name) = m.file_name().and_then(|n| n.to_str()) {
            let path = format!("{CGROUP_ROOT}/{name}");
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    Ok(out)
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Leaves under `parent` with no process in any hierarchy (left by a crash
/// or a reboot), as `cgroups_path` values, sorted.
pub fn stale(parent: &str) -> Result<Vec<String>, CgroupError> {
    Hierarchies::detect()?.stale(parent)
}

/// The mounted cgroup hierarchies; the functions above detect them on every
/// call, which is cheap (one small read) and follows remounts.
#[derive(Debug, Clone)]
pub struct Hierarchies {
    list: Vec<Hierarchy>,
}

impl Hierarchies {
    pub fn detect() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_mountinfo(&text)
    }

    pub fn from_mountinfo(text: &str) -> Result<Self, CgroupError> {
        let list = mountinfo::parse(text);
        if list.is_empty() {
            return Err(CgroupError::NotMounted);
        }
        Ok(Self { list })
    }

    pub fn list(&self) -> &[Hierarchy] {
        &self.list
    }

    pub fn mode(&self) -> CgroupMode {
        let v1 = self.list.iter().any(|h| matches!(h.kind, Kind::V1 { .. }));
        let v2 = self.list.iter().any(|h| h.kind == Kind::V2);
        match (v1, v2) {
            (true, true) => CgroupMode::Hybrid,
            (true, false) => CgroupMode::Legacy,
            _ => CgroupMode::Unified,
        }
    }

    /// The hierarchy that holds `controller`: the v1 one when any v1
    /// hierarchy is mounted (hybrid hosts keep the controllers there), the
    /// unified one on a pure v2 host.
    pub fn controller(&self, controller: &str) -> Option<&Hierarchy> {
        match self.mode() {
            CgroupMode::Unified => self.list.iter().find(|h| h.kind == Kind::V2),
            _ => self.list.iter().find(|h| match &h.kind {
                Kind::V1 { controllers, .. } => controllers.iter().any(|c| c == controller),
                Kind::V2 => false,
            }),
        }
    }

    /// The directory of cgroup `path` in hierarchy `h`.
    pub fn dir(h: &Hierarchy, path: &str) -> PathBuf {
        h.mountpoint.join(path.trim_start_matches('/'))
    }

    pub fn stats(&self, path: &str) -> Result<Stats, CgroupError> {
        validate_path(path)?;
        let mut found = false;
        let mut stats = Stats::default();
        let v2 = self.mode() == CgroupMode::Unified;
        if let Some(dir) = self.existing_dir("memory", path, &mut found) {
            if v2 {
                stats.memory_usage_bytes = read_u64(&dir.join("memory.current"))?.unwrap_or(0);
                stats.memory_limit_bytes = read_limit(&dir.join("memory.max"))?;
                // memory.peak appeared in Linux 5.19.
                stats.memory_max_usage_bytes = read_u64(&dir.join("memory.peak"))?;
            } else {
                stats.memory_usage_bytes =
                    read_u64(&dir.join("memory.usage_in_bytes"))?.unwrap_or(0);
                stats.memory_limit_bytes = read_limit(&dir.join("memory.limit_in_bytes"))?;
                stats.memory_max_usage_bytes = read_u64(&dir.join("memory.max_usage_in_bytes"))?;
            }
            stats.oom_kills = oom_kills(&dir, v2)?;
            let stat = dir.join("memory.stat");
            let key = if v2 {
                "inactive_file"
            } else {
                "total_inactive_file"
            };
            stats.memory_inactive_file_bytes = read_opt(&stat)?
                .map(|text| keyed(&stat, &text, key))
                .transpose()?
                .flatten()
                .unwrap_or(0);
        }
        if v2 {
            if let Some(dir) = self.existing_dir("cpu", path, &mut found) {
                let stat = dir.join("cpu.stat");
                let usec = read_opt(&stat)?
                    .map(|text| keyed(&stat, &text, "usage_usec"))
                    .transpose()?
                    .flatten();
                stats.cpu_usage_nanos = usec.unwrap_or(0).saturating_mul(1000);
            }
        } else if let Some(dir) = self.existing_dir("cpuacct", path, &mut found) {
            stats.cpu_usage_nanos = read_u64(&dir.join("cpuacct.usage"))?.unwrap_or(0);
        }
        if let Some(dir) = self.existing_dir("pids", path, &mut found) {
            stats.pids_current = read_u64(&dir.join("pids.current"))?.unwrap_or(0);
            stats.pids_limit = read_limit(&dir.join("pids.max"))?;
        }
        if !found {
            return Err(CgroupError::NotFound(path.to_string()));
        }
        Ok(stats)
    }

    pub fn oom_killed(&self, path: &str) -> Result<bool, CgroupError> {
        validate_path(path)?;
        let mut found = false;
        let v2 = self.mode() == CgroupMode::Unified;
        match self.existing_dir("memory", path, &mut found) {
            Some(dir) => Ok(oom_kills(&dir, v2)? > 0),
            None => Err(CgroupError::NotFound(path.to_string())),
        }
    }

    pub fn remove(&self, path: &str) -> Result<(), CgroupError> {
        validate_path(path)?;
        let mut first_err = None;
        for h in &self.list {
            let dir = Self::dir(h, path);
            // A container may have made cgroups of its own below its leaf
            // (where its cgroupfs was writable): children go first.
            if let Err(e) = remove_children(&dir) {
                first_err.get_or_insert(e);
            }
            match std::fs::remove_dir(&dir) {
                Ok(()) => tracing::debug!(dir = %dir.display(), "removed cgroup"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // The kernel says EBUSY for a cgroup with processes or
                // children; a plain directory (tests) says ENOTEMPTY.
                Err(e) if matches!(e.raw_os_error(), Some(EBUSY) | Some(ENOTEMPTY)) => {
                    first_err.get_or_insert(CgroupError::Busy(path.to_string()));
                }
                Err(source) => {
                    first_err.get_or_insert(CgroupError::Io { path: dir, source });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub fn stale(&self, parent: &str) -> Result<Vec<String>, CgroupError> {
        validate_path(parent)?;
        let mut leaves = std::collections::BTreeSet::new();
        for h in &self.list {
            let dir = Self::dir(h, parent);
            for name in subdirs(&dir)? {
                leaves.insert(name);
            }
        }
        let mut out = Vec::new();
        for name in leaves {
            let path = cgroups_path(parent, &name);
            let mut busy = false;
            for h in &self.list {
                if has_processes(&Self::dir(h, &path))? {
                    busy = true;
                    break;
                }
            }
            if !busy {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// The directory of `path` in the hierarchy of `controller`, if both
    /// exist; sets `found` when the directory does.
    fn existing_dir(&self, controller: &str, path: &str, found: &mut bool) -> Option<PathBuf> {
        let dir = Self::dir(self.controller(controller)?, path);
        if dir.is_dir() {
            *found = true;
            Some(dir)
        } else {
            None
        }
    }
}

const EBUSY: i32 = nix::errno::Errno::EBUSY as i32;
const ENOTEMPTY: i32 = nix::errno::Errno::ENOTEMPTY as i32;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A control file's content, `None` when the kernel does not have that file
/// (older kernels lack memory.peak and oom_kill, hosts may lack pids).
fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn parse_u64(path: &Path, value: &str) -> Result<u64, CgroupError> {
    value.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        value: value.trim().to_string(),
    })
}

fn read_u64(path: &Path) -> Result<Option<u64>, CgroupError> {
    read_opt(path)?.map(|s| parse_u64(path, &s)).transpose()
}

/// A limit: `max` (v2, pids) or v1's "unlimited", which is i64::MAX rounded
/// down to a page; no real limit is anywhere near 4 EiB, so anything above
/// half of i64::MAX counts as none.
fn read_limit(path: &Path) -> Result<Option<u64>, CgroupError> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    if text.trim() == "max" {
        return Ok(None);
    }
    let v = parse_u64(path, &text)?;
    Ok((v <= i64::MAX as u64 / 2).then_some(v))
}

/// The value of `key` in a flat-keyed file (`key value` per line).
fn keyed(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            if k == key {
                return parse_u64(path, v).map(Some);
            }
        }
    }
    Ok(None)
}

/// OOM kills recorded for the memory cgroup `dir`: memory.events on v2,
/// memory.oom_control on v1 (its oom_kill line needs Linux 4.13).
fn oom_kills(dir: &Path, v2: bool) -> Result<u64, CgroupError> {
    let file = dir.join(if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    });
    match read_opt(&file)? {
        Some(text) => Ok(keyed(&file, &text, "oom_kill")?.unwrap_or(0)),
        None => Ok(0),
    }
}

fn subdirs(dir: &Path) -> Result<Vec<String>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let is_dir = entry.file_type().map_err(io_err(dir))?.is_dir();
        if is_dir {
            if let Some(name) = entry.file_name().to_str() {
                out.push(name.to_string());
            }
        }
    }
    Ok(out)
}

/// Remove the cgroups below `dir`, deepest first, with `rmdir` only (a
/// cgroup with a process stays, and so do its ancestors).
fn remove_children(dir: &Path) -> Result<(), CgroupError> {
    for name in subdirs(dir)? {
        let child = dir.join(name);
        remove_children(&child)?;
        match std::fs::remove_dir(&child) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if matches!(e.raw_os_error(), Some(EBUSY) | Some(ENOTEMPTY)) => {
                return Err(CgroupError::Busy(child.display().to_string()))
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    path: child,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Whether a process lives in the cgroup `dir` or below it (a container may
/// nest cgroups of its own). A directory that vanished has none.
fn has_processes(dir: &Path) -> Result<bool, CgroupError> {
    let procs = dir.join("cgroup.procs");
    match read_opt(&procs)? {
        Some(text) if !text.trim().is_empty() => return Ok(true),
        _ => {}
    }
    for name in subdirs(dir)? {
        if has_processes(&dir.join(name))? {
            return Ok(true);
        }
    }
    Ok(false)
}
