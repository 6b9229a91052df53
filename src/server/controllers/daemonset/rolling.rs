//! A DaemonSet's rolling update, as upstream's: per node, the old pod is
//! replaced by a new one. Without surge, at most `maxUnavailable` nodes are
//! without an available daemon at once (an old pod that is unavailable
//! anyway is replaced at no cost). With `maxSurge`, the new pod starts
//! beside the old one on up to `maxSurge` nodes, and the old one goes once
//! the new one is available.

/// One node's running daemon pods, by revision. `available` answers for
/// each pod by its index in the caller's list.
#[derive(Debug, Clone)]
pub struct NodePods {
    pub node: String,
    /// Pods of the current revision, oldest first.
    pub new: Vec<usize>,
    /// Pods of older revisions, oldest first.
    pub old: Vec<usize>,
}

/// What a pass of the update does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Old pods to delete (their node then gets a new pod).
    pub delete: Vec<usize>,
    /// Nodes to start a surge pod on, beside the old one.
    pub surge: Vec<String>,
}

/// The update step over `nodes` (the nodes that should run the daemon).
pub fn step(
    nodes: &[NodePods],
    max_unavailable: usize,
    max_surge: usize,
    available: impl Fn(usize) -> bool,
) -> Step {
    let mut out = Step::default();
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut candidates = Vec::new();
        for n in nodes {
            match (n.new.as_slice(), n.old.as_slice()) {
                ([new], []) => {
                    if !available(*new) {
                        unavailable += 1;
                    }
                }
                ([], [old]) => {
                    if !available(*old) {
                        // Down anyway: replaced at once, and it counts.
                        out.delete.push(*old);
                        unavailable += 1;
                    } else {
                        candidates.push(*old);
                    }
                }
                // None yet, or more than one: the per-node pass settles it;
                // meanwhile the node counts as unavailable.
                _ => unavailable += 1,
            }
        }
        let room = max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        out.delete.extend(candidates.into_iter().take(room));
        return out;
    }
    let mut surging = 0;
    let mut candidates = Vec::new();
    for n in nodes {
        match (n.new.first(), n.old.first()) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(*old) {
                    out.surge.push(n.node.clone());
                } else {
                    candidates.push(n.node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(*new) {
                    out.delete.push(*old);
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = max_surge.saturating_sub(surging).min(candidates.len());
    out.surge.extend(candidates.into_iter().take(room));
    out
}

/// `maxUnavailable`/`maxSurge` (an int or a percentage) against `desired`
/// nodes: percentages round up (as upstream's DaemonSets); at least one can
/// be unavailable when no surge is allowed.
pub fn budget(unavailable: Option<&str>, surge: Option<&str>, desired: usize) -> (usize, usize) {
    let scaled = |v: &str, up: bool| -> usize {
        match v.strip_suffix('%') {
            Some(p) => {
                let p: usize = p.parse().unwrap_or(0);
                let x = desired * p;
                if up {
                    x.div_ceil(100)
                } else {
                    x / 100
                }
            }
            None => v.parse().unwrap_or(0),
        }
    };
    let s = surge.map_or(0, |v| scaled(v, true));
    let mut u = unavailable.map_or(1, |v| scaled(v, true));
    if u == 0 && s == 0 {
        u = 1;
    }
    (u, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, new: &[usize], old: &[usize]) -> NodePods {
        NodePods {
            node: name.into(),
            new: new.to_vec(),
            old: old.to_vec(),
        }
    }

    #[test]
    fn without_surge_at_most_max_unavailable_nodes_go_down() {
        let nodes = [
            node("a", &[], &[0]),
            node("b", &[], &[1]),
            node("c", &[], &[2]),
        ];
        let s = step(&nodes, 1, 0, |_| true);
        assert_eq!(
            s,
            Step {
                delete: vec![0],
                surge: vec![]
            }
        );
        // One node is mid-update (its new pod not yet available): wait.
        let nodes = [
            node("a", &[3], &[]),
            node("b", &[], &[1]),
            node("c", &[], &[2]),
        ];
        assert_eq!(step(&nodes, 1, 0, |i| i != 3), Step::default());
        // It became available: the next one goes.
        assert_eq!(step(&nodes, 1, 0, |_| true).delete, vec![1]);
        // An unavailable old pod is replaced beyond the budget.
        let nodes = [
            node("a", &[3], &[]),
            node("b", &[], &[1]),
            node("c", &[], &[2]),
        ];
        assert_eq!(step(&nodes, 1, 0, |i| i != 3 && i != 2).delete, vec![2]);
    }

    #[test]
    fn with_surge_new_pods_start_beside_the_old() {
        let nodes = [
            node("a", &[], &[0]),
            node("b", &[], &[1]),
            node("c", &[], &[2]),
        ];
        let s = step(&nodes, 0, 2, |_| true);
        assert_eq!(s.surge, vec!["a".to_string(), "b".to_string()]);
        assert!(s.delete.is_empty());
        // New on a is available: its old pod goes; b still surging.
        let nodes = [
            node("a", &[3], &[0]),
            node("b", &[4], &[1]),
            node("c", &[], &[2]),
        ];
        let s = step(&nodes, 0, 2, |i| i != 4);
        assert_eq!(s.delete, vec![0]);
        assert_eq!(s.surge, vec!["c".to_string()]);
    }

    #[test]
    fn budgets() {
        assert_eq!(budget(None, None, 10), (1, 0));
        assert_eq!(budget(Some("25%"), None, 10), (3, 0));
        assert_eq!(budget(Some("0"), Some("10%"), 10), (0, 1));
        assert_eq!(budget(Some("0%"), Some("0"), 10), (1, 0));
        assert_eq!(budget(Some("3"), None, 2), (3, 0));
    }
}
