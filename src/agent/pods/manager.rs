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
use super::sweep;
use super::worker::{self, WorkerCtx};
use crate::runtime::pod::PodRuntime;

/// A watch is restarted at least this often (the API server ends it too).
const WATCH_TIMEOUT_SECS: u32 = 290;

struct Running {
    pod: watch::Sender<Option<Pod>>,
    /// A static pod's: the UID of the mirror pod its status goes to.
    mirror: Option<watch::Sender<Option<String>>>,
    /// Told to stop (a static pod whose manifest went): it ends once its
    /// containers are gone, and nothing new is given to it.
    stopping: bool,
    key: (String, String),
    /// Tells this worker from a later one of the same pod.
    generation: u64,
    task: JoinHandle<()>,
}

pub struct PodManager<R: PodRuntime> {
    ctx: Arc<WorkerCtx<R>>,
    pods: Api<Pod>,
    workers: HashMap<String, Running>,
    /// The static pods (static_pods/), by UID.
    statics: HashMap<String, Pod>,
    /// Static pods waiting for an instance of the same pod (same UID, or
    /// same name: an older manifest's) to stop first, as kubelet waits.
    held: Vec<Pod>,
    /// The mirror pod each static pod's status goes to, by static UID.
    mirror_of: HashMap<String, String>,
    mirrors: mpsc::UnboundedSender<mirror::Note>,
    done_tx: mpsc::UnboundedSender<(String, u64)>,
    generation: u64,
}

/// What the manager follows besides the API.
pub struct Inputs {
    statics: watch::Receiver<Statics>,
    /// Workers that ended (UID, generation).
    done: mpsc::UnboundedReceiver<(String, u64)>,
}

enum Input {
    Statics(Statics),
    Done(String, u64),
}

impl Inputs {
    /// The next change; never, once nothing can change any more.
    async fn next(&mut self) -> Input {
        tokio::select! {
            Ok(()) = self.statics.changed() => Input::Statics(self.statics.borrow_and_update().clone()),
            Some((uid, generation)) = self.done.recv() => Input::Done(uid, generation),
            else => std::future::pending().await,
        }
    }
}

/// Tells the manager that a worker ended, when dropped.
struct Told(mpsc::UnboundedSender<(String, u64)>, Option<(String, u64)>);

impl Drop for Told {
    fn drop(&mut self) {
        if let Some(v) = self.1.take() {
            let _ = self.0.send(v);
        }
    }
}

fn uid(pod: &Pod) -> Option<&str> {
    pod.metadata.uid.as_deref()
}

fn show(k: &(String, String)) -> String {
    format!("{}/{}", k.0, k.1)
}

impl<R: PodRuntime> PodManager<R> {
    /// The manager (and the task that keeps the static pods' mirror pods),
    /// following the static pods `statics`.
    pub fn new(
        client: kube::Client,
        ctx: Arc<WorkerCtx<R>>,
        statics: watch::Receiver<Statics>,
        cancel: &CancellationToken,
    ) -> (PodManager<R>, Inputs) {
        let (mirrors, notes) = mpsc::unbounded_channel();
        tokio::spawn(mirror::run(
            client.clone(),
            ctx.node_name.clone(),
            notes,
            cancel.child_token(),
        ));
        let (done_tx, done) = mpsc::unbounded_channel();
        let manager = PodManager {
            pods: Api::all(client),
            ctx,
            workers: HashMap::new(),
            statics: HashMap::new(),
            held: Vec::new(),
            mirror_of: HashMap::new(),
            mirrors,
            done_tx,
            generation: 0,
        };
        (manager, Inputs { statics, done })
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
                let key = static_pods::key(&pod);
                let (tx, rx) = watch::channel(Some(pod));
                let (mirror, mirror_rx) = if is_static {
                    let (m, r) = watch::channel(self.mirror_of.get(&id).cloned());
                    (Some(m), Some(r))
                } else {
                    (None, None)
                };
                self.generation += 1;
                let generation = self.generation;
                let (ctx, done, wid) = (self.ctx.clone(), self.done_tx.clone(), id.clone());
                let task = tokio::spawn(async move {
                    // Told also when the worker panics: a pod held for it
                    // would wait for ever.
                    let _told = Told(done, Some((wid.clone(), generation)));
                    worker::run(ctx, wid, rx, mirror_rx).await;
                });
                self.workers.insert(
                    id,
                    Running {
                        pod: tx,
                        mirror,
                        stopping: false,
                        key,
                        generation,
                        task,
                    },
                );
            }
        }
    }

    /// A pod the API holds: run it, unless it is a mirror pod, which only
    /// the mirror task looks after.
    fn api_pod(&mut self, pod: Pod) {
        if static_pods::is_mirror(&pod) {
            self.mirror_seen(&pod);
            self.mirrors.send(mirror::Note::Seen(pod)).ok();
            return;
        }
        self.dispatch(pod, false);
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
            || static_pods::key(mirror)
                != self
                    .statics
                    .get(hash)
                    .map(static_pods::key)
                    .unwrap_or_default()
        {
            return;
        }
        self.mirror_of
            .insert(hash.to_string(), mirror_uid.to_string());
        if let Some(m) = self.workers.get(hash).and_then(|w| w.mirror.as_ref()) {
            m.send_if_modified(|cur| {
                let changed = cur.as_deref() != Some(mirror_uid);
                *cur = Some(mirror_uid.to_string());
                changed
            });
        }
    }

    /// Static workers stop writing to mirror pod `uid` (every one, for
    /// None) until the next mirror is seen.
    fn forget_mirror(&self, uid: Option<&str>) {
        for w in self.workers.values() {
            if let Some(m) = &w.mirror {
                m.send_if_modified(|cur| {
                    let gone = cur.is_some() && (uid.is_none() || cur.as_deref() == uid);
                    if gone {
                        *cur = None;
                    }
                    gone
                });
            }
        }
    }

    /// Whether a static pod must wait: an instance of it (or of an older
    /// manifest of the same pod) is still stopping.
    fn must_wait(&self, pod: &Pod) -> bool {
        let key = static_pods::key(pod);
        let id = uid(pod).unwrap_or_default();
        self.workers
            .iter()
            .any(|(wid, w)| !w.task.is_finished() && (wid == id || (w.stopping && w.key == key)))
    }

    /// Start the held static pods that need not wait any more.
    fn start_held(&mut self) {
        self.workers.retain(|_, w| !w.task.is_finished());
        let held = std::mem::take(&mut self.held);
        for pod in held {
            if self.must_wait(&pod) {
                self.held.push(pod);
            } else {
                self.dispatch(pod, true);
            }
        }
    }

    /// The static pods now: new ones start, changed or removed ones stop
    /// (within their grace period).
    fn apply_statics(&mut self, now: Statics) {
        let wanted: HashMap<String, Pod> = now
            .iter()
            .filter_map(|p| Some((uid(p)?.to_string(), p.clone())))
            .collect();
        self.held
            .retain(|p| uid(p).is_some_and(|id| wanted.contains_key(id)));
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
            tracing::info!(pod = %show(&static_pods::key(&pod)), "the static pod's manifest is gone or changed: stopping it");
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
            if let Some(w) = self.workers.get_mut(&id) {
                w.stopping = true;
                w.pod.send_replace(Some(pod));
            }
        }
        for (id, pod) in wanted {
            if let std::collections::hash_map::Entry::Vacant(e) = self.statics.entry(id) {
                e.insert(pod.clone());
                self.held.push(pod);
            }
        }
        self.start_held();
        self.mirrors.send(mirror::Note::Statics(now)).ok();
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Statics(now) => self.apply_statics(now),
            Input::Done(id, generation) => {
                // Its task may not count as finished yet: forgotten here.
                if self
                    .workers
                    .get(&id)
                    .is_some_and(|w| w.generation == generation)
                {
                    self.workers.remove(&id);
                }
                self.start_held();
            }
        }
    }

    /// The pod is gone from the API: its worker tears it down.
    fn gone(&mut self, pod: &Pod) {
        let Some(id) = uid(pod) else { return };
        if static_pods::is_mirror(pod) {
            self.mirror_of.retain(|_, m| m != id);
            self.forget_mirror(Some(id));
            self.mirrors.send(mirror::Note::Deleted(pod.clone())).ok();
            return;
        }
        if let Some(w) = self.workers.get(id) {
            w.pod.send_replace(None);
        }
    }

    /// Await `fut`, taking in the static pods and ended workers meanwhile
    /// (static pods run whether or not the API answers).
    async fn with_inputs<F: std::future::Future>(
        &mut self,
        inputs: &mut Inputs,
        fut: F,
    ) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return out,
                input = inputs.next() => self.input(input),
            }
        }
    }

    /// List, then watch, until cancelled; start over when the watch ends.
    pub async fn run(mut self, mut inputs: Inputs, cancel: CancellationToken) {
        let first = inputs.statics.borrow_and_update().clone();
        // Instances of static pods whose manifest went while no agent ran
        // go first, whether or not the API answers.
        let known = first.iter().filter_map(uid).map(String::from).collect();
        sweep::sweep(
            self.ctx.clone(),
            known,
            chrono::Utc::now(),
            static_pods::is_static_uid,
        )
        .await;
        self.apply_statics(first);
        let mut wait = Duration::from_millis(100);
        loop {
            let r = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.list_and_watch(&mut inputs) => r,
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
                    self.with_inputs(&mut inputs, sleep).await;
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

    async fn list_and_watch(&mut self, inputs: &mut Inputs) -> Result<(), kube::Error> {
        let listed_at = chrono::Utc::now();
        let api = self.pods.clone();
        let lp = ListParams::default().fields(&self.selector());
        let list = self.with_inputs(inputs, api.list(&lp)).await?;
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        let (mirrors, pods): (Vec<Pod>, Vec<Pod>) =
            list.items.into_iter().partition(static_pods::is_mirror);
        let listed: std::collections::HashSet<String> =
            pods.iter().filter_map(uid).map(String::from).collect();
        let vanished: Vec<String> = self
            .workers
            .iter()
            .filter(|(id, w)| w.mirror.is_none() && !listed.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in vanished {
            if let Some(w) = self.workers.get(&id) {
                w.pod.send_replace(None);
            }
        }
        self.mirror_of.clear();
        self.forget_mirror(None);
        for m in &mirrors {
            self.mirror_seen(m);
        }
        self.mirrors.send(mirror::Note::Listed(mirrors)).ok();
        for pod in pods {
            self.dispatch(pod, false);
        }
        // What pods deleted while no agent ran left behind goes; a sweep
        // of its own, not holding up the watch.
        let known: std::collections::HashSet<String> = self
            .workers
            .keys()
            .cloned()
            .chain(self.held.iter().filter_map(uid).map(String::from))
            .collect();
        tokio::spawn(sweep::sweep(
            self.ctx.clone(),
            known,
            listed_at,
            sweep::any_pod,
        ));
        let params = WatchParams::default()
            .fields(&self.selector())
            .timeout(WATCH_TIMEOUT_SECS);
        let mut events = self
            .with_inputs(inputs, api.watch(&params, &rv))
            .await?
            .boxed();
        loop {
            let event = tokio::select! {
                e = events.try_next() => match e? {
                    Some(e) => e,
                    None => return Ok(()),
                },
                input = inputs.next() => {
                    self.input(input);
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
