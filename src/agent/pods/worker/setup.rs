//! What a pod needs before its containers: admission, its cgroup and its
//! sandbox.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::{pod_key, remove_leftovers, retry_after, Worker, REJECTED};
use crate::agent::pods::spec;
use crate::agent::pods::status::{self};
use crate::events::WARNING;
use crate::runtime::pod::{PodRuntime, SandboxConfig};

impl<R: PodRuntime> Worker<R> {
    /// kubelet's admission: a pod that does not fit the node is rejected
    /// (Failed) before anything of it runs; one that runs already (an
    /// earlier agent's) is taken as it is. Static pods are admitted too
    /// (their mirror pod shows a rejection), but not against taints.
    pub(super) async fn admit(&mut self, pod: &Pod) {
        use crate::agent::pods::admission;
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
    pub(super) async fn set_up_cgroup(&mut self, pod: &Pod) -> bool {
        if self.sandbox_retry.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        // Fixed for the pod's life: a static pod's class is its
        // manifest's, whatever its mirror pod was given by admission.
        let parent = if self.is_static {
            let mut own = pod.clone();
            own.status = None;
            crate::agent::pods::pod_cgroup::parent(&self.ctx.cgroup_root, &own)
        } else {
            crate::agent::pods::pod_cgroup::parent(&self.ctx.cgroup_root, pod)
        };
        // A quantity that does not parse fails the containers' own specs
        // (CreateContainerConfigError); the pod is then left unbounded.
        let limits = crate::agent::pods::pod_cgroup::limits(pod).unwrap_or_default();
        let (at, root, uid) = (parent.clone(), self.ctx.root.clone(), self.uid.clone());
        let made = tokio::task::spawn_blocking(move || {
            // Noted first: what is made is swept even if the agent dies
            // half way.
            crate::agent::pods::pod_cgroup::mark(&root, &uid, &at).map_err(|e| {
                crate::runtime::container::cgroups::CgroupError::Io {
                    path: root.join("agent").join("cgroups"),
                    source: e,
                }
            })?;
            crate::agent::pods::pod_cgroup::set_up(&at, &limits)
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

    pub(super) async fn make_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let name = spec::sandbox_name(pod);
        let hostname = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .or_else(|| pod.metadata.name.clone())
            .map(|h| h.chars().take(63).collect::<String>());
        let host_network = spec::host_network(pod);
        // Pods on the node's network need no subnet; the others wait for
        // the node's (the worker retries the sandbox).
        let cidr = match *self.ctx.pod_cidr.borrow() {
            _ if host_network => None,
            Some(c) => Some(c),
            None => {
                return Err(
                    "the node has no pod CIDR yet (it is not registered, or the cluster CIDR has no subnet left for it)"
                        .into(),
                )
            }
        };
        let config = SandboxConfig {
            name: name.clone(),
            hostname,
            // A host-network pod's servers listen on the node itself.
            ports: if host_network {
                Vec::new()
            } else {
                spec::host_ports(pod).map_err(|e| e.to_string())?
            },
            cidr,
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
    pub(super) fn sandbox_ip(&self, sb: &crate::runtime::sandbox::Sandbox) -> IpAddr {
        if sb.host_network {
            self.ctx.node_ip
        } else {
            IpAddr::V4(sb.ip)
        }
    }
}
