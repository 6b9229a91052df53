//! Inter-pod affinity and anti-affinity (upstream's InterPodAffinity
//! plugin): a pod wants to run in the same topology domain (node, zone…)
//! as pods its terms select, or not in one with them; and pods already
//! placed may refuse it beside them. Counted once per decision over the
//! placed pods, then checked per node.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};

use super::cache::{Cache, NodeInfo, Placed};
use crate::server::controllers::podutil;

pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// Upstream's hardPodAffinityWeight: what a placed pod's required
/// affinity for the new one adds to the score of its domain.
const HARD_AFFINITY_WEIGHT: i64 = 1;

/// A domain: (topology key, the node label's value).
type Domain = (String, String);

/// What one decision needs, counted once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// Per required affinity term of the pod: placed pods that all its
    /// terms select, per value of the term's topology key (no zeros kept).
    affinity: Vec<(String, HashMap<String, i64>)>,
    /// Whether the pod selects itself with every required affinity term
    /// (the first of a group may then go anywhere the keys exist).
    self_affine: bool,
    anti: Vec<(String, HashMap<String, i64>)>,
    /// Domains where a placed pod's required anti-affinity refuses it.
    refused: HashMap<Domain, i64>,
    /// Preference per domain, from both sides' weighted terms.
    preference: HashMap<Domain, i64>,
}

fn terms(v: Option<&Vec<PodAffinityTerm>>) -> &[PodAffinityTerm] {
    v.map(Vec::as_slice).unwrap_or_default()
}

/// Whether `term`, written in a pod of namespace `owner_ns`, selects `pod`.
/// A terminating pod still counts (as upstream's, unlike topology spread):
/// a pod that must not share a node with it waits until it is gone.
fn selects(term: &PodAffinityTerm, owner_ns: &str, pod: &Pod, cache: &Cache) -> bool {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let listed = term.namespaces.as_deref().unwrap_or_default();
    let in_ns = match term.namespace_selector.as_ref() {
        None if listed.is_empty() => ns == owner_ns,
        None => listed.iter().any(|n| n == ns),
        Some(sel) => {
            listed.iter().any(|n| n == ns)
                || podutil::selects(Some(sel), cache.namespace_labels(ns))
        }
    };
    in_ns && podutil::selects(term.label_selector.as_ref(), pod.metadata.labels.as_ref())
}

fn domain_of(node: &NodeInfo, key: &str) -> Option<String> {
    node.node
        .as_ref()?
        .metadata
        .labels
        .as_ref()?
        .get(key)
        .cloned()
}

/// A pod's required affinity and anti-affinity terms.
fn required(pod: &Pod) -> (&[PodAffinityTerm], &[PodAffinityTerm]) {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let pa = aff.and_then(|a| a.pod_affinity.as_ref());
    let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
    (
        terms(pa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })),
        terms(paa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })),
    )
}

/// Add `sign` to an entry, dropping it at zero (the filter reads "any
/// entry" as "some pod matches").
fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, i64>, key: K, sign: i64) {
    match map.entry(key) {
        Entry::Occupied(mut e) => {
            *e.get_mut() += sign;
            if *e.get() == 0 {
                e.remove();
            }
        }
        Entry::Vacant(e) => {
            if sign != 0 {
                e.insert(sign);
            }
        }
    }
}

impl State {
    /// A copy for the filter alone (a preemption's what-if): without the
    /// scoring preferences.
    pub fn for_filter(&self) -> State {
        State {
            affinity: self.affinity.clone(),
            self_affine: self.self_affine,
            anti: self.anti.clone(),
            refused: self.refused.clone(),
            preference: HashMap::new(),
        }
    }

    /// Count what the required terms say about `placed`, on a node with
    /// `labels`, as there (`sign` 1) or gone (-1): the pod's own terms
    /// against it and its anti-affinity terms against the pod. A
    /// preemption's what-if uses it as upstream's RemovePod/AddPod.
    pub fn tally(
        &mut self,
        pod: &Pod,
        placed: &Placed,
        labels: &BTreeMap<String, String>,
        cache: &Cache,
        sign: i64,
    ) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let (req_aff, req_anti) = required(pod);
        let other = placed.pod.as_ref();
        // Affinity counts pods that match every required term, as
        // upstream; anti-affinity, each term on its own.
        if !req_aff.is_empty() && req_aff.iter().all(|t| selects(t, ns, other, cache)) {
            for (t, (_, counts)) in req_aff.iter().zip(self.affinity.iter_mut()) {
                if let Some(v) = labels.get(&t.topology_key) {
                    bump(counts, v.clone(), sign);
                }
            }
        }
        for (t, (_, counts)) in req_anti.iter().zip(self.anti.iter_mut()) {
            if let Some(v) = labels.get(&t.topology_key) {
                if selects(t, ns, other, cache) {
                    bump(counts, v.clone(), sign);
                }
            }
        }
        if !placed.has_affinity {
            return;
        }
        let other_ns = other.metadata.namespace.as_deref().unwrap_or_default();
        for t in required(other).1 {
            if selects(t, other_ns, pod, cache) {
                if let Some(v) = labels.get(&t.topology_key) {
                    bump(&mut self.refused, (t.topology_key.clone(), v.clone()), sign);
                }
            }
        }
    }
}

/// Count what `pod`'s terms and the placed pods' terms say, or None when
/// neither side has any (the common case: nothing to check).
pub fn prepare(pod: &Pod, cache: &Cache) -> Option<State> {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let pa = aff.and_then(|a| a.pod_affinity.as_ref());
    let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
    let (req_aff, req_anti) = required(pod);
    let pref_aff = pa
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pref_anti = paa
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(Vec::as_slice)
        .unwrap_or_default();
    let own = req_aff.len() + req_anti.len() + pref_aff.len() + pref_anti.len();
    if own == 0 && cache.affinity_pods() == 0 {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut st = State {
        affinity: req_aff
            .iter()
            .map(|t| (t.topology_key.clone(), HashMap::new()))
            .collect(),
        anti: req_anti
            .iter()
            .map(|t| (t.topology_key.clone(), HashMap::new()))
            .collect(),
        self_affine: req_aff.iter().all(|t| selects(t, ns, pod, cache)),
        ..Default::default()
    };
    let me = pod.metadata.uid.as_deref();
    for node in cache.nodes() {
        // Only nodes with pods that have terms, or when the pod has its own.
        if own == 0 && node.affinity_pods == 0 {
            continue;
        }
        let labels = node
            .node
            .as_ref()
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        for placed in node.pods.values() {
            let other = placed.pod.as_ref();
            if other.metadata.uid.as_deref() == me {
                continue;
            }
            let other_ns = other.metadata.namespace.as_deref().unwrap_or_default();
            st.tally(pod, placed, &labels, cache, 1);
            for w in pref_aff {
                prefer(
                    &w.pod_affinity_term,
                    ns,
                    other,
                    cache,
                    &labels,
                    i64::from(w.weight),
                    &mut st.preference,
                );
            }
            for w in pref_anti {
                prefer(
                    &w.pod_affinity_term,
                    ns,
                    other,
                    cache,
                    &labels,
                    -i64::from(w.weight),
                    &mut st.preference,
                );
            }
            // The placed pod's terms, against the new pod.
            if !placed.has_affinity {
                continue;
            }
            let oa = other.spec.as_ref().and_then(|s| s.affinity.as_ref());
            let opa = oa.and_then(|a| a.pod_affinity.as_ref());
            let opaa = oa.and_then(|a| a.pod_anti_affinity.as_ref());
            for t in terms(opa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })) {
                prefer(
                    t,
                    other_ns,
                    pod,
                    cache,
                    &labels,
                    HARD_AFFINITY_WEIGHT,
                    &mut st.preference,
                );
            }
            for w in opa
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .into_iter()
                .flatten()
            {
                prefer(
                    &w.pod_affinity_term,
                    other_ns,
                    pod,
                    cache,
                    &labels,
                    i64::from(w.weight),
                    &mut st.preference,
                );
            }
            for w in opaa
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .into_iter()
                .flatten()
            {
                prefer(
                    &w.pod_affinity_term,
                    other_ns,
                    pod,
                    cache,
                    &labels,
                    -i64::from(w.weight),
                    &mut st.preference,
                );
            }
        }
    }
    Some(st)
}

/// Add `weight` to the domain of `labels` when `term` (of a pod in
/// `owner_ns`) selects `target`.
fn prefer(
    term: &PodAffinityTerm,
    owner_ns: &str,
    target: &Pod,
    cache: &Cache,
    labels: &BTreeMap<String, String>,
    weight: i64,
    into: &mut HashMap<Domain, i64>,
) {
    if weight == 0 {
        return;
    }
    if let Some(v) = labels.get(&term.topology_key) {
        if selects(term, owner_ns, target, cache) {
            *into
                .entry((term.topology_key.clone(), v.clone()))
                .or_default() += weight;
        }
    }
}

/// The filter: Err with upstream's reason, and whether evicting pods
/// could cure it.
pub fn check(st: &State, node: &NodeInfo) -> Result<(), (&'static str, bool)> {
    let any_match = st.affinity.iter().any(|(_, c)| c.values().any(|n| *n > 0));
    for (key, counts) in &st.affinity {
        let Some(v) = domain_of(node, key) else {
            return Err((AFFINITY, false));
        };
        let here = counts.get(&v).copied().unwrap_or(0) > 0;
        // No pod anywhere matches: the first of a self-selecting group
        // may start the domain.
        if !here && (any_match || !st.self_affine) {
            return Err((AFFINITY, false));
        }
    }
    for (key, counts) in &st.anti {
        if let Some(v) = domain_of(node, key) {
            if counts.get(&v).copied().unwrap_or(0) > 0 {
                return Err((ANTI_AFFINITY, true));
            }
        }
    }
    if !st.refused.is_empty() {
        let labels = node.node.as_ref().and_then(|n| n.metadata.labels.as_ref());
        for (k, v) in labels.into_iter().flatten() {
            if st
                .refused
                .get(&(k.clone(), v.clone()))
                .is_some_and(|n| *n > 0)
            {
                return Err((EXISTING_ANTI_AFFINITY, true));
            }
        }
    }
    Ok(())
}

/// The score of each node, 0–100, normalised between the lowest and the
/// highest, as upstream.
pub fn scores(st: &State, nodes: &[&NodeInfo]) -> Vec<i64> {
    let raw: Vec<i64> = nodes
        .iter()
        .map(|n| {
            n.node
                .as_ref()
                .and_then(|n| n.metadata.labels.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| st.preference.get(&(k.clone(), v.clone())))
                .sum()
        })
        .collect();
    let max = raw.iter().copied().max().unwrap_or(0);
    let min = raw.iter().copied().min().unwrap_or(0);
    raw.iter()
        .map(|s| {
            if max == min {
                0
            } else {
                100 * (s - min) / (max - min)
            }
        })
        .collect()
}
