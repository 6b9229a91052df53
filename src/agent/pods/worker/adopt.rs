//! Taking over what an earlier agent left of a pod (after a restart or a
//! crash of the agent or the whole server).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;

use super::{containers, pod_key, spec, status, Slot, State, Worker};
use crate::runtime::pod::{ContainerState, ContainerStatus, PodRuntime};

impl<R: PodRuntime> Worker<R> {
    /// Take over what an earlier agent (before a restart or a crash) left
    /// of this pod: its sandbox, and its containers as they are — running
    /// ones go on running, with their restart counts. Without its sandbox
    /// nothing can be joined again and what is left goes, unless the pod
    /// had finished (it gave its sandbox back and keeps its containers). A
    /// pod that had finished is not run again.
    pub(super) async fn adopt(&mut self, pod: &Pod) {
        let name = spec::sandbox_name(pod);
        let sandbox = match self.ctx.runtime.sandbox_status(&name).await {
            Ok(sb) => sb,
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), "looking for the pod's sandbox: {e}");
                None
            }
        };
        let labels = BTreeMap::from([(spec::LABEL_POD_UID.to_string(), self.uid.clone())]);
        let found = self
            .ctx
            .runtime
            .list_containers(labels)
            .await
            .unwrap_or_default();
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some(status::SUCCEEDED | status::FAILED)
        );
        match sandbox {
            Some(sb) => self.sandbox = Some((name, self.sandbox_ip(&sb))),
            None if terminal => self.finished = true,
            None => {
                for c in &found {
                    if let Err(e) = self.ctx.runtime.remove_container(&c.id).await {
                        tracing::warn!("removing container {}: {e}", c.id);
                    }
                }
                return;
            }
        }
        self.started_at = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0))
            .or(Some(Utc::now()));
        let reported: HashMap<String, (i32, bool)> = pod
            .status
            .iter()
            .flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            })
            .map(|c| (c.name.clone(), (c.restart_count, c.ready)))
            .collect();
        let mut by_name: BTreeMap<String, Vec<(u32, ContainerStatus)>> = BTreeMap::new();
        for c in found {
            let Some(cname) = c.labels.get(spec::LABEL_CONTAINER_NAME).cloned() else {
                continue;
            };
            let attempt = c
                .labels
                .get(spec::LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            by_name.entry(cname).or_default().push((attempt, c));
        }
        for (cname, mut instances) in by_name {
            instances.sort_by_key(|i| std::cmp::Reverse(i.0));
            let mut instances = instances.into_iter();
            let Some((attempt, current)) = instances.next() else {
                continue;
            };
            let previous = instances.next();
            for (_, older) in instances {
                let _ = self.ctx.runtime.remove_container(&older.id).await;
            }
            let mut slot = Slot::new();
            if current.state == ContainerState::Created {
                // Never started: made again under the same attempt.
                let _ = self.ctx.runtime.remove_container(&current.id).await;
                slot.attempt = attempt;
            } else {
                slot.id = Some(current.id.clone());
                slot.image = current.image.clone();
                slot.attempt = attempt + 1;
                slot.state = as_state(&current);
                if let State::Terminated {
                    exit_code, message, ..
                } = &mut slot.state
                {
                    *message = self.termination_message(pod, &cname, attempt, *exit_code);
                }
                if slot.running() {
                    slot.started = Some(Instant::now());
                    self.exits
                        .push(self.ctx.runtime.exits(vec![current.id.clone()]));
                }
            }
            slot.restart_count = reported
                .get(&cname)
                .map(|r| r.0)
                .unwrap_or(i32::try_from(attempt).unwrap_or(0));
            if let Some((_, prev)) = previous {
                slot.last_state = Some(as_state(&prev));
                slot.previous = Some(prev.id);
            }
            let running = slot.running().then(|| current.id.clone());
            self.slots.insert(cname.clone(), slot);
            // Probes go on; the readiness reported before holds until
            // they say otherwise (as kubelet keeps it across a restart).
            let (init, main) = containers(pod);
            let spec = main.iter().chain(init).find(|c| c.name == cname).cloned();
            if let (Some(id), Some(c)) = (running, spec) {
                let ready = reported.get(&cname).is_some_and(|r| r.1);
                self.begin_probing(pod, &c, &id, Some(ready));
            }
        }
        // A container ran: the pod was initialized.
        let (_, main) = containers(pod);
        self.initialized = main
            .iter()
            .any(|c| self.slots.get(&c.name).is_some_and(|s| s.id.is_some()));
        if terminal && !self.finished {
            self.release(pod).await;
        }
        tracing::info!(pod = %pod_key(pod), containers = self.slots.len(), "adopted the pod");
    }
}

/// A container's record as the status says it.
fn as_state(c: &ContainerStatus) -> State {
    match c.state {
        ContainerState::Running => State::Running {
            started_at: c.started_at.unwrap_or_else(Utc::now),
        },
        _ => {
            let code = c.exit_code.unwrap_or(255);
            State::Terminated {
                exit_code: code,
                signal: None,
                reason: status::terminated_reason(code, c.oom_killed).to_string(),
                message: None,
                started_at: c.started_at,
                finished_at: c.finished_at.unwrap_or_else(Utc::now),
                container_id: Some(format!("skiff://{}", c.id)),
            }
        }
    }
}
