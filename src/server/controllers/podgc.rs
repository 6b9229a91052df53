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
//! - **Terminating pods never scheduled**: no node will ever stop them.
//! - **Terminated pods beyond `--terminated-pod-gc-threshold`** (12,500,
//!   0 turns it off): the oldest go first (evicted ones before the rest),
//!   so that finished pods nobody cleans up do not fill the store.
//!
//! Each pod not ended yet gets the `DisruptionTarget` condition
//! (`DeletionByPodGC`) and the phase Failed first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::podutil;
use super::runtime::{Informer, Informers, Key};

pub const AGENT: &str = "skiff-pod-garbage-collector";
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// How often pods are looked at (upstream's gcCheckPeriod).
const PERIOD: Duration = Duration::from_secs(20);
/// How long a pod's node must have been missing (upstream's quarantine).
pub const QUARANTINE: Duration = Duration::from_secs(40);

/// Upstream's default `--terminated-pod-gc-threshold`.
pub const TERMINATED_THRESHOLD: usize = 12_500;
/// Deletes in flight at once when many terminated pods go.
const WORKERS: usize = 8;

#[derive(Clone, Copy)]
pub struct Config {
    pub quarantine: Duration,
    /// Terminated pods kept at most; 0: no limit.
    pub terminated_threshold: usize,
}

pub async fn run(
    client: kube::Client,
    informers: &Informers,
    cancel: CancellationToken,
    config: Config,
) {
    let quarantine = config.quarantine;
    let gc = Collector {
        client,
        nodes: informers.get::<Node>(),
        pods: informers.get::<Pod>(),
        quarantine,
        threshold: config.terminated_threshold,
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
    threshold: usize,
}

/// The terminated pods beyond `threshold`, in the order upstream deletes
/// them: evicted first, then the oldest.
fn over_threshold(pods: &[Arc<Pod>], threshold: usize) -> Vec<&Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut ended: Vec<&Arc<Pod>> = pods.iter().filter(|p| podutil::is_terminal(p)).collect();
    let Some(excess) = ended.len().checked_sub(threshold).filter(|n| *n > 0) else {
        return Vec::new();
    };
    let evicted = |p: &Pod| {
        p.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Failed") && s.reason.as_deref() == Some("Evicted")
        })
    };
    ended.sort_by(|a, b| {
        evicted(b)
            .cmp(&evicted(a))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    ended.truncate(excess);
    ended
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
        let excess = over_threshold(&pods, self.threshold);
        if !excess.is_empty() {
            tracing::info!(
                count = excess.len(),
                threshold = self.threshold,
                "deleting terminated pods beyond the threshold"
            );
        }
        for batch in excess.chunks(WORKERS) {
            let why = "PodGC: terminated pods beyond the threshold";
            let deletes = batch.iter().map(|p| self.force_delete(p, why, true));
            for r in futures::future::join_all(deletes).await {
                // One failure does not hold back the rest of the pass.
                if let Err(e) = r {
                    tracing::debug!(controller = "pod-garbage-collector", "{e}");
                }
            }
        }
        for p in &pods {
            let Some(n) = node_of(p) else {
                if p.metadata.deletion_timestamp.is_some() {
                    // As upstream: no DisruptionTarget for these (no
                    // disruption ended them; they were being deleted).
                    let why = "PodGC: unscheduled pod is terminating";
                    if let Err(e) = self.force_delete(p, why, false).await {
                        tracing::debug!(controller = "pod-garbage-collector", "{e}");
                    }
                }
                continue;
            };
            let orphaned = gone.contains(n);
            let stranded = down.contains(n) && p.metadata.deletion_timestamp.is_some();
            if orphaned || stranded {
                let why = if orphaned {
                    "PodGC: node no longer exists"
                } else {
                    "PodGC: node is out of service"
                };
                if let Err(e) = self.force_delete(p, why, true).await {
                    tracing::debug!(controller = "pod-garbage-collector", "{e}");
                }
            }
        }
        Ok(())
    }

    /// Delete `p` at once; `disrupted`: mark it DisruptionTarget and
    /// Failed first, unless it has ended.
    async fn force_delete(&self, p: &Pod, why: &str, disrupted: bool) -> Result<(), kube::Error> {
        let key = Key::of(p);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        // As upstream, the phase becomes Failed (no node will end it), with
        // the DisruptionTarget condition where the pod was disrupted.
        let patch = if podutil::is_terminal(p) {
            None
        } else {
            let conds = disrupted
                .then(|| super::podutil::with_disruption_target(p, "DeletionByPodGC", why))
                .flatten();
            Some(match conds {
                Some(conds) => json!({"status": {"phase": "Failed", "conditions": conds}}),
                None => json!({"status": {"phase": "Failed"}}),
            })
        };
        if let Some(patch) = patch {
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

    #[test]
    fn terminated_pods_beyond_the_threshold_go_evicted_then_oldest_first() {
        let at = |name: &str, created: &str, phase: &str, reason: Option<&str>| {
            Arc::new(
                serde_json::from_value::<Pod>(json!({
                    "metadata": {"name": name, "creationTimestamp": created},
                    "status": {"phase": phase, "reason": reason}}))
                .unwrap(),
            )
        };
        let pods = vec![
            at("running", "2026-01-01T00:00:00Z", "Running", None),
            at("new", "2026-01-03T00:00:00Z", "Succeeded", None),
            at("b-old", "2026-01-01T00:00:00Z", "Failed", None),
            at("a-old", "2026-01-01T00:00:00Z", "Succeeded", None),
            at("evicted", "2026-01-02T00:00:00Z", "Failed", Some("Evicted")),
        ];
        let names = |n: usize| -> Vec<String> {
            over_threshold(&pods, n)
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect()
        };
        assert_eq!(names(1), ["evicted", "a-old", "b-old"]);
        assert_eq!(names(3), ["evicted"]);
        assert!(names(4).is_empty(), "the running pod does not count");
        assert!(names(0).is_empty(), "0 keeps them all");
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
        for (name, node) in [
            ("on-ghost", "ghost"),
            ("on-n1", "n1"),
            ("ending", "n1"),
            ("done-1", "n1"),
            ("done-2", "n1"),
        ] {
            pods.create(&PostParams::default(), &pod(name, node))
                .await
                .unwrap();
        }
        // Two finished pods, and the unscheduled one below once failed: one
        // more than the threshold, the oldest goes (made in the same
        // second: by name).
        for name in ["done-1", "done-2"] {
            pods.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
            )
            .await
            .unwrap();
        }
        // Terminating on n1: its node must end it, and does not.
        pods.delete("ending", &DeleteParams::default())
            .await
            .unwrap();
        // Never scheduled, held by a finalizer while terminating: failed and
        // deleted at once by the collector (the finalizer keeps the object).
        let mut unbound = pod("unbound", "");
        unbound.metadata.finalizers = Some(vec!["example.com/hold".into()]);
        if let Some(spec) = unbound.spec.as_mut() {
            spec.node_name = None;
        }
        pods.create(&PostParams::default(), &unbound).await.unwrap();
        pods.delete("unbound", &DeleteParams::default())
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
        let config = Config {
            quarantine: Duration::from_millis(300),
            terminated_threshold: 2,
        };
        tokio::spawn(async move { run(client, &i, c, config).await });

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
            if last == ["done-2", "ending", "on-n1", "unbound"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            last,
            ["done-2", "ending", "on-n1", "unbound"],
            "the pod of the missing node and the finished pod beyond the threshold go"
        );
        let mut failed = false;
        for _ in 0..100 {
            let p = pods.get("unbound").await.unwrap();
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            if phase.as_deref() == Some("Failed") {
                let conds = p.status.and_then(|s| s.conditions).unwrap_or_default();
                assert!(
                    conds.iter().all(|c| c.type_ != "DisruptionTarget"),
                    "no disruption ended it: {conds:?}"
                );
                assert_eq!(p.metadata.deletion_grace_period_seconds, Some(0));
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            failed,
            "the unscheduled terminating pod was not failed and deleted"
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
            if last == ["done-2", "on-n1", "unbound"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            last,
            ["done-2", "on-n1", "unbound"],
            "the terminating pod of the downed node goes"
        );
    }
}
