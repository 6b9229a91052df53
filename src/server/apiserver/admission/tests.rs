//! The quota recount over a real store: it corrects a record that drifted,
//! but leaves a quota alone while a charge in its namespace is in progress
//! (a count cannot see a charged create that is not stored yet); and a pod
//! that finishes gives its usage back.

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::quota::{recount_all, Guard};
use crate::cluster::ClusterConfig;
use crate::server::apiserver::{auth, loopback};
use crate::server::bootstrap;
use crate::server::controllers::tests::{admin, api_state, API};

async fn used_pods(api: &Api<kube::api::DynamicObject>) -> Value {
    let q = api.get("q").await.unwrap();
    q.data["status"]["used"]["pods"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recount_follows_finished_pods_but_not_during_a_charge() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let boot = loopback::client(
        state.clone(),
        auth::component(auth::BOOTSTRAP_USER),
        bootstrap::AGENT,
    );
    bootstrap::run(boot, &ClusterConfig::default(), API, false, async {})
        .await
        .unwrap();
    let client = admin(&state);
    let quota_res = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ResourceQuota>(&());
    let quotas: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &quota_res);
    // What the ServiceAccount controller makes in a running server.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "default");
    let account = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");
    let quota: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(used_pods(&quotas).await, "1");

    // A record that drifted (a charge whose create never finished, say).
    let qdef = state.registry.find("", "v1", "resourcequotas").unwrap();
    let mut stored = state
        .objects
        .must_get(qdef, Some("default"), "q")
        .await
        .unwrap();
    stored.obj["status"]["used"]["pods"] = json!("2");
    state
        .objects
        .update(qdef, Some("default"), "q", &stored.obj, stored.rev)
        .await
        .unwrap();
    {
        let _charging = Guard::new(&state, "default");
        recount_all(&state).await.unwrap();
        assert_eq!(used_pods(&quotas).await, "2", "left alone during a charge");
    }
    {
        // A write in another namespace holds nothing up.
        let _elsewhere = Guard::new(&state, "other");
        recount_all(&state).await.unwrap();
        assert_eq!(used_pods(&quotas).await, "1", "recounted");
    }

    // A pod that finishes gives its usage back at once.
    let done = json!({"status": {"phase": "Succeeded"}});
    pods.patch_status("p", &PatchParams::default(), &Patch::Merge(&done))
        .await
        .unwrap();
    assert_eq!(
        used_pods(&quotas).await,
        "0",
        "a finished pod uses no quota"
    );
}
