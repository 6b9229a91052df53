//! The pod's status as the worker sees it, written when it says
//! something new (status.rs computes it).

use chrono::Utc;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, Patch, PatchParams};

use super::{containers, pod_key, status, ContainerObserved, PodObserved, State, Worker};
use crate::agent::node::register::FIELD_MANAGER;
use crate::runtime::pod::PodRuntime;

impl<R: PodRuntime> Worker<R> {
    /// Patch the pod's status when it says something new.
    pub(super) async fn write_status(&mut self) {
        self.write_status_as(false).await;
    }

    /// The last status of a deleted pod whose containers were stopped:
    /// terminal, every container ended (kubelet's `TerminatePod`). Not
    /// while a container still runs (its stop failed).
    pub(super) async fn write_final_status(&mut self) {
        if self.slots.values().any(|s| s.running()) {
            self.write_status().await;
        } else {
            self.write_status_as(true).await;
        }
    }

    async fn write_status_as(&mut self, terminated: bool) {
        if !self.write_status_once(terminated).await {
            return;
        }
        // The pod changed since this worker last saw it: read it and write
        // once more over what is stored now (the stop path has no later
        // event to wait for).
        let Some((name, ns)) = self
            .pod
            .as_ref()
            .and_then(|p| Some((p.metadata.name.clone()?, p.metadata.namespace.clone()?)))
        else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        match api.get_opt(&name).await {
            Ok(Some(fresh)) if fresh.metadata.uid.as_deref() == Some(self.uid.as_str()) => {
                self.pod = Some(fresh);
                self.write_status_once(terminated).await;
            }
            _ => {}
        }
    }

    /// One try; true when it was refused because the pod had changed.
    async fn write_status_once(&mut self, terminated: bool) -> bool {
        let Some(pod) = self.pod.clone() else {
            return false;
        };
        let (init, main) = containers(&pod);
        let has_init = !init.is_empty();
        let observe = |c: &Container| -> ContainerObserved {
            let slot = self.slots.get(&c.name);
            ContainerObserved {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: slot.map(|s| s.image_id.clone()).unwrap_or_default(),
                container_id: slot
                    .and_then(|s| s.id.as_ref())
                    .map(|id| format!("skiff://{id}")),
                // As kubelet: PodInitializing whenever the pod has init
                // containers, ContainerCreating otherwise.
                state: slot.map(|s| s.state.clone()).unwrap_or(State::Waiting {
                    reason: if has_init {
                        "PodInitializing".into()
                    } else {
                        "ContainerCreating".into()
                    },
                    message: None,
                }),
                last_state: slot.and_then(|s| s.last_state.clone()),
                restart_count: slot.map_or(0, |s| s.restart_count),
                ready: slot.is_some_and(|s| {
                    s.running()
                        && s.probing
                            .as_ref()
                            .is_none_or(|p| p.ready && p.counts_as_started())
                }),
                started: Some(slot.is_some_and(|s| {
                    s.running() && s.probing.as_ref().is_none_or(|p| p.counts_as_started())
                })),
            }
        };
        let seen = PodObserved {
            sandbox_ready: self.sandbox.is_some(),
            pod_ip: self.sandbox.as_ref().map(|(_, ip)| *ip),
            host_ip: self.ctx.node_ip,
            started_at: self.started_at,
            init: init.iter().map(observe).collect(),
            containers: main.iter().map(observe).collect(),
            initialized: init.iter().all(|c| {
                self.slots.get(&c.name).is_some_and(|s| {
                    if c.restart_policy.as_deref() == Some("Always") {
                        s.running()
                    } else {
                        s.terminated() == Some(0)
                    }
                })
            }),
        };
        let value = match &self.rejected {
            // What kubelet writes of a pod it rejected; the rest stays.
            Some(r) => serde_json::json!({
                "phase": status::FAILED,
                "reason": r.reason,
                "message": format!("{}{}", super::REJECTED, r.message),
            }),
            None => {
                let mut new = status::pod_status(&pod, &seen, Utc::now());
                if terminated {
                    new = status::terminated(new, pod.status.as_ref(), init);
                }
                serde_json::to_value(&new).unwrap_or_default()
            }
        };
        // A static pod's status goes to its mirror pod, once there is one.
        let mirror = self.mirror_uid.clone().filter(|_| self.is_static);
        if self.is_static && mirror.is_none() {
            return false;
        }
        if self
            .written
            .as_ref()
            .is_some_and(|(v, m)| *v == value && *m == mirror)
        {
            return false;
        }
        let (Some(name), Some(ns)) = (
            pod.metadata.name.as_deref(),
            pod.metadata.namespace.as_deref(),
        ) else {
            return false;
        };
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        // Only this pod (for a static pod, that mirror pod): one made
        // since under the same name (a StatefulSet's member after a forced
        // delete, a mirror pod for a newer manifest) is another pod.
        let uid = mirror.clone().unwrap_or_else(|| self.uid.clone());
        let mut patch = serde_json::json!({ "status": value, "metadata": { "uid": uid } });
        // Only over the version this status was computed from: a phase
        // another writer set since (a terminal one, say) is not undone by
        // a worker that has not seen it yet. A conflict is written again
        // once the watch brings the newer pod. (A static pod's mirror is
        // not the object the worker watches.)
        if let (false, Some(rv)) = (self.is_static, pod.metadata.resource_version.as_deref()) {
            patch["metadata"]["resourceVersion"] = serde_json::json!(rv);
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
            Ok(updated) => {
                self.written = Some((value, mirror));
                // Transition times are kept from what is stored now.
                match self.pod.as_mut() {
                    Some(p) if self.is_static => p.status = updated.status,
                    _ => self.pod = Some(updated),
                }
                false
            }
            Err(kube::Error::Api(s)) if s.code == 409 && !self.is_static && !other_uid(&s) => {
                tracing::debug!(pod = %pod_key(&pod), "status not written, the pod changed: {}", s.message);
                true
            }
            // The pod (or the static pod's mirror pod) went, or another
            // took its name (the UID the patch carries no longer matches),
            // or it changed since: the manager tells of what comes next.
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 || other_uid(&s) => {
                tracing::debug!(pod = %pod_key(&pod), "status not written: {}", s.message);
                false
            }
            Err(e) => {
                tracing::warn!(pod = %pod_key(&pod), "writing the pod's status: {e}");
                false
            }
        }
    }
}

/// Whether a refused status patch was refused only for the UID it
/// carries (the pod under that name is another one now).
fn other_uid(s: &kube::core::Status) -> bool {
    let causes = s
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    s.code == 422 && !causes.is_empty() && causes.iter().all(|c| c.field == "metadata.uid")
}

#[cfg(test)]
mod tests {
    use super::other_uid;

    fn status(v: serde_json::Value) -> kube::core::Status {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_a_refusal_for_the_uid_alone_means_another_pod() {
        let uid = status(serde_json::json!({"code": 422, "reason": "Invalid",
            "details": {"causes": [{"field": "metadata.uid", "reason": "FieldValueInvalid"}]}}));
        assert!(other_uid(&uid));
        let other = status(serde_json::json!({"code": 422, "reason": "Invalid",
            "details": {"causes": [{"field": "status.podIP", "reason": "FieldValueInvalid"}]}}));
        assert!(!other_uid(&other));
        let bare = status(serde_json::json!({"code": 422, "reason": "Invalid"}));
        assert!(!other_uid(&bare));
    }
}
