//! Status-only fakes of the pods bound to simulated nodes: they never run
//! a container. A pod bound to one of the nodes is reported Running and
//! Ready (every container "running" since now, none ever started) with an
//! address from its node's pod subnet; a pod marked for deletion is
//! reported stopped and then deleted with grace 0, as kubelet ends a pod
//! once its containers are gone — here at once, since there are none.
//! Pods that run to completion (Jobs) never complete: their fakes run on.
//!
//! One watch of all pods (nodes may list and watch them), kept in the
//! server's controller runtime (an informer and a de-duplicating queue
//! with back-off: the fakes are a controller), filtered here by node; each
//! write goes out with the credentials of the pod's node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::node::{SimNode, FIELD_MANAGER};
use crate::net::cidr::Ipv4Cidr;
use crate::server::controllers::runtime::{self, Action, Change, Informer, Key, Queue};

const WORKERS: usize = 16;
/// Waiting for a node's registration (it tells the pod subnet).
const UNREGISTERED_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("node {0}'s pod subnet has no address left")]
    Full(String),
}

/// Addresses handed out: per node, the offsets in its subnet in use; per
/// pod, which node and offset it holds.
#[derive(Default)]
pub struct Addresses {
    used: HashMap<String, BTreeSet<u32>>,
    held: HashMap<Key, (String, u32)>,
}

impl Addresses {
    /// The address of `pod` on `node` in `cidr`: the one it holds, else
    /// the lowest free one after the gateway.
    pub fn assign(&mut self, pod: &Key, node: &str, cidr: Ipv4Cidr) -> Option<Ipv4Addr> {
        if let Some((n, off)) = self.held.get(pod) {
            if n == node {
                return cidr.nth(*off);
            }
            self.release(pod);
        }
        let used = self.used.entry(node.to_string()).or_default();
        // .0 is the network, .1 the gateway, the last the broadcast.
        let off = (2..cidr.size().saturating_sub(1)).find(|o| !used.contains(o))?;
        used.insert(off);
        self.held.insert(pod.clone(), (node.to_string(), off));
        cidr.nth(off)
    }

    /// Take note of an address a pod already has (reported before this
    /// process started).
    pub fn adopt(&mut self, pod: &Key, node: &str, cidr: Ipv4Cidr, ip: Ipv4Addr) {
        if self.held.contains_key(pod) || !cidr.contains(ip) {
            return;
        }
        let off = u32::from(ip) - u32::from(cidr.network());
        if self.used.entry(node.to_string()).or_default().insert(off) {
            self.held.insert(pod.clone(), (node.to_string(), off));
        }
    }

    pub fn release(&mut self, pod: &Key) {
        if let Some((node, off)) = self.held.remove(pod) {
            if let Some(used) = self.used.get_mut(&node) {
                used.remove(&off);
            }
        }
    }
}

struct Ctx {
    nodes: Arc<HashMap<String, Arc<SimNode>>>,
    pods: Arc<Informer<Pod>>,
    addresses: Mutex<Addresses>,
}

impl Ctx {
    fn addresses(&self) -> std::sync::MutexGuard<'_, Addresses> {
        self.addresses.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Fake the pods of `nodes` until `cancel`, watching through `client`.
pub async fn run(
    client: kube::Client,
    nodes: Arc<HashMap<String, Arc<SimNode>>>,
    cancel: CancellationToken,
) {
    let informer = Arc::new(Informer::<Pod>::default());
    tokio::spawn(informer.clone().run(
        Api::all(client),
        watcher::Config::default(),
        cancel.clone(),
    ));
    let queue = Arc::new(Queue::<Key>::default());
    let (q, ours) = (queue.clone(), nodes.clone());
    informer.on_change(move |c: &Change<'_, Pod>| {
        let Some(pod) = c.latest() else { return };
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if bound.is_some_and(|n| ours.contains_key(n)) {
            q.add(Key::of(pod.as_ref()));
        }
    });
    let ctx = Arc::new(Ctx {
        nodes,
        pods: informer,
        addresses: Mutex::default(),
    });
    runtime::run_workers("simulated pods", queue, WORKERS, cancel, move |key: Key| {
        let c = ctx.clone();
        async move { reconcile(&c, &key).await }
    })
    .await;
}

async fn reconcile(ctx: &Ctx, key: &Key) -> Result<Action, FakeError> {
    let Some(pod) = ctx.pods.get_key(key) else {
        ctx.addresses().release(key);
        return Ok(Action::Done);
    };
    let Some(node) = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .and_then(|n| ctx.nodes.get(n))
    else {
        return Ok(Action::Done);
    };
    let Some(cidr) = node.pod_cidr.get().copied() else {
        return Ok(Action::After(UNREGISTERED_RETRY));
    };
    let api: Api<Pod> = Api::namespaced(node.client.clone(), &key.namespace);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    if pod.metadata.deletion_timestamp.is_some() {
        if phase(&pod) != Some("Succeeded") {
            let stopped = stopped_status(&pod, &now());
            match api
                .patch_status(&key.name, &pp, &Patch::Merge(&stopped))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.reason == "NotFound" => return Ok(Action::Done),
                Err(e) => return Err(e.into()),
            }
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&key.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.reason == "NotFound" || s.reason == "Conflict" => {}
            Err(e) => return Err(e.into()),
        }
        ctx.addresses().release(key);
        return Ok(Action::Done);
    }
    if matches!(phase(&pod), Some("Succeeded" | "Failed")) {
        return Ok(Action::Done);
    }
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    if let Some(ip) = reported_ip(&pod) {
        if let (IpAddr::V4(v4), Some(cidr), false) = (ip, cidr, host_network) {
            ctx.addresses().adopt(key, &node.name, cidr, v4);
        }
        return Ok(Action::Done);
    }
    let ip = match (cidr, host_network) {
        (Some(cidr), false) => IpAddr::V4(
            ctx.addresses()
                .assign(key, &node.name, cidr)
                .ok_or_else(|| FakeError::Full(node.name.clone()))?,
        ),
        _ => node.ip,
    };
    let running = running_status(&pod, node.ip, ip, &now());
    match api
        .patch_status(&key.name, &pp, &Patch::Merge(&running))
        .await
    {
        Ok(_) => Ok(Action::Done),
        Err(kube::Error::Api(s)) if s.reason == "NotFound" => {
            ctx.addresses().release(key);
            Ok(Action::Done)
        }
        Err(e) => Err(e.into()),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// The address a fake already reported: a Running pod with its Ready
/// condition and an IP.
fn reported_ip(pod: &Pod) -> Option<IpAddr> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if status.phase.as_deref() != Some("Running") || !ready {
        return None;
    }
    status.pod_ip.as_deref()?.parse().ok()
}

/// The pod's conditions with `ours` set (by type), the others it has
/// (PodScheduled, readiness gates' …) kept.
fn conditions(pod: &Pod, ours: &[(&str, &str)], now: &str) -> Vec<Value> {
    let mut by_type: BTreeMap<String, Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.type_.clone(), serde_json::to_value(c).ok()?)))
        .collect();
    for (t, status) in ours {
        let unchanged = by_type
            .get(*t)
            .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some(status));
        if !unchanged {
            by_type.insert(
                t.to_string(),
                json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": now}),
            );
        }
    }
    by_type.into_values().collect()
}

fn container_names(pod: &Pod, init: bool) -> Vec<(String, String)> {
    let spec = pod.spec.as_ref();
    let list = if init {
        spec.and_then(|s| s.init_containers.as_ref())
    } else {
        spec.map(|s| &s.containers)
    };
    list.into_iter()
        .flatten()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

/// A fake container's id: says what it is wherever it is shown.
fn container_id(pod: &Pod, name: &str) -> String {
    format!(
        "simulated://{}/{name}",
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// The status of a pod whose containers "run": Running, Ready, `ip`.
pub fn running_status(pod: &Pod, host_ip: IpAddr, ip: IpAddr, now: &str) -> Value {
    let ready: &[(&str, &str)] = &[
        ("PodReadyToStartContainers", "True"),
        ("Initialized", "True"),
        ("ContainersReady", "True"),
        ("Ready", "True"),
    ];
    let containers: Vec<Value> = container_names(pod, false)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name, "image": image, "imageID": "",
                "containerID": container_id(pod, &name),
                "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let inits: Vec<Value> = container_names(pod, true)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name, "image": image, "imageID": "",
                "containerID": container_id(pod, &name),
                "ready": true, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
            })
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": conditions(pod, ready, now),
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "startTime": now,
        "containerStatuses": containers,
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] = Value::Array(inits);
    }
    json!({ "status": status })
}

/// The status of a pod whose containers were "stopped" for its deletion.
pub fn stopped_status(pod: &Pod, now: &str) -> Value {
    let not_ready: &[(&str, &str)] = &[
        ("PodReadyToStartContainers", "False"),
        ("ContainersReady", "False"),
        ("Ready", "False"),
    ];
    let containers: Vec<Value> = container_names(pod, false)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name, "image": image, "imageID": "",
                "containerID": container_id(pod, &name),
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Succeeded",
        "conditions": conditions(pod, not_ready, now),
        "containerStatuses": containers,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d", "uid": "u1"},
            "spec": {
                "nodeName": "n-sim-0",
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "c", "image": "pause"}],
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn addresses_come_from_the_nodes_subnet_and_are_reused() {
        let cidr: Ipv4Cidr = "10.42.3.0/24".parse().unwrap();
        let mut a = Addresses::default();
        let (p1, p2, p3) = (Key::new("d", "a"), Key::new("d", "b"), Key::new("d", "c"));
        assert_eq!(a.assign(&p1, "n", cidr), "10.42.3.2".parse().ok());
        assert_eq!(a.assign(&p2, "n", cidr), "10.42.3.3".parse().ok());
        assert_eq!(a.assign(&p1, "n", cidr), "10.42.3.2".parse().ok());
        a.release(&p1);
        assert_eq!(a.assign(&p3, "n", cidr), "10.42.3.2".parse().ok());
        // Another node's subnet is its own.
        let other: Ipv4Cidr = "10.42.4.0/24".parse().unwrap();
        assert_eq!(a.assign(&p1, "m", other), "10.42.4.2".parse().ok());
        // Adopted addresses are not handed out again.
        a.adopt(
            &Key::new("d", "old"),
            "n",
            cidr,
            "10.42.3.3".parse().unwrap(),
        );
        assert_eq!(
            a.assign(&Key::new("d", "e"), "n", cidr),
            "10.42.3.4".parse().ok()
        );
        // A full subnet says so.
        let tiny: Ipv4Cidr = "10.42.5.0/30".parse().unwrap();
        assert!(a.assign(&Key::new("d", "x"), "t", tiny).is_some());
        assert_eq!(a.assign(&Key::new("d", "y"), "t", tiny), None);
    }

    #[test]
    fn a_fake_reports_running_then_stopped() {
        let scheduled = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let p = pod(scheduled);
        assert_eq!(reported_ip(&p), None);
        let now = "2026-01-01T00:00:05Z";
        let v = running_status(
            &p,
            "192.168.1.5".parse().unwrap(),
            "10.42.3.2".parse().unwrap(),
            now,
        );
        let running = pod(v["status"].clone());
        assert_eq!(reported_ip(&running), "10.42.3.2".parse().ok());
        let st = running.status.as_ref().unwrap();
        assert_eq!(st.host_ip.as_deref(), Some("192.168.1.5"));
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready && cs.state.as_ref().unwrap().running.is_some());
        assert!(cs
            .container_id
            .as_deref()
            .unwrap()
            .starts_with("simulated://u1/"));
        let init = &st.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            0
        );
        let conds = st.conditions.as_ref().unwrap();
        // PodScheduled kept as it was.
        let sched = conds.iter().find(|c| c.type_ == "PodScheduled").unwrap();
        assert_eq!(
            sched.last_transition_time.as_ref().unwrap().0.to_string(),
            "2026-01-01T00:00:00Z"
        );
        assert!(conds
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"));

        let v = stopped_status(&running, "2026-01-01T00:01:00Z");
        let stopped = pod(v["status"].clone());
        assert_eq!(phase(&stopped), Some("Succeeded"));
        assert_eq!(reported_ip(&stopped), None);
        let conds = stopped
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap();
        assert!(conds
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False"));
    }
}
