//! A Deployment's ReplicaSets as revisions: the pod-template-hash that
//! names each, which one is the new one (its template is the
//! Deployment's), the revision numbers in `deployment.kubernetes.io/
//! revision`, and the new ReplicaSet as it is created.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The template without the hash label, as JSON: what two templates are
/// compared by.
fn canonical(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
        if l.is_empty() {
            if let Some(m) = t.metadata.as_mut() {
                m.labels = None;
            }
        }
    }
    if t.metadata
        .as_ref()
        .is_some_and(|m| *m == ObjectMeta::default())
    {
        t.metadata = None;
    }
    serde_json::to_value(&t).unwrap_or_default()
}

/// The hash that names a template's ReplicaSet and labels its pods.
pub fn template_hash(t: &PodTemplateSpec, collisions: Option<i32>) -> String {
    crate::server::controllers::history::hash(&canonical(t), collisions)
}

pub fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(a) == canonical(b)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet running the Deployment's template (the oldest if
/// several do).
pub fn find_new(d: &Deployment, sets: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let t = d.spec.as_ref().map(|s| &s.template)?;
    sets.iter()
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|rt| same_template(rt, t))
        })
        .min_by_key(|rs| {
            (
                rs.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second()),
                rs.metadata.name.clone(),
            )
        })
        .cloned()
}

/// The Deployment's annotations that its ReplicaSets carry too.
pub fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED | MAX_REPLICAS
            ) && !k.starts_with("skiff.dev/")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The new ReplicaSet for the Deployment's template.
pub fn new_replicaset(
    d: &Deployment,
    hash: &str,
    revision: i64,
    replicas: i32,
    surge: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    let mut annotations = copied_annotations(d);
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED.into(), spec.replicas.unwrap_or(1).to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (spec.replicas.unwrap_or(1).saturating_add(surge)).to_string(),
    );
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name,
                uid: d.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn hashes_differ_by_template_and_collision_count_not_by_the_hash_label() {
        let a = template("a");
        let h = template_hash(&a, None);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h
            .bytes()
            .all(|b| crate::server::controllers::history::ALPHABET.contains(&b)));
        assert_ne!(h, template_hash(&template("b"), None));
        assert_ne!(h, template_hash(&a, Some(1)));
        let mut labelled = a.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), h.clone());
        assert!(same_template(&a, &labelled));
        assert_eq!(template_hash(&labelled, None), h);
    }
}
