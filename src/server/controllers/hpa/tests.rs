//! The autoscaler against the store through the loopback client, with no
//! kubelet behind the metrics API: what it does with targets it cannot
//! read or must clamp, and with metrics it cannot get. (The scaling on
//! real CPU usage is tested end to end in tests/workloads_autoscaling.rs.)

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::apiserver::{auth, loopback};
use crate::server::controllers::runtime::Informers;
use crate::server::controllers::tests::{admin, api_state, eventually, namespace_with_account};

async fn replica_set(api: &Api<ReplicaSet>, name: &str, replicas: i32) {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "100m"}}}]}}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &rs).await.unwrap();
}

async fn autoscaler(api: &Api<HorizontalPodAutoscaler>, name: &str, kind: &str, target: &str) {
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": 1, "maxReplicas": 3},
    }))
    .unwrap();
    api.create(&PostParams::default(), &hpa).await.unwrap();
}

/// `eventually` for answers that are there or not yet.
async fn until<T, Fut>(what: &str, mut f: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(what, || {
        let answer = f();
        async move { answer.await.ok_or_else(|| "not yet".to_string()) }
    })
    .await
}

/// (reason, message) of condition `type_` once it has one.
async fn condition(
    api: &Api<HorizontalPodAutoscaler>,
    name: &str,
    type_: &str,
) -> (String, String, String) {
    until(&format!("{name} has {type_}"), || async {
        let h = api.get(name).await.ok()?;
        let c = h
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == type_)?;
        Some((
            c.status,
            c.reason.unwrap_or_default(),
            c.message.unwrap_or_default(),
        ))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_it_cannot_read_clamp_or_measure() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let admin = admin(&state);
    namespace_with_account(&admin, "d").await;
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let informers = Arc::new(Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    ));
    let client = loopback::client(
        state.clone(),
        auth::component(auth::HPA_CONTROLLER_USER),
        AGENT,
    );
    let config = Config {
        sync_period: Duration::from_millis(300),
        down_window: Duration::from_secs(300),
        tuning: Tuning::default(),
    };
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { run(client, &i, c, config).await });

    let rs: Api<ReplicaSet> = Api::namespaced(admin.clone(), "d");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(admin.clone(), "d");
    replica_set(&rs, "big", 5).await;
    replica_set(&rs, "off", 0).await;
    replica_set(&rs, "blind", 2).await;
    autoscaler(&hpas, "ghost", "ReplicaSet", "nothing").await;
    autoscaler(&hpas, "widget", "Widget", "w").await;
    autoscaler(&hpas, "big", "ReplicaSet", "big").await;
    autoscaler(&hpas, "off", "ReplicaSet", "off").await;
    autoscaler(&hpas, "blind", "ReplicaSet", "blind").await;
    replica_set(&rs, "shared", 2).await;
    autoscaler(&hpas, "shared-a", "ReplicaSet", "shared").await;
    autoscaler(&hpas, "shared-b", "ReplicaSet", "shared").await;

    // A target that is not there, and a kind no API serves.
    let (s, reason, message) = condition(&hpas, "ghost", "AbleToScale").await;
    assert_eq!((s.as_str(), reason.as_str()), ("False", "FailedGetScale"));
    assert!(
        message.starts_with("the HPA controller was unable to get the target's current scale: "),
        "{message}"
    );
    assert!(
        message.ends_with("replicasets.apps \"nothing\" not found"),
        "{message}"
    );
    let (_, reason, message) = condition(&hpas, "widget", "AbleToScale").await;
    assert_eq!(reason, "FailedGetScale");
    assert!(
        message.contains("no matches for kind \"Widget\" in group \"apps\""),
        "{message}"
    );

    // Above its maximum: brought down to it, and said so.
    until("big scaled to 3", || async {
        let r = rs.get("big").await.ok()?;
        (r.spec?.replicas == Some(3)).then_some(())
    })
    .await;
    let (s, reason, _) = condition(&hpas, "big", "AbleToScale").await;
    assert_eq!((s.as_str(), reason.as_str()), ("True", "SucceededRescale"));
    let big = hpas.get("big").await.unwrap().status.unwrap();
    assert_eq!((big.current_replicas, big.desired_replicas), (Some(5), 3));
    assert!(big.last_scale_time.is_some());
    let events: Api<Event> = Api::namespaced(admin.clone(), "d");
    until("a SuccessfulRescale event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("SuccessfulRescale")
                && e.message.as_deref()
                    == Some(
                        "New size: 3; reason: Current number of replicas above Spec.MaxReplicas",
                    )
        })
    })
    .await;

    // Two autoscalers on the same pods: neither acts. (The pods must exist
    // for them to share any.)
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), "d");
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "shared-0", "labels": {"app": "shared"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    for name in ["shared-a", "shared-b"] {
        let (s, reason, message) = until(&format!("{name} ambiguous"), || async {
            let h = hpas.get(name).await.ok()?;
            let c = h.status?.conditions?.into_iter().find(|c| {
                c.type_ == "ScalingActive" && c.reason.as_deref() == Some("AmbiguousSelector")
            })?;
            Some((
                c.status,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            ))
        })
        .await;
        assert_eq!(
            (s.as_str(), reason.as_str()),
            ("False", "AmbiguousSelector")
        );
        assert_eq!(
            message,
            "pods by selector app=shared are controlled by multiple HPAs: [d/shared-a d/shared-b]"
        );
    }

    // Scaled to zero by hand: left alone.
    let (s, reason, message) = condition(&hpas, "off", "ScalingActive").await;
    assert_eq!((s.as_str(), reason.as_str()), ("False", "ScalingDisabled"));
    assert_eq!(
        message,
        "scaling is disabled since the replica count of the target is zero"
    );

    // No usage to go on (no kubelet to ask): no change, and why.
    let (s, reason, message) = condition(&hpas, "blind", "ScalingActive").await;
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "FailedGetResourceMetric")
    );
    assert_eq!(
        message,
        "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: this server cannot reach kubelets"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        rs.get("blind").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    let blind = hpas.get("blind").await.unwrap().status.unwrap();
    assert_eq!(blind.current_replicas, Some(2));
    // One empty entry for the metric that failed, as upstream.
    assert_eq!(blind.current_metrics.map(|m| m.len()), Some(1));
    until("a FailedComputeMetricsReplicas event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("FailedComputeMetricsReplicas")
                && e.message.as_deref().is_some_and(|m| {
                    m.starts_with("invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: ")
                })
        })
    })
    .await;
}
