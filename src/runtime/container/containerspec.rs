//! What a container is, said once and without any one front end's words:
//! the CLI's docker-shaped flags translate into it (options/translate.rs),
//! the node agent will build it from a Pod, and the OCI spec is rendered
//! from it alone (spec.rs). It names what to run and how it is confined;
//! where it lives on disk (rootfs, cgroup path, the user's resolved IDs) is
//! the engine's to decide when it creates the container (create.rs).
//!
//! ```text
//! ContainerSpec
//!   image, name, labels, log_path
//!   process      command/args (the OCI image rules), env, cwd, user, tty, stdin, init
//!   mounts       host paths, named volumes, tmpfs; read-only or not
//!   namespaces   network (isolated | host | bridge | another container | a path),
//!                ipc and uts (new | a path); sandbox: join a pod sandbox's three
//!   resources    memory, CFS quota, pids
//!   security     capabilities add/drop, seccomp, privileged, devices,
//!                no_new_privileges, read-only rootfs
//!   etc          hostname, extra /etc/hosts entries, DNS servers and search
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::seccomp::Choice;

/// Every field defaults, so a spec stored by an older version loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    /// The image as the caller named it.
    pub image: String,
    /// Unique among the node's containers; a generated one when unset.
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Where the container's output goes (CRI format); the container's own
    /// `ctr.log` when unset.
    pub log_path: Option<PathBuf>,
    pub process: Process,
    pub mounts: Vec<Mount>,
    pub namespaces: Namespaces,
    /// Join this pod sandbox's network, IPC and UTS namespaces
    /// (runtime/sandbox.rs); the namespaces above are then the sandbox's.
    pub sandbox: Option<String>,
    pub resources: Resources,
    pub security: Security,
    pub etc: EtcFiles,
    /// The cgroup the container's cgroup is made under; the engine's
    /// default when unset.
    pub cgroup_parent: Option<String>,
}

/// The process, as the OCI image spec combines it with the image's config:
/// `command` replaces the image's entrypoint (and drops its cmd), `args`
/// replace its cmd. Docker's `--entrypoint`/CMD and a Pod's
/// `command`/`args` follow the same rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Process {
    /// `Some(vec![])` clears the image's entrypoint.
    pub command: Option<Vec<String>>,
    /// Replace the image's cmd when not empty.
    pub args: Vec<String>,
    /// `K=V`, on top of the image's (later ones win).
    pub env: Vec<String>,
    /// The image's working directory when unset.
    pub cwd: Option<String>,
    /// `user[:group]`, names or IDs, looked up in the image's own
    /// /etc/passwd and /etc/group; the image's user when unset.
    pub user: Option<String>,
    pub tty: bool,
    /// Keep stdin open for a client to attach to.
    pub stdin: bool,
    /// Run skiff's own init as PID 1 in front of the command.
    pub init: bool,
    /// Resource limits besides RLIMIT_NOFILE's default (`--ulimit`).
    pub rlimits: Vec<Rlimit>,
    /// Supplementary groups on top of the user's own (`--group-add`, a
    /// pod's supplementalGroups and fsGroup).
    pub groups: Vec<u32>,
    /// The process's oom_score_adj (kubelet's, after the pod's QoS class);
    /// inherited from the engine when unset.
    pub oom_score_adj: Option<i32>,
}

/// One `setrlimit` for the process: `RLIMIT_NOFILE` etc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute, cleaned.
    pub destination: String,
    pub source: MountSource,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSource {
    /// A host path, bound in.
    Host(PathBuf),
    /// A named volume (runtime/volume), made on first use.
    Volume(String),
    /// A fresh tmpfs.
    Tmpfs,
}

/// The namespaces a container creates or joins. PID, mount and cgroup
/// namespaces are always its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespaces {
    pub network: NetworkNamespace,
    pub ipc: Namespace,
    pub uts: Namespace,
    /// The engine's own PID namespace rather than a new one (docker's
    /// `--pid host`, a pod's hostPID).
    #[serde(default)]
    pub host_pid: bool,
    /// A new PID namespace, or the sandbox's shared one (joined by path).
    #[serde(default)]
    pub pid: Namespace,
    /// The IPC namespace (joined by path) is the engine's own: /dev/shm
    /// is then the host's too, as containerd binds it for hostIPC.
    #[serde(default)]
    pub host_ipc: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Namespace {
    #[default]
    New,
    /// An existing namespace, by path (a pinned handle or /proc/PID/ns/…).
    Path(PathBuf),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkNamespace {
    /// A new namespace with only `lo`.
    #[default]
    Isolated,
    /// The node's own.
    Host,
    /// A new namespace with an address on the node bridge (src/net),
    /// publishing `ports` on the node.
    Bridge {
        ports: Vec<crate::net::ports::PublishedPort>,
        /// The bridge's subnet; the one it was set up with when unset.
        cidr: Option<crate::net::cidr::Ipv4Cidr>,
    },
    /// The namespace of another, running container (by name or ID).
    Container(String),
    /// An existing namespace, by path.
    Path(PathBuf),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<i64>,
    /// CPU time per period (the CFS quota).
    pub cpu: Option<CpuQuota>,
    /// At most this many tasks; -1 for no limit.
    pub pids: Option<i64>,
    /// The size of /dev/shm in bytes (64 MiB when unset, as docker).
    pub shm_size: Option<i64>,
    /// The container's share of the CPU against others under contention,
    /// as cgroup v1 shares (2 to 262144; the weight on cgroup v2).
    pub cpu_shares: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuQuota {
    /// Microseconds of CPU time per period.
    pub quota: i64,
    /// Microseconds.
    pub period: u64,
}

impl CpuQuota {
    /// The CFS period docker and the kubelet use.
    pub const PERIOD: u64 = 100_000;

    /// `cpus` CPUs' worth (0.5 → 50 ms per 100 ms).
    pub fn of_cpus(cpus: f64) -> CpuQuota {
        CpuQuota {
            quota: (cpus * CpuQuota::PERIOD as f64).round() as i64,
            period: CpuQuota::PERIOD,
        }
    }
}

/// On top of the baseline confinement (baseline.rs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    /// Capabilities beyond the baseline set (`CAP_X` or `X`; `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities taken from it (`ALL` drops every one not added).
    pub cap_drop: Vec<String>,
    pub seccomp: Choice,
    /// Every device and capability, no masked or read-only paths, writable
    /// /sys and cgroupfs, no seccomp filter.
    pub privileged: bool,
    /// Host devices made available.
    pub devices: Vec<Device>,
    pub no_new_privileges: bool,
    pub read_only_rootfs: bool,
    /// Kernel parameters set in the container's namespaces (docker's
    /// `--sysctl`, a pod's `securityContext.sysctls`); only namespaced
    /// ones, and none of a namespace shared with the host.
    pub sysctls: BTreeMap<String, String>,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp: Choice::Default,
            privileged: false,
            devices: Vec::new(),
            no_new_privileges: true,
            read_only_rootfs: false,
            sysctls: BTreeMap::new(),
        }
    }
}

/// A host device node made in the container's /dev, and allowed by its
/// device cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub host: PathBuf,
    pub container: String,
    /// A non-empty subset of "rwm".
    pub access: String,
}

/// The files the engine writes for the container and binds in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EtcFiles {
    /// The short ID (or the node's name on the host network, the pod's in a
    /// sandbox) when unset.
    pub hostname: Option<String>,
    /// Extra /etc/hosts entries: (host, address).
    pub hosts: Vec<(String, IpAddr)>,
    /// Name servers for /etc/resolv.conf; the node's (loopback ones
    /// dropped) when empty.
    pub dns_servers: Vec<IpAddr>,
    /// Search domains; the node's when empty.
    pub dns_search: Vec<String>,
    /// resolv.conf options (`ndots:5`, `edns0`); the node's when empty.
    pub dns_options: Vec<String>,
    /// resolv.conf is exactly these servers, search domains and options,
    /// nothing taken from the node's (a pod's, which kubelet's rules made
    /// whole); otherwise Docker's merge with the node's.
    pub dns_exact: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerSpecError {
    #[error("conflicting options: hostname and the sandbox {0} (a sandbox's containers share its UTS namespace and hostname: give the hostname to `skiff sandbox create --hostname`)")]
    SandboxHostname(String),
    #[error("conflicting options: the network and the sandbox {0} (a sandbox's containers share its network namespace)")]
    SandboxNetwork(String),
    #[error("conflicting options: the IPC or UTS namespace and the sandbox {0} (a sandbox's containers share its namespaces)")]
    SandboxNamespaces(String),
}

impl ContainerSpec {
    /// What must hold before anything is created.
    pub fn check(&self) -> Result<(), ContainerSpecError> {
        if let Some(sb) = &self.sandbox {
            if self.etc.hostname.is_some() {
                return Err(ContainerSpecError::SandboxHostname(sb.clone()));
            }
            if self.namespaces.network != NetworkNamespace::Isolated {
                return Err(ContainerSpecError::SandboxNetwork(sb.clone()));
            }
            if self.namespaces.ipc != Namespace::New || self.namespaces.uts != Namespace::New {
                return Err(ContainerSpecError::SandboxNamespaces(sb.clone()));
            }
        }
        Ok(())
    }

    /// The named volumes it mounts.
    pub fn volumes(&self) -> impl Iterator<Item = &str> {
        self.mounts.iter().filter_map(|m| match &m.source {
            MountSource::Volume(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Whether it has an address of its own on the node bridge.
    pub fn bridged(&self) -> bool {
        matches!(self.namespaces.network, NetworkNamespace::Bridge { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_owns_its_namespaces() {
        let mut spec = ContainerSpec {
            sandbox: Some("pod".into()),
            ..Default::default()
        };
        assert_eq!(spec.check(), Ok(()));
        spec.etc.hostname = Some("h".into());
        assert!(spec
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("conflicting options: hostname"));
        spec.etc.hostname = None;
        spec.namespaces.network = NetworkNamespace::Host;
        assert!(matches!(
            spec.check(),
            Err(ContainerSpecError::SandboxNetwork(_))
        ));
    }

    #[test]
    fn cpu_quota_of_cpus() {
        assert_eq!(CpuQuota::of_cpus(0.5).quota, 50_000);
        assert_eq!(CpuQuota::of_cpus(2.0).quota, 200_000);
    }
}
