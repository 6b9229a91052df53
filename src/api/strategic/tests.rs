use serde_json::{json, Value};

use super::*;

pub(super) fn deploy(patch: Value, orig: &Value) -> Value {
    apply(orig, &patch, "apps/v1", "Deployment").unwrap()
}

/// A Deployment like the ones kubectl creates, with one container "app".
pub(super) fn live() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "labels": {"app": "x"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [{
                        "name": "app", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "args": ["-a", "-b"]
                    }],
                    "tolerations": [{"key": "k1", "operator": "Exists"}],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        }
    })
}

fn pod_spec(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]
}

/// No key anywhere in `v` starts with '$'.
pub(super) fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            assert!(!k.starts_with('$'), "directive {k} in output");
            assert_no_directives(v);
        }),
        Value::Array(a) => a.iter().for_each(assert_no_directives),
        _ => {}
    }
}

// Trace 06-apply-modify: the live object kubectl GETs and the exact PATCH it sends.
const TRACE06_LIVE: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{},\"labels\":{\"app\":\"x\"},\"name\":\"x\",\"namespace\":\"default\"},\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"x\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"x\"}},\"spec\":{\"containers\":[{\"image\":\"nginx:1.27\",\"name\":\"app\",\"ports\":[{\"containerPort\":80}]}]}}}}\n", "deployment.kubernetes.io/revision": "1"}, "labels": {"app": "x"}, "name": "x", "namespace": "default", "uid": "1d15a1cd-30f3-432b-9965-0f2c58feb705", "creationTimestamp": "2026-11-25T08:56:00Z", "generation": 1, "resourceVersion": "1022"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"image": "nginx:1.27", "name": "app", "ports": [{"containerPort": 80}]}]}}, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}, "status": {"observedGeneration": 1, "replicas": 2, "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}"#;
const TRACE06_PATCH: &str = r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{},\"labels\":{\"app\":\"x\"},\"name\":\"x\",\"namespace\":\"default\"},\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"x\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"x\"}},\"spec\":{\"containers\":[{\"env\":[{\"name\":\"MODE\",\"value\":\"v2\"}],\"image\":\"nginx:1.28\",\"name\":\"app\",\"ports\":[{\"containerPort\":80}]}]}}}}\n"}},"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"env":[{"name":"MODE","value":"v2"}],"image":"nginx:1.28","name":"app"}]}}}}"#;

#[test]
fn trace_06_apply_modify() {
    let live: Value = serde_json::from_str(TRACE06_LIVE).unwrap();
    let patch: Value = serde_json::from_str(TRACE06_PATCH).unwrap();
    let out = deploy(patch.clone(), &live);
    // What the real server answered (spec of the PATCH response).
    let want_spec = json!({"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [
            {"image": "nginx:1.28", "name": "app", "ports": [{"containerPort": 80}],
             "env": [{"name": "MODE", "value": "v2"}]}]}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600});
    assert_eq!(out["spec"], want_spec);
    let ann = &out["metadata"]["annotations"];
    let key = "kubectl.kubernetes.io/last-applied-configuration";
    assert_eq!(ann[key], patch["metadata"]["annotations"][key]);
    assert_eq!(ann["deployment.kubernetes.io/revision"], "1");
    assert_eq!(out["status"], live["status"]);
    assert_eq!(out["metadata"]["uid"], live["metadata"]["uid"]);
    assert_no_directives(&out);
}

#[test]
fn remove_env_var_with_delete_directive() {
    // kubectl apply after deleting env B from the manifest.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$setElementOrder/env": [{"name": "A"}],
                        "env": [{"$patch": "delete", "name": "B"}], "name": "app"}]}}}});
    let out = deploy(patch, &live());
    let c = &pod_spec(&out)["containers"][0];
    assert_eq!(c["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(c["image"], "nginx:1.27");
    assert_no_directives(&out);
}

#[test]
fn remove_all_env_with_null() {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"env": null, "name": "app"}]}}}});
    let out = deploy(patch, &live());
    let c = pod_spec(&out)["containers"][0].as_object().unwrap();
    assert!(!c.contains_key("env"));
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
}

#[test]
fn add_container_port() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                        "name": "app", "ports": [{"containerPort": 443}]}]}}}});
    let out = deploy(patch, &live());
    let ports = &pod_spec(&out)["containers"][0]["ports"];
    assert_eq!(
        ports,
        &json!([{"containerPort": 80}, {"containerPort": 443}])
    );
    // Without an order, apimachinery puts the patch's new element first.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "ports": [{"containerPort": 443, "name": "https"}]}]}}}});
    let ports = pod_spec(&deploy(patch, &live()))["containers"][0]["ports"].clone();
    assert_eq!(
        ports,
        json!([{"containerPort": 443, "name": "https"}, {"containerPort": 80}])
    );
}

#[test]
fn container_ports_merge_on_container_port_alone_like_the_real_server() {
    // k8s.io/api tags ports patchMergeKey:"containerPort" (protocol is only a
    // listMapKey for server-side apply), so a UDP twin merges into the TCP one.
    let orig = json!({"spec": {"containers": [{"name": "dns", "ports": [
        {"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}]}]}});
    let patch = json!({"spec": {"containers": [{"name": "dns", "ports": [
        {"containerPort": 53, "protocol": "UDP", "name": "dns"}]}]}});
    let out = apply(&orig, &patch, "v1", "Pod").unwrap();
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([
        {"containerPort": 53, "protocol": "UDP", "name": "dns"},
        {"containerPort": 53, "protocol": "UDP"}])
    );
    // Merge keys compare as numbers: 80.0 is 80.
    let patch = json!({"spec": {"containers": [{"name": "dns", "ports": [{"containerPort": 53.0, "name": "x"}]}]}});
    let out = apply(&orig, &patch, "v1", "Pod").unwrap();
    assert_eq!(
        out["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(out["spec"]["containers"][0]["ports"][0]["name"], "x");
}

#[test]
fn kubectl_set_image_and_patch_merge_into_container() {
    let set_image = json!({"spec": {"template": {"spec": {"containers": [{"image": "busybox:1.36", "name": "app"}]}}}});
    let out = deploy(set_image, &live());
    let c = &pod_spec(&out)["containers"][0];
    assert_eq!(c["image"], "busybox:1.36");
    assert_eq!(
        c["env"],
        live()["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
    assert_eq!(pod_spec(&out)["containers"].as_array().unwrap().len(), 1);
    // kubectl patch deploy --type strategic -p '{...containers:[{name:app,image:x}]}'
    let out = deploy(
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"x"}]}}}}),
        &live(),
    );
    let mut want = live();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x");
    assert_eq!(out, want);
}

#[test]
fn rollout_restart_annotation() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-25T09:00:00Z"}}}}});
    let out = deploy(patch, &live());
    let meta = &out["spec"]["template"]["metadata"];
    assert_eq!(
        meta["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-11-25T09:00:00Z"
    );
    assert_eq!(meta["labels"], json!({"app": "x"}));
}

#[test]
fn atomic_lists_are_replaced() {
    let patch = json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "k2", "operator": "Equal", "value": "v"}],
        "containers": [{"name": "app", "args": ["-c"], "command": ["sh"],
                        "envFrom": [{"configMapRef": {"name": "cm"}}]}]}}}});
    let out = deploy(patch, &live());
    let spec = pod_spec(&out);
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "k2", "operator": "Equal", "value": "v"}])
    );
    assert_eq!(spec["containers"][0]["args"], json!(["-c"]));
    assert_eq!(spec["containers"][0]["command"], json!(["sh"]));
    let orig = json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "envFrom": [{"prefix": "X"}]}]}});
    let patch = json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "envFrom": [{"prefix": "Y"}]}]}});
    let out = apply(&orig, &patch, "v1", "Pod").unwrap();
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "b"}]));
    assert_eq!(
        out["spec"]["containers"][0]["envFrom"],
        json!([{"prefix": "Y"}])
    );
}

#[test]
fn finalizers_are_a_set() {
    let fin = |patch: Value| {
        deploy(json!({"metadata": patch}), &live())["metadata"]["finalizers"].clone()
    };
    assert_eq!(
        fin(json!({"finalizers": ["b", "c"]})),
        json!(["a", "b", "c"])
    );
    assert_eq!(fin(json!({"finalizers": ["c"]})), json!(["c", "a", "b"]));
    assert_eq!(
        fin(json!({"$deleteFromPrimitiveList/finalizers": ["a"]})),
        json!(["b"])
    );
    assert_eq!(
        fin(
            json!({"$setElementOrder/finalizers": ["b", "c"], "finalizers": ["c"],
                   "$deleteFromPrimitiveList/finalizers": ["a"]})
        ),
        json!(["b", "c"])
    );
    assert_eq!(fin(json!({"finalizers": null})), Value::Null);
    // podCIDRs of a Node too.
    let node = json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}});
    let out = apply(
        &node,
        &json!({"spec": {"podCIDRs": ["fd00::/64"]}}),
        "v1",
        "Node",
    )
    .unwrap();
    assert_eq!(out["spec"]["podCIDRs"], json!(["fd00::/64", "10.0.0.0/24"]));
}

#[test]
fn volumes_retain_keys_switch_source() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "name": "data"}]}}}});
    let out = deploy(patch, &live());
    assert_eq!(
        pod_spec(&out)["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}])
    );
    assert_no_directives(&out);
    // Without $retainKeys both sources would stay.
    let patch = json!({"spec": {"template": {"spec": {"volumes": [{"configMap": {"name": "cm"}, "name": "data"}]}}}});
    let vol = pod_spec(&deploy(patch, &live()))["volumes"][0].clone();
    assert_eq!(
        vol,
        json!({"name": "data", "emptyDir": {}, "configMap": {"name": "cm"}})
    );
    // A key set by the patch must be listed.
    let patch = json!({"spec": {"template": {"spec": {"volumes": [
        {"$retainKeys": ["name"], "configMap": {"name": "cm"}, "name": "data"}]}}}});
    let err = apply(&live(), &patch, "apps/v1", "Deployment").unwrap_err();
    assert!(
        err.to_string()
            .contains("$retainKeys does not list \"configMap\""),
        "{err}"
    );
}

#[test]
fn deployment_strategy_retain_keys() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    assert_eq!(
        deploy(patch, &live())["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    let patch = json!({"spec": {"strategy": {"rollingUpdate": null, "type": "Recreate"}}});
    assert_eq!(
        deploy(patch, &live())["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    let bad = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
    let err = apply(&live(), &bad, "apps/v1", "Deployment").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid patch: spec.strategy.$retainKeys must be a list of field names"
    );
}

#[test]
fn patch_replace_and_delete_directives() {
    let patch = json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"app": "y"}}}});
    assert_eq!(
        deploy(patch, &live())["spec"]["selector"],
        json!({"matchLabels": {"app": "y"}})
    );
    let patch = json!({"spec": {"selector": {"$patch": "delete"}}});
    assert_eq!(deploy(patch, &live())["spec"]["selector"], json!({}));
    let patch = json!({"spec": {"selector": {"$patch": "merge", "matchLabels": {"tier": "web"}}}});
    assert_eq!(
        deploy(patch, &live())["spec"]["selector"]["matchLabels"],
        json!({"app": "x", "tier": "web"})
    );
    // A list element `$patch: replace` replaces the whole list.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "new", "image": "busybox"}]}}}});
    assert_eq!(
        pod_spec(&deploy(patch, &live()))["containers"],
        json!([{"name": "new", "image": "busybox"}])
    );
    // Deleting a whole container.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "app"}]}}}});
    assert_eq!(pod_spec(&deploy(patch, &live()))["containers"], json!([]));
    let bad = json!({"spec": {"selector": {"$patch": "frobnicate"}}});
    let err = apply(&live(), &bad, "apps/v1", "Deployment").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid patch: spec.selector.$patch is \"frobnicate\""),
        "{err}"
    );
}

#[test]
fn set_element_order_places_unlisted_elements_by_original_position() {
    let orig = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                                "containers": [{"name": "c", "image": "i"}]}});
    let out = apply(&orig, &patch, "v1", "Pod").unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "b"}, {"name": "c", "image": "i"}, {"name": "a"}])
    );
    // A patch element missing from the order list is an error.
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}],
                                "containers": [{"name": "z"}]}});
    let err = apply(&orig, &patch, "v1", "Pod").unwrap_err();
    assert!(
        err.to_string()
            .contains("missing from $setElementOrder/containers"),
        "{err}"
    );
    let patch = json!({"spec": {"$setElementOrder/containers": {"name": "a"}}});
    let err = apply(&orig, &patch, "v1", "Pod").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid patch: spec.$setElementOrder/containers must be a list"
    );
    let top = apply(
        &json!({}),
        &json!({"$setElementOrder/containers": 1}),
        "v1",
        "Pod",
    )
    .unwrap_err();
    assert_eq!(
        top.to_string(),
        "invalid patch: $setElementOrder/containers must be a list"
    );
}

#[test]
fn patch_order_is_apimachinery_order() {
    // "preserve the order from the patch in a merging list 2" of apimachinery.
    let orig =
        json!({"spec": {"containers": [{"name": "1"}, {"name": "2", "v": "b"}, {"name": "3"}]}});
    let patch = json!({"spec": {"containers": [{"name": "3", "v": "c"}, {"name": "1", "v": "a"}]}});
    let out = apply(&orig, &patch, "v1", "Pod").unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "2", "v": "b"}, {"name": "3", "v": "c"}, {"name": "1", "v": "a"}])
    );
}

#[test]
fn unknown_kinds_get_merge_patch_semantics() {
    let orig = json!({"metadata": {"finalizers": ["a"]},
                      "spec": {"items": [{"name": "a", "v": 1}], "m": {"k": 1, "j": 2}},
                      "status": {"conditions": [{"type": "Ready"}]}});
    let patch = json!({"metadata": {"finalizers": ["b"]},
                       "spec": {"items": [{"name": "a", "w": 2}], "m": {"j": null, "l": 3}},
                       "status": {"conditions": [{"type": "Synced"}]}});
    let out = apply(&orig, &patch, "example.com/v1", "Widget").unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"finalizers": ["b", "a"]},
                           "spec": {"items": [{"name": "a", "w": 2}], "m": {"k": 1, "l": 3}},
                           "status": {"conditions": [{"type": "Synced"}]}})
    );
}

#[test]
fn new_values_are_cleaned_of_directives_and_nulls() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "side", "image": "busybox", "resources": null,
        "$setElementOrder/env": [{"name": "X"}, {"name": "Y"}],
        "env": [{"name": "X", "value": "1"}, {"name": "Y"}, {"$patch": "delete", "name": "Z"}]}],
        "securityContext": {"$patch": "replace", "runAsUser": 1, "fsGroup": null}}}}});
    let out = deploy(patch, &live());
    assert_no_directives(&out);
    let spec = pod_spec(&out);
    assert_eq!(spec["containers"][0]["name"], "side");
    assert_eq!(
        spec["containers"][0]["env"],
        json!([{"name": "X", "value": "1"}, {"name": "Y"}])
    );
    assert!(spec["containers"][0].get("resources").is_none());
    assert_eq!(spec["securityContext"], json!({"runAsUser": 1}));
}

#[test]
fn errors_name_the_field() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
    let err = apply(&live(), &patch, "apps/v1", "Deployment").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot merge list spec.template.spec.containers: element has no merge key \"name\""
    );
    let patch = json!({"metadata": {"finalizers": ["a", 1]}});
    let err = apply(&live(), &patch, "apps/v1", "Deployment").unwrap_err();
    assert!(
        matches!(err, PatchError::List { ref path, .. } if path == "metadata.finalizers"),
        "{err}"
    );
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"value": "v"}]}]}}}});
    let err = apply(&live(), &patch, "apps/v1", "Deployment").unwrap_err();
    assert_eq!(err.to_string(), "cannot merge list spec.template.spec.containers[name=\"app\"].env: element has no merge key \"name\"");
    assert_eq!(
        apply(&json!([]), &json!({}), "v1", "Pod"),
        Err(PatchError::NotAnObject)
    );
    assert!(matches!(
        apply(&live(), &json!([1]), "v1", "Pod"),
        Err(PatchError::Invalid(_))
    ));
    let err = apply(
        &live(),
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        "v1",
        "Pod",
    );
    assert!(matches!(err, Err(PatchError::Invalid(_))));
}

#[test]
fn deep_patches_are_refused_not_overflowing() {
    let mut deep = json!(1);
    for i in 0..1000 {
        deep = if i % 2 == 0 {
            json!({"a": deep})
        } else {
            json!([deep])
        };
    }
    let orig = deep.clone();
    let err = apply(
        &json!({"a": orig}),
        &json!({"a": deep.clone()}),
        "v1",
        "ConfigMap",
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::TooDeep { max: MAX_DEPTH, .. }),
        "{err}"
    );
    assert!(apply(&json!({}), &json!({"a": deep}), "v1", "ConfigMap").is_err());
    let mut ok = json!(1);
    for _ in 0..50 {
        ok = json!({"a": ok});
    }
    assert_eq!(apply(&json!({}), &ok, "v1", "ConfigMap").unwrap(), ok);
}

#[test]
fn apimachinery_cases() {
    // (original, patch, result) on a Pod's metadata and spec, after the cases
    // of apimachinery's strategicpatch tests.
    let cases = [
        // unique scalars when merging lists
        (
            json!({"metadata": {"finalizers": ["1", "2"]}}),
            json!({"metadata": {"finalizers": ["2", "3"]}}),
            json!({"metadata": {"finalizers": ["1", "2", "3"]}}),
        ),
        // preserve the order from the patch in a merging primitive list
        (
            json!({"metadata": {"finalizers": ["1", "2", "3"]}}),
            json!({"metadata": {"finalizers": ["3", "1"]}}),
            json!({"metadata": {"finalizers": ["2", "3", "1"]}}),
        ),
        // delete all duplicate entries in a merging list
        (
            json!({"spec": {"containers": [{"name": "1"}, {"name": "1"}, {"name": "2", "v": "a"}, {"name": "3"}, {"name": "3"}]}}),
            json!({"spec": {"containers": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "2", "v": "a"}]}}),
        ),
        // delete all items from merging list
        (
            json!({"spec": {"containers": [{"name": "1"}, {"name": "2"}]}}),
            json!({"spec": {"containers": [{"$patch": "replace"}]}}),
            json!({"spec": {"containers": []}}),
        ),
        // add key and delete all keys from map
        (
            json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
            json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
            json!({"spec": {"nodeSelector": {"c": "3"}}}),
        ),
        // an empty $setElementOrder orders nothing
        (
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"$setElementOrder/containers": [], "containers": [{"name": "b", "x": 1}]}}),
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "x": 1}]}}),
        ),
    ];
    for (orig, patch, want) in cases {
        assert_eq!(apply(&orig, &patch, "v1", "Pod").unwrap(), want, "{patch}");
    }
}
