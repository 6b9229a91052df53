//! The pods bound to this node, followed through a list and a watch
//! (fieldSelector `spec.nodeName`), each handed to a worker of its own
//! (worker.rs) that owns the pod's sandbox and containers. A worker always
//! sees the latest version of its pod (a watch channel: versions it had no
//! time to look at are skipped, never queued); a pod that is gone from the
//! API is told to its worker as `None`. Static pods (static_pods/) come
//! from files instead and run whether or not the API answers; the API's
//! mirror pods of them are never run, only kept (static_pods/mirror.rs).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::static_pods::{self, mirror, Statics};
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
    /// The static pods (static_pods/), by UID.
    statics: HashMap<String, Pod>,
    /// The mirror pod each static pod's status goes to, by static UID.
    mirror_of: HashMap<String, String>,
    mirrors: mpsc::UnboundedSender<mirror::Note>,
}

fn uid(pod: &Pod) -> Option<&str> {
    pod.metadata.uid.as_deref()
}

/// The next static pods the source reads; never, once it stopped.
async fn next_statics(rx: &mut watch::Receiver<Statics>) -> Statics {
    match rx.changed().await {
        Ok(()) => rx.borrow_and_update().clone(),
        Err(_) => std::future::pending().await,
    }
}

impl<R: PodRuntime> PodManager<R> {
    /// The manager, and the task that keeps the static pods' mirror pods.
    pub fn new(
        client: kube::Client,
        ctx: Arc<WorkerCtx<R>>,
        cancel: &CancellationToken,
    ) -> PodManager<R> {
        let (mirrors, notes) = mpsc::unbounded_channel();
        tokio::spawn(mirror::run(
            client.clone(),
            ctx.node_name.clone(),
            notes,
            cancel.child_token(),
        ));
        PodManager {
            pods: Api::all(client),
            ctx,
            workers: HashMap::new(),
            statics: HashMap::new(),
            mirror_of: HashMap::new(),
            mirrors,
        }
    }

    fn selector(&self) -> String {
        format!("spec.nodeName={}", self.ctx.node_name)
    }

    /// Hand the latest version of `pod` to its worker, starting one for a
    /// pod not seen before.
    fn dispatch(&mut self, pod: Pod, is_static: bool) {
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
                let task = tokio::spawn(worker::run(self.ctx.clone(), id.clone(), rx, is_static));
                self.workers.insert(id, Running { pod: tx, task });
            }
        }
    }

    /// A pod the API holds: run it, unless it is a mirror pod (or holds a
    /// static pod's name), which only the mirror task looks after.
    fn api_pod(&mut self, pod: Pod) {
        if static_pods::is_mirror(&pod) || self.static_named(&pod).is_some() {
            self.mirror_seen(&pod);
            self.mirrors.send(mirror::Note::Seen(pod)).ok();
            return;
        }
        self.dispatch(pod, false);
    }

    /// The static pod of the same name as `pod`, if any.
    fn static_named(&self, pod: &Pod) -> Option<&Pod> {
        let k = static_pods::key(pod);
        self.statics.values().find(|s| static_pods::key(s) == k)
    }

    /// A mirror pod of one of ours that is current: its static pod's
    /// worker writes the status there from now on.
    fn mirror_seen(&mut self, mirror: &Pod) {
        let (Some(hash), Some(mirror_uid)) = (
            static_pods::annotation(mirror, static_pods::MIRROR_ANNOTATION),
            uid(mirror),
        ) else {
            return;
        };
        if mirror.metadata.deletion_timestamp.is_some()
            || !self.statics.contains_key(hash)
            || self.mirror_of.get(hash).map(String::as_str) == Some(mirror_uid)
        {
            return;
        }
        self.mirror_of
            .insert(hash.to_string(), mirror_uid.to_string());
        if let Some(pod) = self.statics.get(hash).cloned() {
            self.dispatch_static(pod);
        }
    }

    /// Give a static pod to its worker, marked with its mirror pod.
    fn dispatch_static(&mut self, mut pod: Pod) {
        let Some(id) = uid(&pod).map(String::from) else {
            return;
        };
        if let Some(m) = self.mirror_of.get(&id) {
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(static_pods::MIRROR_UID.into(), m.clone());
        }
        self.dispatch(pod, true);
    }

    /// The static pods now: new ones start, changed or removed ones stop
    /// (within their grace period).
    fn apply_statics(&mut self, now: Statics) {
        let wanted: HashMap<String, Pod> = now
            .iter()
            .filter_map(|p| Some((uid(p)?.to_string(), p.clone())))
            .collect();
        let removed: Vec<Pod> = self
            .statics
            .iter()
            .filter(|(id, _)| !wanted.contains_key(*id))
            .map(|(_, p)| p.clone())
            .collect();
        for mut pod in removed {
            let Some(id) = uid(&pod).map(String::from) else {
                continue;
            };
            tracing::info!(pod = %format!("{}/{}", static_pods::key(&pod).0, static_pods::key(&pod).1), "the static pod's manifest is gone: stopping it");
            self.statics.remove(&id);
            self.mirror_of.remove(&id);
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            pod.metadata.deletion_timestamp =
                Some(crate::agent::node::pressure::to_time(chrono::Utc::now()));
            pod.metadata.deletion_grace_period_seconds = Some(grace);
            if let Some(w) = self.workers.get(&id) {
                w.pod.send_replace(Some(pod));
            }
        }
        for (id, pod) in wanted {
            if let std::collections::hash_map::Entry::Vacant(e) = self.statics.entry(id) {
                e.insert(pod.clone());
                self.dispatch_static(pod);
            }
        }
        self.mirrors.send(mirror::Note::Statics(now)).ok();
    }

    /// The pod is gone from the API: its worker tears it down.
    fn gone(&mut self, pod: &Pod) {
        let Some(id) = uid(pod) else { return };
        if static_pods::is_mirror(pod) || self.static_named(pod).is_some() {
            self.mirror_of.retain(|_, m| m != id);
            self.mirrors.send(mirror::Note::Deleted(pod.clone())).ok();
            return;
        }
        if let Some(w) = self.workers.get(id) {
            w.pod.send_replace(None);
        }
    }

    /// Await `fut`, taking in the static pods as they change meanwhile (they
    /// run whether or not the API answers).
    async fn with_statics<F: std::future::Future>(
        &mut self,
        statics: &mut watch::Receiver<Statics>,
        fut: F,
    ) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return out,
                now = next_statics(statics) => self.apply_statics(now),
            }
        }
    }

    /// List, then watch, until cancelled; start over when the watch ends.
    pub async fn run(mut self, mut statics: watch::Receiver<Statics>, cancel: CancellationToken) {
        let first = statics.borrow_and_update().clone();
        self.apply_statics(first);
        let mut wait = Duration::from_millis(100);
        loop {
            let r = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.list_and_watch(&mut statics) => r,
            };
            match r {
                Ok(()) => wait = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!("following this node's pods: {e}; again in {wait:?}");
                    let sleep = async {
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = tokio::time::sleep(wait) => {}
                        }
                    };
                    self.with_statics(&mut statics, sleep).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
            if cancel.is_cancelled() {
                break;
            }
        }
        // The agent stops; its pods run on (a restarted agent adopts them).
        for (_, w) in self.workers.drain() {
            w.task.abort();
        }
    }

    async fn list_and_watch(
        &mut self,
        statics: &mut watch::Receiver<Statics>,
    ) -> Result<(), kube::Error> {
        let listed_at = chrono::Utc::now();
        let api = self.pods.clone();
        let lp = ListParams::default().fields(&self.selector());
        let list = self.with_statics(statics, api.list(&lp)).await?;
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        let listed: std::collections::HashSet<String> = list
            .items
            .iter()
            .filter_map(uid)
            .map(String::from)
            .chain(self.statics.keys().cloned())
            .collect();
        let vanished: Vec<String> = self
            .workers
            .keys()
            .filter(|id| !listed.contains(*id))
            .cloned()
            .collect();
        for id in vanished {
            if let Some(w) = self.workers.get(&id) {
                w.pod.send_replace(None);
            }
        }
        let (mirrors, pods): (Vec<Pod>, Vec<Pod>) = list
            .items
            .into_iter()
            .partition(|p| static_pods::is_mirror(p) || self.static_named(p).is_some());
        self.mirror_of.clear();
        for m in &mirrors {
            self.mirror_seen(m);
        }
        self.mirrors.send(mirror::Note::Listed(mirrors)).ok();
        for pod in pods {
            self.dispatch(pod, false);
        }
        // What pods deleted while no agent ran left behind goes; a sweep
        // of its own, not holding up the watch.
        let known: std::collections::HashSet<String> = self.workers.keys().cloned().collect();
        tokio::spawn(sweep(self.ctx.clone(), known, listed_at));
        let params = WatchParams::default()
            .fields(&self.selector())
            .timeout(WATCH_TIMEOUT_SECS);
        let mut events = self
            .with_statics(statics, api.watch(&params, &rv))
            .await?
            .boxed();
        loop {
            let event = tokio::select! {
                e = events.try_next() => match e? {
                    Some(e) => e,
                    None => return Ok(()),
                },
                now = next_statics(statics) => {
                    self.apply_statics(now);
                    continue;
                }
            };
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => self.api_pod(pod),
                WatchEvent::Deleted(pod) => self.gone(&pod),
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
    }
}
