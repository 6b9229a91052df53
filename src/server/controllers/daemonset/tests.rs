//! The DaemonSet controller against the store, with Node objects no agent
//! backs and pod status written by the test (no scheduler runs: a daemon
//! pod's node is the one its affinity names).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::apiserver::{auth, loopback};
use crate::server::controllers::runtime::Informers;
use crate::server::controllers::tests::{admin, api_state, eventually, namespace_with_account};

/// The live daemon pods, as (target node, revision hash, name).
async fn daemons(pods: &Api<Pod>) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                nodes::target_node(p).unwrap_or_default().to_string(),
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(POD_REVISION_LABEL))
                    .cloned()
                    .unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

fn on(list: &[(String, String, String)]) -> Vec<&str> {
    list.iter().map(|(n, _, _)| n.as_str()).collect()
}

async fn make_ready(pods: &Api<Pod>, name: &str) {
    let patch = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_fitting_node_replaced_and_rolled_node_by_node() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _store) = api_state(dir.path());
    let admin = admin(&state);
    namespace_with_account(&admin, "d").await;
    let node_api: Api<Node> = Api::all(admin.clone());
    for (name, labels, taints) in [
        ("n1", json!({"disk": "ssd"}), json!([])),
        (
            "n2",
            json!({"disk": "ssd"}),
            json!([{"key": "gpu", "effect": "NoSchedule"}]),
        ),
        ("n3", json!({}), json!([])),
    ] {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
        .unwrap();
        node_api.create(&PostParams::default(), &n).await.unwrap();
    }
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let informers = Arc::new(Informers::new(
        loopback::client(state.clone(), auth::component(auth::INFORMERS_USER), "i"),
        cancel.clone(),
    ));
    let client = loopback::client(
        state.clone(),
        auth::component(auth::DAEMONSET_CONTROLLER_USER),
        AGENT,
    );
    let (i, c) = (informers.clone(), cancel.clone());
    tokio::spawn(async move { run(client, &i, c).await });

    let sets: Api<DaemonSet> = Api::namespaced(admin.clone(), "d");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "d");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {"disk": "ssd"},
                    "containers": [{"name": "c", "image": "agent:1"}]}}}}))
    .unwrap();
    sets.create(&PostParams::default(), &ds).await.unwrap();

    // n1 only: n2's taint is not tolerated, n3 lacks the label.
    let first = eventually("one pod on n1", || async {
        let d = daemons(&pods).await;
        if on(&d) == ["n1"] {
            Ok(d)
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;
    let s = eventually("status desired 1", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if s.desired_number_scheduled == 1 && s.current_number_scheduled == 1 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!((s.number_ready, s.number_misscheduled), (0, 0));

    // A node gains the label: it gets a daemon.
    node_api
        .patch(
            "n3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"disk": "ssd"}}})),
        )
        .await
        .unwrap();
    let two = eventually("pods on n1 and n3", || async {
        let d = daemons(&pods).await;
        if on(&d) == ["n1", "n3"] {
            Ok(d)
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;
    assert_eq!(two[0].2, first[0].2, "n1's pod was kept");

    // A failed daemon pod is replaced.
    let failed = two[1].2.clone();
    pods.patch_status(
        &failed,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    eventually("the failed pod replaced", || async {
        let d = daemons(&pods).await;
        let replaced = on(&d) == ["n1", "n3"] && d[1].2 != failed;
        if replaced {
            Ok(())
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;

    // A NoExecute taint the pod does not tolerate: the daemon leaves.
    node_api
        .patch(
            "n3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": [{"key": "evict", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    eventually("n3's daemon gone", || async {
        let d = daemons(&pods).await;
        if on(&d) == ["n1"] {
            Ok(())
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;
    node_api
        .patch(
            "n3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": null}})),
        )
        .await
        .unwrap();
    let before = eventually("n3's daemon back", || async {
        let d = daemons(&pods).await;
        if on(&d) == ["n1", "n3"] {
            Ok(d)
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;
    for (_, _, name) in &before {
        make_ready(&pods, name).await;
    }
    eventually("both available", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if s.number_available == Some(2) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;

    // A new template: one node at a time (maxUnavailable 1).
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}})),
    )
    .await
    .unwrap();
    let old_hash = before[0].1.clone();
    let mid = eventually("one node updated", || async {
        let d = daemons(&pods).await;
        let new: Vec<_> = d.iter().filter(|x| x.1 != old_hash).collect();
        if d.len() == 2 && new.len() == 1 {
            Ok(d)
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;
    // The new pod is not ready: the other node keeps its old pod.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = daemons(&pods).await;
    assert_eq!(
        still.iter().filter(|x| x.1 == old_hash).count(),
        1,
        "{still:?}"
    );
    let fresh = mid.iter().find(|x| x.1 != old_hash).unwrap().2.clone();
    make_ready(&pods, &fresh).await;
    let done = eventually("both nodes updated", || async {
        let d = daemons(&pods).await;
        if d.len() == 2 && d.iter().all(|x| x.1 != old_hash) {
            Ok(d)
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;
    for (_, _, name) in &done {
        make_ready(&pods, name).await;
    }
    let s = eventually("status updated 2", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if s.updated_number_scheduled == Some(2) && s.number_available == Some(2) {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(s.observed_generation, Some(2));
    // Two revisions, numbered.
    let revs: Api<ControllerRevision> = Api::namespaced(admin.clone(), "d");
    let mut numbers: Vec<i64> = revs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.revision)
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
}
