//! Topology spread constraints (upstream's PodTopologySpread plugin): the
//! pods a constraint selects may differ by at most `maxSkew` between the
//! domains of its topology key. `DoNotSchedule` constraints filter nodes,
//! `ScheduleAnyway` ones score them (fewer matching pods is better).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::cache::{Cache, NodeInfo};
use crate::api::node_match;
use crate::server::controllers::podutil;

pub const NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

struct Constraint {
    key: String,
    max_skew: i64,
    /// The matching pods per domain of the eligible nodes (0 included).
    counts: HashMap<String, i64>,
    /// Whether the pod counts itself in the domain it lands in.
    self_match: i64,
    min: i64,
}

/// What one decision needs, counted once.
pub struct State {
    hard: Vec<Constraint>,
    soft: Vec<Constraint>,
}

fn labels_of(node: &NodeInfo) -> Option<&BTreeMap<String, String>> {
    node.node.as_ref()?.metadata.labels.as_ref()
}

/// The selector with `matchLabelKeys` added as the pod's own values.
fn selector(c: &TopologySpreadConstraint, pod: &Pod) -> Option<LabelSelector> {
    let mut sel = c.label_selector.clone()?;
    let own = pod.metadata.labels.clone().unwrap_or_default();
    for key in c.match_label_keys.iter().flatten() {
        if let Some(v) = own.get(key) {
            sel.match_expressions
                .get_or_insert_with(Vec::new)
                .push(LabelSelectorRequirement {
                    key: key.clone(),
                    operator: "In".into(),
                    values: Some(vec![v.clone()]),
                });
        }
    }
    Some(sel)
}

/// Count the domains of each constraint, or None when the pod has none.
pub fn prepare(pod: &Pod, cache: &Cache) -> Option<State> {
    let spec = pod.spec.as_ref()?;
    let constraints = spec.topology_spread_constraints.as_ref()?;
    if constraints.is_empty() {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let hard_keys: Vec<&str> = constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
        .map(|c| c.topology_key.as_str())
        .collect();
    let mut st = State {
        hard: Vec::new(),
        soft: Vec::new(),
    };
    for c in constraints {
        let sel = selector(c, pod);
        let hard = c.when_unsatisfiable == "DoNotSchedule";
        let mut counts: HashMap<String, i64> = HashMap::new();
        for node in cache.nodes() {
            let Some(n) = node.node.as_ref() else {
                continue;
            };
            let Some(labels) = labels_of(node) else {
                continue;
            };
            // Only nodes the pod could go to by its node affinity
            // (nodeAffinityPolicy Honor) and, unless told to, regardless
            // of taints (nodeTaintsPolicy Ignore).
            let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
            if honor_affinity && !node_match::selects(spec, n) {
                continue;
            }
            if c.node_taints_policy.as_deref() == Some("Honor")
                && node_match::untolerated(spec, &node.taints, |t| {
                    matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
                })
                .is_some()
            {
                continue;
            }
            // For the filter, only nodes with every required key count.
            if hard && !hard_keys.iter().all(|k| labels.contains_key(*k)) {
                continue;
            }
            let Some(v) = labels.get(&c.topology_key) else {
                continue;
            };
            let matching = node
                .pods
                .values()
                .filter(|p| {
                    let p = p.pod.as_ref();
                    p.metadata.namespace.as_deref() == Some(ns)
                        && p.metadata.deletion_timestamp.is_none()
                        && podutil::selects(sel.as_ref(), p.metadata.labels.as_ref())
                })
                .count() as i64;
            *counts.entry(v.clone()).or_default() += matching;
        }
        let mut min = counts.values().copied().min().unwrap_or(0);
        // Fewer domains than asked for: the missing ones count as empty.
        if c.min_domains
            .is_some_and(|m| (counts.len() as i64) < i64::from(m))
        {
            min = 0;
        }
        let constraint = Constraint {
            key: c.topology_key.clone(),
            max_skew: i64::from(c.max_skew.max(1)),
            self_match: i64::from(podutil::selects(sel.as_ref(), pod.metadata.labels.as_ref())),
            counts,
            min,
        };
        if hard {
            st.hard.push(constraint);
        } else {
            st.soft.push(constraint);
        }
    }
    Some(st)
}

/// The filter: Err with upstream's reason (evicting pods could cure a
/// skew, not a missing label).
pub fn check(st: &State, node: &NodeInfo) -> Result<(), (&'static str, bool)> {
    let labels = labels_of(node);
    for c in &st.hard {
        let Some(v) = labels.and_then(|l| l.get(&c.key)) else {
            return Err((MISSING_LABEL, false));
        };
        let here = c.counts.get(v).copied().unwrap_or(0);
        if here + c.self_match - c.min > c.max_skew {
            return Err((NOT_MATCH, true));
        }
    }
    Ok(())
}

/// The score of each node for the `ScheduleAnyway` constraints, 0–100:
/// fewer matching pods in its domains is better, each constraint weighted
/// by how many domains it has, as upstream.
pub fn scores(st: &State, nodes: &[&NodeInfo]) -> Vec<i64> {
    if st.soft.is_empty() {
        return vec![0; nodes.len()];
    }
    // Upstream's: per constraint, the matching pods in the node's domain
    // times log(domains + 2), plus maxSkew - 1; rounded, then normalised
    // so that the fewest pods score 100. (The domains are counted over
    // the nodes the constraint considers, not only the feasible ones.)
    let raw: Vec<Option<i64>> = nodes
        .iter()
        .map(|n| {
            let labels = labels_of(n)?;
            let mut s = 0.0;
            for c in &st.soft {
                let v = labels.get(&c.key)?;
                let weight = ((c.counts.len() + 2) as f64).ln();
                let here = c.counts.get(v).copied().unwrap_or(0);
                s += here as f64 * weight + (c.max_skew - 1) as f64;
            }
            Some(s.round() as i64)
        })
        .collect();
    let seen: Vec<i64> = raw.iter().flatten().copied().collect();
    let max = seen.iter().copied().max().unwrap_or(0);
    let min = seen.iter().copied().min().unwrap_or(0);
    raw.iter()
        .map(|s| match s {
            // Nodes without the keys are not in any domain: lowest.
            None => 0,
            Some(_) if max <= 0 => 100,
            Some(s) => 100 * (max + min - s) / max,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Node;

    use super::*;

    fn node_in(zone: &str) -> NodeInfo {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": zone, "labels": {"zone": zone}}}))
        .unwrap();
        NodeInfo {
            node: Some(Arc::new(node)),
            ..Default::default()
        }
    }

    #[test]
    fn soft_scores_follow_upstreams_formula() {
        // Three zones holding 0, 1 and 2 matching pods, maxSkew 1: raw
        // scores round(n * ln 5) = 0, 2, 3; normalised 100 * (3 - s) / 3.
        let st = State {
            hard: Vec::new(),
            soft: vec![Constraint {
                key: "zone".into(),
                max_skew: 1,
                counts: HashMap::from([("a".into(), 0), ("b".into(), 1), ("c".into(), 2)]),
                self_match: 1,
                min: 0,
            }],
        };
        let (a, b, c) = (node_in("a"), node_in("b"), node_in("c"));
        assert_eq!(scores(&st, &[&a, &b, &c]), [100, 33, 0]);
        // maxSkew adds to every node alike, outside the weight: 2 more
        // each (raw 2, 4, 5) gives 100 * (7 - s) / 5.
        let st = State {
            hard: Vec::new(),
            soft: vec![Constraint {
                max_skew: 3,
                ..st.soft.into_iter().next().unwrap()
            }],
        };
        assert_eq!(scores(&st, &[&a, &b, &c]), [100, 60, 40]);
    }
}
