//! Preemption against the real API state, with Node objects no agent
//! backs: who is evicted to make room, for resources, pod anti-affinity
//! and topology spread, and what PodDisruptionBudgets protect.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::tests::{add_node, add_pod, all_bound, node, start, until, Harness};
use super::Policy;

async fn classes(h: &Harness) {
    let classes: Api<PriorityClass> = Api::all(h.admin.clone());
    for (name, value) in [("low", 1), ("mid", 50), ("high", 100), ("top", 1000)] {
        classes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}, "value": value}))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn going(pods: &[Pod], name: &str) -> bool {
    pods.iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

fn nominated(pods: &[Pod], name: &str) -> Option<String> {
    pods.iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))?
        .status
        .as_ref()?
        .nominated_node_name
        .clone()
}

/// A pod of `class` asking for `cpu`, with `extra` merged in.
fn pod(class: &str, cpu: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"spec": {"priorityClassName": class,
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}});
    super::tests::merge(&mut v, &extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_pod_preempts_the_least_important_victims() {
    let h = start(Policy::Spread).await;
    add_node(&h, "only", json!({})).await;
    classes(&h).await;
    add_pod(&h, "low", json!({"spec": {"priorityClassName": "low", "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "800m"}}}]}})).await;
    add_pod(&h, "mid", json!({"spec": {"priorityClassName": "mid", "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "800m"}}}]}})).await;
    until(&h, "two bound", all_bound(2)).await;
    // Needs 1 cpu: evicting "low" alone makes room.
    add_pod(&h, "high", json!({"spec": {"priorityClassName": "high", "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}]}})).await;
    let pods = until(&h, "low evicted and high nominated", |p| {
        let low_gone = p.iter().all(|p| {
            p.metadata.name.as_deref() != Some("low") || p.metadata.deletion_timestamp.is_some()
        });
        low_gone
    })
    .await;
    let high = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("high"))
        .unwrap();
    let mid = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("mid"))
        .unwrap();
    assert!(
        mid.metadata.deletion_timestamp.is_none(),
        "mid was evicted too"
    );
    let _ = high;
    // With no agent, the victim is removed at once when its grace is 0;
    // here it waits for its kubelet: finish it as one would.
    let api: Api<Pod> = Api::namespaced(h.admin.clone(), "d");
    let _ = api
        .delete(
            "low",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await;
    let pods = until(&h, "high bound", |p| {
        p.iter()
            .any(|p| p.metadata.name.as_deref() == Some("high") && node(p).is_some())
    })
    .await;
    assert!(pods
        .iter()
        .all(|p| p.metadata.name.as_deref() != Some("low")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_cures_anti_affinity_by_evicting_only_the_pods_in_the_way() {
    let h = start(Policy::Spread).await;
    add_node(&h, "only", json!({})).await;
    classes(&h).await;
    // Plenty of room: only the terms stand in the way.
    add_pod(
        &h,
        "web",
        pod(
            "low",
            "100m",
            json!({"metadata": {"labels": {"app": "web"}}}),
        ),
    )
    .await;
    add_pod(
        &h,
        "other",
        pod(
            "low",
            "100m",
            json!({"metadata": {"labels": {"app": "other"}}}),
        ),
    )
    .await;
    // This one refuses to share a node with any "db".
    add_pod(
        &h,
        "loner",
        pod("low", "100m", json!({"metadata": {"labels": {"app": "loner"}},
            "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}}})),
    )
    .await;
    until(&h, "three bound", all_bound(3)).await;
    // A database that must not share a node with "web".
    add_pod(
        &h,
        "db",
        pod("high", "100m", json!({"metadata": {"labels": {"app": "db"}},
            "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}})),
    )
    .await;
    let pods = until(&h, "web and loner evicted", |p| {
        going(p, "web") && going(p, "loner") && nominated(p, "db").is_some()
    })
    .await;
    assert!(!going(&pods, "other"), "a pod not in the way was evicted");
    assert_eq!(nominated(&pods, "db").as_deref(), Some("only"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_cures_a_topology_spread_skew_with_the_fewest_victims() {
    let h = start(Policy::Spread).await;
    for (n, zone) in [("a", "z1"), ("b", "z2")] {
        add_node(&h, n, json!({"metadata": {"labels": {"zone": zone}}})).await;
    }
    classes(&h).await;
    let spread = json!({"metadata": {"labels": {"app": "s"}}, "spec": {"topologySpreadConstraints": [
        {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "s"}}}]}});
    // Zone z1 holds two "s" pods, z2 none and no room a preemptor may take.
    for (name, class) in [("s-low", "low"), ("s-mid", "mid")] {
        let mut extra = spread.clone();
        super::tests::merge(&mut extra, &json!({"spec": {"nodeName": "a"}}));
        add_pod(&h, name, pod(class, "100m", extra)).await;
    }
    add_pod(
        &h,
        "filler",
        pod(
            "top",
            "2",
            json!({"metadata": {"labels": {"app": "f"}}, "spec": {"nodeName": "b"}}),
        ),
    )
    .await;
    until(&h, "three bound", all_bound(3)).await;
    // A third "s" pod in z1 would make the skew 3: one must go, the less
    // important one.
    add_pod(&h, "s-high", pod("high", "100m", spread.clone())).await;
    let pods = until(&h, "s-low evicted", |p| {
        going(p, "s-low") && nominated(p, "s-high").is_some()
    })
    .await;
    assert!(!going(&pods, "s-mid"), "s-mid was evicted too");
    assert!(!going(&pods, "filler"));
    assert_eq!(nominated(&pods, "s-high").as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_spares_pods_a_disruption_budget_protects() {
    let h = start(Policy::Spread).await;
    add_node(&h, "a", json!({})).await;
    add_node(&h, "b", json!({})).await;
    classes(&h).await;
    // The budget first, so the scheduler's informer has long had it.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(h.admin.clone(), "d");
    pdbs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "guard"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))
        .unwrap(),
    )
    .await
    .unwrap();
    // No disruption controller runs here: its status is written by hand.
    pdbs.patch_status(
        "guard",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"currentHealthy": 1, "desiredHealthy": 1,
            "expectedPods": 1, "disruptionsAllowed": 0, "observedGeneration": 1}})),
    )
    .await
    .unwrap();
    // The cheapest victim is "guarded" (lowest priority), but a budget
    // allows no disruption of it: "plain", more important, goes instead.
    add_pod(
        &h,
        "guarded",
        pod(
            "low",
            "1500m",
            json!({"metadata": {"labels": {"app": "guarded"}}, "spec": {"nodeName": "a"}}),
        ),
    )
    .await;
    add_pod(
        &h,
        "plain",
        pod(
            "mid",
            "1500m",
            json!({"metadata": {"labels": {"app": "plain"}}, "spec": {"nodeName": "b"}}),
        ),
    )
    .await;
    until(&h, "two bound", all_bound(2)).await;
    add_pod(&h, "big", pod("high", "1", json!({}))).await;
    let pods = until(&h, "plain evicted", |p| going(p, "plain")).await;
    assert!(!going(&pods, "guarded"), "the protected pod was evicted");
    assert_eq!(nominated(&pods, "big").as_deref(), Some("b"));
}
