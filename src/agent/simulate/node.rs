//! A simulated Node, kept as kubelet keeps its own: registered once, its
//! Lease renewed every 10 s (node/lease.rs, shared with the real agent),
//! its status — a fixed capacity, Ready, the node's address — written at
//! registration and then every five minutes, or at once when the stored
//! Node says otherwise (the node lifecycle controller marked it Unknown).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeSystemInfo, Taint};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::agent::node::lease::LeaseKeeper;
use crate::net::cidr::Ipv4Cidr;

/// kubelet's `nodeStatusUpdateFrequency` / Lease renewal, and its
/// `nodeStatusReportFrequency`.
const HEARTBEAT: Duration = Duration::from_secs(10);
const REPORT_EVERY: Duration = Duration::from_secs(300);
const MAX_RETRY: Duration = Duration::from_secs(7);
pub const FIELD_MANAGER: &str = "skiff-agent-simulated";

/// What every simulated node reports: a small real node's size.
const CAPACITY: [(&str, &str); 4] = [
    ("cpu", "4"),
    ("memory", "8Gi"),
    ("pods", "110"),
    ("ephemeral-storage", "50Gi"),
];

/// One simulated node: its name, credentials and what it learnt.
pub struct SimNode {
    pub name: String,
    /// Authenticated as `system:node:<name>`.
    pub client: kube::Client,
    pub ip: IpAddr,
    /// Set once registered: the pod subnet the server gave it (None: the
    /// cluster CIDR has none left for it).
    pub pod_cidr: OnceLock<Option<Ipv4Cidr>>,
    /// The stored Node disagrees with what was reported: report again.
    pub report_now: AtomicBool,
}

impl SimNode {
    pub fn new(name: String, client: kube::Client, ip: IpAddr) -> SimNode {
        SimNode {
            name,
            client,
            ip,
            pod_cidr: OnceLock::new(),
            report_now: AtomicBool::new(false),
        }
    }
}

/// What all simulated nodes share.
pub struct Spec {
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    kubelet_port: u16,
    info: NodeSystemInfo,
}

impl Spec {
    pub fn new(labels: BTreeMap<String, String>, taints: Vec<Taint>, kubelet_port: u16) -> Spec {
        Spec {
            labels,
            taints,
            kubelet_port,
            info: crate::agent::node::host::node_info(
                env!("CARGO_PKG_VERSION"),
                crate::server::apiserver::discovery::KUBE_GIT_VERSION,
            ),
        }
    }

    /// The labels of node `name`: kubelet's own, then the simulation's.
    fn labels(&self, name: &str) -> BTreeMap<String, String> {
        let arch = self.info.architecture.clone();
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), arch.clone()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("beta.kubernetes.io/arch".to_string(), arch),
            (
                "node.kubernetes.io/instance-type".to_string(),
                "skiff-simulated".to_string(),
            ),
        ]);
        labels.extend(self.labels.clone());
        labels
    }
}

/// The status patch of a Ready simulated node; conditions' transition
/// times are `since` (when this process took the node up).
pub fn status(name: &str, ip: IpAddr, spec: &Spec, since: &str, now: &str) -> serde_json::Value {
    let capacity: BTreeMap<&str, &str> = CAPACITY.into_iter().collect();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": since,
        })
    };
    json!({
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "simulated: no memory pressure"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated: no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "simulated: no PID pressure"),
                condition("Ready", "True", "KubeletReady", "simulated node: its pods are status-only fakes"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": ip.to_string()},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": spec.kubelet_port}},
            "nodeInfo": spec.info,
        }
    })
}

/// Register `node`, then renew its Lease and report its status until
/// `cancel`.
pub async fn keep(node: Arc<SimNode>, spec: Arc<Spec>, cancel: CancellationToken) {
    let api: Api<Node> = Api::all(node.client.clone());
    let mut wait = Duration::from_millis(100);
    let (uid, cidr) = loop {
        match register(&api, &node.name, &spec).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(node = %node.name, "registering the simulated node: {e}; retrying in {wait:?}");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    };
    if cidr.is_none() {
        tracing::warn!(node = %node.name, "registered without a pod CIDR (the cluster CIDR has none left): its fake pods get the node's address");
    }
    let _ = node.pod_cidr.set(cidr);
    let mut lease = LeaseKeeper::new(node.client.clone(), &node.name);
    lease.set_owner(&uid);
    let since = now();
    let mut reported: Option<Instant> = None;
    // Heartbeats spread over the period, as N machines' would be.
    let phase = Duration::from_millis(rand::random::<u64>() % HEARTBEAT.as_millis() as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The Lease at once (as kubelet makes it at start), then at each
    // heartbeat.
    loop {
        if let Err(e) = lease.renew().await {
            tracing::warn!(node = %node.name, "renewing the simulated node's lease: {e}");
        }
        let due = reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY)
            || node.report_now.swap(false, Ordering::Relaxed);
        if due {
            let patch = status(&node.name, node.ip, &spec, &since, &now());
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api
                .patch_status(&node.name, &pp, &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => reported = Some(Instant::now()),
                Err(e) => {
                    tracing::warn!(node = %node.name, "reporting the simulated node's status: {e}")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Create the Node (or bring the labels of the one there up to date): its
/// uid and pod subnet.
async fn register(
    api: &Api<Node>,
    name: &str,
    spec: &Spec,
) -> Result<(String, Option<Ipv4Cidr>), kube::Error> {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": spec.labels(name)},
        "spec": {"taints": (!spec.taints.is_empty()).then_some(&spec.taints)},
    }))
    .map_err(kube::Error::SerdeError)?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let written = match api.create(&pp, &node).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => {
            let patch = json!({"metadata": {"labels": spec.labels(name)}});
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            api.patch(name, &pp, &Patch::Merge(&patch)).await?
        }
        Err(e) => return Err(e),
    };
    let cidr = written
        .spec
        .and_then(|s| s.pod_cidr)
        .and_then(|c| c.parse().ok());
    Ok((written.metadata.uid.unwrap_or_default(), cidr))
}

/// One watch of the simulated Nodes: one whose stored Ready is not True
/// (the node lifecycle controller's Unknown) is reported again at its next
/// heartbeat, as kubelet compares its conditions with the stored ones.
pub async fn follow(
    client: kube::Client,
    nodes: Arc<HashMap<String, Arc<SimNode>>>,
    cancel: CancellationToken,
) {
    let api: Api<Node> = Api::all(client);
    let config = watcher::Config::default().labels(&format!("{}=true", super::SIMULATED_LABEL));
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        let node = match event {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => n,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("watching the simulated nodes: {e}");
                continue;
            }
        };
        let Some(ours) = node.metadata.name.as_deref().and_then(|n| nodes.get(n)) else {
            continue;
        };
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        // Not reported yet at all: its first report is on its way.
        if ready.is_some_and(|r| r != "True") {
            ours.report_now.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_node_reports_ready_with_a_fixed_size() {
        let spec = Spec::new(
            BTreeMap::from([("skiff.io/simulated".to_string(), "true".to_string())]),
            Vec::new(),
            10250,
        );
        let labels = spec.labels("n-sim-0");
        assert_eq!(labels["kubernetes.io/hostname"], "n-sim-0");
        assert_eq!(labels["skiff.io/simulated"], "true");
        let ip = "10.0.0.5".parse().unwrap();
        let v = status(
            "n-sim-0",
            ip,
            &spec,
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:05:00Z",
        );
        let s: k8s_openapi::api::core::v1::NodeStatus =
            serde_json::from_value(v["status"].clone()).unwrap();
        let cap = s.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "4");
        assert_eq!(cap["pods"].0, "110");
        let conds = s.conditions.unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(s.addresses.unwrap()[0].address, "10.0.0.5");
    }
}
