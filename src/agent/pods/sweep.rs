//! What pods that are gone left on the node — deleted while no agent ran,
//! force-deleted before their worker saw them, or static pods whose
//! manifest went while the agent was down — is removed: containers,
//! sandboxes, volumes and cgroups. Only what the agent made is touched, and
//! only what is older than the list of pods it is checked against.

use std::collections::HashSet;
use std::sync::Arc;

use super::worker::WorkerCtx;
use crate::runtime::pod::PodRuntime;

/// Remove what the pods with a UID `candidate` accepts that are not among
/// `known` (this node's pods as listed at `listed_at`) left. Only what the
/// agent made is touched (containers labelled with a pod uid, sandboxes
/// named `k8s_`), and only what is older than the list: a pod that came
/// after it is not in `known` but is no orphan.
pub async fn sweep<R: PodRuntime>(
    ctx: Arc<WorkerCtx<R>>,
    known: HashSet<String>,
    listed_at: chrono::DateTime<chrono::Utc>,
    candidate: fn(&str) -> bool,
) {
    let all = match ctx.runtime.list_containers(Default::default()).await {
        Ok(all) => all,
        Err(e) => return tracing::warn!("listing containers for the orphan sweep: {e}"),
    };
    let mut kept_sandboxes = std::collections::HashSet::new();
    for c in &all {
        let Some(uid) = c.labels.get(super::spec::LABEL_POD_UID) else {
            continue;
        };
        let before_list = c.started_at.is_some_and(|t| t < listed_at);
        if known.contains(uid) || !before_list || !candidate(uid) {
            if let Some(sb) = &c.sandbox {
                kept_sandboxes.insert(sb.clone());
            }
            continue;
        }
        tracing::info!(container = %c.id, pod_uid = %uid, "removing a container of a pod that is gone");
        if let Err(e) = ctx.runtime.remove_container(&c.id).await {
            tracing::warn!("removing container {}: {e}", c.id);
        }
    }
    // Volumes of pods gone (made before the list: a pod bound since may
    // be setting its own up).
    let root = ctx.root.clone();
    let swept = tokio::task::spawn_blocking(move || {
        for uid in super::volumes::pod_uids(&root) {
            let dir = super::volumes::pod_dir(&root, &uid);
            let old = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .is_ok_and(|t| chrono::DateTime::<chrono::Utc>::from(t) < listed_at);
            if !known.contains(&uid) && old && candidate(&uid) {
                tracing::info!(pod_uid = %uid, "removing the volumes of a pod that is gone");
                if let Err(e) = super::volumes::tear_down(&root, &uid) {
                    tracing::warn!("{e}");
                }
            }
        }
        known
    })
    .await;
    let Ok(known) = swept else { return };
    // Their cgroups, once their containers are gone (made before the
    // list, as above).
    let (root, cgroup_root) = (ctx.root.clone(), ctx.cgroup_root.clone());
    let swept = tokio::task::spawn_blocking(move || {
        for (uid, parent, at) in super::pod_cgroup::existing(&root, &cgroup_root) {
            let old = chrono::DateTime::<chrono::Utc>::from(at) < listed_at;
            if known.contains(&uid) || !candidate(&uid) || !old {
                continue;
            }
            tracing::info!(pod_uid = %uid, "removing the cgroup of a pod that is gone");
            match super::pod_cgroup::tear_down(&parent) {
                Ok(()) => super::pod_cgroup::unmark(&root, &uid),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        known
    })
    .await;
    let Ok(known) = swept else { return };
    let names = match ctx.runtime.sandbox_names().await {
        Ok(n) => n,
        Err(e) => return tracing::warn!("listing sandboxes for the orphan sweep: {e}"),
    };
    for name in names {
        // A known pod's sandbox is named after its uid (spec::sandbox_name).
        let owned = name.starts_with("k8s_") && name.rsplit('_').next().is_some_and(candidate);
        let live = known.iter().any(|uid| name.ends_with(&format!("_{uid}")));
        let old = match ctx.runtime.sandbox_status(&name).await {
            Ok(Some(sb)) => sb.created < listed_at,
            _ => false,
        };
        if owned && !live && old && !kept_sandboxes.contains(&name) {
            tracing::info!(sandbox = %name, "removing the sandbox of a pod that is gone");
            if let Err(e) = ctx.runtime.remove_sandbox(&name).await {
                tracing::warn!("removing sandbox {name}: {e}");
            }
        }
    }
}

/// Every pod is a candidate (the sweep against the API's list).
pub fn any_pod(_: &str) -> bool {
    true
}
