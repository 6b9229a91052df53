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
mod probing;
mod report;
mod stop;
mod volumes;

use super::images::Images;
use super::spec::{self, SpecContext};
use super::status::{self, ContainerObserved, PodObserved, State};
use super::volumes::{PodVolumes, TokenKey};
use crate::events::{NORMAL, WARNING};
use crate::runtime::container::exits::Exit;
use crate::runtime::pod::{ExitStream, PodRuntime, SandboxConfig};

/// What every worker shares.
pub struct WorkerCtx<R: PodRuntime> {
    pub runtime: R,
    /// The engine's root; pods' volumes are under <root>/agent/pods.
    pub root: PathBuf,
    pub events: crate::events::Recorder,
    pub client: kube::Client,
    pub node_name: String,
    pub node_ip: IpAddr,
    /// kubelet's /var/log/pods.
    pub log_root: PathBuf,
    pub images: Images,
    /// `KUBERNETES_SERVICE_HOST`/`_PORT` (and the like) for every container.
    pub service_env: BTreeMap<String, String>,
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

    /// Bind the container's termination message file (an empty one per
    /// attempt) at its terminationMessagePath.
    fn termination_message_mount(
        &self,
        c: &Container,
        attempt: u32,
        s: &mut crate::runtime::container::containerspec::ContainerSpec,
    ) -> Result<(), spec::SpecError> {
        use super::termination_message as tm;
        use crate::runtime::container::containerspec::{Mount, MountSource};
        let Some(path) = tm::container_path(c) else {
            return Ok(());
        };
        let pod_dir = super::volumes::pod_dir(&self.ctx.root, &self.uid);
        let file = tm::host_file(&pod_dir, &c.name, attempt);
        tm::prepare(&file).map_err(|e| {
            spec::SpecError::Volume(format!(
                "creating the termination message file {}: {e}",
                file.display()
            ))
        })?;
        s.mounts.push(Mount {
            destination: path.to_string(),
            source: MountSource::Host(file),
            read_only: false,
        });
        Ok(())
    }

    /// The termination message of attempt `attempt` of container `name`,
    /// which ended with `code`.
    fn termination_message(
        &self,
        pod: &Pod,
        name: &str,
        attempt: u32,
        code: i32,
    ) -> Option<String> {
        use super::termination_message as tm;
        let (init, main) = containers(pod);
        let c = main.iter().chain(init).find(|c| c.name == name)?;
        let pod_dir = super::volumes::pod_dir(&self.ctx.root, &self.uid);
        let log = self
            .ctx
            .log_root
            .join(pod_log_dir(pod))
            .join(name)
            .join(format!("{attempt}.log"));
        tm::message(c, &tm::host_file(&pod_dir, name, attempt), &log, code)
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

    /// kubelet's admission: a pod that does not fit the node is rejected
    /// (Failed) before anything of it runs; one that runs already (an
    /// earlier agent's) is taken as it is. Static pods are admitted too
    /// (their mirror pod shows a rejection), but not against taints.
    async fn admit(&mut self, pod: &Pod) {
        use super::admission;
        let requests = admission::requests(pod);
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if phase == Some(status::FAILED) && self.sandbox.is_none() && self.slots.is_empty() {
            // Rejected by an earlier agent: it stays so (other failures,
            // such as an eviction, keep their own status).
            let reason = status.and_then(|s| s.reason.clone());
            let message = status
                .and_then(|s| s.message.as_deref())
                .unwrap_or_default();
            if let (Some(reason), Some(message)) = (reason, message.strip_prefix(REJECTED)) {
                self.rejected = Some(admission::Rejection {
                    reason,
                    message: message.to_string(),
                });
            }
            return;
        }
        if self.finished || matches!(phase, Some(status::SUCCEEDED | status::FAILED)) {
            return;
        }
        if self.sandbox.is_some() || !self.slots.is_empty() {
            self.ctx.admitted.hold(&self.uid, requests);
            return;
        }
        let ctx = self.ctx.clone();
        // Read before the gate, and bounded: an API that does not answer
        // holds up no other pod. Without the Node only the room is checked.
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(ctx.client.clone());
        let node = tokio::time::timeout(Duration::from_secs(10), nodes.get(&ctx.node_name))
            .await
            .ok()
            .and_then(Result::ok);
        let _gate = ctx.admitted.gate.lock().await;
        let (root, reserved) = (ctx.root.clone(), ctx.reserved.clone());
        let room = tokio::task::spawn_blocking(move || {
            crate::agent::node::host::measure_capacity(&root)
                .map(|c| crate::agent::node::host::allocatable(&c, &reserved.0, &reserved.1))
        })
        .await;
        let Ok(Ok(room)) = room else {
            // The node cannot be measured: admitted, as nothing says no.
            ctx.admitted.hold(&self.uid, requests);
            return;
        };
        match admission::admit(
            pod,
            node.as_ref(),
            &room,
            &ctx.admitted.others(&self.uid),
            self.is_static,
            &ctx.allowed_unsafe_sysctls,
        ) {
            Ok(()) => ctx.admitted.hold(&self.uid, requests),
            Err(r) => {
                tracing::info!(pod = %pod_key(pod), reason = %r.reason, "rejected the pod: {}", r.message);
                ctx.events
                    .pod(pod, None, WARNING, &r.reason, r.message.clone());
                self.rejected = Some(r);
                self.finished = true;
            }
        }
    }

    /// Make the pod's cgroup with its limits, or set when to try again.
    async fn set_up_cgroup(&mut self, pod: &Pod) -> bool {
        if self.sandbox_retry.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        // Fixed for the pod's life: a static pod's class is its
        // manifest's, whatever its mirror pod was given by admission.
        let parent = if self.is_static {
            let mut own = pod.clone();
            own.status = None;
            super::pod_cgroup::parent(&own)
        } else {
            super::pod_cgroup::parent(pod)
        };
        // A quantity that does not parse fails the containers' own specs
        // (CreateContainerConfigError); the pod is then left unbounded.
        let limits = super::pod_cgroup::limits(pod).unwrap_or_default();
        let (at, root, uid) = (parent.clone(), self.ctx.root.clone(), self.uid.clone());
        let made = tokio::task::spawn_blocking(move || {
            // Noted first: what is made is swept even if the agent dies
            // half way.
            super::pod_cgroup::mark(&root, &uid, &at).map_err(|e| {
                crate::runtime::container::cgroups::CgroupError::Io {
                    path: root.join("agent").join("cgroups"),
                    source: e,
                }
            })?;
            super::pod_cgroup::set_up(&at, &limits)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        match made {
            Ok(()) => {
                self.cgroup = Some(parent);
                self.cgroup_failures = 0;
                true
            }
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), "making the pod's cgroup: {e}");
                self.cgroup_failures += 1;
                self.sandbox_retry = Some(Instant::now() + retry_after(self.cgroup_failures));
                false
            }
        }
    }

    async fn make_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let name = spec::sandbox_name(pod);
        let hostname = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .or_else(|| pod.metadata.name.clone())
            .map(|h| h.chars().take(63).collect::<String>());
        let host_network = spec::host_network(pod);
        let config = SandboxConfig {
            name: name.clone(),
            hostname,
            // A host-network pod's servers listen on the node itself.
            ports: if host_network {
                Vec::new()
            } else {
                spec::host_ports(pod).map_err(|e| e.to_string())?
            },
            cidr: None,
            host_network,
            host_ipc: pod.spec.as_ref().and_then(|s| s.host_ipc) == Some(true),
            share_pid: pod.spec.as_ref().and_then(|s| s.share_process_namespace) == Some(true),
        };
        let made = match self.ctx.runtime.run_sandbox(config.clone()).await {
            Ok(sb) => sb,
            // Left by an agent that stopped: start again from nothing.
            Err(crate::runtime::pod::PodRuntimeError::Sandbox(
                crate::runtime::sandbox::SandboxError::Exists(_),
            )) => {
                remove_leftovers(&self.ctx, &self.uid, &name).await;
                self.ctx
                    .runtime
                    .run_sandbox(config)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        self.sandbox = Some((name, self.sandbox_ip(&made)));
        Ok(())
    }

    /// The pod's address: its sandbox's, or for a host-network one the
    /// node's.
    fn sandbox_ip(&self, sb: &crate::runtime::sandbox::Sandbox) -> IpAddr {
        if sb.host_network {
            self.ctx.node_ip
        } else {
            IpAddr::V4(sb.ip)
        }
    }

    /// Start container `c` unless it runs, has finished for good, or waits.
    async fn start_if_due(&mut self, pod: &Pod, c: &Container, init: bool) {
        let Some(slot) = self.slots.get(&c.name) else {
            return;
        };
        if slot.running() || slot.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if let Some(code) = slot.terminated() {
            if !slot.restart_now && !status::should_restart(pod, c, init, code) {
                return;
            }
        }
        let Some((sandbox, pod_ip)) = self.sandbox.clone() else {
            return;
        };
        let attempt = slot.attempt;
        let key = pod_key(pod);
        let image = c.image.clone().unwrap_or_default();
        let events = self.ctx.events.clone();
        let event = |kind, reason: &str, message: String| {
            events.pod(pod, Some(&c.name), kind, reason, message)
        };
        let pull_logins = if self.ctx.images.will_pull(c).await {
            event(NORMAL, "Pulling", format!("Pulling image {image:?}"));
            pull_logins(self.ctx.client.clone(), self.ctx.events.clone(), pod).await
        } else {
            Default::default()
        };
        let image_user: String;
        match self.ctx.images.ensure(c, pull_logins).await {
            Ok(ensured) => {
                image_user = ensured.user.clone();
                match ensured.pulled {
                    Some(took) => {
                        event(
                            NORMAL,
                            "Pulled",
                            format!(
                                "Successfully pulled image {image:?} in {took:?} ({took:?} including waiting). Image size: {} bytes.",
                                ensured.size
                            ),
                        );
                    }
                    None => event(
                        NORMAL,
                        "Pulled",
                        format!("Container image {image:?} already present on machine"),
                    ),
                }
                self.slot(&c.name).image_id = ensured.image_id;
                // runAsNonRoot against the image's own user, as kubelet
                // checks it once the image is known.
                if let Err(e) = spec::verify_run_as_non_root(pod, c, &ensured.user) {
                    event(WARNING, "Failed", format!("Error: {e}"));
                    let slot = self.slot(&c.name);
                    slot.failures += 1;
                    slot.not_before = Some(Instant::now() + retry_after(slot.failures));
                    slot.state = State::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(e.to_string()),
                    };
                    return;
                }
            }
            Err((reason, message)) => {
                let slot = self.slot(&c.name);
                slot.failures += 1;
                slot.not_before = Some(Instant::now() + retry_after(slot.failures));
                // The first failure is ErrImagePull, then ImagePullBackOff.
                let reason = if slot.failures > 1 && reason == "ErrImagePull" {
                    "ImagePullBackOff".to_string()
                } else {
                    reason
                };
                tracing::info!(pod = %key, container = %c.name, "{reason}: {message}");
                if reason == "ImagePullBackOff" {
                    event(
                        NORMAL,
                        "BackOff",
                        format!("Back-off pulling image {image:?}"),
                    );
                } else {
                    event(WARNING, "Failed", message.clone());
                }
                event(WARNING, "Failed", format!("Error: {reason}"));
                slot.state = State::Waiting {
                    reason,
                    message: Some(message),
                };
                return;
            }
        }
        let log_dir = self.ctx.log_root.join(pod_log_dir(pod));
        let objects = if spec::referenced_objects(pod).is_empty() {
            BTreeMap::new()
        } else {
            match self.fetch_sources(pod).await {
                Ok(src) => volumes::env_objects(&src),
                Err(e) => {
                    let slot = self.slot(&c.name);
                    slot.failures += 1;
                    slot.not_before = Some(Instant::now() + retry_after(slot.failures));
                    slot.state = State::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(e.to_string()),
                    };
                    return;
                }
            }
        };
        let built = spec::container_spec(
            pod,
            c,
            &SpecContext {
                node_name: &self.ctx.node_name,
                cgroup_parent: self.cgroup.as_deref(),
                pod_ip: Some(pod_ip),
                host_ip: self.ctx.node_ip,
                log_dir: &log_dir,
                attempt,
                objects: &objects,
                service_env: &self.ctx.service_env,
                memory_capacity: self.ctx.memory_capacity,
                min_oom_score_adj: self.ctx.min_oom_score_adj,
                allocatable: self.ctx.allocatable.as_ref(),
                image_user: &image_user,
            },
        );
        let mounted = match (built, self.volumes.clone()) {
            (Ok(mut s), Some(v)) => {
                // Resolving and binding subPaths is file-system work on paths
                // containers write: the blocking pool's.
                let (owned, env) = (c.clone(), s.process.env.clone());
                let made = tokio::task::spawn_blocking(move || {
                    let env: BTreeMap<&str, &str> =
                        env.iter().filter_map(|kv| kv.split_once('=')).collect();
                    v.mounts(&owned, |k| env.get(k).copied())
                })
                .await;
                match made {
                    Ok(Ok(mounts)) => {
                        s.mounts.extend(mounts);
                        self.termination_message_mount(c, attempt, &mut s)
                            .map(|()| s)
                    }
                    Ok(Err(e)) => Err(spec::SpecError::Volume(e.to_string())),
                    Err(e) => Err(spec::SpecError::Volume(e.to_string())),
                }
            }
            (built, _) => built,
        };
        let spec = match mounted {
            Ok(s) => s,
            Err(e) => {
                event(WARNING, "Failed", format!("Error: {e}"));
                let slot = self.slot(&c.name);
                slot.failures += 1;
                slot.not_before = Some(Instant::now() + retry_after(slot.failures));
                slot.state = State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(e.to_string()),
                };
                return;
            }
        };
        let container_logs = log_dir.join(&c.name);
        if let Err(e) = tokio::fs::create_dir_all(&container_logs).await {
            let slot = self.slot(&c.name);
            slot.failures += 1;
            slot.not_before = Some(Instant::now() + retry_after(slot.failures));
            slot.state = State::Waiting {
                reason: "CreateContainerError".into(),
                message: Some(format!("{}: {e}", container_logs.display())),
            };
            return;
        }
        let created = self.ctx.runtime.create_container(&sandbox, spec).await;
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                event(WARNING, "Failed", format!("Error: {e}"));
                let slot = self.slot(&c.name);
                slot.failures += 1;
                slot.not_before = Some(Instant::now() + retry_after(slot.failures));
                slot.state = State::Waiting {
                    reason: "CreateContainerError".into(),
                    message: Some(e.to_string()),
                };
                return;
            }
        };
        self.exits.push(self.ctx.runtime.exits(vec![id.clone()]));
        let started = self.ctx.runtime.start_container(&id).await;
        // One earlier instance is kept, for `logs --previous`.
        let slot = self.slot(&c.name);
        let older = slot.previous.take();
        slot.previous = slot.id.replace(id.clone());
        if let Some(older) = older {
            if let Err(e) = self.ctx.runtime.remove_container(&older).await {
                tracing::warn!("removing container {older}: {e}");
            }
        }
        let slot = self.slot(&c.name);
        // restartCount counts instances started after the first.
        if slot.attempt > 0 && started.is_ok() {
            slot.restart_count += 1;
        }
        slot.attempt += 1;
        match &started {
            Ok(()) => {
                event(NORMAL, "Created", format!("Created container: {}", c.name));
                event(NORMAL, "Started", format!("Started container {}", c.name));
            }
            Err(e) => event(WARNING, "Failed", format!("Error: {e}")),
        }
        let slot = self.slot(&c.name);
        match started {
            Ok(()) => {
                slot.failures = 0;
                slot.not_before = None;
                slot.image = c.image.clone().unwrap_or_default();
                slot.restart_now = false;
                slot.started = Some(Instant::now());
                slot.state = State::Running {
                    started_at: Utc::now(),
                };
                self.begin_probing(pod, c, &id, None);
            }
            Err(e) => {
                slot.failures += 1;
                slot.not_before = Some(Instant::now() + retry_after(slot.failures));
                slot.state = State::Waiting {
                    reason: "RunContainerError".into(),
                    message: Some(e.to_string()),
                };
            }
        }
    }

    /// A running container whose image the pod now names differently is
    /// stopped, and started again with it whatever the restartPolicy
    /// (kubelet restarts a container whose definition changed; of a pod's
    /// containers only the image may change).
    fn restart_changed(&mut self, pod: &Pod) {
        let (init, main) = containers(pod);
        let mut changed = Vec::new();
        for c in init.iter().chain(main) {
            let Some(slot) = self.slots.get(&c.name) else {
                continue;
            };
            let wanted = c.image.as_deref().unwrap_or_default();
            if slot.running() && !slot.restart_now && !slot.image.is_empty() && slot.image != wanted
            {
                if let Some(id) = slot.id.clone() {
                    changed.push((c.name.clone(), id));
                }
            }
        }
        for (name, id) in changed {
            let message = format!("Container {name} definition changed, will be restarted");
            tracing::info!(pod = %pod_key(pod), container = %name, "Killing: {message}");
            self.ctx
                .events
                .pod(pod, Some(&name), NORMAL, "Killing", message);
            let slot = self.slot(&name);
            slot.restart_now = true;
            slot.probing = None;
            self.kill(pod, &name, &id, None);
        }
    }

    fn slot(&mut self, name: &str) -> &mut Slot {
        self.slots.entry(name.to_string()).or_insert_with(Slot::new)
    }

    /// A container exited: record it, and set when it may start again.
    /// Note that container `name` (runtime id `id`) ended with `code`, as
    /// the runtime recorded it (OOM kill, end time), with its termination
    /// message.
    fn mark_terminated(
        &mut self,
        name: &str,
        id: &str,
        code: i32,
        recorded: Option<&crate::runtime::pod::ContainerStatus>,
    ) {
        let oom = recorded.is_some_and(|r| r.oom_killed);
        let attempt = self.slot(name).attempt.saturating_sub(1);
        let message = self
            .pod
            .clone()
            .and_then(|p| self.termination_message(&p, name, attempt, code));
        let slot = self.slot(name);
        slot.probing = None;
        let started_at = match slot.state {
            State::Running { started_at } => Some(started_at),
            _ => None,
        };
        slot.state = State::Terminated {
            exit_code: code,
            signal: None,
            reason: status::terminated_reason(code, oom).to_string(),
            message,
            started_at,
            finished_at: recorded
                .and_then(|r| r.finished_at)
                .unwrap_or_else(Utc::now),
            container_id: Some(format!("skiff://{id}")),
        };
    }

    async fn exited(&mut self, id: &str, exit: Result<Exit, crate::runtime::pod::PodRuntimeError>) {
        let Some(name) = self
            .slots
            .iter()
            .find(|(_, s)| s.id.as_deref() == Some(id))
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        let recorded = self.ctx.runtime.container_status(id).await.ok();
        let code = match exit {
            Ok(Exit::Code(c)) => c,
            // The wait failed but the container still runs: wait again,
            // or two instances would run at once.
            _ if recorded
                .as_ref()
                .is_some_and(|r| r.state == crate::runtime::pod::ContainerState::Running) =>
            {
                self.exits
                    .push(self.ctx.runtime.exits(vec![id.to_string()]));
                return;
            }
            _ => recorded.as_ref().and_then(|r| r.exit_code).unwrap_or(255),
        };
        let ran = self
            .slot(&name)
            .started
            .map_or(Duration::ZERO, |t| t.elapsed());
        self.mark_terminated(&name, id, code, recorded.as_ref());
        let Some(pod) = self.pod.clone() else { return };
        let (init, main) = containers(&pod);
        let (c, is_init) = match main.iter().find(|c| c.name == name) {
            Some(c) => (c, false),
            None => match init.iter().find(|c| c.name == name) {
                Some(c) => (c, true),
                None => return,
            },
        };
        if self.slot(&name).restart_now {
            // Stopped for its new image: again at once, no back-off.
            let slot = self.slot(&name);
            slot.last_state = Some(slot.state.clone());
            slot.not_before = None;
        } else if status::should_restart(&pod, c, is_init, code) {
            let slot = self.slot(&name);
            // A run of more than 10 minutes forgets the back-off (kubelet).
            if ran > BACKOFF_RESET {
                slot.backoffs = 0;
            }
            let delay = status::backoff(slot.backoffs, ran);
            slot.backoffs += 1;
            slot.last_state = Some(slot.state.clone());
            slot.not_before = Some(Instant::now() + delay);
            if !delay.is_zero() {
                slot.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(status::crash_loop_message(&pod, &name, delay)),
                };
                self.ctx.events.pod(
                    &pod,
                    Some(&name),
                    WARNING,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {name} in pod {}",
                        spec::pod_desc(&pod)
                    ),
                );
            }
        }
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
/// The logins of the pod's image pull Secrets, first named first. A
/// Secret that cannot be read is kubelet's warning, and the pull goes
/// on without it.
async fn pull_logins(
    client: kube::Client,
    events: crate::events::Recorder,
    pod: &Pod,
) -> crate::runtime::image::credentials::Logins {
    use crate::runtime::image::credentials::Logins;
    use k8s_openapi::api::core::v1::Secret;
    let names: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    let mut logins = Logins::default();
    if names.is_empty() {
        return logins;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: kube::Api<Secret> = kube::Api::namespaced(client, ns);
    let mut missing = Vec::new();
    for name in names {
        let got = tokio::time::timeout(Duration::from_secs(10), api.get(&name)).await;
        let secret = match got {
            Ok(Ok(s)) => s,
            _ => {
                missing.push(name);
                continue;
            }
        };
        let key = match secret.type_.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => ".dockerconfigjson",
            Some("kubernetes.io/dockercfg") => ".dockercfg",
            _ => {
                missing.push(name);
                continue;
            }
        };
        let parsed = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| Logins::from_docker_config(&b.0));
        match parsed {
            Some(Ok(l)) => logins.extend_missing(l),
            _ => missing.push(name),
        }
    }
    if !missing.is_empty() {
        events.pod(
            pod,
            None,
            WARNING,
            "FailedToRetrieveImagePullSecret",
            format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            ),
        );
    }
    logins
}

fn pod_log_dir(pod: &Pod) -> String {
    format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}
