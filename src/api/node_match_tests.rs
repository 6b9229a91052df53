use super::*;

fn node(labels: serde_json::Value) -> Node {
    serde_json::from_value(serde_json::json!({"metadata": {"name": "edge-1", "labels": labels}}))
        .unwrap()
}

fn spec(v: serde_json::Value) -> PodSpec {
    let mut v = v;
    v["containers"] = serde_json::json!([]);
    serde_json::from_value(v).unwrap()
}

fn affinity(terms: serde_json::Value) -> PodSpec {
    spec(serde_json::json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
    }}}))
}

#[test]
fn node_selectors_and_required_affinity() {
    let n = node(serde_json::json!({"zone": "a", "gpu": "2"}));
    assert!(selects(&spec(serde_json::json!({})), &n));
    assert!(selects(
        &spec(serde_json::json!({"nodeSelector": {"zone": "a"}})),
        &n
    ));
    assert!(!selects(
        &spec(serde_json::json!({"nodeSelector": {"zone": "b"}})),
        &n
    ));
    let req = |op: &str, values: serde_json::Value| {
        affinity(
            serde_json::json!([{"matchExpressions": [{"key": "gpu", "operator": op, "values": values}]}]),
        )
    };
    assert!(selects(&req("In", serde_json::json!(["1", "2"])), &n));
    assert!(!selects(&req("NotIn", serde_json::json!(["2"])), &n));
    assert!(selects(&req("Exists", serde_json::json!(null)), &n));
    assert!(!selects(&req("DoesNotExist", serde_json::json!(null)), &n));
    assert!(selects(&req("Gt", serde_json::json!(["1"])), &n));
    assert!(!selects(&req("Lt", serde_json::json!(["1"])), &n));
    assert!(!selects(&req("Gt", serde_json::json!(["x"])), &n));
    // Terms are ORed, an empty term matches nothing, fields name the node.
    let terms = affinity(serde_json::json!([
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["edge-1"]}]},
    ]));
    assert!(selects(&terms, &n));
    assert!(!selects(&affinity(serde_json::json!([{}])), &n));
}

fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: value.map(String::from),
        effect: effect.into(),
        time_added: None,
    }
}

fn toleration(v: serde_json::Value) -> Toleration {
    serde_json::from_value(v).unwrap()
}

#[test]
fn tolerations_as_upstream() {
    let t = taint("dedicated", Some("db"), "NoSchedule");
    assert!(tolerates(
        &toleration(serde_json::json!({"key": "dedicated", "value": "db"})),
        &t
    ));
    assert!(!tolerates(
        &toleration(serde_json::json!({"key": "dedicated", "value": "web"})),
        &t
    ));
    assert!(tolerates(
        &toleration(serde_json::json!({"key": "dedicated", "operator": "Exists"})),
        &t
    ));
    assert!(tolerates(
        &toleration(serde_json::json!({"operator": "Exists"})),
        &t
    ));
    assert!(!tolerates(
        &toleration(serde_json::json!({"operator": "Exists", "effect": "NoExecute"})),
        &t
    ));
    // Equal with no key tolerates nothing.
    assert!(!tolerates(
        &toleration(serde_json::json!({"value": "db"})),
        &t
    ));
    let taints = [taint("a", None, "NoExecute"), t.clone()];
    let s = spec(serde_json::json!({"tolerations": [{"key": "a", "operator": "Exists"}]}));
    let found = untolerated(&s, &taints, |t| t.effect == "NoSchedule");
    assert_eq!(found.map(|t| t.key.as_str()), Some("dedicated"));
    assert!(untolerated(&s, &taints, |t| t.effect == "NoExecute").is_none());
}
