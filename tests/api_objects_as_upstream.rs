//! Objects come back as upstream returns them, because clients rely on the
//! shape: a Secret's `stringData` is folded into `data` on every write and
//! never returned (typed clients and `kubectl get -o yaml | kubectl apply`
//! round-trip `data` only); every kind with a status has one, `{}` at least,
//! and a Service's has its `loadBalancer` (typed clients fail on a missing
//! one); a Pod gets what upstream's admission gives it (service account,
//! priority, the not-ready/unreachable tolerations, its QoS class), which
//! `kubectl describe` shows; the two Event APIs share one store; and
//! metadata-only reads answer with `PartialObjectMetadata`.

mod support;

use support::{json, stderr, Server};

fn secret(s: &Server) -> serde_json::Value {
    json(&s.kubectl_ok(&["get", "secret", "s1", "-o", "json"]))
}

#[test]
fn secret_string_data_is_folded_into_data_on_create_update_and_patch() {
    let s = Server::start();
    let apply = |manifest: &str| {
        let out = s.kubectl_stdin(&["apply", "-f", "-"], manifest);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    apply("apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\ndata: {keep: a2VlcA==}\nstringData: {a: hello}\n");
    let got = secret(&s);
    assert_eq!(got["data"]["a"], "aGVsbG8=", "{got}");
    assert_eq!(got["data"]["keep"], "a2VlcA==", "{got}");
    assert!(got.get("stringData").is_none(), "{got}");

    // An update's stringData wins over data for the same key.
    apply("apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\ndata: {keep: a2VlcA==, a: b2xk}\nstringData: {a: new}\n");
    let got = secret(&s);
    assert_eq!(got["data"]["a"], "bmV3", "{got}");
    assert!(got.get("stringData").is_none(), "{got}");

    // So does a patch's.
    s.kubectl_ok(&[
        "patch",
        "secret",
        "s1",
        "--type=merge",
        "-p",
        r#"{"stringData":{"b":"patched"}}"#,
    ]);
    let got = secret(&s);
    assert_eq!(got["data"]["b"], "cGF0Y2hlZA==", "{got}");
    assert!(got.get("stringData").is_none(), "{got}");
}

#[test]
fn kinds_with_a_status_always_have_one() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d1}\nspec:\n  selector: {matchLabels: {app: d}}\n  template: {metadata: {labels: {app: d}}, spec: {containers: [{name: c, image: busybox}]}}\n---\n\
         apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c1}\nspec:\n  schedule: '* * * * *'\n  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: s1}\nspec: {ports: [{port: 80}]}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let status = |kind: &str, name: &str| {
        json(&s.kubectl_ok(&["get", kind, name, "-o", "json"]))["status"].clone()
    };
    // Seeded on create (controllers fill them in since).
    assert!(status("deployment", "d1").is_object());
    assert!(status("cronjob", "c1").is_object());
    assert_eq!(
        status("service", "s1"),
        serde_json::json!({"loadBalancer": {}})
    );
    // Also after an update that leaves status out.
    s.kubectl_ok(&["label", "deployment", "d1", "x=y"]);
    assert!(status("deployment", "d1").is_object());
    // A kind without a status gets none.
    s.kubectl_ok(&["create", "configmap", "cm", "--from-literal=a=b"]);
    let cm = json(&s.kubectl_ok(&["get", "configmap", "cm", "-o", "json"]));
    assert!(cm.get("status").is_none(), "{cm}");
}

#[test]
fn pods_get_what_upstream_admission_gives_them() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {limits: {cpu: '1', memory: 1Gi}}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pod = json(&s.kubectl_ok(&["get", "pod", "p1", "-o", "json"]));
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "default", "{pod}");
    assert_eq!(spec["serviceAccount"], "default", "{pod}");
    assert_eq!(spec["priority"], 0, "{pod}");
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority", "{pod}");
    assert_eq!(spec["enableServiceLinks"], true, "{pod}");
    let keys: Vec<(&str, i64)> = spec["tolerations"]
        .as_array()
        .expect("tolerations")
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or(""),
                t["tolerationSeconds"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("node.kubernetes.io/not-ready", 300),
            ("node.kubernetes.io/unreachable", 300)
        ]
    );
    // Limits alone: requests default to them, so the pod is Guaranteed.
    assert_eq!(pod["status"]["qosClass"], "Guaranteed", "{pod}");
    let described = s.kubectl_ok(&["describe", "pod", "p1"]);
    // Columns are aligned; compare with runs of spaces as one.
    let squeezed: Vec<String> = described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in [
        "Service Account: default",
        "QoS Class: Guaranteed",
        "Tolerations: node.kubernetes.io/not-ready:NoExecute op=Exists for 300s",
    ] {
        assert!(
            squeezed.iter().any(|l| l == line),
            "{line:?} not in:\n{described}"
        );
    }
}

/// Core Events and events.k8s.io Events are one store seen through two
/// APIs: what a new-style recorder writes shows in `kubectl get events`
/// and `kubectl events`, an old-style Event reads as a new-style one, and
/// a watch through either API sees writes through the other.
#[test]
fn both_event_apis_are_one_store() {
    let s = Server::start();
    let mut watch = s.kubectl_background(&["get", "events.events.k8s.io", "--watch", "-o", "name"]);
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: e1}\neventTime: '2026-12-02T12:00:00.000000Z'\nreportingController: example.com/ctl\nreportingInstance: ctl-1\naction: Testing\nreason: Tested\nnote: a new-style event\ntype: Normal\nregarding: {kind: Pod, name: p1, namespace: default}\n---\n\
         apiVersion: v1\nkind: Event\nmetadata: {name: e2}\ninvolvedObject: {kind: Pod, name: p1, namespace: default}\nreason: Old\nmessage: an old-style event\ntype: Warning\nsource: {component: kubelet}\ncount: 2\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    watch.wait_for("the core Event through events.k8s.io", |o| {
        o.contains("event.events.k8s.io/e2")
    });

    let core = json(&s.kubectl_ok(&["get", "event", "e1", "-o", "json"]));
    assert_eq!(core["apiVersion"], "v1", "{core}");
    assert_eq!(core["message"], "a new-style event", "{core}");
    assert_eq!(core["involvedObject"]["name"], "p1", "{core}");
    assert_eq!(core["reportingComponent"], "example.com/ctl", "{core}");
    assert!(core.get("note").is_none(), "{core}");

    let new = json(&s.kubectl_ok(&["get", "events.v1.events.k8s.io", "e2", "-o", "json"]));
    assert_eq!(new["apiVersion"], "events.k8s.io/v1", "{new}");
    assert_eq!(new["note"], "an old-style event", "{new}");
    assert_eq!(new["deprecatedCount"], 2, "{new}");
    assert_eq!(new["deprecatedSource"]["component"], "kubelet", "{new}");
    assert!(new.get("message").is_none(), "{new}");

    let listed = s.kubectl_ok(&["events"]);
    assert!(listed.contains("a new-style event"), "{listed}");
    assert!(listed.contains("an old-style event"), "{listed}");
    let both = s.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "--field-selector",
        "regarding.name=p1",
        "-o",
        "name",
    ]);
    assert_eq!(both.lines().count(), 2, "{both}");
    // Each API checks what its own clients must send.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: e3}\nreason: Tested\nregarding: {kind: Pod, name: p1, namespace: default}\n",
    );
    let err = stderr(&out);
    for line in [
        "eventTime: Required value",
        "reportingController: Required value",
        "action: Required value",
    ] {
        assert!(err.contains(line), "{line}: {err}");
    }
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Event\nmetadata: {name: e4}\ninvolvedObject: {kind: Pod, name: p1, namespace: elsewhere}\nreason: Old\n",
    );
    assert!(
        stderr(&out).contains("involvedObject.namespace: Invalid value: \"elsewhere\": does not match event.namespace"),
        "{}",
        stderr(&out)
    );
    // A delete through one API removes it from both.
    s.kubectl_ok(&["delete", "events.events.k8s.io", "e2"]);
    let left = s.kubectl_ok(&["get", "events", "-o", "name"]);
    assert_eq!(left.trim(), "event/e1");
}

/// client-go's metadata client (controller-runtime's metadata-only
/// watches, garbage collectors) asks for `PartialObjectMetadata[List]`:
/// a get, a list (paged or not) and a watch answer with the objects'
/// metadata only.
#[test]
fn metadata_only_reads_as_metadata_clients_ask() {
    let s = Server::start();
    // Named to sort before the namespace's kube-root-ca.crt, so that the
    // page of one holds it.
    s.kubectl_ok(&["create", "configmap", "a1", "--from-literal=big=value"]);
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let accept = "Accept: application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    for path in [
        "/api/v1/namespaces/default/configmaps",
        "/api/v1/namespaces/default/configmaps?limit=1",
    ] {
        let (code, body) = s.curl_get(path, &["-H", &auth, "-H", accept]);
        assert_eq!(code, 200, "{body}");
        let list = json(&body);
        assert_eq!(list["kind"], "PartialObjectMetadataList", "{body}");
        assert_eq!(list["apiVersion"], "meta.k8s.io/v1", "{body}");
        assert!(list["metadata"]["resourceVersion"].is_string(), "{body}");
        let m1 = list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["metadata"]["name"] == "a1"))
            .unwrap_or_else(|| panic!("a1 missing: {body}"));
        assert_eq!(m1["kind"], "PartialObjectMetadata", "{body}");
        assert!(m1.get("data").is_none(), "{body}");
    }
    let one =
        "Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
    let (code, body) = s.curl_get(
        "/api/v1/namespaces/default/configmaps/a1",
        &["-H", &auth, "-H", one],
    );
    assert_eq!(code, 200, "{body}");
    let obj = json(&body);
    assert_eq!(obj["kind"], "PartialObjectMetadata", "{body}");
    assert_eq!(obj["metadata"]["name"], "a1", "{body}");
    assert!(obj.get("data").is_none(), "{body}");
    let (code, body) = s.curl_get(
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
        &["-H", &auth, "-H", one],
    );
    assert_eq!(code, 200, "{body}");
    let first = json(body.lines().next().unwrap_or(""));
    assert_eq!(first["type"], "ADDED", "{body}");
    assert_eq!(first["object"]["kind"], "PartialObjectMetadata", "{body}");
    assert!(first["object"].get("data").is_none(), "{body}");
    // A form that does not fit the read, and nothing else: 406.
    let (code, body) = s.curl_get(
        "/api/v1/namespaces/default/configmaps",
        &[
            "-H",
            &auth,
            "-H",
            "Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ],
    );
    assert_eq!(code, 406, "{body}");
    assert_eq!(json(&body)["reason"], "NotAcceptable", "{body}");
}
