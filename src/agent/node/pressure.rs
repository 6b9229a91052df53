//! The signals kubelet's eviction manager watches, whether they cross its
//! default hard thresholds, and the node conditions kubelet writes from
//! them. The names are re-exported from [`super::host`].

use std::path::Path;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::host::{
    parse_meminfo, percent_of, read, statfs, HostError, MEMINFO, MEMORY_AVAILABLE_THRESHOLD,
    NODEFS_AVAILABLE_PERCENT,
};

const PID_MAX: &str = "/proc/sys/kernel/pid_max";
const THREADS_MAX: &str = "/proc/sys/kernel/threads-max";
const LOADAVG: &str = "/proc/loadavg";

/// kubelet's default `nodefs.inodesFree` (and `imagefs.inodesFree`) hard
/// threshold, as kubelet's float32 percentage.
pub const INODES_FREE_PERCENT: f32 = 5.0 / 100.0;

/// kubelet's default `imagefs.available` hard threshold. skiff keeps its
/// images under its data directory, on the filesystem holding `root`; a
/// kubelet whose runtime keeps images on the node's own disk observes
/// imagefs on that same filesystem and so reports DiskPressure once less
/// than 15% is free, before nodefs' 10% is reached. skiff does the same.
pub const IMAGEFS_AVAILABLE_PERCENT: f32 = 15.0 / 100.0;

/// pid.available's threshold. kubelet has none by default (its
/// DefaultEvictionHard lists only memory, nodefs and imagefs), so a stock
/// kubelet never reports PIDPressure unless an operator sets one. skiff
/// sets 10%: on the small boxes it targets threads-max, which the kernel
/// sizes from RAM (a 512 MB box allows a few thousand tasks), caps pid_max,
/// and one forking pod can use it all up; 10% of the tasks left is room for
/// the agent, its shims and an operator's shell to keep forking while the
/// PIDPressure taint keeps new pods away. It is the same share as the
/// nodefs.available default, kept as kubelet keeps percentages.
pub const PID_AVAILABLE_PERCENT: f32 = 10.0 / 100.0;

/// The signals kubelet's eviction manager uses, measured now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signals {
    /// MemAvailable. (kubelet computes memory.available as capacity minus
    /// the root cgroup's working set; MemAvailable is the kernel's own
    /// estimate of the same thing and needs no cgroup walk.)
    pub memory_available_bytes: u64,
    pub nodefs_available_bytes: u64,
    pub nodefs_capacity_bytes: u64,
    pub nodefs_inodes_free: u64,
    pub nodefs_inodes: u64,
    pub pids_available: u64,
    /// The system-wide task limit: pid_max capped by threads-max.
    pub pid_max: u64,
}

/// Measure the signals; the filesystem is the one holding `root`.
pub fn measure_signals(root: &Path) -> Result<Signals, HostError> {
    let meminfo = read(MEMINFO)?;
    let memory_available_bytes = parse_meminfo(&meminfo, "MemAvailable").ok_or_else(|| {
        HostError::parse(
            MEMINFO,
            "no MemAvailable line in kB (a kernel before 3.14?)",
        )
    })?;
    let fs = statfs(root)?;
    let number = |path: &'static str| -> Result<u64, HostError> {
        let text = read(path)?;
        text.trim()
            .parse()
            .map_err(|_| HostError::parse(path, format!("{:?} is not a number", text.trim())))
    };
    let (pid_max, threads_max) = (number(PID_MAX)?, number(THREADS_MAX)?);
    let pids_available = pid_available(pid_max, threads_max, &read(LOADAVG)?)
        .map_err(|what| HostError::parse(LOADAVG, what))?;
    Ok(Signals {
        memory_available_bytes,
        nodefs_available_bytes: fs.available_bytes,
        nodefs_capacity_bytes: fs.capacity_bytes,
        nodefs_inodes_free: fs.inodes_free,
        nodefs_inodes: fs.inodes,
        pids_available,
        pid_max: pid_max.min(threads_max),
    })
}

/// pid.available as kubelet computes it: the smaller of kernel.pid_max and
/// kernel.threads-max (both bound the number of tasks) minus the tasks that
/// exist now. The count is the total after the slash in /proc/loadavg's
/// fourth field ("0.20 0.18 0.12 1/80 11206": 80 tasks), which kubelet
/// prefers to sysinfo(2) because that one truncates past 65535.
pub fn pid_available(pid_max: u64, threads_max: u64, loadavg: &str) -> Result<u64, String> {
    let field = loadavg
        .split_whitespace()
        .nth(3)
        .ok_or_else(|| format!("{:?} has no running/total field", loadavg.trim()))?;
    let tasks: u64 = field
        .split_once('/')
        .and_then(|(_, total)| total.parse().ok())
        .ok_or_else(|| format!("{field:?} is not running/total"))?;
    Ok(pid_max.min(threads_max).saturating_sub(tasks))
}

/// How long a pressure stays reported after its signal went back over the
/// threshold: kubelet's evictionPressureTransitionPeriod (5 minutes), so a
/// signal hovering at the line does not flip the condition on every report.
pub const PRESSURE_TRANSITION: std::time::Duration = std::time::Duration::from_secs(300);

/// When each pressure was last observed, for [`PRESSURE_TRANSITION`].
#[derive(Debug, Default, Clone)]
pub struct Held {
    memory: Option<std::time::Instant>,
    disk: Option<std::time::Instant>,
    pid: Option<std::time::Instant>,
}

impl Held {
    /// The pressures to report, given those observed `now`.
    pub fn apply(&mut self, observed: Pressure, now: std::time::Instant) -> Pressure {
        let hold = |seen: bool, last: &mut Option<std::time::Instant>| {
            if seen {
                *last = Some(now);
            }
            last.is_some_and(|t| now.saturating_duration_since(t) < PRESSURE_TRANSITION)
        };
        Pressure {
            memory: hold(observed.memory, &mut self.memory),
            disk: hold(observed.disk, &mut self.disk),
            pid: hold(observed.pid, &mut self.pid),
        }
    }
}

/// Which of kubelet's node pressures hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// Whether each pressure holds under kubelet's default hard thresholds
/// (a signal under its threshold): memory.available < 100Mi;
/// nodefs.available < 10%, nodefs.inodesFree < 5%, and, since images share
/// that filesystem, imagefs.available < 15% and imagefs.inodesFree < 5%;
/// pid.available < 10% (skiff's choice, see [`PID_AVAILABLE_PERCENT`]).
pub fn pressure(s: &Signals) -> Pressure {
    let below = |available: u64, capacity: u64, pct: f32| available < percent_of(capacity, pct);
    Pressure {
        memory: s.memory_available_bytes < MEMORY_AVAILABLE_THRESHOLD,
        disk: below(
            s.nodefs_available_bytes,
            s.nodefs_capacity_bytes,
            NODEFS_AVAILABLE_PERCENT,
        ) || below(
            s.nodefs_available_bytes,
            s.nodefs_capacity_bytes,
            IMAGEFS_AVAILABLE_PERCENT,
        ) || below(s.nodefs_inodes_free, s.nodefs_inodes, INODES_FREE_PERCENT),
        pid: below(s.pids_available, s.pid_max, PID_AVAILABLE_PERCENT),
    }
}

/// The node's conditions as kubelet writes them, in kubelet's order
/// (MemoryPressure, DiskPressure, PIDPressure, Ready), with its reasons and
/// messages. lastHeartbeatTime is `now`; lastTransitionTime is kept from
/// `previous` while a condition's status is unchanged. Times are whole
/// seconds, as the API stores them. Conditions of other types in
/// `previous` are not returned: merge by type (as a strategic merge patch
/// does) to keep them.
pub fn conditions(
    p: Pressure,
    not_ready: Option<&str>,
    previous: &[NodeCondition],
    now: DateTime<Utc>,
) -> Vec<NodeCondition> {
    let now = to_time(now);
    let condition = |type_: &str, status: bool, reason: &str, message: &str| {
        let status = if status { "True" } else { "False" };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_)
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(last_transition_time),
        }
    };
    let memory = if p.memory {
        condition(
            "MemoryPressure",
            true,
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        )
    } else {
        condition(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        )
    };
    let disk = if p.disk {
        condition(
            "DiskPressure",
            true,
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
        )
    } else {
        condition(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        )
    };
    let pid = if p.pid {
        condition(
            "PIDPressure",
            true,
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        )
    } else {
        condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        )
    };
    let ready = match not_ready {
        None => condition(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status",
        ),
        Some(why) => condition("Ready", false, "KubeletNotReady", why),
    };
    vec![memory, disk, pid, ready]
}

/// A chrono time as the API's Time, cut to whole seconds (what the API
/// stores), clamped to the range the API can represent.
pub fn to_time(t: DateTime<Utc>) -> Time {
    let secs = t.timestamp();
    Time(Timestamp::from_second(secs).unwrap_or(if secs < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    }))
}

#[cfg(test)]
#[path = "pressure_tests.rs"]
mod tests;
