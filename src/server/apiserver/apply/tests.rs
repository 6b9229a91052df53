use serde_json::{json, Value};

use super::fieldset::{self, FieldSet, Scope};
use super::managed::{decode, record_update, APPLY, UPDATE};
use super::*;

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:01:00Z";

/// The manifest of trace 07 (`kubectl apply --server-side`).
fn deploy(replicas: i64, image: &str) -> Value {
    json!({"apiVersion":"apps/v1","kind":"Deployment",
        "metadata":{"labels":{"app":"x"},"name":"x","namespace":"default"},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"x"}},
            "template":{"metadata":{"labels":{"app":"x"}},
                "spec":{"containers":[{"image":image,"name":"app","ports":[{"containerPort":80}]}]}}}})
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj:#}"))
}

#[test]
fn fieldset_of_trace_07_object() {
    let obj = deploy(2, "nginx:1.27");
    let set = fieldset::applied_set(&fieldset::ownable(&obj, Scope::Main), shape::root(&obj));
    let expected = json!({
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                        ".": {},
                        "f:containerPort": {}
                    }}
                }}}
            }
        }
    });
    assert_eq!(set.to_json(), expected);
    // The exact bytes, key order included.
    assert_eq!(
        set.to_json().to_string(),
        r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
    );
    assert_eq!(FieldSet::from_json(&expected).unwrap(), set);
}

#[test]
fn set_operations_and_paths() {
    let a = FieldSet::from_json(&json!({"f:a": {}, "f:b": {".": {}, "f:c": {}}})).unwrap();
    let b = FieldSet::from_json(&json!({"f:b": {"f:c": {}, "f:d": {}}})).unwrap();
    assert_eq!(
        a.union(&b).to_json(),
        json!({"f:a": {}, "f:b": {".": {}, "f:c": {}, "f:d": {}}})
    );
    assert_eq!(a.difference(&b).to_json(), json!({"f:a": {}, "f:b": {}}));
    assert_eq!(a.intersection(&b).to_json(), json!({"f:b": {"f:c": {}}}));
    assert!(FieldSet::from_json(&json!({"x": {}})).is_err());
    let p: Vec<String> = vec![
        "f:spec".into(),
        "f:containers".into(),
        r#"k:{"name":"app"}"#.into(),
        "f:ports".into(),
        r#"k:{"containerPort":80,"protocol":"TCP"}"#.into(),
        "f:finalizers".into(),
        r#"v:"a""#.into(),
        "i:3".into(),
    ];
    assert_eq!(
        fieldset::path_string(&p),
        r#".spec.containers[name="app"].ports[containerPort=80,protocol="TCP"].finalizers[="a"][3]"#
    );
}

#[test]
fn create_records_the_applier() {
    let out = server_side_apply(None, &deploy(2, "nginx:1.27"), "kubectl", false, T0).unwrap();
    let e = entry(&out, "kubectl");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T0);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(e["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn conflict_with_another_manager_and_force() {
    let live = server_side_apply(None, &deploy(2, "nginx:1.27"), "kubectl", false, T0).unwrap();
    // Same values: shared ownership, no conflict.
    let shared =
        server_side_apply(Some(&live), &deploy(2, "nginx:1.27"), "other", false, T1).unwrap();
    assert!(entry(&shared, "other")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
    // A different value: conflict.
    let err =
        server_side_apply(Some(&live), &deploy(3, "nginx:1.27"), "other", false, T1).unwrap_err();
    assert_eq!(
        err,
        ApplyError::Conflicts(vec![Conflict {
            manager: "\"kubectl\"".into(),
            field: ".spec.replicas".into()
        }])
    );
    let status = err.to_api_error().to_status();
    assert_eq!(status["code"], 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"kubectl\"", "field": ".spec.replicas"})
    );
    // Forced: other takes .spec.replicas, kubectl keeps the rest.
    let out = server_side_apply(Some(&live), &deploy(3, "nginx:1.27"), "other", true, T1).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(entry(&out, "kubectl")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_none());
    assert!(entry(&out, "kubectl")["fieldsV1"]["f:spec"]
        .get("f:selector")
        .is_some());
    assert!(entry(&out, "other")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
}

#[test]
fn conflicts_with_update_managers_name_the_api_version() {
    let mut live = deploy(2, "nginx:1.27");
    record_update(None, &mut live, "kubectl-client-side-apply", None, T0);
    let e = &decode(&live)[0];
    assert_eq!(e.operation, UPDATE);
    let err = server_side_apply(Some(&live), &deploy(2, "nginx:1.28"), "mine", false, T1)
        .unwrap_err()
        .to_api_error();
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.template.spec.containers[name=\"app\"].image"
    );
    let err = server_side_apply(Some(&live), &deploy(5, "nginx:1.28"), "mine", false, T1)
        .unwrap_err()
        .to_api_error();
    assert!(err.message.starts_with("Apply failed with 2 conflicts: conflict with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\n- .spec.template"), "{}", err.message);
    assert_eq!(err.causes.len(), 2);
}

#[test]
fn fields_no_longer_applied_are_removed_unless_owned_elsewhere() {
    let mut m = deploy(2, "nginx:1.27");
    m["metadata"]["labels"]["tier"] = json!("web");
    m["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    let live = server_side_apply(None, &m, "kubectl", false, T0).unwrap();
    // Another manager shares the tier label.
    let other = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","labels":{"tier":"web"}}});
    let live = server_side_apply(Some(&live), &other, "labeller", false, T0).unwrap();
    // kubectl drops the label, the env list and replicas.
    let mut m2 = deploy(2, "nginx:1.27");
    m2["spec"].as_object_mut().unwrap().remove("replicas");
    let out = server_side_apply(Some(&live), &m2, "kubectl", false, T1).unwrap();
    assert!(out["spec"].get("replicas").is_none(), "{out:#}");
    assert!(out["spec"]["template"]["spec"]["containers"][0]
        .get("env")
        .is_none());
    assert_eq!(
        out["metadata"]["labels"]["tier"], "web",
        "still owned by labeller"
    );
    assert_eq!(entry(&out, "kubectl")["time"], T1);
    // Re-applying the same thing changes nothing, not even the time.
    let again =
        server_side_apply(Some(&out), &m2, "kubectl", false, "2030-01-01T00:00:00Z").unwrap();
    assert_eq!(again, out);
}

#[test]
fn two_managers_own_different_fields_of_one_container() {
    let live = server_side_apply(None, &deploy(2, "nginx:1.27"), "kubectl", false, T0).unwrap();
    let sidecar = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},
        "spec":{"template":{"spec":{"containers":[{"name":"app","resources":{"limits":{"cpu":"1"}}},
                                                 {"name":"side","image":"busybox"}]}}}});
    let out = server_side_apply(Some(&live), &sidecar, "tuner", false, T1).unwrap();
    let cs = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["image"], "nginx:1.27");
    assert_eq!(cs[0]["resources"]["limits"]["cpu"], "1");
    assert_eq!(cs[1]["name"], "side");
    let tuner = &entry(&out, "tuner")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert_eq!(
        tuner[r#"k:{"name":"app"}"#],
        json!({".": {}, "f:name": {}, "f:resources": {"f:limits": {"f:cpu": {}}}})
    );
    // kubectl re-applies without knowing the sidecar: both stay.
    let out2 =
        server_side_apply(Some(&out), &deploy(2, "nginx:1.28"), "kubectl", false, T1).unwrap();
    let cs = out2["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["image"], "nginx:1.28");
    assert_eq!(cs[0]["resources"]["limits"]["cpu"], "1");
    // tuner drops its container and limits: the sidecar goes, "app"
    // (still kubectl's) stays.
    let none = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}});
    let out3 = server_side_apply(Some(&out2), &none, "tuner", false, T1).unwrap();
    let cs = out3["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "{out3:#}");
    assert!(cs[0].get("resources").is_none());
    assert_eq!(cs[0]["image"], "nginx:1.28");
}

#[test]
fn associative_lists_merge_by_key_atomic_lists_replace_sets_union() {
    let pod = |ports: Value, args: Value, fins: Value| {
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","finalizers":fins},
            "spec":{"containers":[{"name":"c","image":"i","ports":ports,"args":args}]}})
    };
    let live = pod(
        json!([{"containerPort":80},{"containerPort":53,"protocol":"UDP"}]),
        json!(["a", "b"]),
        json!(["x"]),
    );
    let mut live = live;
    record_update(None, &mut live, "creator", None, T0);
    let applied = pod(
        json!([{"containerPort":80,"name":"http"},{"containerPort":53,"protocol":"TCP"}]),
        json!(["c"]),
        json!(["y"]),
    );
    let out = server_side_apply(Some(&live), &applied, "applier", true, T1).unwrap();
    let c = &out["spec"]["containers"][0];
    assert_eq!(
        c["ports"],
        json!([{"containerPort":80,"name":"http"},{"containerPort":53,"protocol":"UDP"},{"containerPort":53,"protocol":"TCP"}])
    );
    assert_eq!(c["args"], json!(["c"]));
    assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
    let f = &entry(&out, "applier")["fieldsV1"];
    assert_eq!(f["f:metadata"]["f:finalizers"], json!({"v:\"y\"": {}}));
    assert_eq!(
        f["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:args"],
        json!({})
    );
}

#[test]
fn record_update_tracks_changed_fields() {
    let mut obj = deploy(2, "nginx:1.27");
    obj["metadata"]["uid"] = json!("u");
    obj["metadata"]["resourceVersion"] = json!("5");
    record_update(None, &mut obj, "kubectl-create", None, T0);
    let f = &entry(&obj, "kubectl-create")["fieldsV1"];
    assert_eq!(f["f:metadata"], json!({"f:labels": {".": {}, "f:app": {}}}));
    assert!(f["f:spec"].get(".").is_none());
    assert_eq!(f["f:spec"]["f:selector"], json!({}));
    assert_eq!(
        f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:ports"],
        json!({".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
    assert!(f["f:spec"]["f:template"]["f:spec"]["f:containers"]
        .get(".")
        .is_none());
    // A scale by another manager takes spec.replicas.
    let mut scaled = obj.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(Some(&obj), &mut scaled, "kubectl", Some("scale"), T1);
    let entries = decode(&scaled);
    assert_eq!(entries.len(), 2);
    let s = entry(&scaled, "kubectl");
    assert_eq!(s["subresource"], "scale");
    assert_eq!(s["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(entry(&scaled, "kubectl-create")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_none());
    // No change: nothing moves, times stay.
    let mut same = scaled.clone();
    record_update(
        Some(&scaled),
        &mut same,
        "kubectl",
        Some("scale"),
        "2031-01-01T00:00:00Z",
    );
    assert_eq!(same, scaled);
    // managedFields: [] resets.
    let mut reset = scaled.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["spec"]["replicas"] = json!(1);
    record_update(Some(&scaled), &mut reset, "x", None, T1);
    assert!(reset["metadata"].get("managedFields").is_none());
    // A rewritten list replaces the stored one.
    let mut rewritten = scaled.clone();
    let only = decode(&scaled)
        .into_iter()
        .find(|e| e.manager == "kubectl-create")
        .unwrap();
    let mut only = only;
    only.operation = APPLY.into();
    only.manager = "kubectl".into();
    rewritten["metadata"]["managedFields"] = json!([only.to_json()]);
    record_update(Some(&scaled), &mut rewritten, "kubectl", None, T1);
    let e = decode(&rewritten);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].operation, APPLY);
}

#[test]
fn kubectl_takes_over_client_side_applied_fields() {
    let mut m = deploy(2, "nginx:1.27");
    let la = last_applied_value(&m);
    m["metadata"]["annotations"] = json!({LAST_APPLIED: la});
    let mut live = m.clone();
    record_update(None, &mut live, "kubectl-client-side-apply", None, T0);
    // Another manager can't take replicas without force...
    assert!(server_side_apply(Some(&live), &deploy(3, "nginx:1.27"), "other", false, T1).is_err());
    // ...but kubectl can, since live still equals last-applied.
    let out =
        server_side_apply(Some(&live), &deploy(3, "nginx:1.27"), "kubectl", false, T1).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    // And the annotation follows the applied configuration.
    let ann = out["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap();
    assert!(ann.ends_with('\n'));
    let parsed: Value = serde_json::from_str(ann).unwrap();
    assert_eq!(parsed["spec"]["replicas"], 3);
    // A field changed by someone else since is a real conflict.
    let mut drifted = live.clone();
    drifted["spec"]["replicas"] = json!(7);
    record_update(Some(&live), &mut drifted, "kubectl-scale", None, T1);
    let mut csa = drifted.clone();
    // (give the replicas back to the client-side applier to isolate the check)
    record_update(
        Some(&drifted),
        &mut csa,
        "kubectl-client-side-apply",
        None,
        T1,
    );
    let err = server_side_apply(
        Some(&drifted),
        &deploy(3, "nginx:1.27"),
        "kubectl",
        false,
        T1,
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::Conflicts(ref c) if c[0].manager.contains("kubectl-scale")));
}

#[test]
fn manager_names() {
    assert_eq!(
        manager_name(Some("m"), Some("kubectl/v1.32.4 (linux)")),
        "m"
    );
    assert_eq!(
        manager_name(
            None,
            Some("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07")
        ),
        "kubectl"
    );
    assert_eq!(manager_name(Some(""), None), "unknown");
    let e = check_field_manager(Some(&"a".repeat(129)), "PatchOptions").unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("fieldManager: Too long"),
        "{}",
        e.message
    );
}

/// A pod's `nodeSelector` is `+mapType=atomic` upstream: one manager owns
/// it whole, so another applying a different selector conflicts instead of
/// merging keys into it (it merged while the shapes were hand-written).
#[test]
fn atomic_maps_are_owned_whole() {
    let with_selector = |sel: Value| {
        let mut d = deploy(2, "nginx:1.27");
        d["spec"]["template"]["spec"]["nodeSelector"] = sel;
        d
    };
    let live = server_side_apply(
        None,
        &with_selector(json!({"disk": "ssd"})),
        "kubectl",
        false,
        T0,
    )
    .unwrap();
    let err = server_side_apply(
        Some(&live),
        &with_selector(json!({"zone": "a"})),
        "other",
        false,
        T1,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ApplyError::Conflicts(vec![Conflict {
            manager: "\"kubectl\"".into(),
            field: ".spec.template.spec.nodeSelector".into()
        }])
    );
    let out = server_side_apply(
        Some(&live),
        &with_selector(json!({"zone": "a"})),
        "other",
        true,
        T1,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["nodeSelector"],
        json!({"zone": "a"})
    );
    assert_eq!(
        entry(&out, "other")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:nodeSelector"],
        json!({})
    );
}
