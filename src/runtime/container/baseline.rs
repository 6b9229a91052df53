//! The baseline confinement every container starts from: Docker's default
//! security profile and filesystem layout (moby's `oci/defaults.go`; the
//! kubelet's runtimes use the same), kept as data so the spec builder stays
//! readable. A ContainerSpec widens or narrows it (capabilities, devices,
//! privileged).

use serde_json::{json, Value};

/// Docker's default capability set without CAP_MKNOD: creating a node is
/// allowed by the device cgroup (as in Docker, "c *:* m"), so the missing
/// capability is what stops a container from creating device nodes.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability (`--privileged`), up to CAP_CHECKPOINT_RESTORE (Linux 5.9).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `--privileged`: every capability in `bounding` (a CapBnd mask), as
/// Docker gives every capability it holds itself (root here may lack
/// CAP_SYS_RESOURCE, and capset fails on what the caller cannot grant).
/// ALL_CAPABILITIES is in the kernel's numbering order.
pub fn privileged_capabilities(bounding: u64) -> Vec<&'static str> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// What a container can have of `caps`: no process gets a capability its
/// parent's bounding set lacks. `--cap-add ALL` means all that skiff
/// holds; one named outright that skiff lacks is an error naming it (the
/// container's init would otherwise fail with an opaque "failed syscall").
pub fn within_bounding_set(
    caps: Vec<&'static str>,
    added: &[String],
    bounding: u64,
) -> Result<Vec<&'static str>, String> {
    let held = |c: &str| {
        ALL_CAPABILITIES
            .iter()
            .position(|x| *x == c)
            .is_some_and(|bit| bit < 64 && bounding & (1u64 << bit) != 0)
    };
    let all = added.iter().any(|a| a.eq_ignore_ascii_case("ALL"));
    let mut out = Vec::with_capacity(caps.len());
    for c in caps {
        if held(c) {
            out.push(c);
        } else if !all {
            return Err(c.to_string());
        }
    }
    Ok(out)
}

/// `base` with `drop` taken out and `add` put in (names with or without
/// `CAP_`, any case; `ALL` for every one), as docker's `--cap-add/--cap-drop`
/// and a Pod's `securityContext.capabilities`: drops first, then adds. An
/// unknown name is an error, never ignored.
pub fn adjust_capabilities(
    base: &[&'static str],
    add: &[String],
    drop: &[String],
) -> Result<Vec<&'static str>, String> {
    let known = |name: &str| -> Result<Option<&'static str>, String> {
        let upper = name.to_ascii_uppercase();
        if upper == "ALL" {
            return Ok(None);
        }
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        ALL_CAPABILITIES
            .iter()
            .find(|c| **c == full)
            .map(|c| Some(*c))
            .ok_or_else(|| name.to_string())
    };
    let mut caps = base.to_vec();
    for d in drop {
        match known(d)? {
            None => caps.clear(),
            Some(c) => caps.retain(|x| *x != c),
        }
    }
    for a in add {
        let wanted = match known(a)? {
            None => ALL_CAPABILITIES.to_vec(),
            Some(c) => vec![c],
        };
        for c in wanted {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    Ok(caps)
}

/// The calling process's bounding set (CapBnd in /proc/self/status); all
/// bits when it cannot be read.
pub fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// One rule of the device cgroup: `kind` is 'a' (all), 'c' or 'b'; `None`
/// is the wildcard `*`; `access` is a subset of "rwm".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: &'static str,
}

const fn allow(
    kind: char,
    major: Option<i64>,
    minor: Option<i64>,
    access: &'static str,
) -> DeviceRule {
    DeviceRule {
        allow: true,
        kind,
        major,
        minor,
        access,
    }
}

/// What a container may open: Docker's default (moby's default spec denies
/// everything, runc's `AllowedDevices` then allows these), nothing else.
/// Image layers carry device nodes (as Docker keeps them), so this list,
/// not the filesystem, is what keeps a container off the host's disks,
/// memory and consoles. `--device` and `--privileged` widen it.
pub const DEVICE_RULES: &[DeviceRule] = &[
    DeviceRule {
        allow: false,
        kind: 'a',
        major: None,
        minor: None,
        access: "rwm",
    },
    // mknod of any node (CAP_MKNOD is dropped, see CAPABILITIES).
    allow('c', None, None, "m"),
    allow('b', None, None, "m"),
    allow('c', Some(1), Some(3), "rwm"),    // /dev/null
    allow('c', Some(1), Some(8), "rwm"),    // /dev/random
    allow('c', Some(1), Some(7), "rwm"),    // /dev/full
    allow('c', Some(5), Some(0), "rwm"),    // /dev/tty
    allow('c', Some(1), Some(5), "rwm"),    // /dev/zero
    allow('c', Some(1), Some(9), "rwm"),    // /dev/urandom
    allow('c', Some(136), None, "rwm"),     // /dev/pts/*
    allow('c', Some(5), Some(2), "rwm"),    // /dev/ptmx
    allow('c', Some(10), Some(200), "rwm"), // /dev/net/tun
];

/// A rule as the OCI spec's `linux.resources.devices` entry.
pub fn device_rule_json(r: &DeviceRule) -> Value {
    let mut v = json!({"allow": r.allow, "access": r.access});
    if r.kind != 'a' {
        v["type"] = json!(r.kind.to_string());
    }
    if let Some(m) = r.major {
        v["major"] = json!(m);
    }
    if let Some(m) = r.minor {
        v["minor"] = json!(m);
    }
    v
}

/// Paths under /proc and /sys that leak host information or allow attacks.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Kernel tunables a container may read but never write.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default mounts, in mount order.
pub fn mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ]
}

/// A bind mount of a host path.
pub fn bind(source: &str, destination: &str, read_only: bool) -> Value {
    let mut options = vec!["rbind", "rprivate"];
    if read_only {
        options.push("ro");
    }
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

/// A `--tmpfs` mount as docker makes it.
pub fn tmpfs(destination: &str) -> Value {
    json!({"destination": destination, "type": "tmpfs", "source": "tmpfs",
           "options": ["nosuid", "nodev", "noexec", "mode=1777"]})
}
