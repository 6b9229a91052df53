//! The audit log (`--audit-log-path`, `--audit-policy-file`): who did what,
//! as upstream's audit.k8s.io/v1 Event JSON lines — a create with its user,
//! verb, object and answer; a refused request with the authorizer's
//! decision; an impersonated request with both identities; the policy's
//! levels; a file only its owner reads; a policy that does not parse stops
//! the start with the reason.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{stderr, Server};

/// The events of `path` once `pred` holds for one of them (bounded wait:
/// events are written after the response).
fn events_until(path: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if events.iter().any(&pred) {
            return events;
        }
        assert!(Instant::now() < deadline, "no event {what} in:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn requests_are_recorded_with_who_did_what() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit/audit.log");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
# The noise of a running cluster.
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: None
  nonResourceURLs: ["/readyz*", "/healthz*", "/livez*"]
- level: None
  verbs: [watch]
- level: None
  resources: [{group: "", resources: [secrets]}]
- level: Metadata
"#,
    )
    .unwrap();
    let s = Server::start_with_args(&[
        "--disable-agent",
        "--audit-log-path",
        log.to_str().unwrap(),
        "--audit-policy-file",
        policy.to_str().unwrap(),
    ]);
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    s.kubectl_ok(&["create", "configmap", "audited", "--from-literal=k=v"]);
    // The admin's, not the controllers' (the root CA publisher makes one
    // in each namespace).
    let kubectl_create = |e: &Value| {
        e["verb"] == "create"
            && e["objectRef"]["resource"] == "configmaps"
            && e["user"]["username"] == "system:admin"
    };
    let events = events_until(&log, "for the create", kubectl_create);
    let create = events.iter().find(|e| kubectl_create(e)).unwrap();
    assert_eq!(create["kind"], "Event");
    assert_eq!(create["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(create["level"], "Metadata");
    assert_eq!(create["stage"], "ResponseComplete");
    assert_eq!(create["user"]["username"], "system:admin");
    assert!(
        create["user"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "system:masters"),
        "{create}"
    );
    assert_eq!(create["objectRef"]["namespace"], "default");
    // Named from the object created, as upstream's.
    assert_eq!(create["objectRef"]["name"], "audited");
    assert_eq!(create["objectRef"]["apiVersion"], "v1");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(
        create["requestURI"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/namespaces/default/configmaps"),
        "{create}"
    );
    assert_eq!(create["sourceIPs"], serde_json::json!(["127.0.0.1"]));
    assert!(create["userAgent"]
        .as_str()
        .unwrap()
        .starts_with("kubectl/"));
    assert!(create["auditID"].as_str().is_some_and(|i| i.len() == 36));
    // Only the stages the policy keeps.
    assert!(events.iter().all(|e| e["stage"] != "RequestReceived"));
    // Nothing the policy leaves out.
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "hidden",
        "--from-literal=k=v",
    ]);
    s.kubectl_ok(&["get", "configmap", "audited"]);
    let events = events_until(&log, "for the get", |e| {
        e["verb"] == "get" && e["objectRef"]["name"] == "audited"
    });
    assert!(
        events
            .iter()
            .all(|e| e["objectRef"]["resource"] != "secrets"
                && e["objectRef"]["resource"] != "leases"
                && e["verb"] != "watch"),
        "{events:?}"
    );

    // A refusal, with the decision; and impersonation, with both users.
    let eve = s.user_kubeconfig("eve", "eve", &[]);
    let out = s.kubectl_with(&eve, &["get", "configmaps", "-n", "kube-system"]);
    assert!(!out.status.success(), "{}", stderr(&out));
    // kubectl's discovery requests come first, and an event is written
    // once its response is sent: wait for the one that was refused.
    let events = events_until(&log, "for eve's get", |e| {
        e["user"]["username"] == "eve" && e["objectRef"]["resource"] == "configmaps"
    });
    let refused = events
        .iter()
        .find(|e| e["user"]["username"] == "eve" && e["objectRef"]["resource"] == "configmaps")
        .unwrap();
    assert_eq!(
        refused["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(refused["responseStatus"]["code"], 403);
    assert_eq!(refused["responseStatus"]["reason"], "Forbidden");
    // Bob may not read it: the event says who asked, as whom, and no.
    let out = s.kubectl(&["get", "configmap", "audited", "--as", "bob"]);
    assert!(!out.status.success());
    let events = events_until(&log, "as bob", |e| {
        e["impersonatedUser"]["username"] == "bob"
    });
    let as_bob = events
        .iter()
        .find(|e| e["impersonatedUser"]["username"] == "bob")
        .unwrap();
    assert_eq!(as_bob["user"]["username"], "system:admin");
    assert_eq!(
        as_bob["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
}

#[test]
fn a_policy_that_does_not_parse_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n",
    )
    .unwrap();
    let log = dir.path().join("audit.log");
    let err = support::refused_start(
        dir.path(),
        &[
            "--audit-log-path".as_ref(),
            log.as_os_str(),
            "--audit-policy-file".as_ref(),
            policy.as_os_str(),
        ],
    );
    assert!(
        err.contains(&format!(
            "the audit policy {} is not a valid audit.k8s.io/v1 Policy",
            policy.display()
        )) && err.contains("Everything"),
        "{err}"
    );
}
