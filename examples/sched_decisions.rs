//! sched_decisions: the scheduler's decisions alone, without the API: N
//! nodes (32 cpu, 128 GiB, 110 pods each) in the scheduler's cache, M pods
//! of 100m cpu and 128 MiB placed one after another (filter, score, pick,
//! assume), as `bench/scheduler.sh` reports beside the end-to-end figures.
//!
//! ```text
//! sched_decisions NODES PODS [spread|binpack]
//! ```

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod};
use skiff::server::scheduler::algorithm::{self, Search};
use skiff::server::scheduler::cache::Cache;
use skiff::server::scheduler::Policy;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        bail!("usage: sched_decisions NODES PODS [spread|binpack]");
    }
    let nodes: usize = args[0].parse().context("NODES")?;
    let pods: usize = args[1].parse().context("PODS")?;
    let policy = match args.get(2).map(String::as_str) {
        Some("binpack") => Policy::Binpack,
        _ => Policy::Spread,
    };
    let mut cache = Cache::default();
    for i in 0..nodes {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("n{i}"), "labels": {"kubernetes.io/hostname": format!("n{i}")}},
            "status": {
                "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        }))?;
        cache.set_node(Arc::new(node));
    }
    let made: Vec<Pod> = (0..pods)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("p{i}"), "namespace": "bench", "uid": format!("u{i}")},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
            }))
        })
        .collect::<Result<_, _>>()?;
    let mut search = Search::default();
    let start = Instant::now();
    let mut placed = 0;
    for pod in &made {
        if let Ok(node) = algorithm::schedule(pod, &cache, policy, &mut search) {
            cache.assume(pod, &node);
            placed += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "decisions nodes={nodes} pods={pods} placed={placed} secs={secs:.3} rate={:.0}/s",
        placed as f64 / secs
    );
    Ok(())
}
