//! Two nodes no agent backs, their Leases renewed by the test: one goes
//! silent, and its pods are evicted and replaced on the other, with the
//! scheduler and the ReplicaSet controller running beside the node
//! lifecycle controller, shortened timeouts.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::apiserver::{auth, loopback};
use crate::server::controllers::replicaset;
use crate::server::controllers::runtime::Informers;
use crate::server::controllers::tests::{admin, api_state};
use crate::server::scheduler::{self, Scheduler};

async fn create<K>(api: &Api<K>, v: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nodes_pods_are_evicted_and_replaced_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let admin = admin(&state);
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    for n in ["d", LEASE_NAMESPACE] {
        create(&ns, json!({"metadata": {"name": n}})).await;
    }
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), "d");
    create(&sa, json!({"metadata": {"name": "default"}})).await;
    let nodes: Api<Node> = Api::all(admin.clone());
    let leases: Api<Lease> = Api::namespaced(admin.clone(), LEASE_NAMESPACE);
    for name in ["n1", "n2"] {
        create(
            &nodes,
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
        )
        .await;
        let status = json!({"status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        create(
            &leases,
            json!({"metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}}),
        )
        .await;
    }
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    // n2 keeps renewing; n1 is silent from the start.
    let (l, c) = (leases.clone(), cancel.clone());
    tokio::spawn(async move {
        while !c.is_cancelled() {
            let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
            let _ = l
                .patch(
                    "n2",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"renewTime": now}})),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let informers = Arc::new(Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    ));
    let sched = Scheduler::new(
        loopback::client(
            state.clone(),
            auth::component(auth::SCHEDULER_USER),
            scheduler::AGENT,
        ),
        &informers,
        scheduler::Policy::Spread,
    );
    let c = cancel.clone();
    tokio::spawn(async move {
        sched.synced().await;
        sched.run(c).await;
    });
    let rs_client = loopback::client(
        state.clone(),
        auth::component(auth::REPLICASET_CONTROLLER_USER),
        replicaset::AGENT,
    );
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { replicaset::run(rs_client, &i, c).await });

    // Four pods, tolerating an unreachable node for one second, spread
    // over both nodes before the lifecycle controller starts.
    let sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), "d");
    create(
        &sets,
        json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists",
                        "effect": "NoExecute", "tolerationSeconds": 1}],
                    "containers": [{"name": "c", "image": "busybox"}]}}}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "d");
    let on = |list: &[Pod], node: &str, live: bool| {
        list.iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .filter(|p| p.metadata.deletion_timestamp.is_none() == live)
            .count()
    };
    let mut list = Vec::new();
    for _ in 0..200 {
        list = pods.list(&ListParams::default()).await.unwrap().items;
        if on(&list, "n1", true) == 2 && on(&list, "n2", true) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (on(&list, "n1", true), on(&list, "n2", true)),
        (2, 2),
        "{list:#?}"
    );

    let lc = loopback::client(
        state.clone(),
        auth::component(auth::NODE_CONTROLLER_USER),
        AGENT,
    );
    let config = Config {
        grace: Duration::from_secs(2),
        eviction_rate: 10.0,
    };
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { run(lc, &i, c, config).await });

    // n1: Unknown, tainted unreachable; its pods evicted (marked, and
    // Terminating: no kubelet confirms) and replaced on n2.
    for _ in 0..300 {
        list = pods.list(&ListParams::default()).await.unwrap().items;
        if on(&list, "n1", false) == 2 && on(&list, "n2", true) == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (
            on(&list, "n1", true),
            on(&list, "n1", false),
            on(&list, "n2", true)
        ),
        (0, 2, 4),
        "{list:#?}"
    );
    let evicted = list
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_some())
        .unwrap();
    let conds = evicted
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    assert!(
        conds.iter().any(|c| c.type_ == "DisruptionTarget"
            && c.reason.as_deref() == Some("DeletionByTaintManager")),
        "{conds:?}"
    );
    let n1 = nodes.get("n1").await.unwrap();
    assert_eq!(ready_status(&n1), "Unknown");
    assert!(has_taint(&n1, UNREACHABLE, "NoExecute") && has_taint(&n1, UNREACHABLE, "NoSchedule"));
    let n2 = nodes.get("n2").await.unwrap();
    assert_eq!(ready_status(&n2), "True");
    assert!(taints(&n2).is_empty(), "{:?}", taints(&n2));

    // Cordoned, n2 gets the unschedulable taint.
    nodes
        .patch(
            "n2",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    for _ in 0..100 {
        if has_taint(&nodes.get("n2").await.unwrap(), UNSCHEDULABLE, "NoSchedule") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no unschedulable taint");
}
