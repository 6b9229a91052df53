//! What kubelet reports about its host in the Node object: capacity,
//! allocatable, nodeInfo, and (in [`super::pressure`], re-exported here) the
//! eviction signals and the node's conditions.
//!
//! The measuring functions only read files and make syscalls; everything they
//! compute goes through pure functions over the files' text, so the
//! arithmetic and kubelet's formats are tested on fixed inputs.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::NodeSystemInfo;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::validation::quantity as q;

pub use super::pressure::{
    conditions, measure_signals, pid_available, pressure, to_time, Pressure, Signals,
};

/// kubelet's `--max-pods` default.
pub const MAX_PODS: u64 = 110;

/// kubelet's default hard eviction threshold for `memory.available`.
pub const MEMORY_AVAILABLE_THRESHOLD: u64 = 100 * 1024 * 1024;

/// kubelet's default hard eviction threshold for `nodefs.available`, a
/// percentage of the filesystem's size.
///
/// kubelet keeps percentages as float32 (`float32(10) / 100`) and multiplies
/// in float64, so 10% of a filesystem is a little more than a tenth
/// (0.1f32 is 0.100000001490116…). Keeping the same float makes allocatable
/// ephemeral-storage byte-for-byte what kubelet reports.
pub const NODEFS_AVAILABLE_PERCENT: f32 = 10.0 / 100.0;

pub(super) const MEMINFO: &str = "/proc/meminfo";
const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";
const MACHINE_ID: &str = "/etc/machine-id";
// cadvisor falls back to D-Bus's copy on hosts without systemd.
const DBUS_MACHINE_ID: &str = "/var/lib/dbus/machine-id";
const PRODUCT_UUID: &str = "/sys/class/dmi/id/product_uuid";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
// What uname(2) returns as the release, without needing nix's utsname.
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
const OS_RELEASE: &str = "/etc/os-release";

/// Why measuring the host or reading a flag failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file (or, for statvfs, the path measured) could not be read.
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A file was read but does not say what the kernel normally writes.
    #[error("{}: {what}", path.display())]
    Parse { path: PathBuf, what: String },
    /// A syscall that reads no file failed.
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        source: nix::Error,
    },
    /// A flag's value is wrong; the message says what was expected.
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
}

impl HostError {
    pub(super) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        HostError::Io {
            path: path.into(),
            source,
        }
    }

    pub(super) fn parse(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        HostError::Parse {
            path: path.into(),
            what: what.into(),
        }
    }
}

pub(super) fn read(path: &str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|e| HostError::io(path, e))
}

/// What the node has (kubelet's Capacity).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub pods: u64,
    /// "hugepages-2Mi" -> bytes, every size the kernel offers, 0 when none
    /// are allocated.
    pub hugepages: BTreeMap<String, u64>,
}

/// The lowest OOM score this process may give its children. Lowering a
/// score below one's own takes CAP_SYS_RESOURCE, which an agent in an
/// unprivileged container (LXC, a CI runner) lacks: there, Guaranteed and
/// node-critical pods get the agent's own score instead of failing to
/// start, as containerd's `restrict_oom_score_adj` does.
pub fn min_oom_score_adj() -> i32 {
    const FILE: &str = "/proc/self/oom_score_adj";
    let own = std::fs::read_to_string(FILE)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    // Tried, not read off the capability set: in a user namespace
    // CAP_SYS_RESOURCE shows but the kernel asks the initial namespace.
    // The lowest score is tried (a small step down can be allowed without
    // the capability); raising it back is always allowed.
    if own <= -1000 || std::fs::write(FILE, "-1000").is_ok() {
        let _ = std::fs::write(FILE, own.to_string());
        return -1000;
    }
    tracing::info!(
        min_oom_score_adj = own,
        "no CAP_SYS_RESOURCE: containers' OOM scores are kept at or above the agent's own"
    );
    own
}

/// The node's memory (MemTotal), in bytes.
pub fn memory_total() -> Result<u64, HostError> {
    parse_meminfo(&read(MEMINFO)?, "MemTotal")
        .ok_or_else(|| HostError::parse(MEMINFO, "no MemTotal line in kB"))
}

/// Measure capacity: cpu = CPUs this process may run on, memory = MemTotal,
/// ephemeral-storage = size of the filesystem holding `root`, pods = 110,
/// hugepages from /sys/kernel/mm/hugepages/*/nr_hugepages.
pub fn measure_capacity(root: &Path) -> Result<Resources, HostError> {
    let meminfo = read(MEMINFO)?;
    let memory_bytes = parse_meminfo(&meminfo, "MemTotal")
        .ok_or_else(|| HostError::parse(MEMINFO, "no MemTotal line in kB"))?;
    let fs = statfs(root)?;
    Ok(Resources {
        cpu_millis: cpus()?.saturating_mul(1000),
        memory_bytes,
        ephemeral_storage_bytes: fs.capacity_bytes,
        pods: MAX_PODS,
        hugepages: hugepages()?,
    })
}

/// The CPUs this process may run on. kubelet (through cadvisor) counts the
/// online CPUs; in a cpuset-confined agent the affinity mask is what pods
/// can actually get.
fn cpus() -> Result<u64, HostError> {
    use nix::sched::{sched_getaffinity, CpuSet};
    use nix::unistd::Pid;
    let set = sched_getaffinity(Pid::from_raw(0)).map_err(|source| HostError::Sys {
        call: "sched_getaffinity",
        source,
    })?;
    let n = (0..CpuSet::count())
        .filter(|&i| matches!(set.is_set(i), Ok(true)))
        .count();
    Ok(n as u64)
}

/// One filesystem's size and what is left, from statvfs as cadvisor reads
/// it (fragment size times block counts; free = blocks available to
/// unprivileged users).
pub struct FsStats {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    /// Free to root too (what kubelet's summary counts as not used).
    pub free_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

pub fn statfs(path: &Path) -> Result<FsStats, HostError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| HostError::io(path, e.into()))?;
    let frsize = st.fragment_size() as u64;
    Ok(FsStats {
        capacity_bytes: (st.blocks() as u64).saturating_mul(frsize),
        available_bytes: (st.blocks_available() as u64).saturating_mul(frsize),
        free_bytes: (st.blocks_free() as u64).saturating_mul(frsize),
        inodes: st.files() as u64,
        inodes_free: st.files_free() as u64,
    })
}

fn hugepages() -> Result<BTreeMap<String, u64>, HostError> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(HUGEPAGES_DIR) {
        Ok(entries) => entries,
        // A kernel without hugetlbfs offers no sizes: nothing to report.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(HostError::io(HUGEPAGES_DIR, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| HostError::io(HUGEPAGES_DIR, e))?;
        let Some(page_bytes) = entry.file_name().to_str().and_then(parse_hugepage_dir) else {
            continue;
        };
        let path = entry.path().join("nr_hugepages");
        let text = std::fs::read_to_string(&path).map_err(|e| HostError::io(&path, e))?;
        let pages: u64 = text
            .trim()
            .parse()
            .map_err(|_| HostError::parse(&path, format!("{:?} is not a count", text.trim())))?;
        out.insert(
            hugepage_resource_name(page_bytes),
            page_bytes.saturating_mul(pages),
        );
    }
    Ok(out)
}

/// A value from /proc/meminfo in bytes ("MemTotal:  16393340 kB"); None
/// when the line is missing or not a number.
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let mut words = line.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// The page size in bytes of a /sys/kernel/mm/hugepages entry
/// ("hugepages-2048kB"); None for anything else.
pub fn parse_hugepage_dir(name: &str) -> Option<u64> {
    let kb: u64 = name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    kb.checked_mul(1024).filter(|&b| b > 0)
}

/// The resource name kubelet gives a page size: "hugepages-" and the size
/// as a binary quantity ("hugepages-2Mi", "hugepages-1Gi", "hugepages-64Ki").
pub fn hugepage_resource_name(page_bytes: u64) -> String {
    format!("hugepages-{}", format_binary_si(page_bytes))
}

/// `--kube-reserved` / `--system-reserved`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reserved {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub pids: u64,
}

/// Parse "cpu=500m,memory=1Gi,ephemeral-storage=1Gi,pid=1000" as kubelet
/// does: comma-separated key=value pairs (spaces around either trimmed,
/// empty items skipped, a repeated key wins), Kubernetes quantities rounded
/// up to whole units (millicores for cpu, bytes, pids). Unknown keys,
/// negative values and values past 2^63-1 are errors.
pub fn parse_reserved(flag: &'static str, s: &str) -> Result<Reserved, HostError> {
    let err = |message: String| HostError::Flag { flag, message };
    let mut r = Reserved::default();
    for item in s.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(err(format!(
                "{:?} is not key=value (expected e.g. cpu=500m,memory=1Gi)",
                item.trim()
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        let (field, unit) = match key {
            "cpu" => (&mut r.cpu_millis, Unit::Milli),
            "memory" => (&mut r.memory_bytes, Unit::One),
            "ephemeral-storage" => (&mut r.ephemeral_storage_bytes, Unit::One),
            "pid" => (&mut r.pids, Unit::One),
            _ => {
                return Err(err(format!(
                    "cannot reserve {key:?} (expected cpu, memory, ephemeral-storage or pid)"
                )))
            }
        };
        *field = parse_quantity(value, unit).map_err(|why| err(format!("{key}={value}: {why}")))?;
    }
    Ok(r)
}

/// The unit a quantity is counted in.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Thousandths (cpu in millicores), as `Quantity.MilliValue()`.
    Milli,
    /// Whole units (bytes, pids), as `Quantity.Value()`.
    One,
}

/// A non-negative Kubernetes quantity ("500m", "1.5Gi", "0.5", "1e3") in
/// `unit`s, rounded up as apimachinery rounds (0.5 bytes is 1 byte, 0.1m
/// is 1m). The error says what was expected.
pub fn parse_quantity(s: &str, unit: Unit) -> Result<u64, String> {
    const EXPECTED: &str = "expected a quantity such as 500m, 2, 1.5, 100Mi or 1Gi";
    if q::parse(s).is_err() {
        return Err(format!("{s:?} is not a quantity ({EXPECTED})"));
    }
    let too_large = || format!("{s:?} is too large (quantities stop at 2^63-1)");
    let nanos = q::nanos(s).ok_or_else(too_large)?;
    if nanos < 0 {
        return Err(format!("{s:?} is negative; a reservation cannot be"));
    }
    let per_unit: i128 = match unit {
        Unit::Milli => 1_000_000,
        Unit::One => 1_000_000_000,
    };
    let n = (nanos + per_unit - 1) / per_unit;
    if n > i64::MAX as i128 {
        return Err(too_large());
    }
    Ok(n as u64)
}

/// kubelet's Allocatable: capacity minus kube-reserved, system-reserved and
/// the hard eviction thresholds (memory.available 100Mi, nodefs.available
/// 10% of ephemeral-storage), each floored at 0; memory also loses every
/// hugepage size's capacity, as kubelet takes pre-allocated huge pages out
/// of what pods can request as ordinary memory. Pods and hugepages are
/// unchanged.
pub fn allocatable(capacity: &Resources, kube: &Reserved, system: &Reserved) -> Resources {
    let memory = capacity.memory_bytes.saturating_sub(
        kube.memory_bytes
            .saturating_add(system.memory_bytes)
            .saturating_add(MEMORY_AVAILABLE_THRESHOLD),
    );
    let hugepages = capacity
        .hugepages
        .values()
        .fold(0u64, |sum, b| sum.saturating_add(*b));
    let storage = capacity.ephemeral_storage_bytes.saturating_sub(
        kube.ephemeral_storage_bytes
            .saturating_add(system.ephemeral_storage_bytes)
            .saturating_add(percent_of(
                capacity.ephemeral_storage_bytes,
                NODEFS_AVAILABLE_PERCENT,
            )),
    );
    Resources {
        cpu_millis: capacity
            .cpu_millis
            .saturating_sub(kube.cpu_millis.saturating_add(system.cpu_millis)),
        memory_bytes: memory.saturating_sub(hugepages),
        ephemeral_storage_bytes: storage,
        pods: capacity.pods,
        hugepages: capacity.hugepages.clone(),
    }
}

/// A percentage threshold's value as kubelet computes it
/// (`int64(float64(capacity) * float64(percentage))`, truncated).
pub fn percent_of(capacity: u64, percentage: f32) -> u64 {
    (capacity as f64 * f64::from(percentage)) as u64
}

/// The resources as the Node status shows them, in kubelet's formats: cpu
/// and pods as decimal quantities ("4", "3500m", "110"), memory,
/// ephemeral-storage and hugepages as binary ones ("16393340Ki", "2Gi", or
/// plain bytes when not a multiple of 1024, as allocatable often is).
pub fn quantities(r: &Resources) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    out.insert(
        "cpu".to_string(),
        Quantity(format_decimal_si_millis(r.cpu_millis)),
    );
    out.insert(
        "memory".to_string(),
        Quantity(format_binary_si(r.memory_bytes)),
    );
    out.insert(
        "ephemeral-storage".to_string(),
        Quantity(format_binary_si(r.ephemeral_storage_bytes)),
    );
    out.insert(
        "pods".to_string(),
        Quantity(format_decimal_si_millis(r.pods.saturating_mul(1000))),
    );
    for (name, bytes) in &r.hugepages {
        out.insert(name.clone(), Quantity(format_binary_si(*bytes)));
    }
    out
}

const DECIMAL_SUFFIXES: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
const BINARY_SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// A value given in thousandths, in apimachinery's canonical DecimalSI
/// form: millis when it is not whole ("3500m"), else the largest decimal
/// suffix that keeps it whole ("4", "1500", "2k").
pub fn format_decimal_si_millis(millis: u64) -> String {
    if millis % 1000 != 0 {
        return format!("{millis}m");
    }
    with_suffix(millis / 1000, 1000, &DECIMAL_SUFFIXES)
}

/// Bytes in apimachinery's canonical BinarySI form: the largest binary
/// suffix that keeps the value whole ("16393340Ki", "2Gi"), plain bytes when
/// it is not a multiple of 1024, and below 1024 the DecimalSI form
/// apimachinery switches to there (so 1000 bytes is "1k").
pub fn format_binary_si(bytes: u64) -> String {
    if bytes < 1024 {
        return format_decimal_si_millis(bytes * 1000);
    }
    with_suffix(bytes, 1024, &BINARY_SUFFIXES)
}

fn with_suffix(mut v: u64, base: u64, suffixes: &[&str]) -> String {
    let mut suffix = "";
    for s in suffixes {
        if v == 0 || v % base != 0 {
            break;
        }
        v /= base;
        suffix = s;
    }
    format!("{v}{suffix}")
}

/// nodeInfo as kubelet reports it. Files that cannot be read give "",
/// except osImage, which is "Linux" then (as cadvisor reports it).
pub fn node_info(skiff_version: &str, kubelet_version: &str) -> NodeSystemInfo {
    let first_line = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut machine_id = first_line(MACHINE_ID);
    if machine_id.is_empty() {
        machine_id = first_line(DBUS_MACHINE_ID);
    }
    let os_image = std::fs::read_to_string(OS_RELEASE)
        .ok()
        .and_then(|text| parse_os_release(&text))
        .unwrap_or_else(|| "Linux".to_string());
    NodeSystemInfo {
        machine_id,
        system_uuid: first_line(PRODUCT_UUID).to_lowercase(),
        boot_id: first_line(BOOT_ID),
        kernel_version: first_line(OSRELEASE),
        os_image,
        container_runtime_version: format!("skiff://{skiff_version}"),
        kubelet_version: kubelet_version.to_string(),
        kube_proxy_version: String::new(),
        operating_system: "linux".to_string(),
        architecture: go_arch(std::env::consts::ARCH, cfg!(target_endian = "little")),
        swap: None,
    }
}

/// PRETTY_NAME from an os-release file, unquoted as os-release(5) says
/// (double quotes with backslash escapes, or single quotes); None when
/// absent or empty.
pub fn parse_os_release(text: &str) -> Option<String> {
    let raw = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))?
        .trim();
    let value = if let Some(inner) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        out
    } else if let Some(inner) = raw.strip_prefix('\'') {
        inner.split('\'').next().unwrap_or_default().to_string()
    } else {
        raw.to_string()
    };
    let value = value.trim().to_string();
    (!value.is_empty()).then_some(value)
}

/// The architecture under Go's name (GOARCH), which is what kubelet reports
/// and what `kubernetes.io/arch` node selectors match.
pub fn go_arch(rust_arch: &str, little_endian: bool) -> String {
    match (rust_arch, little_endian) {
        ("x86_64", _) => "amd64",
        ("x86", _) => "386",
        ("aarch64", _) => "arm64",
        ("powerpc64", true) => "ppc64le",
        ("powerpc64", false) => "ppc64",
        ("loongarch64", _) => "loong64",
        ("mips", true) => "mipsle",
        ("mips64", true) => "mips64le",
        (other, _) => other,
    }
    .to_string()
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
