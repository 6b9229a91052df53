//! Watch semantics over the wire, as client-go relies on them: events after
//! a resourceVersion, synthetic ADDED events for a watch without one, label
//! selector transitions turned into ADDED/DELETED, Table events with column
//! definitions only on the first, and the stream ending at timeoutSeconds.

mod support;

use std::fs;
use std::process::Stdio;

use support::{json, Server};

/// Run a watch with curl until the server ends it (timeoutSeconds) and
/// return the decoded events.
fn watch(server: &Server, path_and_query: &str, accept: Option<&str>) -> Vec<serde_json::Value> {
    let token = server.admin_token();
    let out_path = server
        .dir()
        .join(format!("watch-{}.out", std::process::id()));
    let mut cmd = server.net().command("curl");
    cmd.args(["-sk", "-N", "--max-time", "20", "-H"])
        .arg(format!("Authorization: Bearer {token}"));
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    cmd.arg(server.url(path_and_query))
        .stdout(fs::File::create(&out_path).expect("create watch output"))
        .stderr(Stdio::null());
    let status = cmd.status().expect("run curl");
    assert!(status.success(), "curl watch failed: {status}");
    let text = fs::read_to_string(&out_path).expect("read watch output");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(json)
        .collect()
}

fn types(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn list_rv(server: &Server, path: &str) -> String {
    let token = server.admin_token();
    let auth = format!("Authorization: Bearer {token}");
    let (code, body) = server.curl_get(path, &["-H", &auth]);
    assert_eq!(code, 200, "{body}");
    json(&body)["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string()
}

#[test]
fn selector_transitions_become_added_and_deleted() {
    let server = Server::start();
    let rv = list_rv(&server, "/api/v1/namespaces/default/configmaps");
    server.kubectl_ok(&["create", "configmap", "w1", "--from-literal=k=v"]);
    server.kubectl_ok(&["label", "configmap", "w1", "app=x"]);
    server.kubectl_ok(&["label", "configmap", "w1", "app=y", "--overwrite"]);
    server.kubectl_ok(&["label", "configmap", "w1", "app=x", "--overwrite"]);
    server.kubectl_ok(&["delete", "configmap", "w1"]);
    let events = watch(
        &server,
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Dx&resourceVersion={rv}&timeoutSeconds=2"
        ),
        None,
    );
    // Created without the label: not seen. Labelled x: ADDED. Relabelled y:
    // it left the selection, so DELETED. Back to x: ADDED. Deleted: DELETED.
    assert_eq!(types(&events), ["ADDED", "DELETED", "ADDED", "DELETED"]);
    let mut last = 0i64;
    for e in &events {
        assert_eq!(e["object"]["kind"], "ConfigMap");
        let rv: i64 = e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("event resourceVersion");
        assert!(rv > last, "resourceVersions must grow: {events:?}");
        last = rv;
    }
}

#[test]
fn watch_without_version_starts_with_current_state() {
    let server = Server::start();
    server.kubectl_ok(&["create", "configmap", "a1", "--from-literal=k=v"]);
    server.kubectl_ok(&["create", "configmap", "a2", "--from-literal=k=v"]);
    let events = watch(
        &server,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
        None,
    );
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .filter_map(|e| e["object"]["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"a1") && names.contains(&"a2"), "{events:?}");
    // A watch from the current version replays nothing.
    let rv = list_rv(&server, "/api/v1/namespaces/default/configmaps");
    let events = watch(
        &server,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        None,
    );
    assert!(events.is_empty(), "{events:?}");
}

/// Boolean parameters as client libraries spell them (the Python client
/// sends `watch=True`, `allowWatchBookmarks=True`) are read as the
/// apiserver reads them: anything but `0` and `false` is true.
#[test]
fn booleans_spelled_as_clients_spell_them_are_read_as_upstream_does() {
    let server = Server::start();
    server.kubectl_ok(&["create", "configmap", "b1", "--from-literal=k=v"]);
    for query in [
        "watch=True&allowWatchBookmarks=True",
        "watch=TRUE",
        "watch",
        "watch=yes",
    ] {
        let events = watch(
            &server,
            &format!("/api/v1/namespaces/default/configmaps?{query}&timeoutSeconds=1"),
            None,
        );
        // The namespace's kube-root-ca.crt (the root CA publisher's) is
        // there too, as upstream.
        let events: Vec<_> = events
            .into_iter()
            .filter(|e| e["object"]["metadata"]["name"] != "kube-root-ca.crt")
            .collect();
        assert_eq!(types(&events), ["ADDED"], "{query}: {events:?}");
    }
    // False, in any case, is a list.
    for query in ["watch=False", "watch=0"] {
        let (code, body) = get_status(
            &server,
            &format!("/api/v1/namespaces/default/configmaps?{query}"),
        );
        assert_eq!(code, 200, "{query}");
        assert_eq!(body["kind"], "ConfigMapList", "{query}: {body}");
    }
}

#[test]
fn table_watch_sends_columns_once() {
    let server = Server::start();
    // The root CA publisher's ConfigMap is in before the watch's start, so
    // the watch sees only the test's two.
    server.wait_root_ca("default");
    let rv = list_rv(&server, "/api/v1/namespaces/default/configmaps");
    server.kubectl_ok(&["create", "configmap", "t1", "--from-literal=k=v"]);
    server.kubectl_ok(&["create", "configmap", "t2", "--from-literal=k=v"]);
    let events = watch(
        &server,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
    );
    assert_eq!(types(&events), ["ADDED", "ADDED"]);
    assert_eq!(events[0]["object"]["kind"], "Table");
    let cols = events[0]["object"]["columnDefinitions"]
        .as_array()
        .expect("first event carries columns");
    assert_eq!(cols[0]["name"], "Name");
    assert!(events[1]["object"]["columnDefinitions"].is_null());
    assert_eq!(events[1]["object"]["rows"][0]["cells"][0], "t2");
    assert_eq!(
        events[1]["object"]["rows"][0]["object"]["kind"],
        "PartialObjectMetadata"
    );
}

#[test]
fn field_selector_watch_on_one_name() {
    let server = Server::start();
    let rv = list_rv(&server, "/api/v1/namespaces/default/configmaps");
    server.kubectl_ok(&["create", "configmap", "f1", "--from-literal=k=v"]);
    server.kubectl_ok(&["create", "configmap", "f2", "--from-literal=k=v"]);
    server.kubectl_ok(&["label", "configmap", "f2", "x=y"]);
    let events = watch(
        &server,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Df2&resourceVersion={rv}&timeoutSeconds=1&allowWatchBookmarks=true"),
        None,
    );
    assert_eq!(types(&events), ["ADDED", "MODIFIED"]);
    assert!(events
        .iter()
        .all(|e| e["object"]["metadata"]["name"] == "f2"));
}

/// GET with the admin token; (HTTP code, parsed body).
fn get_status(server: &Server, path_and_query: &str) -> (u16, serde_json::Value) {
    let auth = format!("Authorization: Bearer {}", server.admin_token());
    let (code, body) = server.curl_get(path_and_query, &["-H", &auth]);
    (code, json(&body))
}

#[test]
fn bad_resource_versions_and_matches_are_refused() {
    let server = Server::start();
    let cms = "/api/v1/namespaces/default/configmaps";

    let (code, st) = get_status(&server, &format!("{cms}?watch=1&resourceVersion=-1"));
    assert_eq!((code, &st["reason"]), (400, &"BadRequest".into()), "{st}");
    let (code, st) = get_status(&server, &format!("{cms}?resourceVersion=-1"));
    assert_eq!(code, 400, "{st}");

    let (code, st) = get_status(
        &server,
        &format!("{cms}?resourceVersion=1&resourceVersionMatch=Garbage"),
    );
    assert_eq!(code, 422, "{st}");
    assert_eq!(st["reason"], "Invalid", "{st}");
    assert_eq!(
        st["message"],
        r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported value: "Garbage": supported values: "Exact", "NotOlderThan", """#
    );
    let (code, st) = get_status(&server, &format!("{cms}?resourceVersionMatch=NotOlderThan"));
    assert_eq!(code, 422, "{st}");
    let (code, st) = get_status(
        &server,
        &format!("{cms}?watch=1&resourceVersion=1&resourceVersionMatch=NotOlderThan"),
    );
    assert_eq!(code, 422, "{st}");
}

#[test]
fn reads_from_a_future_resource_version_get_504() {
    let server = Server::start();
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, list) = get_status(&server, cms);
    assert_eq!(code, 200, "{list}");
    let current: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a list resourceVersion");
    let ahead = current + 1000;
    for query in [
        format!("?watch=1&resourceVersion={ahead}"),
        format!("?resourceVersion={ahead}&resourceVersionMatch=NotOlderThan"),
        format!("?resourceVersion={ahead}"),
        format!("?resourceVersion={ahead}&resourceVersionMatch=Exact"),
    ] {
        let (code, st) = get_status(&server, &format!("{cms}{query}"));
        assert_eq!(code, 504, "{query}: {st}");
        assert_eq!(st["reason"], "Timeout", "{st}");
        let msg = st["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(&format!(
                "Timeout: Too large resource version: {ahead}, current: "
            )),
            "{st}"
        );
        assert_eq!(
            st["details"]["causes"][0]["reason"], "ResourceVersionTooLarge",
            "{st}"
        );
        assert_eq!(st["details"]["retryAfterSeconds"], 1, "{st}");
    }
}
