//! What skiff needs of the kernel and the host, checked (`skiff
//! check-config`, as k3s's check-config): each check says what it found
//! and, when it fails, how to fix it. The checks read a [`Host`]: the
//! running system's /proc, /sys and kernel configuration, or another tree
//! (a test's, to simulate a kernel that lacks something).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the facts are read from.
pub struct Host {
    pub proc: PathBuf,
    pub sys: PathBuf,
    /// The kernel's build configuration (`CONFIG_X=y|m`), if it can be
    /// found: /proc/config.gz, or /boot/config-<release>.
    pub config: Option<BTreeMap<String, String>>,
    pub config_source: Option<PathBuf>,
    /// The kernel's modules (`/lib/modules/<release>`): what can be
    /// loaded without a configuration to ask.
    pub modules: PathBuf,
}

/// How much a failure matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// skiff cannot work without it.
    Required,
    /// A part of skiff (named in the check) will not work.
    Recommended,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: &'static str,
    pub need: Need,
    pub ok: bool,
    /// What was found.
    pub found: String,
    /// How to fix it, when it failed.
    pub fix: Option<String>,
}

impl Host {
    /// The running system.
    pub fn running() -> Host {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let candidates = [
            PathBuf::from("/proc/config.gz"),
            PathBuf::from(format!("/boot/config-{release}")),
            PathBuf::from(format!("/lib/modules/{release}/build/.config")),
        ];
        let (config, config_source) = candidates
            .iter()
            .find_map(|p| read_config(p).map(|c| (Some(c), Some(p.clone()))))
            .unwrap_or((None, None));
        Host {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            config,
            config_source,
            modules: PathBuf::from(format!("/lib/modules/{release}")),
        }
    }

    /// A tree standing in for the system: `<root>/proc`, `<root>/sys`,
    /// `<root>/modules` and, if present, `<root>/config` (plain or gzip).
    pub fn at(root: &Path) -> Host {
        let config_path = root.join("config");
        let config = read_config(&config_path);
        Host {
            proc: root.join("proc"),
            sys: root.join("sys"),
            config_source: config.as_ref().map(|_| config_path),
            config,
            modules: root.join("modules"),
        }
    }

    fn read(&self, path: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    /// `y`, `m`, or None (not set, or no configuration to read).
    fn kconfig(&self, key: &str) -> Option<&str> {
        self.config.as_ref()?.get(key).map(String::as_str)
    }

    /// Whether the kernel has a feature built in or as a module, by its
    /// configuration; None when there is no configuration to ask.
    fn has(&self, key: &str) -> Option<bool> {
        self.config
            .as_ref()
            .map(|_| matches!(self.kconfig(key), Some("y" | "m")))
    }

    fn module_loaded(&self, name: &str) -> bool {
        self.sys.join("module").join(name).exists()
    }

    /// Loaded, built in, or installed as a module that can be loaded
    /// (modules.builtin and modules.dep name them by path, `-` or `_`).
    fn module_available(&self, name: &str) -> bool {
        if self.module_loaded(name) {
            return true;
        }
        let wanted = name.replace('-', "_");
        ["modules.builtin", "modules.dep"].iter().any(|list| {
            self.read(self.modules.join(list)).is_some_and(|text| {
                text.lines().any(|l| {
                    let path = l.split(':').next().unwrap_or("");
                    let file = path.rsplit('/').next().unwrap_or("");
                    file.split(".ko").next().map(|m| m.replace('-', "_")) == Some(wanted.clone())
                })
            })
        })
    }
}

/// A kernel configuration file (gzip or plain) as its `CONFIG_X=value`s.
fn read_config(path: &Path) -> Option<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).ok()?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .ok()?;
        out
    } else {
        String::from_utf8(bytes).ok()?
    };
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("CONFIG_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Kernel options a check needs, by the configuration when there is one,
/// else by `probe` on the running system.
fn kernel_options(
    host: &Host,
    name: &'static str,
    need: Need,
    options: &[&str],
    probe: impl FnOnce(&Host) -> bool,
    what_for: &str,
) -> Outcome {
    let missing: Vec<&str> = match host.config {
        Some(_) => options
            .iter()
            .copied()
            .filter(|o| host.has(o) != Some(true))
            .collect(),
        None if probe(host) => Vec::new(),
        None => options.to_vec(),
    };
    let found = match (&host.config, missing.is_empty()) {
        (Some(_), true) => format!("{} enabled", options.join(", ")),
        (Some(_), false) => format!("not enabled: {}", missing.join(", ")),
        (None, true) => "present (seen in the running kernel)".to_string(),
        (None, false) => "not found in the running kernel".to_string(),
    };
    Outcome {
        name,
        need,
        ok: missing.is_empty(),
        found,
        fix: (!missing.is_empty()).then(|| {
            format!(
                "{what_for}: use a kernel built with {} (=y, or =m with the module installed)",
                missing.join(", ")
            )
        }),
    }
}

/// Every check, in the order they are printed.
pub fn check(host: &Host) -> Vec<Outcome> {
    let mut out = Vec::new();
    out.push(kernel_options(
        host,
        "namespaces",
        Need::Required,
        &[
            "CONFIG_NAMESPACES",
            "CONFIG_NET_NS",
            "CONFIG_PID_NS",
            "CONFIG_IPC_NS",
            "CONFIG_UTS_NS",
        ],
        |h| {
            ["net", "pid", "ipc", "uts", "mnt"]
                .iter()
                .all(|n| h.proc.join("self/ns").join(n).exists())
        },
        "containers run in namespaces of their own",
    ));
    out.push(cgroups(host));
    out.push(kernel_options(
        host,
        "overlayfs",
        Need::Required,
        &["CONFIG_OVERLAY_FS"],
        |h| {
            h.read(h.proc.join("filesystems"))
                .is_some_and(|f| f.lines().any(|l| l.ends_with("\toverlay")))
        },
        "images are layered with overlayfs",
    ));
    out.push(kernel_options(
        host,
        "seccomp",
        Need::Required,
        &["CONFIG_SECCOMP", "CONFIG_SECCOMP_FILTER"],
        // Filters (not only strict mode): actions_avail, or the
        // Seccomp_filters line of kernels since 5.9.
        |h| {
            h.proc.join("sys/kernel/seccomp/actions_avail").exists()
                || h.read(h.proc.join("self/status"))
                    .is_some_and(|s| s.contains("Seccomp_filters:"))
        },
        "containers get Docker's default seccomp profile",
    ));
    out.push(kernel_options(
        host,
        "bridge and veth",
        Need::Required,
        &["CONFIG_BRIDGE", "CONFIG_VETH"],
        |h| h.module_available("bridge") && h.module_available("veth"),
        "pods and containers get their own addresses on a bridge",
    ));
    out.push(kernel_options(
        host,
        "vxlan",
        Need::Recommended,
        &["CONFIG_VXLAN"],
        |h| h.module_available("vxlan"),
        "the default pod network across nodes (--pod-network vxlan; host-gw needs none)",
    ));
    out.push(kernel_options(
        host,
        "nftables with NAT",
        Need::Required,
        &[
            "CONFIG_NF_TABLES",
            "CONFIG_NFT_NAT",
            "CONFIG_NFT_MASQ",
            "CONFIG_NFT_CT",
            "CONFIG_NF_NAT",
            // Service load balancing (numgen) and local-address matches (fib).
            "CONFIG_NFT_NUMGEN",
            "CONFIG_NFT_FIB_IPV4",
        ],
        |h| {
            ["nf_tables", "nf_nat", "nft_numgen", "nft_fib_ipv4"]
                .iter()
                .all(|m| h.module_available(m))
        },
        "Services, published ports and masquerade are nftables rules",
    ));
    out.push(kernel_options(
        host,
        "conntrack",
        Need::Required,
        &["CONFIG_NF_CONNTRACK"],
        |h| h.proc.join("sys/net/netfilter/nf_conntrack_max").exists(),
        "Services and NAT track connections",
    ));
    out.push(forwarding(host));
    out.push(br_netfilter(host));
    out.push(kernel_options(
        host,
        "CPU limits",
        Need::Recommended,
        &["CONFIG_CFS_BANDWIDTH"],
        |h| {
            // v1: the root's quota file; v2: cpu.max in any child.
            h.sys.join("fs/cgroup/cpu/cpu.cfs_quota_us").exists()
                || h.sys
                    .join("fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us")
                    .exists()
                || std::fs::read_dir(h.sys.join("fs/cgroup"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| e.path().join("cpu.max").exists())
        },
        "containers' and pods' CPU limits (resources.limits.cpu, --cpus)",
    ));
    out
}

/// The cgroup controllers pods are limited with: memory, cpu and pids, on
/// cgroup v2 or v1 (a Raspberry Pi's kernel leaves memory off by default).
fn cgroups(host: &Host) -> Outcome {
    const WANTED: [&str; 3] = ["memory", "cpu", "pids"];
    let unified = host.read(host.sys.join("fs/cgroup/cgroup.controllers"));
    let (mode, enabled): (&str, Vec<String>) = match &unified {
        Some(c) => ("v2", c.split_whitespace().map(str::to_string).collect()),
        None => (
            "v1",
            host.read(host.proc.join("cgroups"))
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 4 && f[3] == "1").then(|| f[0].to_string())
                })
                .collect(),
        ),
    };
    let missing: Vec<&str> = WANTED
        .iter()
        .copied()
        .filter(|c| !enabled.iter().any(|e| e == c))
        .collect();
    let fix = (!missing.is_empty()).then(|| {
        let mut fix = String::new();
        if missing.contains(&"memory") {
            fix.push_str("add `cgroup_memory=1 cgroup_enable=memory` to the kernel command line (on a Raspberry Pi: the end of the one line of /boot/firmware/cmdline.txt or /boot/cmdline.txt) and reboot");
        }
        let others: Vec<&str> = missing.iter().copied().filter(|c| *c != "memory").collect();
        if !others.is_empty() {
            if !fix.is_empty() {
                fix.push_str("; ");
            }
            fix.push_str(&format!(
                "use a kernel with the {} cgroup controller{} (CONFIG_CGROUP_SCHED, CONFIG_CGROUP_PIDS)",
                others.join(" and "),
                if others.len() > 1 { "s" } else { "" }
            ));
        }
        fix
    });
    Outcome {
        name: "cgroup controllers",
        need: Need::Required,
        ok: missing.is_empty(),
        found: if missing.is_empty() {
            format!("cgroup {mode}: {} enabled", WANTED.join(", "))
        } else {
            format!("cgroup {mode}: not enabled: {}", missing.join(", "))
        },
        fix,
    }
}

/// IPv4 forwarding: on, or settable (skiff turns it on when it sets the
/// node's network up).
fn forwarding(host: &Host) -> Outcome {
    let path = host.proc.join("sys/net/ipv4/ip_forward");
    let value = host.read(&path).map(|v| v.trim().to_string());
    let writable = std::fs::OpenOptions::new().write(true).open(&path).is_ok();
    let (ok, found) = match value.as_deref() {
        Some("1") => (true, "on".to_string()),
        Some(_) if writable => (true, "off; skiff turns it on when it starts".to_string()),
        Some(_) => (false, "off, and not settable by this user".to_string()),
        None => (false, "net.ipv4.ip_forward not found".to_string()),
    };
    Outcome {
        name: "IPv4 forwarding",
        need: Need::Required,
        ok,
        found,
        fix: (!ok).then(|| "run skiff as root, or set `net.ipv4.ip_forward = 1` in /etc/sysctl.d/90-skiff.conf and run `sysctl --system`".to_string()),
    }
}

/// br_netfilter: pods reaching a Service whose endpoint is on their own
/// bridge go through the node's rules only with it.
fn br_netfilter(host: &Host) -> Outcome {
    let loaded = host
        .proc
        .join("sys/net/bridge/bridge-nf-call-iptables")
        .exists();
    let available = loaded || host.has("CONFIG_BRIDGE_NETFILTER") == Some(true);
    let (ok, found) = match (loaded, available) {
        (true, _) => (true, "loaded".to_string()),
        (false, true) => (
            true,
            "available as a module; skiff's service loads it (modprobe br_netfilter)".to_string(),
        ),
        (false, false) => (false, "not in this kernel".to_string()),
    };
    Outcome {
        name: "br_netfilter",
        need: Need::Recommended,
        ok,
        found,
        fix: (!ok).then(|| "pods reaching a Service backed by a pod on their own node need it: use a kernel built with CONFIG_BRIDGE_NETFILTER".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_configuration_is_read_plain_or_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# comment\nCONFIG_VXLAN=m\nCONFIG_BRIDGE=y\n# CONFIG_VETH is not set\n";
        std::fs::write(dir.path().join("plain"), text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        std::fs::write(dir.path().join("gz"), gz.finish().unwrap()).unwrap();
        for f in ["plain", "gz"] {
            let c = read_config(&dir.path().join(f)).unwrap();
            assert_eq!(c.get("CONFIG_VXLAN").map(String::as_str), Some("m"));
            assert_eq!(c.get("CONFIG_VETH"), None);
        }
    }
}
