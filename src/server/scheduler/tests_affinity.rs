//! Inter-pod affinity and topology spread, against the real API state with
//! Node objects no agent backs (two zones of two nodes, or three nodes).

use std::time::Duration;

use serde_json::json;

use super::tests::{
    add_node, add_pod, all_bound, node, per_node, start, unschedulable_message, until,
};
use super::Policy;

async fn zones(h: &super::tests::Harness) {
    for (n, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")] {
        add_node(
            h,
            n,
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": zone}}}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn term(app: &str, key: &str) -> serde_json::Value {
    json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_follows_and_anti_affinity_avoids() {
    let h = start(Policy::Spread).await;
    zones(&h).await;
    // A database pinned to b1; a cache that must share its zone; web pods
    // that refuse to share a node with each other.
    add_pod(
        &h,
        "db",
        json!({"metadata": {"labels": {"app": "db"}}, "spec": {"nodeName": "b1"}}),
    )
    .await;
    until(&h, "db bound", all_bound(1)).await;
    add_pod(
        &h,
        "cache",
        json!({"metadata": {"labels": {"app": "cache"}}, "spec": {"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("db", "topology.kubernetes.io/zone")]}}}}),
    )
    .await;
    let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        term("web", "kubernetes.io/hostname")]}});
    for i in 0..4 {
        add_pod(
            &h,
            &format!("web{i}"),
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": anti}}),
        )
        .await;
    }
    let pods = until(&h, "all six bound", all_bound(6)).await;
    let cache = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("cache"));
    assert!(
        matches!(cache.and_then(node).as_deref(), Some("b1" | "b2")),
        "the cache is in the database's zone"
    );
    let webs: Vec<_> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("web"))
        })
        .collect();
    let spread = per_node(&webs.iter().map(|p| (*p).clone()).collect::<Vec<_>>());
    assert_eq!(spread.len(), 4, "one web pod per node: {spread:?}");

    // A fifth has nowhere to go, and says why.
    add_pod(
        &h,
        "web4",
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": anti}}),
    )
    .await;
    let pods = until(&h, "web4 refused", |pods| {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some("web4"))
            .and_then(unschedulable_message)
            .is_some()
    })
    .await;
    let msg = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("web4"))
        .and_then(unschedulable_message)
        .unwrap_or_default();
    assert!(
        msg.starts_with("0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."),
        "{msg}"
    );

    // A pod that placed web pods refuse (their anti-affinity selects it).
    add_pod(
        &h,
        "intruder",
        json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .await;
    let pods = until(&h, "intruder refused", |pods| {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some("intruder"))
            .and_then(unschedulable_message)
            .is_some()
    })
    .await;
    let msg = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("intruder"))
        .and_then(unschedulable_message)
        .unwrap_or_default();
    assert!(
        msg.contains("4 node(s) didn't satisfy existing pods anti-affinity rules"),
        "{msg}"
    );

    // web0 terminating still holds its node (as upstream's inter-pod
    // affinity: only topology spread skips terminating pods): a new web
    // pod is refused everywhere; once web0 is gone, one takes its place.
    let pods_api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(h.admin.clone(), "d");
    let web0_node = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("web0"))
        .and_then(node);
    pods_api
        .delete("web0", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    // Let the scheduler's cache see it terminating.
    tokio::time::sleep(Duration::from_millis(300)).await;
    add_pod(
        &h,
        "web5",
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": anti}}),
    )
    .await;
    let pods = until(&h, "web5 tried", |pods| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some("web5")
                && (node(p).is_some() || unschedulable_message(p).is_some())
        })
    })
    .await;
    let web5 = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("web5"));
    assert_eq!(
        web5.and_then(node),
        None,
        "web5 waits while web0 terminates"
    );
    let msg = web5.and_then(unschedulable_message).unwrap_or_default();
    assert!(
        msg.contains("4 node(s) didn't match pod anti-affinity rules"),
        "{msg}"
    );
    pods_api
        .delete("web0", &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let landed = |pods: &[k8s_openapi::api::core::v1::Pod]| {
        pods.iter()
            .filter(|p| matches!(p.metadata.name.as_deref(), Some("web4" | "web5")))
            .filter_map(node)
            .collect::<Vec<_>>()
    };
    let pods = until(&h, "web4 or web5 bound", |pods| !landed(pods).is_empty()).await;
    assert_eq!(landed(&pods), web0_node.into_iter().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_affine_group_starts_anywhere_then_gathers() {
    let h = start(Policy::Spread).await;
    zones(&h).await;
    let gather = json!({"metadata": {"labels": {"app": "team"}}, "spec": {"affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term("team", "topology.kubernetes.io/zone")]}}}});
    add_pod(&h, "t0", gather.clone()).await;
    let first = until(&h, "the first bound", all_bound(1)).await;
    let zone_of = |n: &str| n.chars().next().unwrap_or('?');
    let z = zone_of(&node(&first[0]).unwrap_or_default());
    for i in 1..4 {
        add_pod(&h, &format!("t{i}"), gather.clone()).await;
    }
    let pods = until(&h, "all bound", all_bound(4)).await;
    for p in &pods {
        assert_eq!(zone_of(&node(p).unwrap_or_default()), z, "all in one zone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_constraints_bound_the_skew_between_zones() {
    let h = start(Policy::Binpack).await;
    zones(&h).await;
    // Bin packing alone would stack them; the constraint keeps the zones
    // within one of each other.
    let spread = json!({"metadata": {"labels": {"app": "s"}}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]}});
    for i in 0..6 {
        add_pod(&h, &format!("s{i}"), spread.clone()).await;
        // One at a time: each decision sees the ones before.
        until(&h, "bound", all_bound(i + 1)).await;
    }
    let pods = until(&h, "all bound", all_bound(6)).await;
    let in_a = pods
        .iter()
        .filter(|p| node(p).is_some_and(|n| n.starts_with('a')))
        .count();
    assert_eq!(in_a, 3, "three per zone");

    // A node without the key cannot take a pod that must spread over it.
    add_node(&h, "bare", json!({"metadata": {"labels": {}}})).await;
    let pinned = json!({"metadata": {"labels": {"app": "s"}}, "spec": {
        "nodeSelector": {"kubernetes.io/hostname": "bare"},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]}});
    tokio::time::sleep(Duration::from_millis(200)).await;
    add_pod(&h, "pinned", pinned).await;
    let pods = until(&h, "pinned refused", |pods| {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some("pinned"))
            .and_then(unschedulable_message)
            .is_some()
    })
    .await;
    let msg = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("pinned"))
        .and_then(unschedulable_message)
        .unwrap_or_default();
    assert!(
        msg.contains(
            "1 node(s) didn't match pod topology spread constraints (missing required label)"
        ),
        "{msg}"
    );
}
