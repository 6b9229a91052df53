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
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let admin = admin(&state);
    namespace_with_account(&admin, "b").await;
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let informers = Arc::new(Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    ));
    let client = loopback::client(
        state.clone(),
        auth::component(auth::JOB_CONTROLLER_USER),
        AGENT,
    );
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { run(client, &i, c).await });

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
