//! The hand-written patch strategies of `schema` checked against the facts
//! upstream states (`upstream_patch_facts.tsv`, generated from k8s.io/api's
//! struct tags at Kubernetes 1.32 by `scripts/gen-patch-facts.py`; its
//! first line names the tag and commit). A list that merges here must merge
//! upstream on the same key, and every merging list of a type the schema
//! describes must be here, so the table cannot drift from upstream.

use super::schema::{fields, ListStrategy, Ty};

const FACTS: &str = include_str!("upstream_patch_facts.tsv");

/// Upstream facts for one field of one Go type.
struct Fact<'a> {
    field: &'a str,
    strategy: &'a str,
    key: &'a str,
}

fn facts<'a>(group: &str, go_type: &str) -> Vec<Fact<'a>> {
    FACTS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() == 7 && c[0] == group && c[1] == go_type).then(|| Fact {
                field: c[2],
                strategy: c[3],
                key: c[4],
            })
        })
        .collect()
}

/// The schema's types and the upstream type each describes.
const TYPES: &[(Ty, &str, &str)] = &[
    (Ty::PodSpec, "core", "PodSpec"),
    (Ty::PodStatus, "core", "PodStatus"),
    (Ty::Container, "core", "Container"),
    (Ty::ServiceSpec, "core", "ServiceSpec"),
    (Ty::NodeSpec, "core", "NodeSpec"),
    (Ty::NodeStatus, "core", "NodeStatus"),
    (Ty::WorkloadSpec, "apps", "DeploymentSpec"),
    (Ty::ConditionsStatus, "apps", "DeploymentStatus"),
];

#[test]
fn the_facts_name_their_provenance() {
    let first = FACTS.lines().next().unwrap_or("");
    assert!(
        first.starts_with("# PROVENANCE: github.com/kubernetes/api tag v0.32."),
        "{first}"
    );
}

#[test]
fn schema_agrees_with_upstream_patch_strategies() {
    for &(ty, group, go_type) in TYPES {
        let up = facts(group, go_type);
        assert!(!up.is_empty(), "no upstream facts for {go_type}");
        // Every merging list and retainKeys field of ours, as upstream says.
        for f in fields(ty) {
            let fact = up.iter().find(|u| u.field == f.name);
            let strategy = fact.map_or("", |u| u.strategy);
            let key = fact.map_or("", |u| u.key);
            match f.list {
                ListStrategy::Merge(k) => {
                    assert!(strategy.contains("merge"), "{go_type}.{}", f.name);
                    assert_eq!(k.unwrap_or(""), key, "{go_type}.{} merge key", f.name);
                }
                ListStrategy::Atomic => {
                    assert!(!strategy.contains("merge"), "{go_type}.{}", f.name)
                }
            }
            assert_eq!(
                f.retain_keys,
                strategy.contains("retainKeys"),
                "{go_type}.{} retainKeys",
                f.name
            );
        }
        // And nothing upstream merges that we replace.
        for u in up.iter().filter(|u| !u.strategy.is_empty()) {
            assert!(
                fields(ty).iter().any(|f| f.name == u.field),
                "{go_type}.{} is {} upstream but missing from the schema",
                u.field,
                u.strategy
            );
        }
    }
}
