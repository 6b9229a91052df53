//! A pod's container as the kubelet API names it (namespace, pod,
//! container), found by the labels the agent gives every container.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::agent::pods::spec::{
    LABEL_ATTEMPT, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use crate::runtime::pod::{ContainerStatus, PodRuntime};

/// The instances of one container of a pod, newest first.
pub struct Found {
    pub instances: Vec<ContainerStatus>,
}

fn attempt(c: &ContainerStatus) -> u32 {
    c.labels
        .get(LABEL_ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

pub async fn find<R: PodRuntime>(
    runtime: &R,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Found, String> {
    let labels = BTreeMap::from([
        (LABEL_POD_NAME.to_string(), pod.to_string()),
        (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
        (LABEL_CONTAINER_NAME.to_string(), container.to_string()),
    ]);
    let mut instances = runtime
        .list_containers(labels)
        .await
        .map_err(|e| e.to_string())?;
    instances.sort_by_key(|c| std::cmp::Reverse(attempt(c)));
    // A pod deleted and made again under the same name: the newest pod's.
    if let Some(uid) = instances
        .first()
        .and_then(|c| c.labels.get(LABEL_POD_UID))
        .cloned()
    {
        instances.retain(|c| c.labels.get(LABEL_POD_UID) == Some(&uid));
    }
    if instances.is_empty() {
        return Err(format!(
            "container {container:?} in pod {pod:?} (namespace {ns:?}) is not on this node"
        ));
    }
    Ok(Found { instances })
}

/// Where the agent writes an instance's log (spec.rs's rule).
pub fn log_path(log_root: &std::path::Path, c: &ContainerStatus) -> PathBuf {
    let l = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
    log_root
        .join(format!(
            "{}_{}_{}",
            l(LABEL_POD_NAMESPACE),
            l(LABEL_POD_NAME),
            l(LABEL_POD_UID)
        ))
        .join(l(LABEL_CONTAINER_NAME))
        .join(format!("{}.log", attempt(c)))
}
