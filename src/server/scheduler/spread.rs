//! Topology spread constraints (upstream's PodTopologySpread plugin): the
//! pods a constraint selects may differ by at most `maxSkew` between the
//! domains of its topology key. `DoNotSchedule` constraints filter nodes,
//! `ScheduleAnyway` ones score them (fewer matching pods is better).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, PodSpec, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::cache::{Cache, NodeInfo};
use crate::api::node_match;
use crate::server::controllers::podutil;

pub const NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Clone, Debug, PartialEq)]
struct Constraint {
    key: String,
    max_skew: i64,
    hard: bool,
    /// The label selector with `matchLabelKeys` folded in.
    sel: Option<LabelSelector>,
    honor_affinity: bool,
    honor_taints: bool,
    min_domains: Option<i32>,
    /// The matching pods per domain of the eligible nodes (0 included).
    counts: HashMap<String, i64>,
    /// Whether the pod counts itself in the domain it lands in.
    self_match: i64,
    min: i64,
}

impl Constraint {
    /// The domain `node` counts in for this constraint, or None when the
    /// constraint does not count it: only nodes the pod could go to by its
    /// node affinity (nodeAffinityPolicy Honor) and, unless told to,
    /// regardless of taints (nodeTaintsPolicy Ignore); for the filter,
    /// only nodes with every required key.
    fn domain<'n>(
        &self,
        spec: &PodSpec,
        hard_keys: &[String],
        node: &'n NodeInfo,
    ) -> Option<&'n str> {
        let n = node.node.as_ref()?;
        let labels = labels_of(node)?;
        if self.honor_affinity && !node_match::selects(spec, n) {
            return None;
        }
        if self.honor_taints
            && node_match::untolerated(spec, &node.taints, |t| {
                matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
            })
            .is_some()
        {
            return None;
        }
        if self.hard && !hard_keys.iter().all(|k| labels.contains_key(k)) {
            return None;
        }
        labels.get(&self.key).map(String::as_str)
    }

    /// Whether a placed pod counts for this constraint.
    fn matches(&self, ns: &str, p: &Pod) -> bool {
        p.metadata.namespace.as_deref() == Some(ns)
            && p.metadata.deletion_timestamp.is_none()
            && podutil::selects(self.sel.as_ref(), p.metadata.labels.as_ref())
    }

    fn set_min(&mut self) {
        self.min = self.counts.values().copied().min().unwrap_or(0);
        // Fewer domains than asked for: the missing ones count as empty.
        if self
            .min_domains
            .is_some_and(|m| (self.counts.len() as i64) < i64::from(m))
        {
            self.min = 0;
        }
    }
}

/// What one decision needs, counted once.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    ns: String,
    hard_keys: Vec<String>,
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
    let mut st = State {
        ns: pod.metadata.namespace.clone().unwrap_or_default(),
        hard_keys: constraints
            .iter()
            .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
            .map(|c| c.topology_key.clone())
            .collect(),
        hard: Vec::new(),
        soft: Vec::new(),
    };
    for c in constraints {
        let sel = selector(c, pod);
        let mut constraint = Constraint {
            key: c.topology_key.clone(),
            max_skew: i64::from(c.max_skew.max(1)),
            hard: c.when_unsatisfiable == "DoNotSchedule",
            self_match: i64::from(podutil::selects(sel.as_ref(), pod.metadata.labels.as_ref())),
            sel,
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            min_domains: c.min_domains,
            counts: HashMap::new(),
            min: 0,
        };
        for node in cache.nodes() {
            let Some(v) = constraint.domain(spec, &st.hard_keys, node) else {
                continue;
            };
            let matching = node
                .pods
                .values()
                .filter(|p| constraint.matches(&st.ns, &p.pod))
                .count() as i64;
            *constraint.counts.entry(v.to_string()).or_default() += matching;
        }
        constraint.set_min();
        if constraint.hard {
            st.hard.push(constraint);
        } else {
            st.soft.push(constraint);
        }
    }
    Some(st)
}

impl State {
    /// Count `placed` as gone from `node` (`sign` -1) or back (+1), for a
    /// preemption's what-if (upstream's RemovePod/AddPod extensions). Only
    /// the filter's constraints: the what-if does not score.
    pub fn tally(&mut self, spec: &PodSpec, placed: &Pod, node: &NodeInfo, sign: i64) {
        let (ns, keys) = (&self.ns, &self.hard_keys);
        for c in self.hard.iter_mut() {
            if !c.matches(ns, placed) {
                continue;
            }
            let Some(v) = c.domain(spec, keys, node) else {
                continue;
            };
            let n = match c.counts.get_mut(v) {
                Some(n) => n,
                None => c.counts.entry(v.to_string()).or_default(),
            };
            let was = *n;
            *n += sign;
            let now = *n;
            // The minimum moves down with a domain, and is looked for
            // again only when the one domain at it moves up.
            if now < c.min {
                c.min = now;
            } else if was == c.min && now > was {
                c.set_min();
            }
        }
    }
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
            ns: "d".into(),
            hard_keys: Vec::new(),
            hard: Vec::new(),
            soft: vec![Constraint {
                key: "zone".into(),
                max_skew: 1,
                hard: false,
                sel: None,
                honor_affinity: true,
                honor_taints: false,
                min_domains: None,
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
            ns: "d".into(),
            hard_keys: Vec::new(),
            hard: Vec::new(),
            soft: vec![Constraint {
                max_skew: 3,
                ..st.soft.into_iter().next().unwrap()
            }],
        };
        assert_eq!(scores(&st, &[&a, &b, &c]), [100, 60, 40]);
    }
}
