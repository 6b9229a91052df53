//! The node agent (skiff's kubelet). It talks to the API only as a client,
//! over TLS with its node credentials (client.rs), also when it runs in the
//! server's process, exactly as a remote agent does.
//!
//! ```text
//! config.rs          flags → AgentConfig (node name, labels, taints, reserved)
//! client.rs          kube::Client from the agent's kubeconfig
//! node/host.rs       capacity, allocatable, node info, pressure, conditions
//! node/register.rs   the Node object and its status
//! node/lease.rs      the Lease in kube-node-lease, renewed every 10 s
//! pods/manager.rs    this node's pods (list + watch), a worker each
//! pods/worker.rs     one pod: sandbox, images, containers, restarts, status, deletion
//! pods/spec.rs       a pod's container → the engine's ContainerSpec (pure)
//! pods/status.rs     what the pod's status says (pure)
//! pods/images.rs     imagePullPolicy over the node's image store
//! ```
//!
//! Start-up is a linear recipe (as k3s's agent): client → register the
//! Node → pod workers → heartbeat loop.

pub mod client;
pub mod config;
pub mod events;
pub mod node;
pub mod pods;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::config::AgentConfig;
use self::node::lease::LeaseKeeper;
use self::node::register::NodeKeeper;

/// kubelet's `nodeStatusUpdateFrequency`, and the Lease's renewal (a
/// quarter of its duration).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Registration retries back off up to kubelet's 7 s.
const MAX_RETRY: Duration = Duration::from_secs(7);

/// The API's address as in-cluster clients find it, from the `kubernetes`
/// Service (nothing when it cannot be read: clients then need a config).
async fn service_env(client: &kube::Client) -> std::collections::BTreeMap<String, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client.clone(), "default");
    let mut env = std::collections::BTreeMap::new();
    match api.get("kubernetes").await {
        Ok(svc) => {
            let spec = svc.spec.unwrap_or_default();
            let port = spec
                .ports
                .unwrap_or_default()
                .first()
                .map(|p| p.port)
                .unwrap_or(443);
            if let Some(ip) = spec.cluster_ip {
                env.insert("KUBERNETES_SERVICE_HOST".to_string(), ip);
                env.insert("KUBERNETES_SERVICE_PORT".to_string(), port.to_string());
                env.insert(
                    "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                    port.to_string(),
                );
            }
        }
        Err(e) => tracing::warn!("reading the kubernetes Service: {e}"),
    }
    env
}

/// Run the agent until `cancel`; `registered` is called once the Node
/// exists.
pub async fn run(
    config: AgentConfig,
    cancel: CancellationToken,
    registered: impl FnOnce(),
) -> anyhow::Result<()> {
    let node_name = config.node_name.clone();
    // What the start needs from the host can fail for a while (out of
    // descriptors, a file being replaced): retried, never fatal, so that
    // the agent's trouble does not stop a server it runs in.
    let mut wait = Duration::from_millis(100);
    let (client, images) = loop {
        let started = async {
            let client = client::from_kubeconfig(&config.kubeconfig).await?;
            let images = pods::images::Images::open(&config.root, &config.registries)?;
            anyhow::Ok((client, images))
        };
        match started.await {
            Ok(parts) => break parts,
            Err(e) => {
                tracing::warn!(node = %node_name, "starting the agent: {e:#}; retrying in {wait:?}");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    };
    let runtime =
        crate::runtime::pod::EnginePodRuntime::new(crate::runtime::pod::EnginePodRuntimeConfig {
            root: config.root.clone(),
            run: config.run_dir.clone(),
            shim_binary: None,
            log_max_size: None,
        });
    let workers = std::sync::Arc::new(pods::worker::WorkerCtx {
        runtime,
        root: config.root.clone(),
        events: events::Recorder::spawn(client.clone(), node_name.clone()),
        client: client.clone(),
        node_name: node_name.clone(),
        node_ip: config.node_ip,
        log_root: config.pod_log_dir.clone(),
        images,
        service_env: service_env(&client).await,
    });
    let mut node = NodeKeeper::new(client.clone(), config);
    let mut lease = LeaseKeeper::new(client.clone(), &node_name);
    let mut wait = Duration::from_millis(100);
    let uid = loop {
        match node.register().await {
            Ok(uid) => break uid,
            Err(e) => {
                tracing::warn!(node = %node_name, "registering the node: {e}; retrying in {wait:?}");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    };
    lease.set_owner(&uid);
    tracing::info!(node = %node_name, "registered the node");
    let manager = pods::manager::PodManager::new(client, workers);
    let pods = tokio::spawn(manager.run(cancel.child_token()));
    node.set_not_ready(None);
    registered();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = pods.await;
                return Ok(());
            }
            _ = tick.tick() => {}
        }
        if let Err(e) = lease.renew().await {
            tracing::warn!(node = %node_name, "renewing the node's lease: {e}");
        }
        if let Err(e) = node.report().await {
            tracing::warn!(node = %node_name, "reporting the node's status: {e}");
        }
    }
}
