use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::apiserver::{auth, loopback};
use crate::server::controllers::runtime::Informers;
use crate::server::controllers::tests::{admin, api_state};

fn pod(name: &str, v: serde_json::Value) -> Arc<Pod> {
    let mut p = json!({"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": []}});
    if let (Some(a), Some(b)) = (p.as_object_mut(), v.as_object()) {
        for (k, v) in b {
            if let (Some(x), Some(y)) =
                (a.get_mut(k).and_then(|x| x.as_object_mut()), v.as_object())
            {
                x.extend(y.clone());
            } else {
                a.insert(k.clone(), v.clone());
            }
        }
    }
    Arc::new(serde_json::from_value(p).unwrap())
}

#[test]
fn surplus_pods_go_in_upstreams_order() {
    let ready = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
        "lastTransitionTime": "2026-01-01T00:00:10Z"}]});
    let pods = vec![
        pod(
            "running-ready",
            json!({"spec": {"nodeName": "n1"}, "status": ready}),
        ),
        pod("unscheduled", json!({"status": {"phase": "Pending"}})),
        pod(
            "pending",
            json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}}),
        ),
        pod(
            "running-not-ready",
            json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}),
        ),
        pod(
            "cheap",
            json!({"metadata": {"annotations": {DELETION_COST: "-10"}},
            "spec": {"nodeName": "n2"}, "status": ready}),
        ),
    ];
    let order: Vec<String> = to_delete(&pods, 5)
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "unscheduled",
            "pending",
            "running-not-ready",
            "cheap",
            "running-ready"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_keeps_its_count_adopts_orphans_and_reports_status() {
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
    let _stop = cancel.clone().drop_guard();
    let informers = Arc::new(Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    ));
    let client = loopback::client(
        state.clone(),
        auth::component(auth::REPLICASET_CONTROLLER_USER),
        AGENT,
    );
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { run(client, &i, c).await });

    let pods: Api<Pod> = Api::namespaced(admin.clone(), "d");
    // An orphan that matches, made before the ReplicaSet.
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    // The controller's cache has the orphan before the ReplicaSet comes
    // (else it makes three pods, adopts the orphan later, and which of four
    // goes depends on creation times within one second).
    let cached = informers.get::<Pod>();
    for _ in 0..200 {
        if cached.get("d", "orphan").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        cached.get("d", "orphan").is_some(),
        "the orphan never reached the cache"
    );
    let sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), "d");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    let rs = sets.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    let owned_by_rs = |p: &Pod| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid && r.controller == Some(true))
    };
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = pods.list(&ListParams::default()).await.unwrap().items;
        if listed.len() == 3 && listed.iter().all(owned_by_rs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed.len(), 3, "{listed:#?}");
    assert!(listed.iter().all(owned_by_rs), "the orphan was not adopted");
    assert!(listed
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some("orphan")));
    // Make one pod Ready: the status counts it.
    let patch = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status("orphan", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let mut status = None;
    for _ in 0..100 {
        status = sets.get("web").await.unwrap().status;
        if status
            .as_ref()
            .is_some_and(|s| s.ready_replicas == Some(1) && s.replicas == 3)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = status.unwrap();
    assert_eq!(
        (s.replicas, s.ready_replicas, s.available_replicas),
        (3, Some(1), Some(1))
    );
    assert_eq!(s.observed_generation, Some(1));
    // Scale down: the ready pod stays.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    for _ in 0..100 {
        listed = pods.list(&ListParams::default()).await.unwrap().items;
        if listed
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count()
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left: Vec<_> = listed
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].metadata.name.as_deref(), Some("orphan"));
    // A pod whose labels no longer match is released, and replaced.
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    for _ in 0..100 {
        listed = pods.list(&ListParams::default()).await.unwrap().items;
        let released = listed
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("orphan") && !owned_by_rs(p));
        let replaced = listed
            .iter()
            .filter(|p| owned_by_rs(p) && p.metadata.deletion_timestamp.is_none())
            .count()
            == 1;
        if released && replaced {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not released and replaced: {listed:#?}");
}
