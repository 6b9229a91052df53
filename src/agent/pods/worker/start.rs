//! Starting a container: its image, its spec, its termination message
//! file, and the pull Secrets' logins; and restarting one whose spec
//! changed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::{containers, pod_key, pod_log_dir, retry_after, volumes, Worker};
use crate::agent::pods::spec::{self, SpecContext};
use crate::agent::pods::status::{self, State};
use crate::events::{NORMAL, WARNING};
use crate::runtime::pod::PodRuntime;

impl<R: PodRuntime> Worker<R> {
    /// Bind the container's termination message file (an empty one per
    /// attempt) at its terminationMessagePath.
    pub(super) fn termination_message_mount(
        &self,
        c: &Container,
        attempt: u32,
        s: &mut crate::runtime::container::containerspec::ContainerSpec,
    ) -> Result<(), spec::SpecError> {
        use crate::agent::pods::termination_message as tm;
        use crate::runtime::container::containerspec::{Mount, MountSource};
        let Some(path) = tm::container_path(c) else {
            return Ok(());
        };
        let pod_dir = crate::agent::pods::volumes::pod_dir(&self.ctx.root, &self.uid);
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
    pub(super) fn termination_message(
        &self,
        pod: &Pod,
        name: &str,
        attempt: u32,
        code: i32,
    ) -> Option<String> {
        use crate::agent::pods::termination_message as tm;
        let (init, main) = containers(pod);
        let c = main.iter().chain(init).find(|c| c.name == name)?;
        let pod_dir = crate::agent::pods::volumes::pod_dir(&self.ctx.root, &self.uid);
        let log = self
            .ctx
            .log_root
            .join(pod_log_dir(pod))
            .join(name)
            .join(format!("{attempt}.log"));
        tm::message(c, &tm::host_file(&pod_dir, name, attempt), &log, code)
    }

    /// Start container `c` unless it runs, has finished for good, or waits.
    pub(super) async fn start_if_due(&mut self, pod: &Pod, c: &Container, init: bool) {
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
                    self.step_failed(&c.name, "CreateContainerConfigError", e.to_string());
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
                    self.step_failed(&c.name, "CreateContainerConfigError", e.to_string());
                    return;
                }
            }
        };
        let host_dns = spec::HostDns::read(&self.ctx.resolv_conf);
        let built = spec::container_spec(
            pod,
            c,
            &SpecContext {
                node_name: &self.ctx.node_name,
                cgroup_parent: self.cgroup.as_deref(),
                cgroup_root: &self.ctx.cgroup_root,
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
                cluster_dns: self.ctx.cluster_dns.as_ref(),
                host_dns: host_dns.as_ref(),
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
                self.step_failed(&c.name, "CreateContainerConfigError", e.to_string());
                return;
            }
        };
        let container_logs = log_dir.join(&c.name);
        if let Err(e) = tokio::fs::create_dir_all(&container_logs).await {
            self.step_failed(
                &c.name,
                "CreateContainerError",
                format!("{}: {e}", container_logs.display()),
            );
            return;
        }
        let created = self.ctx.runtime.create_container(&sandbox, spec).await;
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                event(WARNING, "Failed", format!("Error: {e}"));
                self.step_failed(&c.name, "CreateContainerError", e.to_string());
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
    pub(super) fn restart_changed(&mut self, pod: &Pod) {
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

    /// A step of starting container `name` failed: it waits with `reason`
    /// and is tried again after kubelet's back-off for its failures.
    fn step_failed(&mut self, name: &str, reason: &str, message: String) {
        let slot = self.slot(name);
        slot.failures += 1;
        slot.not_before = Some(Instant::now() + retry_after(slot.failures));
        slot.state = State::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
    }
}

/// The logins of the pod's image pull Secrets, first named first. A
/// Secret that cannot be read is kubelet's warning, and the pull goes
/// on without it.
pub(super) async fn pull_logins(
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
