//! What kubelet 1.32 writes as a Pod's status, from what the worker saw of
//! its sandbox and containers (kubelet_pods.go `generateAPIPodStatus`,
//! `convertToAPIContainerStatuses`, `getPhase`; status/generate.go; the
//! status manager's transition times), and its restart rules
//! (`ShouldContainerBeRestarted`, the init container actions, the
//! CrashLoopBackOff back-off).
//!
//! ```text
//! pod_status          phase, conditions, IPs, start time, container statuses
//! terminated          the final status of a deleted pod (TerminatePod)
//! should_restart      restartPolicy (and a sidecar's own Always)
//! backoff             0, 10 s, 20 s, … 5 min; forgotten after 10 min of running
//! crash_loop_message  the CrashLoopBackOff waiting message
//! ```

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};

use crate::agent::node::host::to_time;

mod phase;

use self::phase::{
    condition, containers_ready_condition, get_phase, initialized_condition, ready_condition,
};

pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

/// kubelet's container back-off: the first window, its cap, and how long a
/// container must run before its back-off is forgotten (twice the cap).
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// The conditions kubelet owns; any other is kept as it is.
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: DateTime<Utc>,
    },
    Terminated {
        exit_code: i32,
        /// Not written to the API: kubelet never sets `signal`.
        signal: Option<i32>,
        reason: String,
        message: Option<String>,
        started_at: Option<DateTime<Utc>>,
        finished_at: DateTime<Utc>,
        container_id: Option<String>,
    },
}

/// Terminated reason as kubelet (containerd's): "OOMKilled" when the kernel
/// killed it for memory, whatever the code; else "Completed" for 0, "Error".
pub fn terminated_reason(exit_code: i32, oom: bool) -> &'static str {
    match (oom, exit_code) {
        (true, _) => "OOMKilled",
        (false, 0) => "Completed",
        _ => "Error",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerObserved {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// "skiff://<engine id>"
    pub container_id: Option<String>,
    pub state: State,
    pub last_state: Option<State>,
    pub restart_count: i32,
    /// The readiness probe's verdict (true without one); only counts while
    /// the container runs and has started.
    pub ready: bool,
    /// The startup probe's verdict; None when it has none (started once
    /// running).
    pub started: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodObserved {
    pub sandbox_ready: bool,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: IpAddr,
    pub started_at: Option<DateTime<Utc>>,
    pub init: Vec<ContainerObserved>,
    pub containers: Vec<ContainerObserved>,
    /// All init containers have completed: Initialized is then True even
    /// when their records are gone (kubelet infers it from a regular
    /// container having started).
    pub initialized: bool,
}

/// The pod's status as kubelet writes it. Regular container statuses are
/// sorted by name (kubelet's SortedContainerStatuses), init ones are in
/// spec order; conditions other than kubelet's are kept first, then
/// PodReadyToStartContainers, Initialized, Ready, ContainersReady,
/// PodScheduled, each keeping its lastTransitionTime while its status is
/// unchanged. The phase never leaves Succeeded/Failed, and becomes one only
/// once nothing runs.
pub fn pod_status(pod: &Pod, seen: &PodObserved, now: DateTime<Utc>) -> PodStatus {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let old = pod.status.clone().unwrap_or_default();
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let has_init = !init_specs.is_empty();
    let convert = |c: &Container,
                   seen: &[ContainerObserved],
                   old: &Option<Vec<ContainerStatus>>,
                   init: bool| {
        let observed = seen.iter().find(|o| o.name == c.name);
        let old = old.iter().flatten().find(|s| s.name == c.name);
        let kind = match (init, restartable(c)) {
            (false, _) => Kind::Regular,
            (true, true) => Kind::Sidecar,
            (true, false) => Kind::Init,
        };
        match observed {
            Some(o) => observed_status(c, o, kind),
            None => unseen_status(c, old, kind, has_init, deleting),
        }
    };
    let init: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| convert(c, &seen.init, &old.init_container_statuses, true))
        .collect();
    let mut regular: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| convert(c, &seen.containers, &old.container_statuses, false))
        .collect();
    regular.sort_by(|a, b| a.name.cmp(&b.name));

    let old_phase = old.phase.as_deref().unwrap_or(PENDING);
    let terminal = |p: &str| p == SUCCEEDED || p == FAILED;
    // A pod being deleted is terminal for getPhase once its containers are
    // down (kubelet's podIsTerminal), whatever its restartPolicy.
    let mut phase = get_phase(spec, &init, &regular, deleting);
    if terminal(old_phase) {
        phase = old_phase.to_string();
    }
    let (mut reason, mut message) = (None, None);
    if phase == old_phase {
        (reason, message) = (old.reason.clone(), old.message.clone());
    }

    let mut conditions: Vec<PodCondition> = old
        .conditions
        .iter()
        .flatten()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let all: Vec<&ContainerStatus> = init.iter().chain(&regular).collect();
    let ready_to_start = condition("PodReadyToStartContainers", seen.sandbox_ready, None, None);
    let initialized = initialized_condition(spec, &all, &phase, seen.initialized);
    conditions.extend([ready_to_start, initialized]);
    let containers_ready = containers_ready_condition(spec, &all, &phase);
    let ready = ready_condition(spec, &conditions, &containers_ready);
    conditions.extend([
        ready,
        containers_ready,
        condition("PodScheduled", true, None, None),
    ]);
    let old_conditions = old.conditions.as_deref().unwrap_or_default();
    for c in conditions
        .iter_mut()
        .filter(|c| KUBELET_CONDITIONS.contains(&c.type_.as_str()))
    {
        let kept = old_conditions
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .map(|o| o.last_transition_time.clone());
        c.last_transition_time = kept.unwrap_or_else(|| Some(to_time(now)));
    }

    // The status manager holds a terminal phase back while a container may
    // still run (its resources are not released yet).
    let running = |o: &ContainerObserved| matches!(o.state, State::Running { .. });
    if terminal(&phase)
        && !terminal(old_phase)
        && seen.init.iter().chain(&seen.containers).any(running)
    {
        phase = old_phase.to_string();
        (reason, message) = (old.reason.clone(), old.message.clone());
    }

    let host = seen.host_ip.to_string();
    let pod_ip = match seen.pod_ip {
        Some(ip) => Some(ip.to_string()),
        None if spec.host_network == Some(true) => Some(host.clone()),
        // A pod's IP does not change once set; a sandbox that is gone
        // leaves the last one.
        None => old.pod_ip.clone(),
    };
    PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conditions),
        host_ip: Some(host.clone()),
        host_ips: Some(vec![HostIP { ip: host }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old
            .start_time
            .clone()
            .or_else(|| Some(to_time(seen.started_at.unwrap_or(now)))),
        qos_class: old.qos_class.clone(),
        init_container_statuses: Some(init),
        container_statuses: Some(regular),
        // Not kubelet's to regenerate here (ephemeral containers are not
        // run yet): carried over so a status update does not drop them.
        ephemeral_container_statuses: old.ephemeral_container_statuses,
        nominated_node_name: old.nominated_node_name,
        resource_claim_statuses: old.resource_claim_statuses,
        resize: old.resize,
        ..PodStatus::default()
    }
}

/// kubelet's status manager `TerminatePod`, for a pod being deleted once
/// its containers are stopped: no container that ran is left waiting or
/// running in its status (one that ended before keeps how it ended; else
/// exit 137, `ContainerStatusUnknown`), and the phase is terminal (Failed
/// unless it already is Succeeded or Failed). Containers that never
/// started stay as they are: the regular ones while the pod never got
/// past its init containers, and the init containers after the last that
/// started (the first always ends). `init` is the pod's init containers.
pub fn terminated(mut new: PodStatus, old: Option<&PodStatus>, init: &[Container]) -> PodStatus {
    let ended = |s: &ContainerStatus| s.state.as_ref().is_some_and(|st| st.terminated.is_some());
    let ran = |s: &ContainerStatus| {
        ended(s)
            || s.state.as_ref().is_some_and(|st| st.running.is_some())
            || s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
    };
    let end = |s: &mut ContainerStatus, before: Option<&Vec<ContainerStatus>>| {
        if ended(s) {
            return;
        }
        // How it ended, as reported before (by an earlier worker, whose
        // containers are gone): with the container it was.
        let prev = before
            .into_iter()
            .flatten()
            .find(|o| o.name == s.name && ended(o));
        if let Some(o) = prev {
            if s.container_id.is_none() {
                s.container_id = o.container_id.clone();
            }
            if s.image_id.is_empty() {
                s.image_id = o.image_id.clone();
            }
            if s.last_state.is_none() {
                s.last_state = o.last_state.clone();
            }
            s.restart_count = s.restart_count.max(o.restart_count);
        }
        s.state = Some(
            prev.and_then(|o| o.state.clone())
                .unwrap_or_else(|| ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        reason: Some("ContainerStatusUnknown".into()),
                        message: Some(
                            "The container could not be located when the pod was terminated".into(),
                        ),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                }),
        );
        s.ready = false;
        s.started = Some(false);
    };
    if initialized(&new, old, init) {
        let before = old.and_then(|o| o.container_statuses.as_ref());
        for s in new.container_statuses.iter_mut().flatten() {
            end(s, before);
        }
    }
    let before = old.and_then(|o| o.init_container_statuses.as_ref());
    if let Some(statuses) = new.init_container_statuses.as_mut() {
        let started = statuses.iter().rposition(|s| {
            ran(s)
                || before
                    .into_iter()
                    .flatten()
                    .any(|o| o.name == s.name && ran(o))
        });
        for s in statuses.iter_mut().take(started.map_or(1, |i| i + 1)) {
            end(s, before);
        }
    }
    if !matches!(new.phase.as_deref(), Some(SUCCEEDED | FAILED)) {
        new.phase = Some(FAILED.to_string());
    }
    new
}

/// Whether the pod ever got past its init containers (kubelet's
/// hasPodInitialized), by what this status and the one before say: it has
/// none, a regular container has run, or the last init container
/// completed (a sidecar: started).
fn initialized(new: &PodStatus, old: Option<&PodStatus>, init: &[Container]) -> bool {
    let Some(last) = init.last() else {
        return true;
    };
    let both = |f: fn(&PodStatus) -> Option<&Vec<ContainerStatus>>| {
        f(new)
            .into_iter()
            .chain(old.and_then(f))
            .flatten()
            .collect::<Vec<_>>()
    };
    let ran = both(|s| s.container_statuses.as_ref())
        .into_iter()
        .any(|s| {
            s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
                || s.state.as_ref().is_some_and(|st| st.waiting.is_none())
        });
    ran || both(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .filter(|s| s.name == last.name)
        .any(|s| {
            if restartable(last) {
                s.started == Some(true)
            } else {
                s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0)
            }
        })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Regular,
    /// A regular init container: runs to completion before the next.
    Init,
    /// An init container with restartPolicy Always (a native sidecar).
    Sidecar,
}

fn restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// A container the runtime knows. Started and ready are the probe
/// manager's: started once running without a startup probe or after it
/// passed; ready only then, or for an init container that exited 0.
fn observed_status(c: &Container, o: &ContainerObserved, kind: Kind) -> ContainerStatus {
    let running = matches!(o.state, State::Running { .. });
    let started = running && o.started.unwrap_or(true);
    let ready = match kind {
        Kind::Init => matches!(o.state, State::Terminated { exit_code: 0, .. }),
        Kind::Regular | Kind::Sidecar => started && o.ready,
    };
    let image = if o.image.is_empty() {
        c.image.clone().unwrap_or_default()
    } else {
        o.image.clone()
    };
    ContainerStatus {
        name: c.name.clone(),
        image,
        image_id: o.image_id.clone(),
        container_id: o.container_id.clone(),
        state: Some(api_state(&o.state, o.container_id.as_deref())),
        // kubelet's lastTerminationState is a struct: `{}` when empty.
        last_state: Some(
            o.last_state
                .as_ref()
                .map(|s| api_state(s, None))
                .unwrap_or_default(),
        ),
        ready,
        restart_count: o.restart_count,
        started: Some(started),
        ..ContainerStatus::default()
    }
}

/// A container the runtime does not know (not made yet, or removed):
/// kubelet keeps a terminated status it wrote before, else shows it waiting
/// ("PodInitializing" in a pod with init containers, "ContainerCreating")
/// with the old restart count and last state.
fn unseen_status(
    c: &Container,
    old: Option<&ContainerStatus>,
    kind: Kind,
    has_init: bool,
    deleting: bool,
) -> ContainerStatus {
    let old_state = old.and_then(|o| o.state.as_ref());
    if let (
        Some(old),
        Some(ContainerState {
            terminated: Some(t),
            ..
        }),
    ) = (old, old_state)
    {
        return ContainerStatus {
            ready: kind == Kind::Init && t.exit_code == 0,
            started: Some(false),
            ..old.clone()
        };
    }
    let reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        state: Some(waiting(reason, None)),
        last_state: Some(old.and_then(|o| o.last_state.clone()).unwrap_or_default()),
        restart_count: old.map_or(0, |o| o.restart_count),
        ready: false,
        started: Some(false),
        ..ContainerStatus::default()
    };
    // It ran and vanished without an exit: kubelet records an unknown
    // termination so the pod does not fall back to Pending.
    let was_running = old_state.is_some_and(|s| s.running.is_some());
    let has_termination = status
        .last_state
        .as_ref()
        .is_some_and(|s| s.terminated.is_some());
    if was_running && !has_termination {
        status.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some("ContainerStatusUnknown".to_string()),
                message: Some(
                    "The container could not be located when the pod was deleted.  The container used to be Running"
                        .to_string(),
                ),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        });
        if !deleting {
            status.restart_count += 1;
        }
    }
    status
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: (!reason.is_empty()).then(|| reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn api_state(state: &State, container_id: Option<&str>) -> ContainerState {
    match state {
        State::Waiting { reason, message } => waiting(reason, message.clone()),
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(to_time(*started_at)),
            }),
            ..ContainerState::default()
        },
        State::Terminated {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
            container_id: id,
            ..
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: (!reason.is_empty()).then(|| reason.clone()),
                message: message.clone(),
                started_at: started_at.map(to_time),
                finished_at: Some(to_time(*finished_at)),
                container_id: id.clone().or_else(|| container_id.map(str::to_string)),
                signal: None,
            }),
            ..ContainerState::default()
        },
    }
}

/// kubelet's container back-off before restarting a container that just
/// exited. `restart_count` is how many times it was restarted since its
/// back-off was last forgotten (the status's restartCount, unless it once
/// ran `last_run` > 10 min); `last_run` how long the run that just ended
/// lasted. The first exit restarts at once (kubelet only opens the 10 s
/// window then), later ones wait 10 s, 20 s, … up to 5 min; a run longer
/// than 10 min forgets the back-off (restart at once, the caller starts
/// counting again).
pub fn backoff(restart_count: i32, last_run: Duration) -> Duration {
    if restart_count <= 0 || last_run > BACKOFF_RESET {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(restart_count - 1).unwrap_or(u32::MAX).min(16);
    (BACKOFF_INITIAL * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

/// Whether a container that exited with `exit_code` is restarted: never
/// while the pod is being deleted; a sidecar (init container with
/// restartPolicy Always) always; a regular init container only after a
/// failure and unless the pod's policy is Never; a container by the pod's
/// restartPolicy (Always, OnFailure: after a failure, Never).
pub fn should_restart(pod: &Pod, container: &Container, init: bool, exit_code: i32) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    match (init, restartable(container)) {
        (true, true) => true,
        (true, false) => exit_code != 0 && policy != "Never",
        (false, _) => match policy {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            _ => true,
        },
    }
}

/// kubelet's CrashLoopBackOff waiting message:
/// "back-off 10s restarting failed container=<c> pod=<pod>_<ns>(<uid>)".
pub fn crash_loop_message(pod: &Pod, container: &str, delay: Duration) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={}",
        go_duration(delay),
        super::spec::pod_desc(pod)
    )
}

/// Go's time.Duration.String(): "10s", "5m0s", "1h0m0s", "1.5s", "500ms".
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = match nanos {
            n if n < 1_000 => ("ns", 1),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let seconds = decimal(
        u128::from(s) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `n / scale` with its fraction, trailing zeros dropped.
fn decimal(n: u128, scale: u128) -> String {
    let (whole, frac) = (n / scale, n % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
