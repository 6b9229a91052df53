//! The scores: of the nodes that pass the filters, which suits the pod
//! best? Each score is 0–100 per node (normalised over the feasible nodes
//! where upstream normalises), weighted as upstream's default profile:
//! resource fit 1, balanced allocation 1, image locality 1, node affinity
//! 2, taint toleration 3.

use k8s_openapi::api::core::v1::PodSpec;

use super::cache::NodeInfo;
use crate::api::node_match;

/// How the resource fit scores: spread pods over nodes (upstream's default
/// LeastAllocated) or pack them onto as few as possible (MostAllocated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    #[default]
    Spread,
    Binpack,
}

const MAX: i64 = 100;
const MB: i64 = 1024 * 1024;
/// Image locality counts images from this size (smaller ones pull fast
/// anyway) up to this size per container.
const IMAGE_MIN: i64 = 23 * MB;
const IMAGE_MAX: i64 = 1000 * MB;

/// Score every node of `feasible` for a pod with `nonzero` cpu and memory
/// requests; `total_nodes` for image spread.
pub fn score(
    spec: &PodSpec,
    nonzero: (i64, i64),
    feasible: &[&NodeInfo],
    policy: Policy,
    total_nodes: usize,
) -> Vec<i64> {
    let fit: Vec<i64> = feasible
        .iter()
        .map(|n| resource_fit(n, nonzero, policy))
        .collect();
    let balanced: Vec<i64> = feasible.iter().map(|n| balanced(n, nonzero)).collect();
    let images: Vec<i64> = feasible
        .iter()
        .map(|n| image_locality(spec, n, feasible, total_nodes))
        .collect();
    let affinity = normalise(
        feasible
            .iter()
            .map(|n| preferred_affinity(spec, n))
            .collect(),
        false,
    );
    let taints = normalise(
        feasible
            .iter()
            .map(|n| intolerable_preferences(spec, n))
            .collect(),
        true,
    );
    (0..feasible.len())
        .map(|i| fit[i] + balanced[i] + images[i] + 2 * affinity[i] + 3 * taints[i])
        .collect()
}

/// Scale raw scores to 0–100 by the largest; `reverse` when fewer is better.
fn normalise(raw: Vec<i64>, reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.into_iter()
        .map(|v| {
            if max == 0 {
                if reverse {
                    MAX
                } else {
                    0
                }
            } else {
                let s = v * MAX / max;
                if reverse {
                    MAX - s
                } else {
                    s
                }
            }
        })
        .collect()
}

/// cpu and memory after placing the pod, as fractions of allocatable.
fn after(n: &NodeInfo, nonzero: (i64, i64)) -> [(i64, i64); 2] {
    [
        (n.nonzero.0.saturating_add(nonzero.0), n.allocatable.cpu),
        (n.nonzero.1.saturating_add(nonzero.1), n.allocatable.memory),
    ]
}

fn resource_fit(n: &NodeInfo, nonzero: (i64, i64), policy: Policy) -> i64 {
    let per = after(n, nonzero).map(|(used, alloc)| {
        if alloc <= 0 || used > alloc {
            return 0;
        }
        match policy {
            Policy::Spread => (alloc - used).saturating_mul(MAX) / alloc,
            Policy::Binpack => used.saturating_mul(MAX) / alloc,
        }
    });
    (per[0] + per[1]) / 2
}

/// Prefer nodes whose cpu and memory stay in proportion (upstream's
/// BalancedAllocation: 100 × (1 − standard deviation of the fractions)).
fn balanced(n: &NodeInfo, nonzero: (i64, i64)) -> i64 {
    let f = after(n, nonzero).map(|(used, alloc)| {
        if alloc <= 0 {
            1.0
        } else {
            (used as f64 / alloc as f64).min(1.0)
        }
    });
    let std = (f[0] - f[1]).abs() / 2.0;
    ((1.0 - std) * MAX as f64) as i64
}

fn preferred_affinity(spec: &PodSpec, n: &NodeInfo) -> i64 {
    let Some(node) = n.node.as_ref() else {
        return 0;
    };
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|t| node_match::term_holds(&t.preference, node))
        .map(|t| i64::from(t.weight))
        .sum()
}

fn intolerable_preferences(spec: &PodSpec, n: &NodeInfo) -> i64 {
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    n.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|taint| {
            !tolerations
                .iter()
                .filter(|t| {
                    t.effect
                        .as_deref()
                        .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
                })
                .any(|t| node_match::tolerates(t, taint))
        })
        .count() as i64
}

/// Prefer nodes that already hold the pod's images, by their size and by
/// how few nodes hold them (upstream's ImageLocality).
fn image_locality(spec: &PodSpec, n: &NodeInfo, all: &[&NodeInfo], total: usize) -> i64 {
    let total = total.max(1) as i64;
    let mut sum = 0i64;
    let containers = spec.containers.len().max(1) as i64;
    for c in &spec.containers {
        let Some(image) = c.image.as_deref().map(normalise_image) else {
            continue;
        };
        let Some(size) = n.images.get(&image) else {
            continue;
        };
        let holders = all.iter().filter(|o| o.images.contains_key(&image)).count() as i64;
        sum = sum.saturating_add(size.saturating_mul(holders) / total);
    }
    let max = IMAGE_MAX.saturating_mul(containers);
    let sum = sum.clamp(IMAGE_MIN, max);
    (sum - IMAGE_MIN) * MAX / (max - IMAGE_MIN)
}

/// An image reference as a node reports it: registry and tag filled in.
pub fn normalise_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    match digest {
        Some(d) => format!("{full}@{d}"),
        None if last.contains(':') => full,
        None => format!("{full}:latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_normalised_as_nodes_report_them() {
        assert_eq!(
            normalise_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalise_image("me/app:1"), "docker.io/me/app:1");
        assert_eq!(
            normalise_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalise_image("reg.io/a/b@sha256:00"),
            "reg.io/a/b@sha256:00"
        );
    }

    #[test]
    fn normalising_keeps_the_order_of_raw_scores() {
        assert_eq!(normalise(vec![0, 5, 10], false), vec![0, 50, 100]);
        assert_eq!(normalise(vec![0, 5, 10], true), vec![100, 50, 0]);
        assert_eq!(normalise(vec![0, 0], true), vec![100, 100]);
    }
}
