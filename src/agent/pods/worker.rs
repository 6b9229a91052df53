//! One pod's worker: it makes the pod's sandbox, pulls its images, runs its
//! init containers in order and then its containers, restarts them under
//! the pod's restartPolicy with kubelet's back-off, writes the pod's status
//! when it changes, and on deletion stops the containers within the grace
//! period, removes everything and deletes the pod object.
//!
//! It is one task reacting to three things: a new version of the pod (from
//! the manager), a container's exit (the runtime's exit stream), and its
//! next timer (a back-off ending). The pure parts — what a container's spec
//! is, what the status says — are spec.rs and status.rs.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::SelectAll;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::watch;

mod adopt;
mod exits;
mod probing;
mod report;
mod setup;
mod start;
mod stop;
mod volumes;

use super::images::Images;
use super::spec;
use super::status::{self, ContainerObserved, PodObserved, State};
use super::volumes::{PodVolumes, TokenKey};
use crate::runtime::pod::{ExitStream, PodRuntime};

/// What every worker shares.
pub struct WorkerCtx<R: PodRuntime> {
    pub runtime: R,
    /// The engine's root; pods' volumes are under <root>/agent/pods.
    pub root: PathBuf,
    /// The agent's `--cgroup-root`: pods' cgroups are under its kubepods.
    pub cgroup_root: String,
    pub events: crate::events::Recorder,
    pub client: kube::Client,
    pub node_name: String,
    pub node_ip: IpAddr,
    /// kubelet's /var/log/pods.
    pub log_root: PathBuf,
    pub images: Images,
    /// `KUBERNETES_SERVICE_HOST`/`_PORT` (and the like) for every container.
    pub service_env: BTreeMap<String, String>,
    /// Where pods of dnsPolicy ClusterFirst send their queries.
    pub cluster_dns: Option<super::spec::ClusterDns>,
    /// The node's resolv.conf for pods (kubelet's `--resolv-conf`), read
    /// as each container is made so that a change on the node is taken up.
    pub resolv_conf: PathBuf,
    /// The node's memory, for the OOM scores of Burstable containers.
    pub memory_capacity: u64,
    /// The lowest OOM score containers may get (host::min_oom_score_adj).
    pub min_oom_score_adj: i32,
    /// The images the pods name, which image garbage collection keeps.
    pub wanted_images: Arc<crate::agent::image_gc::Wanted>,
    /// The ConfigMaps and Secrets the pods use, watched.
    pub config_maps: crate::agent::objects::Watched<k8s_openapi::api::core::v1::ConfigMap>,
    pub secrets: crate::agent::objects::Watched<k8s_openapi::api::core::v1::Secret>,
    /// The pods admitted on the node (admission.rs).
    pub admitted: super::admission::Admitted,
    /// What `--kube-reserved` and `--system-reserved` hold back from pods.
    pub reserved: (
        crate::agent::node::host::Reserved,
        crate::agent::node::host::Reserved,
    ),
    /// Sysctls beyond kubelet's safe set that pods may set.
    pub allowed_unsafe_sysctls: Vec<String>,
    /// The node's allocatable when the agent started (resourceFieldRefs of
    /// unset limits read it); None when the node could not be measured.
    pub allocatable: Option<crate::agent::node::host::Resources>,
    /// The node's pod subnet: what its bridge was set up with until the
    /// Node is registered, then the Node's `spec.podCIDR`.
    pub pod_cidr: tokio::sync::watch::Receiver<Option<crate::net::cidr::Ipv4Cidr>>,
}

/// One container of the pod, across its restarts.
struct Slot {
    /// The engine's ID of its current (or last) instance.
    id: Option<String>,
    /// The instance before it, kept for `logs --previous`.
    previous: Option<String>,
    attempt: u32,
    restart_count: i32,
    state: State,
    last_state: Option<State>,
    image_id: String,
    /// The image the pod named when the current instance was made.
    image: String,
    /// Stopped because the pod now names another image: started again at
    /// once, whatever the restartPolicy.
    restart_now: bool,
    started: Option<Instant>,
    /// Not before this (back-off, or a retry of a failed pull or create).
    not_before: Option<Instant>,
    /// Failed starts in a row (pulls, creates), for their back-off.
    failures: i32,
    /// Exits since the back-off was last forgotten.
    backoffs: i32,
    /// The probes of the running instance.
    probing: Option<probing::Probing>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            id: None,
            previous: None,
            attempt: 0,
            restart_count: 0,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_state: None,
            image_id: String::new(),
            image: String::new(),
            restart_now: false,
            started: None,
            not_before: None,
            failures: 0,
            backoffs: 0,
            probing: None,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn terminated(&self) -> Option<i32> {
        match self.state {
            State::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        }
    }
}

struct Worker<R: PodRuntime> {
    ctx: Arc<WorkerCtx<R>>,
    uid: String,
    pod: Option<Pod>,
    /// From a manifest file, not the API: its status goes to its mirror
    /// pod, and no API object is deleted when it ends.
    is_static: bool,
    /// The mirror pod a static pod's status goes to, once there is one.
    mirror_uid: Option<String>,
    sandbox: Option<(String, IpAddr)>,
    sandbox_retry: Option<Instant>,
    sandbox_failures: i32,
    /// The pod's cgroup, once it is there with its limits.
    cgroup: Option<String>,
    cgroup_failures: i32,
    slots: HashMap<String, Slot>,
    exits: SelectAll<ExitStream>,
    started_at: Option<chrono::DateTime<Utc>>,
    /// Every init container has completed once (sidecars: started).
    initialized: bool,
    /// Nothing of it runs any more and its sandbox is gone.
    finished: bool,
    /// What an earlier agent left of the pod has been taken over.
    adopted: bool,
    /// Why the node refused the pod (it never runs), if it did.
    rejected: Option<super::admission::Rejection>,
    /// The status last written, and (for a static pod) the mirror pod it
    /// was written to.
    written: Option<(serde_json::Value, Option<String>)>,
    /// Set up before any container starts.
    volumes: Option<PodVolumes>,
    mount_failures: u32,
    mount_retry: Option<Instant>,
    /// Why the volumes could not be set up, the last time they could not.
    mount_error: Option<String>,
    /// When the volumes' files are next written again.
    volume_sync: Option<Instant>,
    tokens: BTreeMap<TokenKey, volumes::Issued>,
    probe_tx: probing::ResultTx,
    probe_rx: probing::ResultRx,
    /// The pod's hold on the node's watched objects, let go with the worker.
    _holding: volumes::Holding<R>,
}

fn containers(pod: &Pod) -> (&[Container], &[Container]) {
    match &pod.spec {
        Some(s) => (
            s.init_containers.as_deref().unwrap_or_default(),
            &s.containers,
        ),
        None => (&[], &[]),
    }
}

/// Run the worker of pod `uid` until the pod is gone and torn down.
pub async fn run<R: PodRuntime>(
    ctx: Arc<WorkerCtx<R>>,
    uid: String,
    mut pod: watch::Receiver<Option<Pod>>,
    mut mirror: Option<watch::Receiver<Option<String>>>,
) {
    let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut w = Worker {
        _holding: volumes::Holding {
            ctx: ctx.clone(),
            uid: uid.clone(),
        },
        ctx,
        uid,
        pod: None,
        is_static: mirror.is_some(),
        mirror_uid: mirror.as_mut().and_then(|m| m.borrow_and_update().clone()),
        sandbox: None,
        sandbox_retry: None,
        sandbox_failures: 0,
        cgroup: None,
        cgroup_failures: 0,
        slots: HashMap::new(),
        exits: SelectAll::new(),
        started_at: None,
        initialized: false,
        finished: false,
        adopted: false,
        rejected: None,
        written: None,
        volumes: None,
        mount_failures: 0,
        mount_retry: None,
        mount_error: None,
        volume_sync: None,
        tokens: BTreeMap::new(),
        probe_tx,
        probe_rx,
    };
    loop {
        let latest = pod.borrow_and_update().clone();
        match latest {
            None => {
                // Gone from the API without us: whatever runs goes at once.
                w.teardown(Duration::ZERO).await;
                return;
            }
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                w.pod = Some(p);
                w.terminate(&pod).await;
                return;
            }
            Some(mut p) => {
                // The watch may still hold a version older than the one our
                // own status write returned: keep the newer (transition
                // times are computed against it). A static pod's status is
                // only ever the worker's own.
                if w.is_static {
                    p.status = w.pod.as_ref().and_then(|cur| cur.status.clone());
                }
                if !is_older(&p, w.pod.as_ref()) {
                    w.pod = Some(p);
                }
                w.sync().await;
            }
        }
        w.run_due_probes();
        let timer = w.next_timer();
        tokio::select! {
            changed = pod.changed() => {
                if changed.is_err() {
                    // The manager stopped (the agent stops): the pod runs on.
                    return;
                }
            }
            Some((id, exit)) = w.exits.next(), if !w.exits.is_empty() => {
                w.exited(&id, exit).await;
            }
            Some(r) = w.probe_rx.recv() => {
                w.probed(r).await;
            }
            Some(m) = mirror_changed(&mut mirror) => {
                w.mirror_uid = m;
            }
            _ = sleep_until(timer) => {}
        }
    }
}

/// The next mirror pod of a static pod; never for another pod.
async fn mirror_changed(
    rx: &mut Option<watch::Receiver<Option<String>>>,
) -> Option<Option<String>> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// How a rejected pod's message begins (kubelet's).
const REJECTED: &str = "Pod was rejected: ";

/// A container that ran this long starts its back-off over (kubelet's).
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// Whether `new` is an older version of the pod than `cur`.
fn is_older(new: &Pod, cur: Option<&Pod>) -> bool {
    let rv = |p: &Pod| {
        p.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (rv(new), cur.and_then(rv)) {
        (Some(n), Some(c)) => n < c,
        _ => false,
    }
}

/// kubelet's back-off for a step that failed `n` times in a row (10 s
/// after the first).
fn retry_after(n: i32) -> Duration {
    status::backoff(n.max(1), Duration::ZERO)
}

impl<R: PodRuntime> Worker<R> {
    fn pod(&self) -> Option<&Pod> {
        self.pod.as_ref()
    }

    /// The next time something becomes due. Times already past are not
    /// waited for again: sync acted on them, or could not yet (a container
    /// waiting for an init container), and then another event wakes us.
    fn next_timer(&self) -> Option<Instant> {
        let now = Instant::now();
        self.slots
            .values()
            .filter_map(|s| s.not_before)
            .chain(self.sandbox_retry)
            .chain(self.mount_retry)
            .chain(self.volume_sync)
            .filter(|t| *t > now)
            .chain(self.next_probe())
            .min()
    }

    /// Bring the pod's containers to what its spec and restartPolicy ask.
    async fn sync(&mut self) {
        let Some(pod) = self.pod.clone() else { return };
        let (init, main) = containers(&pod);
        let images = init
            .iter()
            .chain(main)
            .filter_map(|c| c.image.clone())
            .collect();
        self.ctx.wanted_images.set(&self.uid, images);
        if !self.adopted {
            self.adopted = true;
            self.adopt(&pod).await;
            self.admit(&pod).await;
        }
        if self.finished {
            self.write_status().await;
            return;
        }
        if self.sandbox.is_none() {
            if self.sandbox_retry.is_some_and(|t| Instant::now() < t) {
                return;
            }
            if let Err(e) = self.make_sandbox(&pod).await {
                self.sandbox_failures += 1;
                self.sandbox_retry = Some(Instant::now() + retry_after(self.sandbox_failures));
                tracing::warn!(pod = %pod_key(&pod), "making the pod's sandbox: {e}");
                self.write_status().await;
                return;
            }
            self.sandbox_retry = None;
            self.started_at.get_or_insert_with(Utc::now);
        }
        if self.volumes.is_none() {
            if self.mount_retry.is_some_and(|t| Instant::now() < t) {
                return;
            }
            if !self.set_up_volumes(&pod).await {
                self.write_status().await;
                return;
            }
        } else {
            self.sync_volumes(&pod).await;
        }
        if self.cgroup.is_none() && !self.set_up_cgroup(&pod).await {
            self.write_status().await;
            return;
        }
        self.restart_changed(&pod);
        let (init, main) = containers(&pod);
        let (init, main) = (init.to_vec(), main.to_vec());
        // Init containers one at a time, in order; a native sidecar
        // (restartPolicy Always) counts once it runs.
        for c in &init {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            self.slots.entry(c.name.clone()).or_insert_with(Slot::new);
            let done = match self.slots.get(&c.name) {
                Some(s) if sidecar => s.running(),
                Some(s) => s.terminated() == Some(0),
                None => false,
            };
            if !done {
                self.start_if_due(&pod, c, true).await;
                let done_now =
                    self.slots
                        .get(&c.name)
                        .is_some_and(|s| if sidecar { s.running() } else { false });
                // Once the pod was initialized, a sidecar restarting does
                // not hold its containers back (as kubelet).
                if !done_now && !self.initialized {
                    self.write_status().await;
                    // An init container that failed for good ends the pod
                    // (Init:Error): what it holds goes back at once.
                    if self.all_done(&pod, &init, &main) {
                        self.release(&pod).await;
                    }
                    return;
                }
            }
        }
        self.initialized = true;
        for c in &main {
            self.slots.entry(c.name.clone()).or_insert_with(Slot::new);
            self.start_if_due(&pod, c, false).await;
        }
        self.write_status().await;
        if self.all_done(&pod, &init, &main) {
            self.release(&pod).await;
        }
    }

    /// Whether nothing of the pod will run again: every container has
    /// exited for good, or an init container failed for good.
    fn all_done(&self, pod: &Pod, init: &[Container], main: &[Container]) -> bool {
        let done_for_good = |c: &Container, is_init: bool| {
            self.slots
                .get(&c.name)
                .and_then(Slot::terminated)
                .is_some_and(|code| !status::should_restart(pod, c, is_init, code))
        };
        let init_failed = init.iter().any(|c| {
            c.restart_policy.as_deref() != Some("Always")
                && self
                    .slots
                    .get(&c.name)
                    .and_then(Slot::terminated)
                    .is_some_and(|code| code != 0 && done_for_good(c, true))
        });
        init_failed || main.iter().all(|c| done_for_good(c, false))
    }

    /// A pod that has finished gives back what it holds on the node (its
    /// sidecars stop, its address goes back to the pool); its containers
    /// stay, with their logs, until the pod is deleted.
    async fn release(&mut self, pod: &Pod) {
        let sidecars: Vec<String> = self
            .slots
            .values()
            .filter(|s| s.running())
            .filter_map(|s| s.id.clone())
            .collect();
        let grace = Duration::from_secs(
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64,
        );
        let runtime = &self.ctx.runtime;
        futures::future::join_all(sidecars.iter().map(|id| runtime.stop_container(id, grace)))
            .await;
        if let Some((name, _)) = self.sandbox.take() {
            if let Err(e) = self.ctx.runtime.remove_sandbox(&name).await {
                tracing::warn!(pod = %pod_key(pod), "releasing the finished pod's sandbox: {e}");
            }
        }
        self.finished = true;
        self.ctx.admitted.release(&self.uid);
        self.write_status().await;
    }

    fn slot(&mut self, name: &str) -> &mut Slot {
        self.slots.entry(name.to_string()).or_insert_with(Slot::new)
    }
}

/// Remove every container of pod `uid` and its sandbox.
async fn remove_leftovers<R: PodRuntime>(ctx: &WorkerCtx<R>, uid: &str, sandbox: &str) {
    let labels = BTreeMap::from([(spec::LABEL_POD_UID.to_string(), uid.to_string())]);
    if let Ok(found) = ctx.runtime.list_containers(labels).await {
        for c in found {
            if let Err(e) = ctx.runtime.remove_container(&c.id).await {
                tracing::warn!("removing container {}: {e}", c.id);
            }
        }
    }
    if let Err(e) = ctx.runtime.remove_sandbox(sandbox).await {
        if !e.is_not_found() {
            tracing::warn!("removing sandbox {sandbox}: {e}");
        }
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `<namespace>_<name>_<uid>`, kubelet's directory of a pod's logs.
fn pod_log_dir(pod: &Pod) -> String {
    format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}
