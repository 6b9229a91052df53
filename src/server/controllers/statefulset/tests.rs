//! The StatefulSet controller against the store, with pod status written by
//! the test (no agent, no scheduler).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::apiserver::{auth, loopback};
use crate::server::controllers::runtime::Informers;
use crate::server::controllers::tests::{admin, api_state, eventually, namespace_with_account};

/// Live members: (name, revision).
async fn members(pods: &Api<Pod>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                revision_of(p).unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn names(m: &[(String, String)]) -> Vec<&str> {
    m.iter().map(|(n, _)| n.as_str()).collect()
}

async fn ready(pods: &Api<Pod>, name: &str) {
    let patch = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn setup() -> (tempfile::TempDir, kube::Client, CancellationToken) {
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let admin = admin(&state);
    namespace_with_account(&admin, "d").await;
    let cancel = CancellationToken::new();
    let informers = Arc::new(Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    ));
    let client = loopback::client(
        state.clone(),
        auth::component(auth::STATEFULSET_CONTROLLER_USER),
        AGENT,
    );
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { run(client, &i, c).await });
    (dir, admin, cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_members_claims_partitions_and_failed_members() {
    let (_dir, admin, cancel) = setup().await;
    let _stop = cancel.drop_guard();
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), "d");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "d");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), "d");
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "db"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "db:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}))
    .unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();

    // Parallel: all three at once, none ready, each with its claim.
    let first = eventually("three members", || async {
        let m = members(&pods).await;
        if names(&m) == ["db-0", "db-1", "db-2"] {
            Ok(m)
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;
    let mut claim_names: Vec<String> = claims
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    claim_names.sort();
    assert_eq!(claim_names, ["data-db-0", "data-db-1", "data-db-2"]);
    for (n, _) in &first {
        ready(&pods, n).await;
    }

    // A failed member is made again under its name.
    let uid = pods.get("db-1").await.unwrap().metadata.uid;
    pods.patch_status(
        "db-1",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    eventually("db-1 made again", || async {
        match pods.get_opt("db-1").await.unwrap() {
            Some(p) if p.metadata.uid != uid => Ok(()),
            other => Err(format!("{:?}", other.map(|p| p.status))),
        }
    })
    .await;
    ready(&pods, "db-1").await;

    // A new template with partition 2: only db-2 is updated.
    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "db:2"}]}}}})),
    )
    .await
    .unwrap();
    let old = first[0].1.clone();
    let m = eventually("db-2 updated", || async {
        let m = members(&pods).await;
        let updated: Vec<&str> = m
            .iter()
            .filter(|x| x.1 != old)
            .map(|x| x.0.as_str())
            .collect();
        if m.len() == 3 && updated == ["db-2"] {
            Ok(m)
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;
    ready(&pods, "db-2").await;
    let st = eventually("status after the partitioned update", || async {
        let s = sets.get("db").await.unwrap().status.unwrap_or_default();
        if s.updated_replicas == Some(1) && s.ready_replicas == Some(3) {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_ne!(st.current_revision, st.update_revision, "{st:?}");
    assert_eq!(st.current_revision.as_deref(), Some(old.as_str()));
    assert_eq!(st.update_revision.as_deref(), Some(m[2].1.as_str()));
    // db-0 and db-1 stay, even when one is made again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = members(&pods).await;
    assert_eq!(now[0].1, old);
    assert_eq!(now[1].1, old);

    // Scaled to one under whenScaled: Delete: the members beyond go and
    // their claims are handed to them (the garbage collector takes both).
    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("one member", || async {
        let m = members(&pods).await;
        if names(&m) == ["db-0"] {
            Ok(())
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;
    let c = claims.get("data-db-2").await.unwrap();
    let owners: Vec<String> = c
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    assert_eq!(owners, ["Pod/db-2"]);
    assert!(claims
        .get("data-db-0")
        .await
        .unwrap()
        .metadata
        .owner_references
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_become_available_after_min_ready_seconds_with_no_other_change() {
    let (_dir, admin, cancel) = setup().await;
    let _stop = cancel.drop_guard();
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), "d");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "d");
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "slow"},
        "spec": {"replicas": 2, "serviceName": "slow", "podManagementPolicy": "Parallel",
            "minReadySeconds": 2, "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": {"app": "slow"}},
            "template": {"metadata": {"labels": {"app": "slow"}},
                "spec": {"containers": [{"name": "c", "image": "db:1"}]}}}}))
    .unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();
    eventually("two members", || async {
        let m = members(&pods).await;
        if names(&m) == ["slow-0", "slow-1"] {
            Ok(())
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    for n in ["slow-0", "slow-1"] {
        let patch = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        pods.patch_status(n, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let status = |s: &StatefulSet| {
        let st = s.status.clone().unwrap_or_default();
        (st.ready_replicas, st.available_replicas)
    };
    eventually("ready, not yet available", || async {
        match status(&sets.get("slow").await.unwrap()) {
            (Some(2), Some(0)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Nothing changes from here on but the clock.
    let mut last = None;
    for _ in 0..100 {
        last = Some(status(&sets.get("slow").await.unwrap()));
        if last == Some((Some(2), Some(2))) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never available: {last:?}");
}
