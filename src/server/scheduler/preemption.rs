//! Preemption (upstream's DefaultPreemption): when a pod fits nowhere,
//! find a node where evicting pods of lower priority makes room, breaking
//! as few PodDisruptionBudgets and evicting as few and as unimportant pods
//! as possible.
//!
//! On each node whose failure eviction could cure (room, host ports, a
//! topology spread skew, pod anti-affinity), every lower-priority pod is
//! taken out and all the filters run again; if the pod then fits, the
//! pods are put back one by one, most important first and those a budget
//! protects before the others, as long as the pod still fits. Of the
//! nodes that work, the one with the fewest budgets broken wins, then the
//! one whose most important victim matters least, then the smallest sum
//! of priorities, the fewest victims, and the latest started.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rand::Rng;

use super::algorithm::{histogram, FitError};
use super::cache::{Cache, NodeInfo, Placed};
use super::filters::{self, PodFacts};
use super::interpod;
use crate::server::controllers::podutil;

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Nodes with victims looked for before choosing (upstream's
/// minCandidateNodesAbsolute).
const MIN_CANDIDATES: usize = 100;
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Where to make room, and whom to evict for it.
#[derive(Debug)]
pub struct Plan {
    pub node: String,
    pub victims: Vec<Arc<Pod>>,
}

/// Why there is no plan (what follows "preemption:"), and whether that
/// voids the pod's nomination.
#[derive(Debug, PartialEq, Eq)]
pub struct NoPlan {
    pub message: String,
    pub clears: bool,
}

impl NoPlan {
    fn keep(message: &str) -> Self {
        NoPlan {
            message: message.to_string(),
            clears: false,
        }
    }
}

pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// A plan for `pod`, which `err` says fits nowhere; or the message that
/// follows "preemption:" when there is none.
pub fn plan(
    pod: &Pod,
    cache: &Cache,
    err: &FitError,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> Result<Plan, NoPlan> {
    let Some(spec) = pod.spec.as_ref() else {
        return Err(NoPlan::keep("preemption: the pod has no spec."));
    };
    if spec.preemption_policy.as_deref() == Some("Never") {
        return Err(NoPlan::keep(
            "preemption: not eligible due to preemptionPolicy=Never.",
        ));
    }
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
            return Err(NoPlan::keep(
                "preemption: not eligible due to a terminating pod on the nominated node.",
            ));
        }
    }
    // Nothing to gain from counting anything when no candidate holds a
    // pod of lower priority (pods stuck on taints or affinity: no
    // candidates at all).
    let worth = err.curable.iter().any(|n| {
        cache.node(n).is_some_and(|node| {
            node.pods
                .values()
                .any(|p| priority(&p.pod) < mine && !p.assumed)
        })
    });
    let mut best: Option<(Key, Plan)> = None;
    let mut no_victims = err.curable.len();
    if worth {
        let what_if = WhatIf {
            pod,
            cache,
            facts: PodFacts::of(pod, cache)
                .ok_or_else(|| NoPlan::keep("preemption: the pod has no spec."))?,
            pdbs,
        };
        // As upstream: from a random start, nodes are tried until enough
        // of them work (a tenth of the cluster, at least 100) and one of
        // those breaks no budget.
        let wanted = (err.nodes / 10).max(MIN_CANDIDATES).min(err.nodes);
        let (mut found, mut clean) = (0, 0);
        let start = rand::rng().random_range(0..err.curable.len());
        no_victims = 0;
        for i in 0..err.curable.len() {
            let name = &err.curable[(start + i) % err.curable.len()];
            let Some(v) = cache
                .node(name)
                .and_then(|node| what_if.victims_on(node, mine))
                .filter(|v| !v.pods.is_empty())
            else {
                no_victims += 1;
                continue;
            };
            found += 1;
            clean += usize::from(v.violations == 0);
            let key = Key::of(&v);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((
                    key,
                    Plan {
                        node: name.clone(),
                        victims: v.pods,
                    },
                ));
            }
            if clean > 0 && found >= wanted {
                break;
            }
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
    // No node would do: a room the pod was promised before is no longer
    // counted on (upstream clears its nominatedNodeName).
    Err(NoPlan {
        message: format!(
            "preemption: 0/{} nodes are available: {}.",
            err.nodes,
            histogram(&reasons)
        ),
        clears: true,
    })
}

/// The pods to evict from one node, and how many budgets that breaks.
struct Victims {
    pods: Vec<Arc<Pod>>,
    violations: usize,
}

/// How a set of victims ranks: lower is better.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    violations: usize,
    highest: i32,
    /// Upstream sums each priority shifted by 2^31, so that one more
    /// victim always weighs more than any difference in priority.
    sum: i64,
    count: usize,
    /// The earliest start among the most important victims: the node
    /// whose victims have run the shortest is preferred.
    started: Reverse<i64>,
}

impl Key {
    fn of(v: &Victims) -> Self {
        let highest = v.pods.iter().map(|p| priority(p)).max().unwrap_or(i32::MIN);
        Key {
            violations: v.violations,
            highest,
            sum: v
                .pods
                .iter()
                .map(|p| i64::from(priority(p)) + (1 << 31))
                .sum(),
            count: v.pods.len(),
            started: Reverse(
                v.pods
                    .iter()
                    .filter(|p| priority(p) == highest)
                    .map(|p| started(p))
                    .min()
                    .unwrap_or(i64::MAX),
            ),
        }
    }
}

/// When a pod started (not yet: now, the latest possible, as upstream).
fn started(pod: &Pod) -> i64 {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(i64::MAX, |t| t.0.as_second())
}

/// The pod to place, counted once, and what a node would look like with
/// some of its pods gone.
struct WhatIf<'a> {
    pod: &'a Pod,
    cache: &'a Cache,
    facts: PodFacts<'a>,
    pdbs: &'a [Arc<PodDisruptionBudget>],
}

/// One node with some pods taken out, and the pod's counts to match.
struct Scene<'a> {
    node: NodeInfo,
    facts: PodFacts<'a>,
}

impl WhatIf<'_> {
    fn scene(&self, node: &NodeInfo) -> Scene<'_> {
        let f = &self.facts;
        Scene {
            node: node.clone(),
            facts: PodFacts {
                spec: f.spec,
                uid: f.uid,
                priority: f.priority,
                requests: f.requests.clone(),
                ports: f.ports.clone(),
                spread: f.spread.clone(),
                interpod: f.interpod.as_ref().map(interpod::State::for_filter),
            },
        }
    }

    /// Take `p` out of the scene (`sign` -1) or put it back (1).
    fn tally(&self, scene: &mut Scene<'_>, p: &Placed, sign: i64) {
        let uid = p.pod.metadata.uid.clone().unwrap_or_default();
        if sign < 0 {
            scene.node.remove(&uid);
        } else {
            scene.node.add(uid, p.clone());
        }
        if let Some(st) = scene.facts.spread.as_mut() {
            st.tally(self.facts.spec, &p.pod, &scene.node, sign);
        }
        if let Some(st) = scene.facts.interpod.as_mut() {
            let node = scene.node.node.clone();
            let none = BTreeMap::new();
            let labels = node
                .as_ref()
                .and_then(|n| n.metadata.labels.as_ref())
                .unwrap_or(&none);
            st.tally(self.pod, p, labels, self.cache, sign);
        }
    }

    fn fits(scene: &Scene<'_>) -> bool {
        filters::check(&scene.facts, &scene.node).is_ok()
    }

    /// The fewest, least important pods of lower priority than `mine`
    /// whose leaving lets the pod fit on `node`; None when even all of
    /// them would not do.
    fn victims_on(&self, node: &NodeInfo, mine: i32) -> Option<Victims> {
        let mut lower: Vec<&Placed> = node
            .pods
            .values()
            // Terminating ones too, as upstream: they may be what stands
            // in the way (an anti-affinity counts them).
            .filter(|p| priority(&p.pod) < mine && !p.assumed)
            .collect();
        if lower.is_empty() {
            return None;
        }
        let mut scene = self.scene(node);
        for p in &lower {
            self.tally(&mut scene, p, -1);
        }
        if !Self::fits(&scene) {
            return None;
        }
        // Most important first: higher priority, then started earlier.
        lower.sort_by_key(|p| (Reverse(priority(&p.pod)), started(&p.pod)));
        let (protected, free) = self.split_by_budgets(lower);
        let mut victims = Victims {
            pods: Vec::new(),
            violations: 0,
        };
        // Those a budget protects get the first chance to stay.
        for (p, breaks) in protected
            .into_iter()
            .map(|p| (p, true))
            .chain(free.into_iter().map(|p| (p, false)))
        {
            self.tally(&mut scene, p, 1);
            if !Self::fits(&scene) {
                self.tally(&mut scene, p, -1);
                victims.pods.push(p.pod.clone());
                victims.violations += usize::from(breaks);
            }
        }
        // Evicted most important first, as upstream lists them.
        victims
            .pods
            .sort_by_key(|p| (Reverse(priority(p)), started(p)));
        Some(victims)
    }

    /// Split pods (most important first) into those whose eviction would
    /// break a budget, counting down each budget's allowed disruptions as
    /// it goes, and the rest (upstream's filterPodsWithPDBViolation).
    fn split_by_budgets<'p>(&self, pods: Vec<&'p Placed>) -> (Vec<&'p Placed>, Vec<&'p Placed>) {
        let mut allowed: Vec<i64> = self
            .pdbs
            .iter()
            .map(|b| {
                b.status
                    .as_ref()
                    .map_or(0, |s| i64::from(s.disruptions_allowed))
            })
            .collect();
        let (mut protected, mut free) = (Vec::new(), Vec::new());
        for p in pods {
            let pod = p.pod.as_ref();
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let mut breaks = false;
            // A pod without labels is in no budget, whatever its selector.
            let labelled = pod.metadata.labels.as_ref().is_some_and(|l| !l.is_empty());
            for (b, left) in self
                .pdbs
                .iter()
                .zip(allowed.iter_mut())
                .filter(|_| labelled)
            {
                let sel = b.spec.as_ref().and_then(|s| s.selector.as_ref());
                // An empty selector selects nothing here, as upstream's
                // preemption reads it.
                let empty = sel.is_none_or(|s| {
                    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                        && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
                });
                if b.metadata.namespace != pod.metadata.namespace
                    || empty
                    || !podutil::selects(sel, pod.metadata.labels.as_ref())
                {
                    continue;
                }
                // Already counted by the eviction that is taking it.
                let disrupted = b
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(name));
                if disrupted {
                    continue;
                }
                *left -= 1;
                breaks |= *left < 0;
            }
            if breaks {
                protected.push(p);
            } else {
                free.push(p);
            }
        }
        (protected, free)
    }
}

#[cfg(test)]
#[path = "preemption_tests.rs"]
mod tests;
