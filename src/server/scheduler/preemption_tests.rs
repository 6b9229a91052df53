//! Preemption decided on a cache built by hand: which victims, which
//! node, and what a budget, a spread or an anti-affinity changes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{json, Value};

use super::super::algorithm::{self, Search};
use super::super::cache::Cache;
use super::super::scores::Policy;
use super::super::tests::merge;
use super::super::{interpod, spread};
use super::*;

fn node(name: &str, cpu: &str, labels: Value) -> Arc<Node> {
    let mut l = json!({"kubernetes.io/hostname": name});
    if let (Some(l), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
        l.extend(extra.clone());
    }
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": l},
            "status": {
                "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .unwrap(),
    )
}

/// A pod of `priority` asking for `cpu` on `on` (None: pending), with
/// `extra` merged over it.
fn pod(name: &str, priority: i32, cpu: &str, on: Option<&str>, extra: Value) -> Arc<Pod> {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}")},
        "spec": {"priority": priority, "nodeName": on,
            "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]},
        "status": {"phase": if on.is_some() { "Running" } else { "Pending" }},
    });
    merge(&mut v, &extra);
    Arc::new(serde_json::from_value(v).unwrap())
}

fn labels(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}}})
}

fn pdb(ns: &str, selector: Value, allowed: i32, disrupted: Value) -> Arc<PodDisruptionBudget> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": ns},
            "spec": {"selector": selector},
            "status": {"currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0,
                "disruptionsAllowed": allowed, "disruptedPods": disrupted},
        }))
        .unwrap(),
    )
}

/// Schedule `p` on `cache` (it must fit nowhere), then plan.
fn plan_for(cache: &Cache, p: &Pod, pdbs: &[Arc<PodDisruptionBudget>]) -> Result<Plan, String> {
    let err = algorithm::schedule(p, cache, Policy::Spread, &mut Search::default())
        .expect_err("the pod fits somewhere");
    plan(p, cache, &err, pdbs).map_err(|e| {
        assert!(e.clears, "{}", e.message);
        e.message
    })
}

fn names(plan: &Plan) -> Vec<&str> {
    plan.victims
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap_or_default())
        .collect()
}

#[test]
fn a_budget_keeps_its_pods_when_others_on_the_node_will_do() {
    let mut c = Cache::default();
    c.set_node(node("n", "2", json!({})));
    c.update_pod(pod("guarded", 1, "1", Some("n"), labels("g")));
    c.update_pod(pod("free", 50, "1", Some("n"), labels("f")));
    let big = pod("big", 100, "1", None, json!({}));
    // Without a budget, the least important goes.
    assert_eq!(names(&plan_for(&c, &big, &[]).unwrap()), ["guarded"]);
    let guard = pdb("d", json!({"matchLabels": {"app": "g"}}), 0, json!(null));
    assert_eq!(names(&plan_for(&c, &big, &[guard]).unwrap()), ["free"]);
}

#[test]
fn a_budget_counts_down_over_its_pods_most_important_first() {
    let mut c = Cache::default();
    c.set_node(node("n", "3", json!({})));
    c.update_pod(pod("p1", 10, "1", Some("n"), labels("g")));
    c.update_pod(pod("p2", 5, "1", Some("n"), labels("g")));
    c.update_pod(pod("p3", 20, "1", Some("n"), json!({})));
    let big = pod("big", 100, "2", None, json!({}));
    assert_eq!(names(&plan_for(&c, &big, &[]).unwrap()), ["p1", "p2"]);
    // One disruption allowed: p1 may go, p2 would break the budget and is
    // put back first; p3 and p1 go instead.
    let one = pdb("d", json!({"matchLabels": {"app": "g"}}), 1, json!(null));
    assert_eq!(names(&plan_for(&c, &big, &[one]).unwrap()), ["p3", "p1"]);
    // A pod the budget already counts as disrupted is not counted again.
    let counted = pdb(
        "d",
        json!({"matchLabels": {"app": "g"}}),
        1,
        json!({"p2": "2026-01-01T00:00:00Z"}),
    );
    assert_eq!(
        names(&plan_for(&c, &big, &[counted]).unwrap()),
        ["p1", "p2"]
    );
    // Budgets of another namespace, or with an empty selector, protect
    // nothing here.
    let elsewhere = pdb(
        "other",
        json!({"matchLabels": {"app": "g"}}),
        0,
        json!(null),
    );
    let empty = pdb("d", json!({}), 0, json!(null));
    assert_eq!(
        names(&plan_for(&c, &big, &[elsewhere, empty]).unwrap()),
        ["p1", "p2"]
    );
    // A pod without labels is in no budget, even one selecting by absence.
    let absent = pdb(
        "d",
        json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
        0,
        json!(null),
    );
    let mut c = Cache::default();
    c.set_node(node("n", "1", json!({})));
    c.update_pod(pod("bare", 1, "1", Some("n"), json!({})));
    let plan = plan_for(&c, &pod("big", 100, "1", None, json!({})), &[absent]).unwrap();
    assert_eq!(names(&plan), ["bare"]);
}

#[test]
fn the_node_breaking_the_fewest_budgets_wins() {
    let mut c = Cache::default();
    c.set_node(node("a", "1", json!({})));
    c.set_node(node("b", "1", json!({})));
    c.update_pod(pod("cheap", 1, "1", Some("a"), labels("g")));
    c.update_pod(pod("dear", 50, "1", Some("b"), labels("f")));
    let big = pod("big", 100, "1", None, json!({}));
    assert_eq!(plan_for(&c, &big, &[]).unwrap().node, "a");
    let guard = pdb("d", json!({"matchLabels": {"app": "g"}}), 0, json!(null));
    assert_eq!(plan_for(&c, &big, &[guard]).unwrap().node, "b");
}

#[test]
fn fewer_victims_beat_a_lower_sum_and_the_latest_started_wins_a_tie() {
    let mut c = Cache::default();
    // Node a: two victims (5 and -1000), node b: one (5). A plain sum
    // would choose a; upstream's shifted sum chooses b.
    c.set_node(node("a", "2", json!({})));
    c.set_node(node("b", "2", json!({})));
    c.update_pod(pod("a1", 5, "1", Some("a"), json!({})));
    c.update_pod(pod("a2", -1000, "1", Some("a"), json!({})));
    c.update_pod(pod("b1", 5, "2", Some("b"), json!({})));
    let big = pod("big", 100, "2", None, json!({}));
    let plan = plan_for(&c, &big, &[]).unwrap();
    assert_eq!((plan.node.as_str(), names(&plan)), ("b", vec!["b1"]));
    // Equal in all else: the node whose victim started last.
    let mut c = Cache::default();
    for (n, t) in [
        ("old", "2026-01-01T00:00:00Z"),
        ("new", "2026-06-01T00:00:00Z"),
    ] {
        c.set_node(node(n, "1", json!({})));
        c.update_pod(pod(
            &format!("on-{n}"),
            5,
            "1",
            Some(n),
            json!({"status": {"startTime": t}}),
        ));
    }
    let big = pod("big", 100, "1", None, json!({}));
    for _ in 0..10 {
        assert_eq!(plan_for(&c, &big, &[]).unwrap().node, "new");
    }
}

#[test]
fn what_eviction_cannot_cure_is_not_tried() {
    let mut c = Cache::default();
    c.set_node(node("a", "2", json!({})));
    c.update_pod(pod("low", 1, "1", Some("a"), json!({})));
    // A required affinity to pods that exist nowhere (on a node with room:
    // were room short too, that is checked first and the node would be a
    // candidate, as upstream's filter order makes it).
    let p = pod(
        "p",
        100,
        "100m",
        None,
        json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "none"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}),
    );
    assert_eq!(
        plan_for(&c, &p, &[]).unwrap_err(),
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    // Room and anti-affinity both fail on a node whose pods are all more
    // important: a candidate without victims.
    let mut c = Cache::default();
    c.set_node(node("a", "1", json!({})));
    c.update_pod(pod("top", 1000, "1", Some("a"), json!({})));
    let p = pod("p", 100, "1", None, json!({}));
    assert_eq!(
        plan_for(&c, &p, &[]).unwrap_err(),
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
}

#[test]
fn a_terminating_pod_in_the_way_is_counted_out_too() {
    // The only thing in the way of "db" is a "web" pod that is already
    // going (anti-affinity counts it): that node needs no other victim.
    let mut c = Cache::default();
    c.set_node(node("a", "2", json!({})));
    c.set_node(node("b", "1", json!({})));
    c.update_pod(pod(
        "web",
        1,
        "100m",
        Some("a"),
        json!({"metadata": {"labels": {"app": "web"}, "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    ));
    c.update_pod(pod("filler", 50, "1", Some("b"), json!({})));
    let db = pod(
        "db",
        100,
        "500m",
        None,
        json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}),
    );
    let plan = plan_for(&c, &db, &[]).unwrap();
    assert_eq!((plan.node.as_str(), names(&plan)), ("a", vec!["web"]));
}

#[test]
fn taking_pods_out_and_back_restores_the_counts() {
    let mut c = Cache::default();
    for (n, zone) in [("a", "z1"), ("b", "z2"), ("c", "z3")] {
        c.set_node(node(n, "4", json!({"zone": zone})));
    }
    let anti = json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "s"}}, "topologyKey": "zone"}]}}}});
    let mut placed = Vec::new();
    for (i, n) in ["a", "a", "b", "a"].iter().enumerate() {
        let mut extra = labels("s");
        if i == 1 {
            merge(&mut extra, &anti);
        }
        let p = pod(&format!("s{i}"), 1, "100m", Some(n), extra);
        c.update_pod(p.clone());
        placed.push((p, *n));
    }
    let mut incoming = labels("s");
    merge(
        &mut incoming,
        &json!({"spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule", "minDomains": 3,
            "labelSelector": {"matchLabels": {"app": "s"}}}]}}),
    );
    merge(&mut incoming, &anti);
    let p = pod("new", 100, "100m", None, incoming);
    let spec = p.spec.as_ref().unwrap();
    let mut sp = spread::prepare(&p, &c).unwrap();
    let mut ip = interpod::prepare(&p, &c).unwrap();
    let (sp0, ip0) = (sp.clone(), ip.for_filter());
    // Every pod out, then back in another order.
    for (q, n) in &placed {
        let info = c.node(n).unwrap();
        let placed = info.pods.get(q.metadata.uid.as_deref().unwrap()).unwrap();
        let lbl = info.node.as_ref().unwrap().metadata.labels.clone().unwrap();
        sp.tally(spec, q, info, -1);
        ip.tally(&p, placed, &lbl, &c, -1);
    }
    assert_ne!(sp, sp0);
    // Gone: neither the skew nor the anti-affinity stands in the way.
    let a = c.node("a").unwrap();
    assert_eq!(spread::check(&sp, a), Ok(()));
    assert_eq!(interpod::check(&ip, a), Ok(()));
    for (q, n) in placed.iter().rev() {
        let info = c.node(n).unwrap();
        let placed = info.pods.get(q.metadata.uid.as_deref().unwrap()).unwrap();
        let lbl = info.node.as_ref().unwrap().metadata.labels.clone().unwrap();
        sp.tally(spec, q, info, 1);
        ip.tally(&p, placed, &lbl, &c, 1);
    }
    assert_eq!(sp, sp0);
    assert_eq!(ip.for_filter(), ip0);
}

#[test]
fn room_made_for_a_nominated_pod_is_not_taken_by_a_less_important_one() {
    let mut c = Cache::default();
    c.set_node(node("n", "2", json!({})));
    c.update_pod(pod("r", 0, "1", Some("n"), json!({})));
    let pre = pod("pre", 100, "1", None, json!({}));
    c.nominate(&pre, Some("n"));
    let try_ =
        |c: &Cache, p: &Pod| algorithm::schedule(p, c, Policy::Spread, &mut Search::default());
    let low = pod("low", 10, "1", None, json!({}));
    let err = try_(&c, &low).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/1 nodes are available: 1 Insufficient cpu."
    );
    // As important: held back too. More important: not.
    assert!(try_(&c, &pod("same", 100, "1", None, json!({}))).is_err());
    assert_eq!(
        try_(&c, &pod("higher", 200, "1", None, json!({}))).unwrap(),
        "n"
    );
    assert_eq!(try_(&c, &pre).unwrap(), "n");
    // Once bound, the pod is counted once, as placed.
    c.assume(&pre, "n");
    assert!(c.node("n").unwrap().nominated.is_empty());
    assert!(try_(&c, &pod("higher", 200, "1", None, json!({}))).is_err());
    c.remove_pod("uid-r");
    assert_eq!(try_(&c, &low).unwrap(), "n");
    // A nomination withdrawn frees the room at once.
    let mut c = Cache::default();
    c.set_node(node("n", "1", json!({})));
    c.nominate(&pre, Some("n"));
    assert!(try_(&c, &low).is_err());
    c.nominate(&pre, None);
    assert_eq!(try_(&c, &low).unwrap(), "n");
}
