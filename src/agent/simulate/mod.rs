//! `skiff agent --simulate N` (a hidden flag): N simulated nodes in one
//! process, in the spirit of kubemark's hollow nodes. It exists to measure
//! the control plane at scale (bench/cluster-scale.sh) without N machines:
//! what the server sees is what N agents would make it do — N Nodes, N
//! Leases renewed every 10 s, status reports, pod status writes and
//! deletions — while nothing runs on this box.
//!
//! ```text
//! mod.rs    names, the joins (one node credential each), start-up
//! node.rs   a simulated Node: registration, Lease, status (kubelet's cadence)
//! pods.rs   the status-only fakes of the pods bound to simulated nodes
//! ```
//!
//! Each simulated node is its own identity: it joins as the real agent
//! does (`agent::join::ensure`, its own keys and certificates under
//! `<data-dir>/agent/sim/<name>`) and writes only with its own client, so
//! the node authorizer judges it as a real node. There is no engine, no
//! pod network, no kubelet API: pods bound to these nodes are fakes that
//! never run a container (see pods.rs).
//!
//! Where a simulation differs from N agents: one watch of all pods (and
//! one of the simulated Nodes) serves every simulated node, where N
//! kubelets would hold N watches each selecting its own pods; the server's
//! cost per watch is therefore not in what this measures.

pub mod node;
pub mod pods;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Taint;
use tokio_util::sync::CancellationToken;

use self::node::SimNode;
use crate::agent::join::Join;

/// The label every simulated Node carries (for nodeSelectors that pin
/// pods to them, and to tell them apart from real nodes).
pub const SIMULATED_LABEL: &str = "skiff.io/simulated";
/// Joins in flight at once: each is two TLS handshakes and a signature.
const JOINS_AT_ONCE: usize = 16;
const MAX_RETRY: Duration = Duration::from_secs(30);
/// More is surely a typo; kubemark's largest runs are 5000 nodes.
pub const MAX_NODES: usize = 5000;

/// What a simulation is told.
pub struct Simulation {
    /// `https://host:port` of a server.
    pub server: String,
    pub token: String,
    pub count: usize,
    /// Nodes are named `<prefix>-sim-<i>`.
    pub prefix: String,
    /// The address every simulated node reports.
    pub node_ip: IpAddr,
    /// `--node-label`s, over those a simulated node sets itself.
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub kubelet_port: u16,
    /// Where the nodes' credentials go: `<data-dir>/agent/sim`.
    pub dir: PathBuf,
}

/// The names of `count` simulated nodes.
pub fn node_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-sim-{i}")).collect()
}

/// Join every node, then keep them and their pods' fakes until `cancel`.
pub async fn run(sim: Simulation, cancel: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_NODES).contains(&sim.count),
        "--simulate takes 1 to {MAX_NODES} nodes, not {}",
        sim.count
    );
    let names = node_names(&sim.prefix, sim.count);
    if let Some(bad) = names
        .iter()
        .find(|n| !crate::agent::config::is_dns_subdomain(n))
    {
        anyhow::bail!("{bad:?} is not a valid node name: choose another --node-name");
    }
    // A TLS connection per node (its own client certificate), and some.
    let fds = crate::server::raise_fd_limit();
    if fds < (2 * sim.count + 256) as u64 {
        tracing::warn!(
            open_files = fds,
            "the open-file limit may be too low for {} simulated nodes: raise it (ulimit -n)",
            sim.count
        );
    }
    let started = std::time::Instant::now();
    let joined: Vec<Arc<SimNode>> = futures::stream::iter(names)
        .map(|name| join_one(&sim, name, &cancel))
        .buffer_unordered(JOINS_AT_ONCE)
        .try_collect()
        .await?;
    if cancel.is_cancelled() {
        return Ok(());
    }
    tracing::info!(
        nodes = joined.len(),
        ms = started.elapsed().as_millis() as u64,
        "simulated nodes joined"
    );
    let nodes: Arc<HashMap<String, Arc<SimNode>>> =
        Arc::new(joined.iter().map(|n| (n.name.clone(), n.clone())).collect());
    let mut labels = sim.labels.clone();
    labels.insert(SIMULATED_LABEL.into(), "true".into());
    let spec = Arc::new(node::Spec::new(
        labels,
        sim.taints.clone(),
        sim.kubelet_port,
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for n in &joined {
        tasks.spawn(node::keep(n.clone(), spec.clone(), cancel.child_token()));
    }
    // The watches are read with one node's credentials: nodes may list and
    // watch all pods and Nodes.
    let reader = joined[0].client.clone();
    tasks.spawn(node::follow(
        reader.clone(),
        nodes.clone(),
        cancel.child_token(),
    ));
    tasks.spawn(pods::run(reader, nodes, cancel.child_token()));
    cancel.cancelled().await;
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// One node's join (retried while the server cannot answer), then its
/// client.
async fn join_one(
    sim: &Simulation,
    name: String,
    cancel: &CancellationToken,
) -> anyhow::Result<Arc<SimNode>> {
    let join = Join {
        server: sim.server.clone(),
        token: sim.token.clone(),
        node_name: name.clone(),
        addresses: vec![sim.node_ip],
        dir: sim.dir.join(&name),
    };
    let mut wait = Duration::from_millis(500);
    loop {
        match crate::agent::join::ensure(&join).await {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                tracing::warn!(node = %name, "joining: {e}; trying again in {wait:?}");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("joining as {name}"))),
        }
    }
    let (client, _) = crate::agent::client::from_kubeconfig(&join.kubeconfig())
        .await
        .with_context(|| format!("the client of simulated node {name}"))?;
    Ok(Arc::new(SimNode::new(name, client, sim.node_ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_nodes_are_named_after_the_prefix() {
        assert_eq!(
            node_names("box", 3),
            ["box-sim-0", "box-sim-1", "box-sim-2"]
        );
        assert!(node_names("box", 0).is_empty());
    }
}
