//! kubelet's admission of a pod bound to the node, before anything of it
//! runs: the node must have room for it (pods, cpu, memory and
//! ephemeral-storage requests against allocatable, beside the pods it
//! already runs), its labels must match the pod's nodeSelector and
//! required node affinity, and the pod must tolerate the node's NoExecute
//! taints (kubelet looks at no other effect). A pod bound past the
//! scheduler (or when the scheduler's view was stale) that does not fit is
//! rejected as upstream does: phase Failed, reason `OutOfcpu`,
//! `OutOfmemory`, `OutOfpods`, `NodeAffinity`, `TaintToleration`, and the
//! message `kubectl describe` shows.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};

use crate::agent::node::host;
use crate::api::node_match;
use crate::api::validation::quantity;

/// What a pod asks of the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_bytes: u64,
}

/// Why a pod was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

fn request(c: &Container, name: &str, per_unit: i128) -> u64 {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(name))
        .and_then(|q| quantity::nanos(&q.0))
        .map(|n| (n.max(0) + per_unit - 1) / per_unit)
        .map_or(0, |v| u64::try_from(v).unwrap_or(u64::MAX))
}

/// The pod's effective requests (upstream's PodRequests): its containers
/// and sidecars together, or its largest init container, whichever is
/// more.
pub fn requests(pod: &Pod) -> Requests {
    let Some(spec) = pod.spec.as_ref() else {
        return Requests::default();
    };
    let of = |c: &Container| Requests {
        cpu_millis: request(c, "cpu", 1_000_000),
        memory_bytes: request(c, "memory", 1_000_000_000),
        ephemeral_bytes: request(c, "ephemeral-storage", 1_000_000_000),
    };
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let sidecar = |c: &&Container| c.restart_policy.as_deref() == Some("Always");
    let mut total = Requests::default();
    for c in spec.containers.iter().chain(init.iter().filter(sidecar)) {
        let r = of(c);
        total.cpu_millis = total.cpu_millis.saturating_add(r.cpu_millis);
        total.memory_bytes = total.memory_bytes.saturating_add(r.memory_bytes);
        total.ephemeral_bytes = total.ephemeral_bytes.saturating_add(r.ephemeral_bytes);
    }
    for c in init.iter().filter(|c| !sidecar(c)) {
        let r = of(c);
        total.cpu_millis = total.cpu_millis.max(r.cpu_millis);
        total.memory_bytes = total.memory_bytes.max(r.memory_bytes);
        total.ephemeral_bytes = total.ephemeral_bytes.max(r.ephemeral_bytes);
    }
    total
}

fn out_of(resource: &str, requested: u64, used: u64, capacity: u64) -> Rejection {
    Rejection {
        reason: format!("OutOf{resource}"),
        message: format!(
            "Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
}

/// Admit `pod` on `node` (allocatable `room`), beside `running` (the
/// requests of the pods it already runs that have not finished). Without
/// the Node (the API did not answer) only the room is checked; a static
/// pod's tolerations are not.
pub fn admit(
    pod: &Pod,
    node: Option<&Node>,
    room: &host::Resources,
    running: &[Requests],
    is_static: bool,
    allowed_unsafe_sysctls: &[String],
) -> Result<(), Rejection> {
    // kubelet's sysctl allowlist comes before its resource checks.
    if let Some(spec) = &pod.spec {
        check_sysctls(spec, allowed_unsafe_sysctls).map_err(|e| Rejection {
            reason: "SysctlForbidden".into(),
            message: format!("forbidden sysctl: {e}"),
        })?;
    }
    let want = requests(pod);
    let used = running.iter().fold(Requests::default(), |a, r| Requests {
        cpu_millis: a.cpu_millis.saturating_add(r.cpu_millis),
        memory_bytes: a.memory_bytes.saturating_add(r.memory_bytes),
        ephemeral_bytes: a.ephemeral_bytes.saturating_add(r.ephemeral_bytes),
    });
    let count = running.len() as u64;
    if count + 1 > room.pods {
        return Err(out_of("pods", 1, count, room.pods));
    }
    for (name, want, used, room) in [
        ("cpu", want.cpu_millis, used.cpu_millis, room.cpu_millis),
        (
            "memory",
            want.memory_bytes,
            used.memory_bytes,
            room.memory_bytes,
        ),
        (
            "ephemeral-storage",
            want.ephemeral_bytes,
            used.ephemeral_bytes,
            room.ephemeral_storage_bytes,
        ),
    ] {
        if want > 0 && used.saturating_add(want) > room {
            return Err(out_of(name, want, used, room));
        }
    }
    let (Some(spec), Some(node)) = (pod.spec.as_ref(), node) else {
        return Ok(());
    };
    if !node_match::selects(spec, node) {
        return Err(Rejection {
            reason: "NodeAffinity".into(),
            message:
                "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
                    .into(),
        });
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    // kubelet looks only at NoExecute taints (NoSchedule ones are the
    // scheduler's), and not for static pods.
    let untolerated = node_match::untolerated(spec, taints, |t| t.effect == "NoExecute");
    if !is_static && untolerated.is_some() {
        return Err(Rejection {
            reason: "TaintToleration".into(),
            message:
                "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
                    .into(),
        });
    }
    Ok(())
}

/// kubelet's safe sysctls: namespaced, and isolated between pods.
const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// A sysctl name with dots, as kubelet takes one written with slashes
/// (`net/ipv4/conf/eth0.100/rp_filter` is `net.ipv4.conf.eth0/100.rp_filter`).
pub fn sysctl_name(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// kubelet's sysctl allowlist: the safe set and the node's
/// `--allowed-unsafe-sysctls`, none of a namespace shared with the host.
fn check_sysctls(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    allowed: &[String],
) -> Result<(), String> {
    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref());
    for s in sysctls.into_iter().flatten() {
        let name = sysctl_name(&s.name);
        let ipc = name.starts_with("kernel.shm")
            || name.starts_with("kernel.msg")
            || name == "kernel.sem"
            || name.starts_with("fs.mqueue.");
        if spec.host_network == Some(true) && name.starts_with("net.") {
            return Err(format!("{name:?} not allowed with host net enabled"));
        }
        if spec.host_ipc == Some(true) && ipc {
            return Err(format!("{name:?} not allowed with host ipc enabled"));
        }
        let unsafe_ok = allowed.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => name.starts_with(&sysctl_name(prefix)),
            None => sysctl_name(a) == name,
        });
        if !SAFE_SYSCTLS.contains(&name.as_str()) && !unsafe_ok {
            return Err(format!("{name:?} not allowlisted"));
        }
    }
    Ok(())
}

/// The pods the node has admitted and that have not finished, with what
/// they ask; admissions are decided one at a time.
#[derive(Default)]
pub struct Admitted {
    pods: std::sync::Mutex<HashMap<String, Requests>>,
    /// Held while one admission is decided (it reads the Node).
    pub gate: tokio::sync::Mutex<()>,
}

impl Admitted {
    pub fn hold(&self, uid: &str, r: Requests) {
        if let Ok(mut m) = self.pods.lock() {
            m.insert(uid.to_string(), r);
        }
    }

    pub fn release(&self, uid: &str) {
        if let Ok(mut m) = self.pods.lock() {
            m.remove(uid);
        }
    }

    /// The requests of the admitted pods other than `uid`.
    pub fn others(&self, uid: &str) -> Vec<Requests> {
        self.pods
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != uid)
                    .map(|(_, r)| *r)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
