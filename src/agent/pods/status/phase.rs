//! The phase and the conditions kubelet derives from its container
//! statuses: kubelet_pods.go `getPhase`, status/generate.go.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec,
};

use super::{restartable, FAILED, PENDING, RUNNING, SUCCEEDED};

fn state_of(s: &ContainerStatus) -> ContainerState {
    s.state.clone().unwrap_or_default()
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

/// kubelet's getPhase (1.32, with native sidecars).
pub(super) fn get_phase(
    spec: &PodSpec,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    pod_is_terminal: bool,
) -> String {
    let find = |name: &str| init.iter().chain(regular).find(|s| s.name == name);
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let (mut pending_init, mut failed_init) = (0, 0);
    for c in init_specs.iter().filter(|c| !restartable(c)) {
        let Some(s) = find(&c.name) else {
            pending_init += 1;
            continue;
        };
        let state = state_of(s);
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            failed_init += i32::from(t.exit_code != 0);
        } else if state.waiting.is_some() {
            match last_terminated(s) {
                Some(t) => failed_init += i32::from(t.exit_code != 0),
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in init_specs.iter().filter(|c| restartable(c)) {
        let Some(s) = find(&c.name) else {
            unknown += 1;
            continue;
        };
        let state = state_of(s);
        if state.running.is_some() {
            pending_init += i32::from(s.started != Some(true));
            running += 1;
        } else if state.terminated.is_some()
            || state.waiting.is_some() && last_terminated(s).is_some()
        {
            // A sidecar that stopped does not count towards the phase.
        } else if state.waiting.is_some() {
            pending_init += 1;
            waiting += 1;
        } else {
            pending_init += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(&c.name) else {
            unknown += 1;
            continue;
        };
        let state = state_of(s);
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            succeeded += i32::from(t.exit_code == 0);
        } else if state.waiting.is_some() {
            match last_terminated(s) {
                Some(_) => stopped += 1,
                None => waiting += 1,
            }
        } else {
            unknown += 1;
        }
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_init > 0 && policy == "Never" {
        return FAILED.to_string();
    }
    let phase = if pending_init > 0 && !any_regular_started(spec, regular.iter()) || waiting > 0 {
        PENDING
    } else if running > 0 && unknown == 0 {
        RUNNING
    } else if running == 0 && stopped > 0 && unknown == 0 {
        match (pod_is_terminal, policy) {
            (true, _) if stopped == succeeded => SUCCEEDED,
            (true, _) => FAILED,
            (false, "Always") => RUNNING,
            _ if stopped == succeeded => SUCCEEDED,
            (false, "Never") => FAILED,
            // OnFailure, restarting the ones that failed.
            _ => RUNNING,
        }
    } else {
        PENDING
    };
    phase.to_string()
}

/// kubecontainer.HasAnyRegularContainerStarted: the pod has been
/// initialized before, whatever its sidecars do now.
fn any_regular_started<'s>(
    spec: &PodSpec,
    mut statuses: impl Iterator<Item = &'s ContainerStatus>,
) -> bool {
    statuses.any(|s| {
        spec.containers.iter().any(|c| c.name == s.name)
            && s.state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
    })
}

pub(super) fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..PodCondition::default()
    }
}

/// Go's `%s` of a []string.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// status.GeneratePodInitializedCondition.
pub(super) fn initialized_condition(
    spec: &PodSpec,
    all: &[&ContainerStatus],
    phase: &str,
    initialized: bool,
) -> PodCondition {
    let incomplete: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| {
            all.iter().find(|s| s.name == c.name).is_some_and(|s| {
                if restartable(c) {
                    s.started != Some(true)
                } else {
                    !s.ready
                }
            })
        })
        .map(|c| c.name.as_str())
        .collect();
    if phase == SUCCEEDED {
        return condition("Initialized", true, Some("PodCompleted"), None);
    }
    if any_regular_started(spec, all.iter().copied()) || initialized || incomplete.is_empty() {
        return condition("Initialized", true, None, None);
    }
    let message = format!(
        "containers with incomplete status: {}",
        go_list(&incomplete)
    );
    condition(
        "Initialized",
        false,
        Some("ContainersNotInitialized"),
        Some(message),
    )
}

/// status.GenerateContainersReadyCondition: sidecars and regular containers.
pub(super) fn containers_ready_condition(
    spec: &PodSpec,
    all: &[&ContainerStatus],
    phase: &str,
) -> PodCondition {
    match phase {
        SUCCEEDED => return condition("ContainersReady", false, Some("PodCompleted"), None),
        FAILED => return condition("ContainersReady", false, Some("PodFailed"), None),
        _ => {}
    }
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| restartable(c));
    let unready: Vec<&str> = sidecars
        .chain(&spec.containers)
        .filter(|c| {
            all.iter()
                .find(|s| s.name == c.name)
                .is_some_and(|s| !s.ready)
        })
        .map(|c| c.name.as_str())
        .collect();
    if unready.is_empty() {
        return condition("ContainersReady", true, None, None);
    }
    let message = format!("containers with unready status: {}", go_list(&unready));
    condition(
        "ContainersReady",
        false,
        Some("ContainersNotReady"),
        Some(message),
    )
}

/// status.GeneratePodReadyCondition: ContainersReady, then readiness gates.
pub(super) fn ready_condition(
    spec: &PodSpec,
    conditions: &[PodCondition],
    containers_ready: &PodCondition,
) -> PodCondition {
    if containers_ready.status != "True" {
        return PodCondition {
            type_: "Ready".to_string(),
            ..containers_ready.clone()
        };
    }
    let unready: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter_map(
            |gate| match conditions.iter().find(|c| c.type_ == gate.condition_type) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    gate.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                    gate.condition_type, c.status
                )),
                Some(_) => None,
            },
        )
        .collect();
    if unready.is_empty() {
        return condition("Ready", true, None, None);
    }
    condition(
        "Ready",
        false,
        Some("ReadinessGatesNotReady"),
        Some(unready.join(", ")),
    )
}

#[cfg(test)]
#[path = "phase_tests.rs"]
mod tests;
