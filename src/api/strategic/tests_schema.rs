//! The merge-key table: every list the schema knows merges on its key, and
//! lists it doesn't know are replaced.

use serde_json::{json, Value};

use super::{apply, PatchError};

/// `path` of an object of `kind` is a list merged on `key`.
fn assert_merges(av: &str, kind: &str, path: &[&str], key: &str) {
    let wrap = |list: Value| path.iter().rev().fold(list, |acc, k| json!({ *k: acc }));
    let orig = wrap(json!([{key: "A", "x": 1}, {key: "B", "x": 2}]));
    let patch = wrap(json!([{key: "B", "y": 3}]));
    let out = apply(&orig, &patch, av, kind).unwrap();
    let got = path.iter().fold(&out, |v, k| &v[*k]);
    assert_eq!(
        got,
        &json!([{key: "A", "x": 1}, {key: "B", "x": 2, "y": 3}]),
        "{kind} {path:?}"
    );
    let err = apply(&orig, &wrap(json!([{"y": 3}])), av, kind).unwrap_err();
    assert!(
        matches!(&err, PatchError::MissingMergeKey { key: k, .. } if k == key),
        "{err}"
    );
}

/// `path` of an object of `kind` is replaced atomically.
fn assert_atomic(av: &str, kind: &str, path: &[&str]) {
    let wrap = |list: Value| path.iter().rev().fold(list, |acc, k| json!({ *k: acc }));
    let out = apply(
        &wrap(json!([{"name": "A"}, {"name": "B"}])),
        &wrap(json!([{"y": 3}])),
        av,
        kind,
    )
    .unwrap();
    assert_eq!(
        path.iter().fold(&out, |v, k| &v[*k]),
        &json!([{"y": 3}]),
        "{kind} {path:?}"
    );
}

#[test]
fn merge_keys_of_built_in_kinds() {
    const TPL: [&str; 3] = ["spec", "template", "spec"];
    for (av, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("v1", "ReplicationController"),
    ] {
        for (f, key) in [
            ("containers", "name"),
            ("initContainers", "name"),
            ("ephemeralContainers", "name"),
            ("volumes", "name"),
            ("imagePullSecrets", "name"),
            ("hostAliases", "ip"),
            ("topologySpreadConstraints", "topologyKey"),
            ("schedulingGates", "name"),
            ("resourceClaims", "name"),
        ] {
            assert_merges(av, kind, &[TPL[0], TPL[1], TPL[2], f], key);
        }
        assert_merges(av, kind, &["status", "conditions"], "type");
        assert_merges(
            av,
            kind,
            &["spec", "template", "metadata", "ownerReferences"],
            "uid",
        );
        assert_atomic(av, kind, &["spec", "template", "spec", "tolerations"]);
    }
    let cj = [
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "containers",
    ];
    assert_merges("batch/v1", "CronJob", &cj, "name");
    for (f, key) in [
        ("env", "name"),
        ("volumeMounts", "mountPath"),
        ("volumeDevices", "devicePath"),
        ("ports", "containerPort"),
    ] {
        let orig = json!({"spec": {"initContainers": [{"name": "i", f: [{key: "A", "x": 1}]}]}});
        let patch = json!({"spec": {"initContainers": [{"name": "i", f: [{key: "A", "y": 2}]}]}});
        let out = apply(&orig, &patch, "v1", "Pod").unwrap();
        assert_eq!(
            out["spec"]["initContainers"][0][f],
            json!([{key: "A", "x": 1, "y": 2}]),
            "{f}"
        );
    }
    assert_merges("v1", "Pod", &["status", "podIPs"], "ip");
    assert_merges("v1", "Pod", &["status", "hostIPs"], "ip");
    assert_merges("v1", "Pod", &["status", "conditions"], "type");
    assert_merges(
        "v1",
        "PodTemplate",
        &["template", "spec", "containers"],
        "name",
    );
    assert_merges("v1", "Service", &["spec", "ports"], "port");
    assert_merges("v1", "Service", &["status", "conditions"], "type");
    assert_merges("v1", "Node", &["status", "conditions"], "type");
    assert_merges("v1", "Node", &["status", "addresses"], "type");
    assert_merges("v1", "ServiceAccount", &["secrets"], "name");
    assert_merges("v1", "Namespace", &["status", "conditions"], "type");
    assert_merges("v1", "ConfigMap", &["metadata", "ownerReferences"], "uid");
    assert_merges(
        "example.com/v1",
        "Widget",
        &["metadata", "ownerReferences"],
        "uid",
    );
    assert_atomic("v1", "ServiceAccount", &["imagePullSecrets"]);
    assert_atomic("v1", "Endpoints", &["subsets"]);
    assert_atomic("v1", "Node", &["spec", "taints"]);
    assert_atomic("v1", "Pod", &["status", "containerStatuses"]);
    assert_atomic("v1", "Pod", &["metadata", "managedFields"]);
}
