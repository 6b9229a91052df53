//! A Pod's container as the engine's [`ContainerSpec`], as kubelet 1.32
//! builds a container's CRI config (kuberuntime_container.go
//! `generateContainerConfig`, kubelet_pods.go `makeEnvironmentVariables`,
//! third_party/forked/golang/expansion).
//!
//! ```text
//! names      sandbox_name, container_name   dockershim's scheme, the engine's name rule
//! env        envFrom, then env (values expanded, sources resolved), then the services'
//! process    command/args expanded against that env, cwd, user, tty, stdin
//! security   privileged, capabilities, no_new_privs, read-only rootfs, seccomp
//! resources  memory limit, CFS quota
//! etc        hostAliases, DNS
//! ```
//!
//! Volumes, namespaces, the sandbox and the pod's cgroup are the caller's;
//! so is reading the ConfigMaps and Secrets ([`referenced_objects`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, PodSpec, SecurityContext};

use crate::api::validation::quantity;
use crate::runtime::container::containerspec::{
    ContainerSpec, CpuQuota, Process, Resources, Security,
};
use crate::runtime::container::seccomp::Choice;

mod dns;
mod env;

pub use dns::{ClusterDns, HostDns};

pub use self::env::expand;
pub(crate) use self::env::{format_map, resource_value, subscript};

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_ATTEMPT: &str = "io.skiff.container.attempt";
/// Set on a container with `stdinOnce`: its stdin ends with the first
/// attach's.
pub const LABEL_STDIN_ONCE: &str = "io.skiff.container.stdin-once";

pub const KIND_CONFIG_MAP: &str = "ConfigMap";
pub const KIND_SECRET: &str = "Secret";

/// The engine's name rule (docker's): at most this many bytes.
const NAME_MAX: usize = 128;
/// kubelet's MinQuotaPeriod: a CPU limit never gives less than 1 ms per period.
const MIN_QUOTA: i64 = 1000;
const NANOS_PER_MILLI: i128 = 1_000_000;
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Why a container's spec cannot be made: kubelet's CreateContainerConfigError,
/// with kubelet's messages where it has one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    /// An env var's fieldRef kubelet cannot resolve; its message.
    #[error("{0}")]
    FieldRef(String),
    /// An env var's resourceFieldRef kubelet cannot resolve; its message.
    #[error("{0}")]
    ResourceFieldRef(String),
    /// runAsNonRoot cannot hold; kubelet's message.
    #[error("{0}")]
    RunAsNonRoot(String),
    #[error("{field}: {value:?} is not a valid quantity")]
    Quantity { field: String, value: String },
    #[error("{field}: {value:?} is not an IP address")]
    Address { field: &'static str, value: String },
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// A volume mount that cannot be made (a subPath, a missing volume).
    #[error("{0}")]
    Volume(String),
}

/// What a container's spec depends on beyond the Pod itself.
pub struct SpecContext<'a> {
    pub node_name: &'a str,
    /// The pod's cgroup (pod_cgroup.rs), fixed when it was made.
    pub cgroup_parent: Option<&'a str>,
    /// The agent's cgroup root: where the pod's cgroup is when it was not
    /// made (yet).
    pub cgroup_root: &'a str,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: IpAddr,
    /// kubelet's /var/log/pods/<ns>_<name>_<uid>: the container's log is
    /// <log_dir>/<container>/<attempt>.log
    pub log_dir: &'a Path,
    pub attempt: u32,
    /// Values of configMapKeyRef/secretKeyRef/envFrom already read by the
    /// caller: (kind "ConfigMap"|"Secret", object name) -> data (Secret data
    /// already base64-decoded to UTF-8 strings). A reference not in here and
    /// not optional is a CreateContainerConfigError.
    pub objects: &'a BTreeMap<(String, String), BTreeMap<String, String>>,
    /// The services' variables (`KUBERNETES_SERVICE_HOST`, … and, with
    /// enableServiceLinks, the namespace's), made by the caller. kubelet
    /// expands `$(VAR)` against them too, and adds those the container does
    /// not define itself after its own; so they are given here rather than
    /// appended to the spec afterwards.
    pub service_env: &'a BTreeMap<String, String>,
    /// The node's memory in bytes, against which a Burstable container's
    /// memory request sets its OOM score.
    pub memory_capacity: u64,
    /// The lowest OOM score the node may give (containerd's
    /// restrict_oom_score_adj where the agent lacks CAP_SYS_RESOURCE).
    pub min_oom_score_adj: i32,
    /// The node's allocatable, which a resourceFieldRef of an unset limit
    /// reads; None when it could not be measured.
    pub allocatable: Option<&'a crate::agent::node::host::Resources>,
    /// The image's `User` ("" for none), which a runAsGroup without a
    /// runAsUser goes with.
    pub image_user: &'a str,
    /// The cluster DNS pods of dnsPolicy ClusterFirst use; none: the
    /// node's resolvers (kubelet without --cluster-dns).
    pub cluster_dns: Option<&'a ClusterDns>,
    /// The node's resolv.conf (kubelet's `--resolv-conf`), which pods of
    /// dnsPolicy Default get and ClusterFirst ones take search domains
    /// from; none: the engine's copy of /etc/resolv.conf.
    pub host_dns: Option<&'a HostDns>,
}

/// Whether the pod uses the node's network namespace.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

/// Engine sandbox name for a pod: "k8s_<name>_<namespace>_<uid>", unique per
/// pod (the UID is always kept whole) and within the engine's name rule.
pub fn sandbox_name(pod: &Pod) -> String {
    let (name, namespace, uid) = (
        clean(pod_name(pod)),
        clean(namespace(pod)),
        clean(pod_uid(pod)),
    );
    let fixed = "k8s___".len() + uid.len();
    let [name, namespace] = fit([&name, &namespace], NAME_MAX.saturating_sub(fixed));
    format!("k8s_{name}_{namespace}_{uid}")
}

/// Engine container name, dockershim's "k8s_<container>_<pod>_<namespace>_<uid>_<attempt>"
/// within the engine's name rule. The container's name, the UID and the
/// attempt are kept whole so names stay unique; the pod's name and
/// namespace share what is left.
pub fn container_name(pod: &Pod, container: &str, attempt: u32) -> String {
    let (container, name, namespace, uid) = (
        clean(container),
        clean(pod_name(pod)),
        clean(namespace(pod)),
        clean(pod_uid(pod)),
    );
    let attempt = attempt.to_string();
    let budget = NAME_MAX.saturating_sub("k8s_____".len() + uid.len() + attempt.len());
    let container = cut(&container, budget);
    let [name, namespace] = fit([&name, &namespace], budget - container.len());
    format!("k8s_{container}_{name}_{namespace}_{uid}_{attempt}")
}

/// The pod's hostPorts, as the engine publishes them on the node (every
/// container's and init container's ports that name one).
pub fn host_ports(pod: &Pod) -> Result<Vec<crate::net::ports::PublishedPort>, SpecError> {
    use crate::net::ports::{Proto, PublishedPort};
    let Some(spec) = &pod.spec else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|h| *h > 0) else {
                continue;
            };
            let port = |n: i32, field: &'static str| {
                u16::try_from(n).map_err(|_| SpecError::Address {
                    field,
                    value: n.to_string(),
                })
            };
            let proto = match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Proto::Tcp,
                "UDP" => Proto::Udp,
                other => return Err(SpecError::Unsupported(format!("hostPort over {other}"))),
            };
            let host_ip = match p
                .host_ip
                .as_deref()
                .filter(|ip| !ip.is_empty() && *ip != "0.0.0.0")
            {
                None => None,
                Some(ip) => Some(ip.parse().map_err(|_| SpecError::Address {
                    field: "ports.hostIP",
                    value: ip.to_string(),
                })?),
            };
            out.push(PublishedPort {
                host_ip,
                host_port: port(host_port, "ports.hostPort")?,
                container_port: port(p.container_port, "ports.containerPort")?,
                proto,
            });
        }
    }
    Ok(out)
}

/// What the worker must read before building specs: the ConfigMaps and
/// Secrets the pod's containers (and init containers) reference in
/// env/envFrom, as (kind, name).
pub fn referenced_objects(pod: &Pod) -> BTreeSet<(String, String)> {
    let mut refs = BTreeSet::new();
    let Some(spec) = &pod.spec else {
        return refs;
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                refs.insert((KIND_CONFIG_MAP.to_string(), r.name.clone()));
            }
            if let Some(r) = &from.secret_ref {
                refs.insert((KIND_SECRET.to_string(), r.name.clone()));
            }
        }
        for source in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &source.config_map_key_ref {
                refs.insert((KIND_CONFIG_MAP.to_string(), r.name.clone()));
            }
            if let Some(r) = &source.secret_key_ref {
                refs.insert((KIND_SECRET.to_string(), r.name.clone()));
            }
        }
    }
    refs
}

/// The spec of `c`, one of `pod`'s containers or init containers.
pub fn container_spec(
    pod: &Pod,
    c: &Container,
    ctx: &SpecContext,
) -> Result<ContainerSpec, SpecError> {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    // kubelet makes the environment before it checks the user, so a missing
    // ConfigMap is the error a pod shows even when both are wrong.
    let env = env::environment(pod, spec, c, ctx)?;
    check_run_as_user(pod, c)?;
    let lookup = |name: &str| {
        env.get(name)
            .or_else(|| ctx.service_env.get(name).map(String::as_str))
    };
    // An empty command keeps the image's entrypoint; kubelet passes none.
    let command = c
        .command
        .as_ref()
        .filter(|cmd| !cmd.is_empty())
        .map(|cmd| cmd.iter().map(|s| expand(s, lookup)).collect());
    let args = c.args.iter().flatten().map(|s| expand(s, lookup)).collect();
    let mut env_list: Vec<String> = env.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env_list.extend(
        ctx.service_env
            .iter()
            .filter(|(k, _)| env.get(k).is_none())
            .map(|(k, v)| format!("{k}={v}")),
    );
    let mut labels = BTreeMap::from([
        (LABEL_POD_UID.to_string(), pod_uid(pod).to_string()),
        (LABEL_POD_NAME.to_string(), pod_name(pod).to_string()),
        (LABEL_POD_NAMESPACE.to_string(), namespace(pod).to_string()),
        (LABEL_CONTAINER_NAME.to_string(), c.name.clone()),
        (LABEL_ATTEMPT.to_string(), ctx.attempt.to_string()),
    ]);
    if c.stdin_once == Some(true) {
        labels.insert(LABEL_STDIN_ONCE.to_string(), "true".to_string());
    }
    Ok(ContainerSpec {
        image: c.image.clone().unwrap_or_default(),
        name: Some(container_name(pod, &c.name, ctx.attempt)),
        labels,
        log_path: Some(
            ctx.log_dir
                .join(&c.name)
                .join(format!("{}.log", ctx.attempt)),
        ),
        process: Process {
            command,
            args,
            env: env_list,
            cwd: c.working_dir.clone().filter(|d| !d.is_empty()),
            user: user(pod, c, ctx.image_user),
            tty: c.tty.unwrap_or(false),
            stdin: c.stdin.unwrap_or(false),
            groups: groups(pod),
            oom_score_adj: Some(
                oom_score_adj(pod, c, ctx.memory_capacity)?.max(ctx.min_oom_score_adj),
            ),
            ..Process::default()
        },
        resources: resources(c)?,
        // The pod's own cgroup (pod_cgroup.rs) bounds the containers
        // together.
        cgroup_parent: Some(
            ctx.cgroup_parent
                .map(String::from)
                .unwrap_or_else(|| super::pod_cgroup::parent(ctx.cgroup_root, pod)),
        ),
        security: security(spec, c)?,
        etc: dns::etc_files(spec, namespace(pod), ctx.cluster_dns, ctx.host_dns)?,
        namespaces: crate::runtime::container::containerspec::Namespaces {
            host_pid: spec.host_pid == Some(true),
            ..Default::default()
        },
        ..ContainerSpec::default()
    })
}

/// kubelet's verifyRunAsNonRoot once the image's user (its config's `User`,
/// "" when it has none) is known; [`container_spec`] already refuses a
/// runAsUser of 0.
pub fn verify_run_as_non_root(pod: &Pod, c: &Container, image_user: &str) -> Result<(), SpecError> {
    let (psc, csc) = contexts(pod, c);
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root));
    if non_root != Some(true) {
        return Ok(());
    }
    check_run_as_user(pod, c)?;
    if run_as(pod, c).0.is_some() {
        return Ok(());
    }
    // As containerd reads an image's user: the part before ':', a UID when
    // numeric; no user at all runs as root.
    let user = image_user.split(':').next().unwrap_or("");
    let who = format!("(pod: \"{}\", container: {})", pod_desc(pod), c.name);
    match user.parse::<i64>() {
        Ok(uid) if uid != 0 => Ok(()),
        Err(_) if !user.is_empty() => Err(SpecError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root {who}"
        ))),
        _ => Err(SpecError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image will run as root {who}"
        ))),
    }
}

fn nanos(field: &str, q: &str) -> Result<i128, SpecError> {
    quantity::nanos(q).ok_or_else(|| SpecError::Quantity {
        field: field.to_string(),
        value: q.to_string(),
    })
}

fn ceil_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b) + i128::from(a.rem_euclid(b) != 0)
}

/// The memory limit, CFS quota and CPU shares kubelet gives the runtime
/// (hugepage limits have no field in ContainerSpec yet).
pub fn resources(c: &Container) -> Result<Resources, SpecError> {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let limit = |name: &str| -> Result<i128, SpecError> {
        match limits.and_then(|l| l.get(name)) {
            Some(q) => nanos(&format!("limits.{name}"), &q.0),
            None => Ok(0),
        }
    };
    let memory = ceil_div(limit("memory")?, NANOS_PER_UNIT);
    let milli_cpu = ceil_div(limit("cpu")?, NANOS_PER_MILLI);
    let cpu = (milli_cpu > 0).then(|| {
        let quota = milli_cpu.saturating_mul(i128::from(CpuQuota::PERIOD)) / 1000;
        CpuQuota {
            quota: i64::try_from(quota).unwrap_or(i64::MAX).max(MIN_QUOTA),
            period: CpuQuota::PERIOD,
        }
    });
    Ok(Resources {
        memory: (memory > 0).then(|| i64::try_from(memory).unwrap_or(i64::MAX)),
        cpu,
        cpu_shares: Some(shares(cpu_request_milli(c)?)),
        ..Resources::default()
    })
}

/// The container's CPU request in millicores (0 when none).
pub fn cpu_request_milli(c: &Container) -> Result<i128, SpecError> {
    match c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("cpu"))
    {
        Some(q) => Ok(ceil_div(nanos("requests.cpu", &q.0)?, NANOS_PER_MILLI)),
        None => Ok(0),
    }
}

/// kubelet's MilliCPUToShares: 1024 per CPU requested, at least 2 (a
/// container without a request weighs next to nothing under load).
pub fn shares(milli_cpu: i128) -> u64 {
    (milli_cpu.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES) as u64
}

pub const MIN_SHARES: i128 = 2;
const MAX_SHARES: i128 = 262_144;

/// The pod's QoS class: as the API server recorded it, else computed.
pub fn qos_of(pod: &Pod) -> String {
    match pod.status.as_ref().and_then(|s| s.qos_class.clone()) {
        Some(c) => c,
        None => {
            let v = serde_json::to_value(pod).unwrap_or_default();
            crate::api::qos::qos_class(&v).to_string()
        }
    }
}

/// kubelet's OOM score of a container (qos/policy.go): a node-critical or
/// Guaranteed pod's are killed last, BestEffort ones first, and a
/// Burstable container the later the more of the node's memory it asked
/// for.
fn oom_score_adj(pod: &Pod, c: &Container, memory_capacity: u64) -> Result<i32, SpecError> {
    const GUARANTEED: i32 = -997;
    const BEST_EFFORT: i32 = 1000;
    let critical = pod
        .spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref())
        == Some("system-node-critical");
    let class = qos_of(pod);
    if critical || class == "Guaranteed" {
        return Ok(GUARANTEED);
    }
    if class == "BestEffort" {
        return Ok(BEST_EFFORT);
    }
    let request = match c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("memory"))
    {
        Some(q) => ceil_div(nanos("requests.memory", &q.0)?, NANOS_PER_UNIT),
        None => 0,
    };
    let capacity = i128::from(memory_capacity.max(1));
    let adj = 1000 - (1000 * request) / capacity;
    Ok(if adj < i128::from(1000 + GUARANTEED) {
        1000 + GUARANTEED
    } else if adj == i128::from(BEST_EFFORT) {
        BEST_EFFORT - 1
    } else {
        adj as i32
    })
}

/// The pod's supplementalGroups and its fsGroup, which kubelet gives every
/// container's process besides its user's own.
fn groups(pod: &Pod) -> Vec<u32> {
    let Some(psc) = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = Vec::new();
    for g in psc
        .supplemental_groups
        .iter()
        .flatten()
        .copied()
        .chain(psc.fs_group)
    {
        if let Ok(g) = u32::try_from(g) {
            if !out.contains(&g) {
                out.push(g);
            }
        }
    }
    out
}

/// The pod's and the container's security contexts.
fn contexts<'p>(
    pod: &'p Pod,
    c: &'p Container,
) -> (Option<&'p PodSecurityContext>, Option<&'p SecurityContext>) {
    (
        pod.spec.as_ref().and_then(|s| s.security_context.as_ref()),
        c.security_context.as_ref(),
    )
}

/// runAsUser and runAsGroup, the container's over the pod's.
fn run_as(pod: &Pod, c: &Container) -> (Option<i64>, Option<i64>) {
    let (psc, csc) = contexts(pod, c);
    (
        csc.and_then(|s| s.run_as_user)
            .or(psc.and_then(|s| s.run_as_user)),
        csc.and_then(|s| s.run_as_group)
            .or(psc.and_then(|s| s.run_as_group)),
    )
}

/// The half of verifyRunAsNonRoot that needs only the pod.
fn check_run_as_user(pod: &Pod, c: &Container) -> Result<(), SpecError> {
    let (psc, csc) = contexts(pod, c);
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root));
    if non_root == Some(true) && run_as(pod, c).0 == Some(0) {
        return Err(SpecError::RunAsNonRoot(format!(
            "container's runAsUser breaks non-root policy (pod: \"{}\", container: {})",
            pod_desc(pod),
            c.name
        )));
    }
    Ok(())
}

/// "uid" or "uid:gid" (supplementalGroups and fsGroup: [`groups`]); a
/// runAsGroup alone goes with the image's user (root when it names none),
/// as kubelet pairs them.
fn user(pod: &Pod, c: &Container, image_user: &str) -> Option<String> {
    match run_as(pod, c) {
        (Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
        (Some(uid), None) => Some(uid.to_string()),
        (None, Some(gid)) => {
            let name = image_user.split(':').next().unwrap_or_default();
            let name = if name.is_empty() { "0" } else { name };
            Some(format!("{name}:{gid}"))
        }
        (None, None) => None,
    }
}

/// kubelet's security context for the runtime. Unset seccomp is the
/// runtime's default profile, as kubelet's `--seccomp-default` makes it
/// (off upstream by default; on here: containers get Docker's default
/// confinement unless a pod asks for `Unconfined`); AppArmor, SELinux and
/// procMount are not translated.
fn security(spec: &PodSpec, c: &Container) -> Result<Security, SpecError> {
    let csc = c.security_context.as_ref();
    let caps = csc.and_then(|s| s.capabilities.as_ref());
    let profile = csc.and_then(|s| s.seccomp_profile.as_ref()).or(spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref()));
    let seccomp = match profile.map(|p| p.type_.as_str()) {
        Some("Unconfined") => Choice::Unconfined,
        None | Some("RuntimeDefault") => Choice::Default,
        Some(other) => {
            return Err(SpecError::Unsupported(format!(
                "seccompProfile type {other}"
            )))
        }
    };
    Ok(Security {
        cap_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        cap_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        seccomp,
        privileged: csc.and_then(|s| s.privileged).unwrap_or(false),
        // securitycontext.AddNoNewPrivileges: only an explicit false sets
        // no_new_privs. The API refuses false with privileged or
        // CAP_SYS_ADMIN, so those always run with escalation allowed.
        no_new_privileges: csc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        read_only_rootfs: csc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        // The pod's (admission checked them); each container sets them in
        // the namespaces they share.
        sysctls: spec
            .security_context
            .as_ref()
            .and_then(|s| s.sysctls.as_ref())
            .into_iter()
            .flatten()
            .map(|s| (super::admission::sysctl_name(&s.name), s.value.clone()))
            .collect(),
        ..Security::default()
    })
}

pub(super) fn parse_ip(field: &'static str, value: &str) -> Result<IpAddr, SpecError> {
    value.parse().map_err(|_| SpecError::Address {
        field,
        value: value.to_string(),
    })
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// kubelet's format.Pod: "<name>_<namespace>(<uid>)".
pub(super) fn pod_desc(pod: &Pod) -> String {
    format!("{}_{}({})", pod_name(pod), namespace(pod), pod_uid(pod))
}

/// A name part within the engine's alphabet; API objects' names already
/// are, this only keeps a malformed one from making an invalid name.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// At most `max` bytes of `s`, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cut `parts` to at most `budget` bytes together, each to no less than an
/// equal share unless another leaves part of its share unused.
fn fit<const N: usize>(parts: [&str; N], budget: usize) -> [&str; N] {
    let mut order: Vec<usize> = (0..N).collect();
    order.sort_by_key(|&i| parts[i].len());
    let (mut keep, mut left) = ([0; N], budget);
    for (k, &i) in order.iter().enumerate() {
        keep[i] = parts[i].len().min(left / (N - k));
        left -= keep[i];
    }
    std::array::from_fn(|i| cut(parts[i], keep[i]))
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
