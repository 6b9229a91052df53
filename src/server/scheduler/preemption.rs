//! Preemption (upstream's DefaultPreemption, without PodDisruptionBudgets
//! yet): when a pod fits nowhere, find a node where evicting pods of lower
//! priority makes room, evicting as few and as unimportant ones as
//! possible. On each node that only lacks room (not affinity, taints…),
//! every lower-priority pod is taken out; if the pod then fits, the most
//! important of them are put back one by one while it still fits. Of the
//! nodes that work, the one whose most important victim matters least
//! wins, then the smallest sum of priorities, then the fewest victims.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::algorithm::{histogram, FitError};
use super::cache::{self, Cache, HostPort, NodeInfo, Placed};
use super::filters::{self, PodFacts};
use super::resources;

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const MAX_CANDIDATES: usize = 100;
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Where to make room, and whom to evict for it.
#[derive(Debug)]
pub struct Plan {
    pub node: String,
    pub victims: Vec<Arc<Pod>>,
}

pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// A plan for `pod`, which `err` says fits nowhere; or the message that
/// follows "preemption:" when there is none.
pub fn plan(pod: &Pod, cache: &Cache, err: &FitError) -> Result<Plan, String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Err("preemption: the pod has no spec.".into());
    };
    if spec.preemption_policy.as_deref() == Some("Never") {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    let facts = PodFacts {
        spec,
        requests: resources::pod_requests(spec),
        ports: cache::host_ports(spec),
        spread: None,
        interpod: None,
    };
    let mine = priority(pod);
    // Victims chosen before are still going: wait for them rather than
    // choose more (upstream's PodEligibleToPreemptOthers).
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    if let Some(node) = nominated.and_then(|n| cache.node(n)) {
        let going = node
            .pods
            .values()
            .any(|p| p.pod.metadata.deletion_timestamp.is_some() && priority(&p.pod) < mine);
        if going {
            return Err(
                "preemption: not eligible due to a terminating pod on the nominated node.".into(),
            );
        }
    }
    let mut best: Option<(Key, Plan)> = None;
    let mut no_victims = 0;
    // As upstream, a bounded number of candidate nodes is looked at.
    for name in err.curable.iter().take(MAX_CANDIDATES) {
        let Some(node) = cache.node(name) else {
            continue;
        };
        match victims_on(&facts, node, mine) {
            Some(victims) if !victims.is_empty() => {
                let key = Key::of(&victims);
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((
                        key,
                        Plan {
                            node: name.clone(),
                            victims,
                        },
                    ));
                }
            }
            _ => no_victims += 1,
        }
    }
    if let Some((_, plan)) = best {
        return Ok(plan);
    }
    let mut reasons = BTreeMap::new();
    let not_helpful = err.nodes.saturating_sub(err.curable.len());
    if not_helpful > 0 {
        reasons.insert(NOT_HELPFUL.to_string(), not_helpful);
    }
    if no_victims > 0 {
        reasons.insert(NO_VICTIMS.to_string(), no_victims);
    }
    Err(format!(
        "preemption: 0/{} nodes are available: {}.",
        err.nodes,
        histogram(&reasons)
    ))
}

/// How a set of victims ranks: lower is better.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    highest: i32,
    sum: i64,
    count: usize,
}

impl Key {
    fn of(victims: &[Arc<Pod>]) -> Self {
        Key {
            highest: victims
                .iter()
                .map(|p| priority(p))
                .max()
                .unwrap_or(i32::MIN),
            sum: victims.iter().map(|p| i64::from(priority(p))).sum(),
            count: victims.len(),
        }
    }
}

/// The fewest, least important pods of lower priority than `mine` whose
/// leaving lets the pod fit on `node`; None when even all of them would
/// not do.
fn victims_on(facts: &PodFacts<'_>, node: &NodeInfo, mine: i32) -> Option<Vec<Arc<Pod>>> {
    let (mut lower, stay): (Vec<&Placed>, Vec<&Placed>) = node.pods.values().partition(|p| {
        priority(&p.pod) < mine && !p.assumed && p.pod.metadata.deletion_timestamp.is_none()
    });
    if lower.is_empty() {
        return None;
    }
    let fits = |kept: &[&Placed]| {
        let mut used = resources::Res::default();
        let mut ports: Vec<HostPort> = Vec::new();
        for p in kept {
            used.add(&p.requests);
            ports.extend(p.ports.iter().cloned());
        }
        let clash = facts.ports.iter().any(|w| filters::conflicts(w, &ports));
        !clash && filters::fits(facts, node, &used, kept.len() as i64).is_ok()
    };
    let mut kept: Vec<&Placed> = stay;
    if !fits(&kept) {
        return None;
    }
    // Put back the most important first.
    lower.sort_by_key(|p| std::cmp::Reverse(priority(&p.pod)));
    let mut victims = Vec::new();
    for p in lower {
        kept.push(p);
        if !fits(&kept) {
            kept.pop();
            victims.push(p.pod.clone());
        }
    }
    Some(victims)
}
