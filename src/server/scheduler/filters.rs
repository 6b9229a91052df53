//! The filters: may this pod run on this node? Each says why not in
//! upstream's words, which the "0/3 nodes are available: …" message
//! counts. They run in upstream's order and stop at the first that fails
//! (except the resource fit, which names every resource that is short).

use k8s_openapi::api::core::v1::{Pod, PodSpec, Taint};

use super::cache::{Cache, HostPort, NodeInfo};
use super::resources::Res;
use crate::api::node_match;

/// What the filters need of the pod, computed once per scheduling pass.
pub struct PodFacts<'a> {
    pub spec: &'a PodSpec,
    pub uid: &'a str,
    pub priority: i32,
    pub requests: Res,
    pub ports: Vec<HostPort>,
    /// Its topology spread constraints, counted (None: it has none).
    pub spread: Option<super::spread::State>,
    /// Inter-pod affinity, counted (None: no terms on either side).
    pub interpod: Option<super::interpod::State>,
}

impl<'a> PodFacts<'a> {
    /// Count what the filters need of `pod` against `cache`.
    pub fn of(pod: &'a Pod, cache: &Cache) -> Option<Self> {
        let spec = pod.spec.as_ref()?;
        Some(PodFacts {
            spec,
            uid: pod.metadata.uid.as_deref().unwrap_or_default(),
            priority: spec.priority.unwrap_or(0),
            requests: super::resources::pod_requests(spec),
            ports: super::cache::host_ports(spec),
            spread: super::spread::prepare(pod, cache),
            interpod: super::interpod::prepare(pod, cache),
        })
    }
}

/// Whether a failure could be cured by evicting pods from the node
/// (upstream's Unschedulable), or not (UnschedulableAndUnresolvable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cure {
    Preemption,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reasons: Vec<String>,
    pub cure: Cure,
}

impl Failure {
    fn one(reason: impl Into<String>, cure: Cure) -> Self {
        Failure {
            reasons: vec![reason.into()],
            cure,
        }
    }
}

pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const TOO_MANY_PODS: &str = "Too many pods";

/// Run the filters on `node`.
pub fn check(pod: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Failure> {
    let Some(n) = node.node.as_ref() else {
        return Err(Failure::one("node(s) not found", Cure::None));
    };
    let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    if unschedulable && !tolerates_unschedulable(pod.spec) {
        return Err(Failure::one(UNSCHEDULABLE, Cure::None));
    }
    if let Some(t) = node_match::untolerated(pod.spec, &node.taints, |t| {
        matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
    }) {
        return Err(Failure::one(untolerated(t), Cure::None));
    }
    if !node_match::selects(pod.spec, n) {
        return Err(Failure::one(AFFINITY, Cure::None));
    }
    // A failure evicting pods could cure makes the node a candidate for
    // preemption, which then runs every filter again without its victims
    // (upstream's Unschedulable against UnschedulableAndUnresolvable).
    let cure = |curable: bool| {
        if curable {
            Cure::Preemption
        } else {
            Cure::None
        }
    };
    // Pods a preemption made room for here, as important as this one or
    // more, count as if they ran (upstream's nominated pods): the room is
    // theirs.
    let nominated = nominated_load(pod, node);
    let (used, count, ports) = match &nominated {
        Some((u, c, p)) => (u, *c, p.as_slice()),
        None => (
            &node.requested,
            node.pods.len() as i64,
            node.ports.as_slice(),
        ),
    };
    if pod.ports.iter().any(|p| conflicts(p, ports)) {
        return Err(Failure::one(PORTS, Cure::Preemption));
    }
    fits(pod, node, used, count)?;
    if let Some(st) = pod.spread.as_ref() {
        super::spread::check(st, node).map_err(|(r, c)| Failure::one(r, cure(c)))?;
    }
    if let Some(st) = pod.interpod.as_ref() {
        super::interpod::check(st, node).map_err(|(r, c)| Failure::one(r, cure(c)))?;
    }
    Ok(())
}

/// What the node's pods take with the nominated pods that come before
/// `pod` added, when there are any.
fn nominated_load(pod: &PodFacts<'_>, node: &NodeInfo) -> Option<(Res, i64, Vec<HostPort>)> {
    let ahead: Vec<_> = node
        .nominated
        .iter()
        .filter(|(uid, p)| {
            uid.as_str() != pod.uid && super::preemption::priority(&p.pod) >= pod.priority
        })
        .map(|(_, p)| p)
        .collect();
    if ahead.is_empty() {
        return None;
    }
    let mut used = node.requested.clone();
    let mut ports = node.ports.clone();
    for p in &ahead {
        used.add(&p.requests);
        ports.extend(p.ports.iter().cloned());
    }
    Some((used, (node.pods.len() + ahead.len()) as i64, ports))
}

/// The resource fit against what is already `used` by `count` pods (the
/// node's own figures, or fewer after a preemption's victims leave).
pub fn fits(pod: &PodFacts<'_>, node: &NodeInfo, used: &Res, count: i64) -> Result<(), Failure> {
    let mut reasons = Vec::new();
    if count + 1 > node.allowed_pods {
        reasons.push(TOO_MANY_PODS.to_string());
    }
    let want = &pod.requests;
    let alloc = &node.allocatable;
    let short = |want: i64, used: i64, alloc: i64| want > 0 && want.saturating_add(used) > alloc;
    if short(want.cpu, used.cpu, alloc.cpu) {
        reasons.push("Insufficient cpu".into());
    }
    if short(want.memory, used.memory, alloc.memory) {
        reasons.push("Insufficient memory".into());
    }
    if short(want.ephemeral, used.ephemeral, alloc.ephemeral) {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, v) in &want.scalar {
        let have = alloc.scalar.get(name).copied().unwrap_or(0);
        let taken = used.scalar.get(name).copied().unwrap_or(0);
        if short(*v, taken, have) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            reasons,
            cure: Cure::Preemption,
        })
    }
}

/// Upstream's message for an untolerated taint.
pub fn untolerated(t: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        t.key,
        t.value.as_deref().unwrap_or_default()
    )
}

fn tolerates_unschedulable(spec: &PodSpec) -> bool {
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    spec.tolerations
        .iter()
        .flatten()
        .any(|t| node_match::tolerates(t, &taint))
}

/// Two host ports clash on the same protocol and port when either binds
/// every address or both bind the same one.
pub fn conflicts(want: &HostPort, taken: &[HostPort]) -> bool {
    let any = |ip: &str| ip == "0.0.0.0" || ip == "::";
    taken.iter().any(|(proto, ip, port)| {
        *proto == want.0 && *port == want.2 && (any(ip) || any(&want.1) || *ip == want.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_clash_on_wildcards_and_equal_addresses_only() {
        let t = |ip: &str| ("TCP".to_string(), ip.to_string(), 80);
        assert!(conflicts(&t("0.0.0.0"), &[t("10.0.0.1")]));
        assert!(conflicts(&t("10.0.0.1"), &[t("0.0.0.0")]));
        assert!(conflicts(&t("10.0.0.1"), &[t("10.0.0.1")]));
        assert!(!conflicts(&t("10.0.0.1"), &[t("10.0.0.2")]));
        let udp = ("UDP".to_string(), "0.0.0.0".to_string(), 80);
        assert!(!conflicts(&udp, &[t("0.0.0.0")]));
    }
}
