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
//! ```
//!
//! Start-up is a linear recipe (as k3s's agent): client → register the
//! Node → (pod workers, next) → heartbeat loop.

pub mod client;
pub mod config;
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

/// Run the agent until `cancel`; `registered` is called once the Node
/// exists.
pub async fn run(
    config: AgentConfig,
    cancel: CancellationToken,
    registered: impl FnOnce(),
) -> anyhow::Result<()> {
    let client = client::from_kubeconfig(&config.kubeconfig).await?;
    let node_name = config.node_name.clone();
    let mut node = NodeKeeper::new(client.clone(), config);
    let mut lease = LeaseKeeper::new(client, &node_name);
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
    registered();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
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
