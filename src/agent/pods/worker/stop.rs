//! A pod's end: deleted through the API (stop within the grace period,
//! remove everything, delete the object) or gone from it (stop at once).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use tokio::sync::watch;

use super::{containers, pod_key, pod_log_dir, probing, remove_leftovers, spec, Worker};
use crate::agent::pods::probe::{self, Action, Target};
use crate::agent::pods::volumes;
use crate::events::{NORMAL, WARNING};
use crate::runtime::pod::PodRuntime;

impl<R: PodRuntime> Worker<R> {
    /// The pod is being deleted: stop its containers within the grace
    /// period, remove them and its sandbox, then delete the pod object.
    pub(super) async fn terminate(&mut self, pod_updates: &watch::Receiver<Option<Pod>>) {
        let Some(pod) = self.pod.clone() else { return };
        if !self.adopted {
            // Deleted while no agent ran: what an earlier agent started is
            // taken over first, so that it is stopped with its grace period
            // and ends in the status as it really ended.
            self.adopted = true;
            self.adopt(&pod).await;
        }
        let grace = Duration::from_secs(grace_of(&pod, 30));
        // A later delete may shorten the grace period, or remove the pod
        // at once (`--force`): the containers still running are then
        // killed when the shorter period ends.
        let running: Vec<String> = self
            .slots
            .values()
            .filter(|s| s.running())
            .filter_map(|s| s.id.clone())
            .collect();
        let (ctx, mut updates) = (self.ctx.clone(), pod_updates.clone());
        let shorten = async move {
            let mut current = grace;
            // When what still runs is killed; kubelet counts a shorter
            // period from when it sees it. Updates are still heard while
            // waiting (a `--force` after a shortened delete).
            let mut kill_at: Option<Instant> = None;
            loop {
                let wait = async {
                    match kill_at {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = updates.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let shorter = match &*updates.borrow_and_update() {
                            None => Duration::ZERO,
                            Some(p) => Duration::from_secs(grace_of(p, u64::MAX)),
                        };
                        if shorter < current {
                            current = shorter;
                            let at = Instant::now() + shorter;
                            kill_at = Some(kill_at.map_or(at, |t| t.min(at)));
                        }
                    }
                    () = wait => {
                        kill_at = None;
                        let stops = running
                            .iter()
                            .map(|id| ctx.runtime.stop_container(id, Duration::ZERO));
                        futures::future::join_all(stops).await;
                    }
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = self.stop_all(grace) => {}
            () = shorten => {}
        }
        // The final status is written over the pod as it is now (others
        // may have changed its conditions during the grace period).
        let latest = pod_updates.borrow().clone();
        let gone = latest.is_none();
        if let Some(p) = latest.filter(|p| !super::is_older(p, self.pod.as_ref())) {
            self.pod = Some(p);
        }
        if !self.is_static && !gone {
            // As kubelet (1.27+): the terminal phase is written before the
            // object goes, so that whoever counts it (a Job, a finalizer
            // holder) sees how the pod ended. A static pod's mirror pod
            // is the mirror task's; a pod already gone (forced) has none.
            self.write_final_status().await;
        }
        self.remove_all().await;
        if self.is_static {
            // Its manifest is gone; the mirror pod is the mirror task's.
            return;
        }
        let (Some(name), Some(ns)) = (pod.metadata.name.clone(), pod.metadata.namespace.clone())
        else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod_key(&pod), "deleting the pod: {e}"),
        }
    }

    /// Stop every container (SIGTERM, SIGKILL after `grace`, all at once),
    /// then remove them and the sandbox.
    pub(super) async fn teardown(&mut self, grace: Duration) {
        self.stop_all(grace).await;
        self.remove_all().await;
    }

    /// Stop every running container within `grace` and note how each
    /// ended.
    async fn stop_all(&mut self, grace: Duration) {
        // Each running container's preStop hook first (within the grace
        // period), then its stop signal with what is left of it.
        let ip = self.sandbox.as_ref().map(|(_, ip)| *ip);
        let pod = self.pod.clone();
        let running: Vec<(String, String, Option<Action>)> = self
            .slots
            .iter()
            .filter(|(_, s)| s.running())
            .filter_map(|(name, s)| {
                let hook = pod.as_ref().zip(ip).and_then(|(pod, ip)| {
                    let (init, main) = containers(pod);
                    let c = main.iter().chain(init).find(|c| &c.name == name)?;
                    let h = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
                    probe::of_hook(
                        &Target {
                            pod_ip: ip,
                            container: c,
                        },
                        h,
                    )
                    .ok()
                });
                Some((name.clone(), s.id.clone()?, hook))
            })
            .collect();
        // Upstream's order (KEP-753): the containers first, all at once;
        // once they are gone the native sidecars, the last started first;
        // all within the one grace period.
        let sidecars: Vec<String> = pod
            .as_ref()
            .map(|p| {
                containers(p)
                    .0
                    .iter()
                    .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                    .map(|c| c.name.clone())
                    .rev()
                    .collect()
            })
            .unwrap_or_default();
        let (side, main): (Vec<_>, Vec<_>) = running
            .into_iter()
            .partition(|(name, _, _)| sidecars.contains(name));
        let deadline = std::time::Instant::now() + grace;
        let (runtime, events) = (&self.ctx.runtime, &self.ctx.events);
        let pod = pod.as_ref();
        let stop = |(name, id, hook): (String, String, Option<Action>)| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            async move {
                if let Some(pod) = pod {
                    events.pod(
                        pod,
                        Some(&name),
                        NORMAL,
                        "Killing",
                        format!("Stopping container {name}"),
                    );
                }
                let left = if left.is_zero() {
                    left
                } else {
                    let (left, failed) =
                        probing::run_pre_stop(runtime, &id, hook.as_ref(), left).await;
                    if let (Some(m), Some(pod)) = (failed, pod) {
                        events.pod(pod, Some(&name), WARNING, "FailedPreStopHook", m);
                    }
                    left
                };
                let r = runtime.stop_container(&id, left).await;
                (name, id, r)
            }
        };
        let mut ended = futures::future::join_all(main.into_iter().map(stop)).await;
        for name in &sidecars {
            if let Some(c) = side.iter().find(|(n, _, _)| n == name) {
                ended.push(stop(c.clone()).await);
            }
        }
        for (name, id, r) in ended {
            let Ok(code) = r else { continue };
            // No code from the stop: it had ended by itself just before
            // (its exit not taken in yet); the runtime's record says how.
            let recorded = self.ctx.runtime.container_status(&id).await.ok();
            if let Some(code) = code.or_else(|| recorded.as_ref().and_then(|r| r.exit_code)) {
                self.mark_terminated(&name, &id, code, recorded.as_ref());
            }
        }
    }

    /// Remove the containers, the sandbox, the cgroup, the volumes and the
    /// logs of the pod.
    async fn remove_all(&mut self) {
        let sandbox = self
            .sandbox
            .take()
            .map(|(n, _)| n)
            .or_else(|| self.pod().map(spec::sandbox_name));
        if let Some(name) = sandbox {
            remove_leftovers(&self.ctx, &self.uid, &name).await;
        }
        let cgroup = self.cgroup.take();
        if let Some(pod) = self.pod() {
            // The one made (or noted by an earlier agent), else where it
            // would be.
            let parent = cgroup
                .or_else(|| crate::agent::pods::pod_cgroup::marked(&self.ctx.root, &self.uid))
                .unwrap_or_else(|| {
                    crate::agent::pods::pod_cgroup::parent(&self.ctx.cgroup_root, pod)
                });
            let (root, uid) = (self.ctx.root.clone(), self.uid.clone());
            let removed = tokio::task::spawn_blocking(move || {
                let r = crate::agent::pods::pod_cgroup::tear_down(&parent);
                if r.is_ok() {
                    crate::agent::pods::pod_cgroup::unmark(&root, &uid);
                }
                r
            });
            match removed.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(pod = %pod_key(pod), "removing the pod's cgroup: {e}"),
                Err(e) => tracing::warn!(pod = %pod_key(pod), "removing the pod's cgroup: {e}"),
            }
        }
        self.slots.clear();
        self.volumes = None;
        let (root, uid) = (self.ctx.root.clone(), self.uid.clone());
        match tokio::task::spawn_blocking(move || volumes::tear_down(&root, &uid)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("removing the pod's volumes: {e}"),
            Err(e) => tracing::warn!("removing the pod's volumes: {e}"),
        }
        // The pod's logs go with it, as kubelet removes them.
        if let Some(pod) = self.pod() {
            let dir = self.ctx.log_root.join(pod_log_dir(pod));
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("{}: {e}", dir.display());
                }
            }
        }
    }
}

/// The pod's grace period in seconds: its deletion's, else its spec's,
/// else `default`.
fn grace_of(pod: &Pod, default: u64) -> u64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .map_or(default, |g| g.max(0) as u64)
}
