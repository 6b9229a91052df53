//! The pods bound to this node, followed through a list and a watch
//! (fieldSelector `spec.nodeName`), each handed to a worker of its own
//! (worker.rs) that owns the pod's sandbox and containers. A worker always
//! sees the latest version of its pod (a watch channel: versions it had no
//! time to look at are skipped, never queued); a pod that is gone from the
//! API is told to its worker as `None`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::worker::{self, WorkerCtx};
use crate::runtime::pod::PodRuntime;

/// Remove the containers and sandboxes of pods that are not among `known`
/// (this node's pods as listed at `listed_at`): pods deleted while no agent
/// ran, or force-deleted before their worker saw them. Only what the agent
/// made is touched (containers labelled with a pod uid, sandboxes named
/// `k8s_`), and only what is older than the list: a pod that came after it
/// is not in `known` but is no orphan.
async fn sweep<R: PodRuntime>(
    ctx: Arc<WorkerCtx<R>>,
    known: std::collections::HashSet<String>,
    listed_at: chrono::DateTime<chrono::Utc>,
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
        if known.contains(uid) || !before_list {
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
            if !known.contains(&uid) && old {
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
    let names = match ctx.runtime.sandbox_names().await {
        Ok(n) => n,
        Err(e) => return tracing::warn!("listing sandboxes for the orphan sweep: {e}"),
    };
    for name in names {
        // A known pod's sandbox is named after its uid (spec::sandbox_name).
        let owned = name.starts_with("k8s_");
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

/// A watch is restarted at least this often (the API server ends it too).
const WATCH_TIMEOUT_SECS: u32 = 290;

struct Running {
    pod: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

pub struct PodManager<R: PodRuntime> {
    ctx: Arc<WorkerCtx<R>>,
    pods: Api<Pod>,
    workers: HashMap<String, Running>,
}

fn uid(pod: &Pod) -> Option<&str> {
    pod.metadata.uid.as_deref()
}

impl<R: PodRuntime> PodManager<R> {
    pub fn new(client: kube::Client, ctx: Arc<WorkerCtx<R>>) -> PodManager<R> {
        PodManager {
            pods: Api::all(client),
            ctx,
            workers: HashMap::new(),
        }
    }

    fn selector(&self) -> String {
        format!("spec.nodeName={}", self.ctx.node_name)
    }

    /// Hand the latest version of `pod` to its worker, starting one for a
    /// pod not seen before.
    fn dispatch(&mut self, pod: Pod) {
        let Some(id) = uid(&pod).map(String::from) else {
            return;
        };
        // Finished workers are forgotten (the map holds only live pods); a
        // pod that comes back (same uid, still there) gets a new one,
        // which finds what is left.
        self.workers.retain(|_, w| !w.task.is_finished());
        match self.workers.get(&id) {
            Some(w) => {
                w.pod.send_replace(Some(pod));
            }
            None => {
                let (tx, rx) = watch::channel(Some(pod));
                let task = tokio::spawn(worker::run(self.ctx.clone(), id.clone(), rx));
                self.workers.insert(id, Running { pod: tx, task });
            }
        }
    }

    /// The pod is gone from the API: its worker tears it down.
    fn gone(&mut self, id: &str) {
        if let Some(w) = self.workers.get(id) {
            w.pod.send_replace(None);
        }
    }

    /// List, then watch, until cancelled; start over when the watch ends.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut wait = Duration::from_millis(100);
        loop {
            let done = tokio::select! {
                _ = cancel.cancelled() => true,
                r = self.list_and_watch() => {
                    match r {
                        Ok(()) => wait = Duration::from_millis(100),
                        Err(e) => {
                            tracing::warn!("following this node's pods: {e}; again in {wait:?}");
                            tokio::select! {
                                _ = cancel.cancelled() => {}
                                _ = tokio::time::sleep(wait) => {}
                            }
                            wait = (wait * 2).min(Duration::from_secs(10));
                        }
                    }
                    false
                }
            };
            if done || cancel.is_cancelled() {
                break;
            }
        }
        // The agent stops; its pods run on (a restarted agent adopts them).
        for (_, w) in self.workers.drain() {
            w.task.abort();
        }
    }

    async fn list_and_watch(&mut self) -> Result<(), kube::Error> {
        let listed_at = chrono::Utc::now();
        let list = self
            .pods
            .list(&ListParams::default().fields(&self.selector()))
            .await?;
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        let listed: std::collections::HashSet<String> = list
            .items
            .iter()
            .filter_map(uid)
            .map(String::from)
            .collect();
        let vanished: Vec<String> = self
            .workers
            .keys()
            .filter(|id| !listed.contains(*id))
            .cloned()
            .collect();
        for id in vanished {
            self.gone(&id);
        }
        for pod in list.items {
            self.dispatch(pod);
        }
        // What pods deleted while no agent ran left behind goes; a sweep
        // of its own, not holding up the watch.
        let known: std::collections::HashSet<String> = self.workers.keys().cloned().collect();
        tokio::spawn(sweep(self.ctx.clone(), known, listed_at));
        let params = WatchParams::default()
            .fields(&self.selector())
            .timeout(WATCH_TIMEOUT_SECS);
        let mut events = self.pods.watch(&params, &rv).await?.boxed();
        while let Some(event) = events.try_next().await? {
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => self.dispatch(pod),
                WatchEvent::Deleted(pod) => {
                    if let Some(id) = uid(&pod).map(String::from) {
                        self.gone(&id);
                    }
                }
                WatchEvent::Bookmark(_) => {}
                // Expired (410): list again at once; anything else backs
                // off as a failure does.
                WatchEvent::Error(e) if e.code == 410 => {
                    tracing::debug!("the pod watch expired: {}", e.message);
                    return Ok(());
                }
                WatchEvent::Error(e) => return Err(kube::Error::Api(e)),
            }
        }
        Ok(())
    }
}
