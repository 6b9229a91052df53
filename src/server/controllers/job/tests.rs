//! The Job controller against the store through the loopback client.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::apiserver::{auth, loopback};
use crate::server::controllers::runtime::Informers;
use crate::server::controllers::tests::{admin, api_state, namespace_with_account};

/// A store, namespace `b`, and the Job controller running on it until
/// the guard drops.
async fn start() -> (tempfile::TempDir, kube::Client, tokio_util::sync::DropGuard) {
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let admin = admin(&state);
    namespace_with_account(&admin, "b").await;
    let cancel = CancellationToken::new();
    let informers = Arc::new(Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    ));
    let client = loopback::client(state, auth::component(auth::JOB_CONTROLLER_USER), AGENT);
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { run(client, &i, c).await });
    (dir, admin, cancel.drop_guard())
}

/// Bind pod `name` to node n1, as the scheduler would.
async fn bind(pods: &Api<Pod>, name: &str) {
    let binding = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await
    .unwrap();
}

fn tracked(p: &Pod) -> bool {
    has_finalizer(p)
}

async fn pods_until(api: &Api<Pod>, what: &str, ok: impl Fn(&[Pod]) -> bool) -> Vec<Pod> {
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = api.list(&ListParams::default()).await.unwrap().items;
        if ok(&listed) {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {what}: {listed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_no_job_will_count_lose_the_tracking_finalizer() {
    let (_dir, admin, _stop) = start().await;

    let jobs: Api<Job> = Api::namespaced(admin.clone(), "b");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "b");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "work"},
        "spec": {"parallelism": 2, "completions": 4,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let listed = pods_until(&pods, "two tracked pods", |l| {
        l.len() == 2 && l.iter().all(tracked)
    })
    .await;

    // Orphaned (its owner reference taken away): released, and the Job
    // makes another in its place.
    let first = listed[0].metadata.name.clone().unwrap();
    pods.patch(
        &first,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
    )
    .await
    .unwrap();
    pods_until(&pods, "the orphan released", |l| {
        l.iter()
            .any(|p| p.metadata.name.as_deref() == Some(first.as_str()) && !tracked(p))
    })
    .await;

    // The Job deleted (no garbage collector runs here, so its pods stay):
    // every pod it left is released, so deleting them is not held up.
    jobs.delete("work", &DeleteParams::background())
        .await
        .unwrap();
    let left = pods_until(&pods, "every pod released", |l| {
        l.len() >= 2 && !l.iter().any(tracked)
    })
    .await;
    for p in &left {
        pods.delete(
            p.metadata.name.as_deref().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    }
    // Never bound to a node, they go at once.
    pods_until(&pods, "the pods gone", <[Pod]>::is_empty).await;

    // A pod controlled by something else keeps its finalizer.
    let foreign: Pod = serde_json::from_value(json!({
        "metadata": {"name": "foreign", "finalizers": [TRACKING_FINALIZER],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "rs", "uid": "u-rs", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &foreign).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = pods.get("foreign").await.unwrap();
    assert!(tracked(&got), "{got:#?}");
}

async fn job_until(api: &Api<Job>, name: &str, what: &str, ok: impl Fn(&Job) -> bool) -> Job {
    let mut last = None;
    for _ in 0..200 {
        let j = api.get(name).await.unwrap();
        if ok(&j) {
            return j;
        }
        last = Some(j);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {what}: {last:#?}");
}

fn has(j: &Job, kind: &str) -> bool {
    j.status.as_ref().is_some_and(|s| has_condition(s, kind))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_waits_until_the_pods_have_terminated() {
    let (_dir, admin, _stop) = start().await;

    let jobs: Api<Job> = Api::namespaced(admin.clone(), "b");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "b");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "once"},
        "spec": {"parallelism": 2, "completions": 2, "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let listed = pods_until(&pods, "two pods", |l| l.len() == 2).await;
    // Both on a node (as the scheduler would): deleting them is graceful,
    // they stay until the node says they ended.
    for p in &listed {
        let name = p.metadata.name.clone().unwrap();
        bind(&pods, &name).await;
        pods.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    }
    let (failing, other) = (
        listed[0].metadata.name.clone().unwrap(),
        listed[1].metadata.name.clone().unwrap(),
    );
    pods.patch_status(
        &failing,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    // Past its limit: the Job will fail, and ends the other pod.
    let j = job_until(&jobs, "once", "the failure targeted", |j| {
        has(j, "FailureTarget")
    })
    .await;
    assert!(!has(&j, "Failed"), "{j:#?}");
    pods_until(&pods, "the other pod ended", |l| {
        l.iter().any(|p| {
            p.metadata.name.as_deref() == Some(other.as_str())
                && p.metadata.deletion_timestamp.is_some()
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let j = jobs.get("once").await.unwrap();
    assert!(!has(&j, "Failed"), "a pod still terminates: {j:#?}");
    assert_eq!(
        j.status.as_ref().and_then(|s| s.terminating),
        Some(1),
        "{j:#?}"
    );
    // The node reports it ended: now the Job has failed.
    pods.patch_status(
        &other,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    let j = job_until(&jobs, "once", "failed", |j| has(j, "Failed")).await;
    let reason = j
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed"))
        .and_then(|c| c.reason.clone());
    assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_met_success_survives_the_pods_it_ends() {
    let (_dir, admin, _stop) = start().await;

    // A failure policy makes podReplacementPolicy Failed: a deleted pod is
    // only done with once it has ended. Any non-zero exit fails the Job.
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "b");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "b");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "race"},
        "spec": {"parallelism": 2, "completions": 2, "completionMode": "Indexed",
            "successPolicy": {"rules": [{"succeededIndexes": "0"}]},
            "podFailurePolicy": {"rules": [{"action": "FailJob",
                "onExitCodes": {"operator": "NotIn", "values": [0]}}]},
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let listed = pods_until(&pods, "two pods", |l| l.len() == 2).await;
    // Index 0 first.
    let mut names: Vec<String> = listed
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    names.sort_by_key(|n| !n.starts_with("race-0-"));
    for name in &names {
        bind(&pods, name).await;
    }
    let ended = |code: i32, phase: &str| {
        json!({"status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "busybox",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code}}}]}})
    };
    pods.patch_status(
        &names[0],
        &PatchParams::default(),
        &Patch::Merge(ended(0, "Succeeded")),
    )
    .await
    .unwrap();
    // Index 0 is all it needs: the other pod is ended for it.
    job_until(&jobs, "race", "success met", |j| {
        has(j, "SuccessCriteriaMet")
    })
    .await;
    pods_until(&pods, "the other pod ended", |l| {
        l.iter().any(|p| {
            p.metadata.name.as_deref() == Some(names[1].as_str())
                && p.metadata.deletion_timestamp.is_some()
        })
    })
    .await;
    // Its node stops it (killed: 143), then deletes it for good.
    pods.patch_status(
        &names[1],
        &PatchParams::default(),
        &Patch::Merge(ended(143, "Failed")),
    )
    .await
    .unwrap();
    pods.delete(&names[1], &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let j = job_until(&jobs, "race", "complete", |j| {
        has(j, "Complete") || has(j, "Failed")
    })
    .await;
    assert!(has(&j, "Complete") && !has(&j, "Failed"), "{j:#?}");
    assert!(!has(&j, "FailureTarget"), "{j:#?}");
    // Nothing held back by the finalizer.
    pods_until(&pods, "the ended pod gone", |l| {
        !l.iter()
            .any(|p| p.metadata.name.as_deref() == Some(names[1].as_str()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_backing_off_leaves_its_slot_to_the_next() {
    let (_dir, admin, _stop) = start().await;

    let jobs: Api<Job> = Api::namespaced(admin.clone(), "b");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "b");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "idx"},
        "spec": {"parallelism": 1, "completions": 2, "completionMode": "Indexed",
            "backoffLimitPerIndex": 2,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let listed = pods_until(&pods, "index 0", |l| l.len() == 1).await;
    let first = listed[0].metadata.name.clone().unwrap();
    assert!(first.starts_with("idx-0-"), "{first}");
    pods.patch_status(
        &first,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    // Index 0 backs off (10 s); index 1 runs meanwhile, well before.
    let mut names = Vec::new();
    for _ in 0..100 {
        names = pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>();
        if names.iter().any(|n| n.starts_with("idx-1-")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(names.iter().any(|n| n.starts_with("idx-1-")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("idx-0-") && *n != first),
        "{names:?}"
    );
}
