//! A container's end: how it ended, in its slot, and when it may start
//! again.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::{containers, Worker, BACKOFF_RESET};
use crate::agent::pods::spec;
use crate::agent::pods::status::{self, State};
use crate::events::WARNING;
use crate::runtime::container::exits::Exit;
use crate::runtime::pod::PodRuntime;

impl<R: PodRuntime> Worker<R> {
    /// Note that container `name` (runtime id `id`) ended with `code`, as
    /// the runtime recorded it (OOM kill, end time), with its termination
    /// message.
    pub(super) fn mark_terminated(
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

    /// A container exited: record it, and set when it may start again.
    pub(super) async fn exited(
        &mut self,
        id: &str,
        exit: Result<Exit, crate::runtime::pod::PodRuntimeError>,
    ) {
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
