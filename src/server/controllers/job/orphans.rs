//! Pods that still carry the job-tracking finalizer but that no running Job
//! will ever count: their Job was deleted (or made again under the same
//! name, with another UID), or they were orphaned (`--cascade=orphan`, or
//! their owner reference removed). Without this their deletion would wait
//! on the finalizer for ever. As upstream's orphan-pod queue: a pod
//! controlled by something other than a Job is left alone, and so is one
//! whose Job exists (its own pass counts the pod, and releases it, also
//! once the Job has finished).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use super::{has_finalizer, pods::release, Ctx, Error};
use crate::server::controllers::podutil;
use crate::server::controllers::runtime::{Action, Key};

/// Whether `pod` carries the finalizer with no Job left to count it. `job`
/// looks a Job's UID up by namespace and name.
pub(super) fn is_orphan(pod: &Pod, job: impl Fn(&Key) -> Option<String>) -> bool {
    if !has_finalizer(pod) {
        return false;
    }
    let Some(owner) = podutil::controller_of(&pod.metadata) else {
        return true;
    };
    if owner.kind != "Job" || owner.api_version != "batch/v1" {
        return false;
    }
    let key = Key::new(
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        &owner.name,
    );
    job(&key).is_none_or(|uid| uid != owner.uid)
}

fn job_uid(ctx: &Ctx, key: &Key) -> Option<String> {
    ctx.jobs.get_key(key)?.metadata.uid.clone()
}

/// Queue the orphans among `pods` (the pods of a namespace).
pub(super) fn enqueue(ctx: &Ctx, pods: &[Arc<Pod>]) {
    for p in pods {
        if is_orphan(p, |k| job_uid(ctx, k)) {
            ctx.orphans.add(Key::of(p.as_ref()));
        }
    }
}

/// Take the finalizer off the pod at `key` if it is still an orphan.
pub(super) async fn sync(ctx: &Ctx, key: &Key) -> Result<Action, Error> {
    let Some(pod) = ctx.pods.get_key(key) else {
        return Ok(Action::Done);
    };
    if !is_orphan(&pod, |k| job_uid(ctx, k)) {
        return Ok(Action::Done);
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    release(&api, &pod).await?;
    Ok(Action::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;

    fn pod(owner: Option<(&str, &str, &str)>, finalizer: bool) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"}
        }))
        .unwrap();
        if finalizer {
            p.metadata.finalizers = Some(vec![super::super::TRACKING_FINALIZER.into()]);
        }
        if let Some((kind, name, uid)) = owner {
            p.metadata.owner_references = Some(vec![OwnerReference {
                api_version: if kind == "Job" { "batch/v1" } else { "apps/v1" }.into(),
                kind: kind.into(),
                name: name.into(),
                uid: uid.into(),
                controller: Some(true),
                ..Default::default()
            }]);
        }
        p
    }

    #[test]
    fn only_pods_no_running_job_counts_are_orphans() {
        let live = |k: &Key| (k.name == "j").then(|| "u1".to_string());
        // Its Job is there: the Job counts it.
        assert!(!is_orphan(&pod(Some(("Job", "j", "u1")), true), live));
        // No finalizer: nothing to do.
        assert!(!is_orphan(&pod(Some(("Job", "gone", "u9")), false), live));
        // Its Job is gone, or was made again.
        assert!(is_orphan(&pod(Some(("Job", "gone", "u9")), true), live));
        assert!(is_orphan(&pod(Some(("Job", "j", "u0")), true), live));
        // Orphaned.
        assert!(is_orphan(&pod(None, true), live));
        // Controlled by something else: not ours to touch.
        assert!(!is_orphan(
            &pod(Some(("ReplicaSet", "j", "u1")), true),
            live
        ));
    }
}
