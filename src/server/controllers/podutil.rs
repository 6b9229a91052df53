//! What the workload controllers read off pods and selectors (typed):
//! whether a pod is active, ready, available; which controller owns it;
//! whether a label selector picks it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::runtime::{Informer, Key};
use k8s_openapi::jiff::Timestamp;

/// Whether `selector` picks `labels` (an empty selector picks everything;
/// a missing one, as upstream's LabelSelectorAsSelector of nil, nothing).
pub fn selects(
    selector: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let Some(sel) = selector else {
        return false;
    };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        let have = labels.get(&r.key);
        match r.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The owners of kind `kind` (kept in `owners`) that an object with `meta`
/// belongs to: its controller when it has one of that kind, none when it
/// has another, else every owner whose selector picks it (to adopt it).
pub fn owner_keys<K>(
    owners: &Informer<K>,
    kind: &str,
    meta: &ObjectMeta,
    selector: impl Fn(&K) -> Option<&LabelSelector>,
) -> Vec<Key>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let ns = meta.namespace.as_deref().unwrap_or_default();
    if let Some(r) = controller_of(meta) {
        return if r.kind == kind {
            vec![Key::new(ns, &r.name)]
        } else {
            Vec::new()
        };
    }
    owners
        .list(ns)
        .iter()
        .filter(|o| selects(selector(o), meta.labels.as_ref()))
        .map(|o| Key::of(o.as_ref()))
        .collect()
}

/// Finished for good: phase Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Running or about to: not finished, not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last became True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready` seconds by `now` (upstream's
/// IsPodAvailable; a Ready pod with no transition time counts at once).
pub fn is_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready <= 0 => true,
        Some(None) => true,
        Some(Some(t)) => now.as_second() - t.as_second() >= i64::from(min_ready),
    }
}

/// How long until a Ready pod becomes available, when it is not yet.
pub fn until_available(pod: &Pod, min_ready: i32, now: Timestamp) -> Option<i64> {
    let t = ready_since(pod)??;
    let left = i64::from(min_ready) - (now.as_second() - t.as_second());
    (left > 0).then_some(left)
}

/// The pod's conditions with `DisruptionTarget` added (why it is about to
/// be deleted, as upstream marks evictions), or None when it has one.
pub fn with_disruption_target(
    pod: &Pod,
    reason: &str,
    message: &str,
) -> Option<Vec<k8s_openapi::api::core::v1::PodCondition>> {
    let mut conds = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if conds.iter().any(|c| c.type_ == "DisruptionTarget") {
        return None;
    }
    conds.push(k8s_openapi::api::core::v1::PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        )),
        ..Default::default()
    });
    Some(conds)
}

pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_pick_as_upstream() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        }))
        .unwrap();
        let l = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(selects(Some(&sel), Some(&l(&[("app", "web")]))));
        assert!(!selects(
            Some(&sel),
            Some(&l(&[("app", "web"), ("tier", "db")]))
        ));
        assert!(!selects(Some(&sel), None));
        assert!(selects(Some(&LabelSelector::default()), None));
        assert!(!selects(None, Some(&l(&[("app", "web")]))));
    }
}
