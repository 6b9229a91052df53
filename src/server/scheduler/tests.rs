//! The scheduler against the real API state (a temporary SQLite store,
//! loopback clients), with Node objects no agent backs: their status is
//! written by the test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{Policy, Scheduler, AGENT};
use crate::server::apiserver::{auth, loopback, ApiState};
use crate::server::controllers::runtime::Informers;
use crate::server::controllers::tests::{admin, api_state};

pub(super) struct Harness {
    _dir: tempfile::TempDir,
    pub(super) admin: kube::Client,
    cancel: CancellationToken,
    _state: Arc<ApiState>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(super) async fn start(policy: Policy) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let admin = admin(&state);
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "d"}})).unwrap(),
    )
    .await
    .unwrap();
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), "d");
    sa.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap(),
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let informers = Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    );
    let s = Scheduler::new(
        loopback::client(state.clone(), auth::component(auth::SCHEDULER_USER), AGENT),
        &informers,
        policy,
    );
    let c = cancel.clone();
    tokio::spawn(async move {
        s.synced().await;
        s.run(c).await;
    });
    Harness {
        _dir: dir,
        admin,
        cancel,
        _state: state,
    }
}

pub(super) async fn add_node(h: &Harness, name: &str, extra: Value) {
    let mut node = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
    });
    merge(&mut node, &extra);
    let api: Api<Node> = Api::all(h.admin.clone());
    let made = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(node.clone()).unwrap(),
        )
        .await
        .unwrap();
    let mut status = json!({
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"},
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    });
    if let Some(s) = extra.get("status") {
        merge(&mut status, s);
    }
    let mut with = serde_json::to_value(&made).unwrap();
    with["status"] = status;
    let with: Node = serde_json::from_value(with).unwrap();
    api.replace_status(name, &PostParams::default(), &with)
        .await
        .unwrap();
}

pub(super) fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

pub(super) async fn add_pod(h: &Harness, name: &str, extra: Value) {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "d", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    merge(&mut pod, &extra);
    let api: Api<Pod> = Api::namespaced(h.admin.clone(), "d");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
}

pub(super) fn cpu(c: &str) -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": c}}}]}})
}

/// Wait until `f` holds of the pods of namespace d.
pub(super) async fn until(h: &Harness, what: &str, f: impl Fn(&[Pod]) -> bool) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(h.admin.clone(), "d");
    for _ in 0..200 {
        let pods = api.list(&ListParams::default()).await.unwrap().items;
        if f(&pods) {
            return pods;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pods = api.list(&ListParams::default()).await.unwrap().items;
    let summary: Vec<_> = pods
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone(),
                node(p),
                p.status.as_ref().and_then(|s| s.conditions.clone()),
            )
        })
        .collect();
    panic!("timed out waiting for {what}: {summary:#?}");
}

pub(super) fn node(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone()
}

pub(super) fn per_node(pods: &[Pod]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for p in pods {
        if let Some(n) = node(p) {
            *m.entry(n).or_insert(0) += 1;
        }
    }
    m
}

pub(super) fn all_bound(n: usize) -> impl Fn(&[Pod]) -> bool {
    move |pods| pods.len() == n && pods.iter().all(|p| node(p).is_some())
}

pub(super) fn unschedulable_message(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
        .message
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_spread_by_default_and_packed_with_binpack() {
    for (policy, expect) in [
        (Policy::Spread, vec![2, 2, 2]),
        (Policy::Binpack, vec![3, 3]),
    ] {
        let h = start(policy).await;
        for n in ["n1", "n2", "n3"] {
            add_node(&h, n, json!({})).await;
        }
        // Let the informer see the nodes before the pods come.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..6 {
            add_pod(&h, &format!("p{i}"), cpu("600m")).await;
            // One by one, so that binpack's choice is deterministic.
            until(&h, "the pod to be bound", all_bound(i + 1)).await;
        }
        let pods = until(&h, "six bound pods", all_bound(6)).await;
        let mut counts: Vec<usize> = per_node(&pods).into_values().collect();
        counts.sort();
        assert_eq!(counts, expect, "{policy:?}");
        // Bound through pods/binding: PodScheduled=True.
        let scheduled = pods[0]
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap();
        assert!(scheduled
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_pod_says_why_as_upstream_and_is_placed_when_a_node_comes() {
    let h = start(Policy::Spread).await;
    add_node(
        &h,
        "small1",
        json!({"status": {"allocatable": {"memory": "1Gi"}}}),
    )
    .await;
    add_node(
        &h,
        "small2",
        json!({"status": {"allocatable": {"memory": "1Gi"}}}),
    )
    .await;
    add_node(
        &h,
        "tainted",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
    )
    .await;
    add_node(&h, "cordoned", json!({"spec": {"unschedulable": true}})).await;
    add_node(
        &h,
        "down",
        json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    add_pod(
        &h,
        "big",
        json!({"spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"memory": "2Gi"}}}]}}),
    )
    .await;
    let pods = until(&h, "the reason", |p| {
        p.iter().any(|p| unschedulable_message(p).is_some())
    })
    .await;
    assert_eq!(
        unschedulable_message(&pods[0]).unwrap(),
        "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, \
         1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, \
         1 node(s) were unschedulable, 2 Insufficient memory. \
         preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, \
         3 Preemption is not helpful for scheduling."
    );
    // No polling: the pod is parked; a node with room sends it back.
    add_node(&h, "roomy", json!({})).await;
    let pods = until(&h, "the pod on the new node", all_bound(1)).await;
    assert_eq!(node(&pods[0]).as_deref(), Some("roomy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_affinity_tolerations_and_host_ports_are_honoured() {
    let h = start(Policy::Spread).await;
    add_node(
        &h,
        "a",
        json!({"metadata": {"labels": {"disk": "ssd", "zone": "z1"}}}),
    )
    .await;
    add_node(&h, "b", json!({"metadata": {"labels": {"zone": "z2"}}})).await;
    add_node(
        &h,
        "gpu",
        json!({"spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}, "metadata": {"labels": {"zone": "z3"}}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    add_pod(
        &h,
        "sel",
        json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
    )
    .await;
    add_pod(
        &h,
        "aff",
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}]}}}}}),
    )
    .await;
    add_pod(
        &h,
        "tol",
        json!({"spec": {
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z3"]}]}}]}}}}),
    )
    .await;
    let pods = until(&h, "three bound", all_bound(3)).await;
    let at = |n: &str| {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
            .and_then(node)
    };
    assert_eq!(at("sel").as_deref(), Some("a"));
    assert_eq!(at("aff").as_deref(), Some("b"));
    assert_eq!(at("tol").as_deref(), Some("gpu"));
    // Host ports: the first two take port 80 on a and b; gpu is tainted, so
    // the third fits nowhere.
    let port = |n: &str| {
        json!({"spec": {"nodeSelector": {"kubernetes.io/hostname": n}, "containers": [{"name": "c", "image": "busybox",
            "ports": [{"containerPort": 80, "hostPort": 80}]}]}})
    };
    add_pod(&h, "hp1", port("a")).await;
    add_pod(&h, "hp2", port("b")).await;
    until(&h, "host port pods bound", all_bound(5)).await;
    add_pod(
        &h,
        "hp3",
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}},
            "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 80}]}]}}),
    )
    .await;
    let pods = until(&h, "hp3's reason", |p| {
        p.iter().any(|p| unschedulable_message(p).is_some())
    })
    .await;
    let msg = pods.iter().find_map(unschedulable_message).unwrap();
    assert!(
        msg.starts_with("0/3 nodes are available: 1 node(s) had untolerated taint {gpu: }, 2 node(s) didn't have free ports for the requested pod ports."),
        "{msg}"
    );
    // Freeing the port (the pod leaves) lets it in.
    let api: Api<Pod> = Api::namespaced(h.admin.clone(), "d");
    api.delete(
        "hp2",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let pods = until(&h, "hp3 bound", |p| {
        p.iter()
            .any(|p| p.metadata.name.as_deref() == Some("hp3") && node(p).is_some())
    })
    .await;
    let hp3 = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("hp3"))
        .unwrap();
    assert_eq!(node(hp3).as_deref(), Some("b"));
}
