//! Whether a pod may run on a node, as far as the node's labels, name and
//! taints decide it: `nodeSelector`, required node affinity (upstream's
//! NodeSelectorRequirement operators, `matchFields` on `metadata.name`), and
//! tolerations. Pure, on typed objects; the node's agent admits pods with
//! it, and the scheduler filters nodes with it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

fn labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// One requirement against `value` (the label's or field's, if present).
fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // One integer value, compared with the label's as integers.
        "Gt" | "Lt" => match (
            value.and_then(number),
            values.first().and_then(|s| number(s)),
        ) {
            (Some(v), Some(bound)) if values.len() == 1 => {
                if r.operator == "Gt" {
                    v > bound
                } else {
                    v < bound
                }
            }
            _ => false,
        },
        _ => false,
    }
}

/// A term holds when all its requirements do; an empty term matches
/// nothing (upstream's rule).
pub fn term_holds(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let l = labels(node);
    exprs
        .iter()
        .all(|r| requirement_holds(r, l.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_holds(r, node.metadata.name.as_deref())
        })
}

/// `nodeSelector` and the required node affinity of `spec` hold on `node`.
pub fn selects(spec: &PodSpec, node: &Node) -> bool {
    let l = labels(node);
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| l.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    // Terms are ORed.
    let affinity_ok =
        required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_holds(t, node)));
    selector_ok && affinity_ok
}

/// Whether `t` tolerates `taint` (upstream's ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        // An empty key with Exists tolerates every taint.
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The first of `taints` whose effect `counts` picks that no toleration
/// of `spec` tolerates.
pub fn untolerated<'a>(
    spec: &PodSpec,
    taints: &'a [Taint],
    counts: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    taints
        .iter()
        .filter(|t| counts(t))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

#[cfg(test)]
#[path = "node_match_tests.rs"]
mod tests;
