//! Orphan and foreground deletion as the apiserver and its garbage
//! collector do them: the owner is marked with the `orphan` or
//! `foregroundDeletion` finalizer (202 with the object), its dependents
//! lose their owner reference or are deleted first, and only then does
//! the owner go; `kubectl delete --cascade=…` returns once it has.

mod support;

use std::time::{Duration, Instant};

use support::{json, stderr, Server};

fn create_owned(s: &Server, name: &str, owner_uid: &str, extra: &str) {
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {owner_uid}{extra}}}]\n"
    );
    let out = s.kubectl_stdin(&["create", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn owner(s: &Server) -> String {
    s.kubectl_ok(&["create", "configmap", "owner"]);
    s.kubectl_ok(&["get", "cm", "owner", "-o", "jsonpath={.metadata.uid}"])
}

fn names(s: &Server) -> Vec<String> {
    let out = s.kubectl_ok(&["get", "cm", "-o", "jsonpath={.items[*].metadata.name}"]);
    out.split_whitespace()
        .filter(|n| *n != "kube-root-ca.crt")
        .map(str::to_string)
        .collect()
}

#[test]
fn foreground_deletes_dependents_first() {
    let s = Server::start();
    let uid = owner(&s);
    create_owned(&s, "blocking", &uid, ", blockOwnerDeletion: true");
    create_owned(&s, "plain", &uid, "");
    s.kubectl_ok(&["delete", "cm", "owner", "--cascade=foreground"]);
    assert!(names(&s).is_empty(), "{:?}", names(&s));
}

#[test]
fn foreground_waits_for_blocking_dependents() {
    let s = Server::start();
    let uid = owner(&s);
    // A dependent held by a finalizer of its own: the owner waits for it.
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}, blockOwnerDeletion: true}}]\n"
    );
    let out = s.kubectl_stdin(&["create", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let (code, body) = s.curl_get(
        "/api/v1/namespaces/default/configmaps/owner?propagationPolicy=Foreground",
        &["-X", "DELETE", "-H", &auth],
    );
    assert_eq!(code, 202, "{body}");
    let marked = json(&body);
    assert_eq!(
        marked["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{body}"
    );
    // The dependent is marked, the owner stays while it is held.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = json(&s.kubectl_ok(&["get", "cm", "held", "-o", "json"]));
        if held["metadata"]["deletionTimestamp"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the dependent was never deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(names(&s).contains(&"owner".to_string()));
    // Released: both go.
    s.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let out = s.kubectl(&["wait", "--for=delete", "cm/owner", "--timeout=30s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(names(&s).is_empty(), "{:?}", names(&s));
}

#[test]
fn orphan_keeps_dependents_without_the_owner() {
    let s = Server::start();
    let uid = owner(&s);
    create_owned(&s, "dep", &uid, ", blockOwnerDeletion: true");
    s.kubectl_ok(&["delete", "cm", "owner", "--cascade=orphan"]);
    assert_eq!(names(&s), ["dep"]);
    let dep = json(&s.kubectl_ok(&["get", "cm", "dep", "-o", "json"]));
    assert!(dep["metadata"].get("ownerReferences").is_none(), "{dep}");
}

/// A second delete of a marked object with another propagation policy
/// sets the collector's finalizers to it, as upstream.
#[test]
fn a_later_delete_changes_the_propagation() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let delete = |policy: &str| {
        let (code, body) = s.curl_get(
            &format!("/api/v1/namespaces/default/configmaps/held?propagationPolicy={policy}"),
            &["-X", "DELETE", "-H", &auth],
        );
        assert_eq!(code, 202, "{body}");
        json(&body)["metadata"]["finalizers"].clone()
    };
    assert_eq!(
        delete("Foreground"),
        serde_json::json!(["example.com/hold", "foregroundDeletion"])
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let finalizers = || {
        json(&s.kubectl_ok(&["get", "cm", "held", "-o", "json"]))["metadata"]["finalizers"].clone()
    };
    // The collector lets the foreground finalizer go (no dependents).
    while finalizers() != serde_json::json!(["example.com/hold"]) {
        assert!(Instant::now() < deadline, "{}", finalizers());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        delete("Orphan"),
        serde_json::json!(["example.com/hold", "orphan"])
    );
}
