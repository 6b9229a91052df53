//! Probes and the postStart hook, as kubelet's prober workers run them:
//! per running container a startup probe gates liveness and readiness;
//! readiness decides `ready`; a startup or liveness probe that fails
//! failureThreshold times in a row has the container killed (its preStop
//! hook first), and its restartPolicy decides what follows. Each probe runs
//! as its own task and reports back on the worker's channel, so a slow
//! probe holds up nothing else.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use tokio::sync::mpsc;

use super::{containers, pod_key, Worker};
use crate::agent::pods::probe::{self, Action, Outcome, Target};
use crate::events::{NORMAL, WARNING};
use crate::runtime::pod::PodRuntime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
    PostStart,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::PostStart => "PostStart",
        }
    }
}

/// A probe's (or the hook's) result, for one instance of a container.
pub struct ProbeResult {
    container: String,
    instance: String,
    kind: Kind,
    outcome: Outcome,
}

pub type ResultTx = mpsc::UnboundedSender<ProbeResult>;
pub type ResultRx = mpsc::UnboundedReceiver<ProbeResult>;

struct Prober {
    kind: Kind,
    probe: Probe,
    next: Instant,
    successes: i32,
    failures: i32,
    in_flight: bool,
}

impl Prober {
    fn new(kind: Kind, probe: &Probe, started: Instant) -> Prober {
        let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
        Prober {
            kind,
            probe: probe.clone(),
            next: started + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            in_flight: false,
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.probe.timeout_seconds.unwrap_or(1).max(1) as u64)
    }
}

/// The probing of one running instance of a container.
pub struct Probing {
    instance: String,
    /// The startup probe has passed (or there is none).
    pub started: bool,
    /// The readiness probe's verdict (true without one).
    pub ready: bool,
    /// postStart has not finished: the container does not count as started.
    post_start_pending: bool,
    probers: Vec<Prober>,
}

impl Probing {
    /// `ready`: what an adopted container was reported as (None: new).
    pub fn new(instance: &str, c: &Container, ready: Option<bool>) -> Probing {
        let now = Instant::now();
        let mut probers = Vec::new();
        let adopted = ready.is_some();
        if let Some(p) = c.startup_probe.as_ref().filter(|_| !adopted) {
            probers.push(Prober::new(Kind::Startup, p, now));
        }
        if let Some(p) = &c.liveness_probe {
            probers.push(Prober::new(Kind::Liveness, p, now));
        }
        if let Some(p) = &c.readiness_probe {
            probers.push(Prober::new(Kind::Readiness, p, now));
        }
        Probing {
            instance: instance.to_string(),
            started: adopted || c.startup_probe.is_none(),
            ready: ready.unwrap_or(c.readiness_probe.is_none()),
            post_start_pending: false,
            probers,
        }
    }

    /// The startup probe runs until it first succeeds, and only then do
    /// the others begin (upstream's prober stops at `Started`).
    fn may_run(&self, kind: Kind) -> bool {
        !self.post_start_pending && ((kind == Kind::Startup) != self.started)
    }

    /// When the next probe is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.probers
            .iter()
            .filter(|p| !p.in_flight && self.may_run(p.kind))
            .map(|p| p.next)
            .min()
    }

    pub fn counts_as_started(&self) -> bool {
        self.started && !self.post_start_pending
    }
}

/// Where probes of `pod`'s containers go: its address (the node's for a
/// host-network pod, whose sandbox has the node's).
fn target_ip<R: PodRuntime>(w: &Worker<R>) -> Option<std::net::IpAddr> {
    w.sandbox.as_ref().map(|(_, ip)| *ip)
}

fn find<'p>(pod: &'p Pod, name: &str) -> Option<&'p Container> {
    let (init, main) = containers(pod);
    main.iter().chain(init).find(|c| c.name == name)
}

impl<R: PodRuntime> Worker<R> {
    /// A container instance began running: set up its probing, and run its
    /// postStart hook.
    pub(super) fn begin_probing(
        &mut self,
        pod: &Pod,
        c: &Container,
        id: &str,
        ready: Option<bool>,
    ) {
        let mut probing = Probing::new(id, c, ready);
        let hook = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
            .filter(|_| ready.is_none());
        if let Some(hook) = hook {
            probing.post_start_pending = true;
            self.run_hook(pod, c, id, Kind::PostStart, hook);
        }
        self.slot(&c.name).probing = Some(probing);
    }

    fn run_hook(&self, pod: &Pod, c: &Container, id: &str, kind: Kind, hook: &LifecycleHandler) {
        let action = target_ip(self)
            .ok_or_else(|| "the pod has no address".to_string())
            .and_then(|ip| {
                probe::of_hook(
                    &Target {
                        pod_ip: ip,
                        container: c,
                    },
                    hook,
                )
            });
        // kubelet gives postStart no timeout of its own; the pod's grace
        // period bounds it here so that a hung hook cannot hold the
        // container forever.
        let timeout =
            Duration::from_secs(grace_seconds(pod, None) as u64).max(Duration::from_secs(30));
        self.spawn_probe(c.name.clone(), id.to_string(), kind, action, timeout);
    }

    fn spawn_probe(
        &self,
        container: String,
        instance: String,
        kind: Kind,
        action: Result<Action, String>,
        timeout: Duration,
    ) {
        let ctx = self.ctx.clone();
        let tx = self.probe_tx.clone();
        tokio::spawn(async move {
            let outcome = match action {
                Ok(a) => probe::run(&ctx.runtime, &instance, &a, timeout).await,
                Err(e) => Outcome::Failure(e),
            };
            let _ = tx.send(ProbeResult {
                container,
                instance,
                kind,
                outcome,
            });
        });
    }

    /// Start every probe that is due.
    pub(super) fn run_due_probes(&mut self) {
        let Some(pod) = self.pod.clone() else { return };
        let Some(ip) = target_ip(self) else { return };
        let now = Instant::now();
        let mut due = Vec::new();
        for (name, slot) in &mut self.slots {
            if !slot.running() {
                continue;
            }
            let Some(p) = slot.probing.as_mut() else {
                continue;
            };
            let gate: Vec<bool> = p.probers.iter().map(|pr| p.may_run(pr.kind)).collect();
            for (pr, may) in p.probers.iter_mut().zip(gate) {
                if may && !pr.in_flight && pr.next <= now {
                    pr.in_flight = true;
                    due.push((
                        name.clone(),
                        p.instance.clone(),
                        pr.kind,
                        pr.probe.clone(),
                        pr.timeout(),
                    ));
                }
            }
        }
        for (name, instance, kind, p, timeout) in due {
            let Some(c) = find(&pod, &name) else { continue };
            let action = probe::of_probe(
                &Target {
                    pod_ip: ip,
                    container: c,
                },
                &p,
            );
            self.spawn_probe(name, instance, kind, action, timeout);
        }
    }

    /// The earliest time a probe is due.
    pub(super) fn next_probe(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter(|s| s.running())
            .filter_map(|s| s.probing.as_ref())
            .filter_map(Probing::next_due)
            .min()
    }

    /// A probe (or the postStart hook) finished.
    pub(super) async fn probed(&mut self, r: ProbeResult) {
        let Some(pod) = self.pod.clone() else { return };
        let key = pod_key(&pod);
        let Some(slot) = self.slots.get_mut(&r.container) else {
            return;
        };
        let Some(p) = slot.probing.as_mut().filter(|p| p.instance == r.instance) else {
            return;
        };
        if r.kind == Kind::PostStart {
            p.post_start_pending = false;
            if let Outcome::Failure(message) = r.outcome {
                tracing::info!(pod = %key, container = %r.container, "FailedPostStartHook: {message}");
                self.ctx.events.pod(
                    &pod,
                    Some(&r.container),
                    WARNING,
                    "FailedPostStartHook",
                    format!("PostStartHook failed: {message}"),
                );
                let Some(slot) = self.slots.get_mut(&r.container) else {
                    return;
                };
                slot.probing = None;
                self.kill(&pod, &r.container, &r.instance, None);
            }
            self.write_status().await;
            return;
        }
        let Some(pr) = p.probers.iter_mut().find(|pr| pr.kind == r.kind) else {
            return;
        };
        pr.in_flight = false;
        pr.next = Instant::now() + pr.period();
        if r.kind == Kind::Startup && p.started {
            // A result that was in flight when the container counted as
            // started (adopted, or an earlier success) decides nothing.
            return;
        }
        let success_threshold = pr.probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = pr.probe.failure_threshold.unwrap_or(3).max(1);
        let mut kill = None;
        match r.outcome {
            Outcome::Success => {
                pr.failures = 0;
                pr.successes += 1;
                match r.kind {
                    Kind::Startup => p.started = true,
                    Kind::Readiness if pr.successes >= success_threshold => p.ready = true,
                    _ => {}
                }
            }
            Outcome::Failure(message) => {
                pr.successes = 0;
                pr.failures += 1;
                tracing::info!(
                    pod = %key,
                    container = %r.container,
                    "Unhealthy: {} probe failed: {message}",
                    r.kind.name()
                );
                self.ctx.events.pod(
                    &pod,
                    Some(&r.container),
                    WARNING,
                    "Unhealthy",
                    format!("{} probe failed: {message}", r.kind.name()),
                );
                if pr.failures >= failure_threshold {
                    match r.kind {
                        Kind::Readiness => p.ready = false,
                        Kind::Startup | Kind::Liveness => {
                            pr.failures = 0;
                            kill = Some(pr.probe.termination_grace_period_seconds);
                        }
                        Kind::PostStart => {}
                    }
                }
            }
        }
        if let Some(probe_grace) = kill {
            let message = format!(
                "Container {} failed {} probe, will be restarted",
                r.container,
                r.kind.name().to_lowercase()
            );
            tracing::info!(pod = %key, container = %r.container, "Killing: {message}");
            self.ctx
                .events
                .pod(&pod, Some(&r.container), NORMAL, "Killing", message);
            let Some(slot) = self.slots.get_mut(&r.container) else {
                return;
            };
            slot.probing = None;
            self.kill(&pod, &r.container, &r.instance, probe_grace);
        }
        self.write_status().await;
    }

    /// Stop one instance of a container (its preStop hook first) without
    /// waiting here: its exit arrives on the exit stream as any other.
    pub(super) fn kill(&self, pod: &Pod, name: &str, id: &str, probe_grace: Option<i64>) {
        let grace = Duration::from_secs(grace_seconds(pod, probe_grace) as u64);
        let pre_stop = find(pod, name).and_then(|c| {
            let hook = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
            let ip = target_ip(self)?;
            probe::of_hook(
                &Target {
                    pod_ip: ip,
                    container: c,
                },
                hook,
            )
            .ok()
        });
        let ctx = self.ctx.clone();
        let id = id.to_string();
        let (pod, name) = (pod.clone(), name.to_string());
        tokio::spawn(async move {
            let (left, failed) = run_pre_stop(&ctx.runtime, &id, pre_stop.as_ref(), grace).await;
            if let Some(m) = failed {
                ctx.events
                    .pod(&pod, Some(&name), WARNING, "FailedPreStopHook", m);
            }
            if let Err(e) = ctx.runtime.stop_container(&id, left).await {
                tracing::warn!(container = %id, "stopping the container: {e}");
            }
        });
    }
}

/// Run a preStop hook within `grace`; the time left for the stop signal
/// (kubelet gives at least 2 s more after a hook that used it all), and
/// the hook's failure (kubelet's FailedPreStopHook message).
pub async fn run_pre_stop<R: PodRuntime>(
    runtime: &R,
    id: &str,
    hook: Option<&Action>,
    grace: Duration,
) -> (Duration, Option<String>) {
    let Some(hook) = hook else {
        return (grace, None);
    };
    let began = Instant::now();
    let failed = match probe::run(runtime, id, hook, grace).await {
        Outcome::Failure(m) => {
            tracing::info!(container = %id, "FailedPreStopHook: {m}");
            Some(format!("PreStopHook failed: {m}"))
        }
        Outcome::Success => None,
    };
    (
        grace
            .saturating_sub(began.elapsed())
            .max(Duration::from_secs(2)),
        failed,
    )
}

/// The grace period of a kill: the probe's own, else the pod's.
fn grace_seconds(pod: &Pod, probe: Option<i64>) -> i64 {
    probe
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ExecAction;

    fn probe() -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_startup_probe_stops_once_started_and_gates_the_others() {
        let c = Container {
            name: "c".into(),
            startup_probe: Some(probe()),
            liveness_probe: Some(probe()),
            readiness_probe: Some(probe()),
            ..Default::default()
        };
        let mut p = Probing::new("id", &c, None);
        assert!(p.may_run(Kind::Startup));
        assert!(!p.may_run(Kind::Liveness) && !p.may_run(Kind::Readiness));
        p.started = true;
        assert!(
            !p.may_run(Kind::Startup),
            "a started container is not startup-probed again"
        );
        assert!(p.may_run(Kind::Liveness) && p.may_run(Kind::Readiness));
        // Only the liveness and readiness probers are due from now on.
        let due = p.probers.iter().filter(|pr| p.may_run(pr.kind)).count();
        assert_eq!(due, 2);
    }
}
