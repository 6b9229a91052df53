//! The pod garbage collector, as upstream's: pods no node will ever end
//! are deleted at once (grace 0), so that what waits for them to go (a
//! StatefulSet member made again under its name, a Job's terminal
//! condition, a namespace's deletion) does not wait for ever.
//!
//! - **Orphaned pods**: bound to a node that no longer exists, for longer
//!   than a quarantine (40 s, and the node looked up once more by GET, as
//!   upstream, so a node the informer has not shown yet is not taken for
//!   gone).
//! - **Terminating pods on an out-of-service node**: a node tainted
//!   `node.kubernetes.io/out-of-service` (NoExecute) that is not Ready has
//!   been declared down by its operator; its terminating pods go.
//!
//! Each gets the `DisruptionTarget` condition (`DeletionByPodGC`) first.
//! Upstream also deletes terminated pods beyond
//! `--terminated-pod-gc-threshold` (12,500); skiff does not yet.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::runtime::{Informer, Informers, Key};

pub const AGENT: &str = "skiff-pod-garbage-collector";
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// How often pods are looked at (upstream's gcCheckPeriod).
const PERIOD: Duration = Duration::from_secs(20);
/// How long a pod's node must have been missing (upstream's quarantine).
pub const QUARANTINE: Duration = Duration::from_secs(40);

pub async fn run(
    client: kube::Client,
    informers: &Informers,
    cancel: CancellationToken,
    quarantine: Duration,
) {
    let gc = Collector {
        client,
        nodes: informers.get::<Node>(),
        pods: informers.get::<Pod>(),
        quarantine,
    };
    gc.nodes.synced().await;
    gc.pods.synced().await;
    // Node name → when its pods were first seen with no such node.
    let mut missing: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(PERIOD.min(quarantine.max(Duration::from_millis(100))));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = gc.pass(&mut missing).await {
            tracing::debug!(controller = "pod-garbage-collector", "{e}");
        }
    }
}

struct Collector {
    client: kube::Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    quarantine: Duration,
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Declared down by its operator: out-of-service (NoExecute) and not Ready.
pub fn out_of_service(n: &Node) -> bool {
    let tainted = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == OUT_OF_SERVICE && t.effect == "NoExecute")
        });
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    tainted && !ready
}

impl Collector {
    async fn pass(&self, missing: &mut HashMap<String, Instant>) -> Result<(), kube::Error> {
        let nodes = self.nodes.list_all();
        let name = |n: &Arc<Node>| n.metadata.name.clone();
        let known: HashSet<String> = nodes.iter().filter_map(name).collect();
        let down: HashSet<String> = nodes
            .iter()
            .filter(|n| out_of_service(n))
            .filter_map(name)
            .collect();
        let pods = self.pods.list_all();
        let mut absent: HashSet<&str> = HashSet::new();
        for p in &pods {
            if let Some(n) = node_of(p).filter(|n| !known.contains(*n)) {
                absent.insert(n);
            }
        }
        let now = Instant::now();
        missing.retain(|n, _| absent.contains(n.as_str()));
        let mut gone: HashSet<&str> = HashSet::new();
        let node_api: Api<Node> = Api::all(self.client.clone());
        for n in absent {
            let since = *missing.entry(n.to_string()).or_insert(now);
            if now.duration_since(since) < self.quarantine {
                continue;
            }
            // The informer may lag: ask the API once more.
            if node_api.get_opt(n).await?.is_none() {
                gone.insert(n);
            }
        }
        for p in &pods {
            let Some(n) = node_of(p) else { continue };
            let orphaned = gone.contains(n);
            let stranded = down.contains(n) && p.metadata.deletion_timestamp.is_some();
            if orphaned || stranded {
                let why = if orphaned {
                    "PodGC: node no longer exists"
                } else {
                    "PodGC: node is out of service"
                };
                self.force_delete(p, why).await?;
            }
        }
        Ok(())
    }

    async fn force_delete(&self, p: &Pod, why: &str) -> Result<(), kube::Error> {
        let key = Key::of(p);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let terminal = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let marked = if terminal {
            None
        } else {
            super::podutil::with_disruption_target(p, "DeletionByPodGC", why)
        };
        if let Some(conds) = marked {
            // Upstream also sets the phase Failed: no node will.
            let patch = json!({"status": {"phase": "Failed", "conditions": conds}});
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: p.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&key.name, &dp).await {
            Ok(_) => {
                tracing::info!(pod = %key, reason = why, "deleted a pod no node will end");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::api::{ListParams, PostParams};

    use super::*;
    use crate::server::apiserver::{auth, loopback};
    use crate::server::controllers::tests::{admin, api_state, namespace_with_account};

    fn pod(name: &str, node: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pods_no_node_will_end_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _store) = api_state(dir.path());
        let admin = admin(&state);
        namespace_with_account(&admin, "g").await;
        let nodes: Api<Node> = Api::all(admin.clone());
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let pods: Api<Pod> = Api::namespaced(admin.clone(), "g");
        for (name, node) in [("on-ghost", "ghost"), ("on-n1", "n1"), ("ending", "n1")] {
            pods.create(&PostParams::default(), &pod(name, node))
                .await
                .unwrap();
        }
        // Terminating on n1: its node must end it, and does not.
        pods.delete("ending", &DeleteParams::default())
            .await
            .unwrap();

        let cancel = CancellationToken::new();
        let _stop = cancel.clone().drop_guard();
        let informers = Arc::new(Informers::new(
            loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
            cancel.clone(),
        ));
        let client = loopback::client(state.clone(), auth::component(auth::POD_GC_USER), AGENT);
        let (i, c) = (informers.clone(), cancel.clone());
        tokio::spawn(async move { run(client, &i, c, Duration::from_millis(300)).await });

        let names = || async {
            let mut n: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            n.sort();
            n
        };
        let mut last = Vec::new();
        for _ in 0..100 {
            last = names().await;
            if last == ["ending", "on-n1"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            last,
            ["ending", "on-n1"],
            "the pod of the missing node goes"
        );
        // n1 declared down by its operator: its terminating pod goes, the
        // other stays (the node lifecycle's taints deal with it).
        nodes
            .patch_status(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                ),
            )
            .await
            .unwrap();
        nodes
            .patch(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": [
                    {"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}]}})),
            )
            .await
            .unwrap();
        for _ in 0..100 {
            last = names().await;
            if last == ["on-n1"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            last,
            ["on-n1"],
            "the terminating pod of the downed node goes"
        );
    }
}
