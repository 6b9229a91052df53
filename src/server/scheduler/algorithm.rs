//! One scheduling decision: filter the nodes, score those that pass, take
//! the best (ties broken at random); or say why none would do, in
//! upstream's words (`0/3 nodes are available: 2 Insufficient memory, 1
//! node(s) had untolerated taint {…}. preemption: …`).
//!
//! As upstream, a large cluster is not searched whole for every pod: once
//! enough feasible nodes are found (upstream's adaptive
//! percentageOfNodesToScore, at least 100) the search stops, and the next
//! search starts where this one stopped, so every node gets its turn.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use rand::Rng;

use super::cache::{Cache, NodeInfo};
use super::filters::{self, Cure, Failure, PodFacts};
use super::resources;
use super::scores::{self, Policy};
use super::{interpod, spread};

/// Feasible nodes always looked for, however large the cluster.
const MIN_FEASIBLE: usize = 100;

/// Why a pod fits nowhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    /// Each reason with the number of nodes it ruled out.
    pub reasons: BTreeMap<String, usize>,
    /// The nodes that evicting pods could make room on.
    pub curable: Vec<String>,
    /// The preemption's own verdict, when it ran and found nothing.
    pub preemption: Option<String>,
}

pub const NO_NODES: &str = "no nodes available to schedule pods";

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nodes == 0 {
            return f.write_str(NO_NODES);
        }
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.nodes,
            histogram(&self.reasons)
        )?;
        if let Some(p) = &self.preemption {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// `2 Insufficient memory, 1 node(s) …`, sorted as upstream sorts the
/// strings.
pub fn histogram(reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// What the search remembers between pods.
#[derive(Default)]
pub struct Search {
    next_start: usize,
}

/// How many feasible nodes are enough among `n` (upstream's adaptive
/// percentage: 50% less 1% per 125 nodes, at least 5%).
pub fn enough(n: usize) -> usize {
    if n <= MIN_FEASIBLE {
        return n;
    }
    let percent = (50 - (n / 125) as i64).max(5) as usize;
    (n * percent / 100).max(MIN_FEASIBLE)
}

/// Choose a node for `pod`.
pub fn schedule(
    pod: &Pod,
    cache: &Cache,
    policy: Policy,
    search: &mut Search,
) -> Result<String, FitError> {
    let Some(facts) = PodFacts::of(pod, cache) else {
        return Err(FitError::default());
    };
    let spec = facts.spec;
    let nodes: Vec<&NodeInfo> = cache.nodes().collect();
    let total = nodes.len();
    let mut err = FitError {
        nodes: total,
        ..Default::default()
    };
    if total == 0 {
        return Err(err);
    }
    let want = enough(total);
    let start = search.next_start % total;
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut looked = 0;
    for i in 0..total {
        let n = nodes[(start + i) % total];
        looked += 1;
        match filters::check(&facts, n) {
            Ok(()) => {
                feasible.push(n);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(Failure { reasons, cure }) => {
                for r in reasons {
                    *err.reasons.entry(r).or_insert(0) += 1;
                }
                if cure == Cure::Preemption {
                    err.curable.push(n.name().to_string());
                }
            }
        }
    }
    search.next_start = (start + looked) % total;
    if feasible.is_empty() {
        return Err(err);
    }
    if feasible.len() == 1 {
        return Ok(feasible[0].name().to_string());
    }
    let nonzero = resources::nonzero_requests(spec);
    let mut s = scores::score(spec, nonzero, &feasible, policy, total);
    // Weighted 2 each, as upstream's default profile.
    if let Some(st) = facts.spread.as_ref() {
        for (t, x) in s.iter_mut().zip(spread::scores(st, &feasible)) {
            *t += 2 * x;
        }
    }
    if let Some(st) = facts.interpod.as_ref() {
        for (t, x) in s.iter_mut().zip(interpod::scores(st, &feasible)) {
            *t += 2 * x;
        }
    }
    Ok(pick(&feasible, &s).to_string())
}

/// The best-scored node, a random one among equals.
fn pick<'a>(nodes: &[&'a NodeInfo], scores: &[i64]) -> &'a str {
    let mut rng = rand::rng();
    let mut best = 0;
    let mut ties = 0u32;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
            ties = 1;
        } else if *s == scores[best] {
            ties += 1;
            // Reservoir sampling: each equal keeps an equal chance.
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    nodes[best].name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_shrinks_with_the_cluster_but_not_below_a_hundred() {
        assert_eq!(enough(3), 3);
        assert_eq!(enough(100), 100);
        assert_eq!(enough(1000), 420);
        assert_eq!(enough(5000), 500);
        assert_eq!(enough(150), 100);
    }

    #[test]
    fn the_message_reads_as_upstream() {
        let mut e = FitError {
            nodes: 3,
            ..Default::default()
        };
        e.reasons.insert("Insufficient memory".into(), 2);
        e.reasons
            .insert("node(s) had untolerated taint {dedicated: db}".into(), 1);
        e.preemption = Some(
            "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
                .into(),
        );
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
        assert_eq!(FitError::default().to_string(), NO_NODES);
    }
}
