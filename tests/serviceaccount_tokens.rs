//! ServiceAccount tokens, server side: `kubectl create token` (the
//! TokenRequest API), the tokens used with `kubectl --token` (read but not
//! write, no Secrets), the `default` ServiceAccount and `kube-root-ca.crt`
//! in every namespace, a pod-bound token dying with its pod, and the node
//! authorizer's graph (a node reads what its pods use, nothing else). The
//! servers run without their agent: pods are bound to nodes by name only.

mod support;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use std::process::Output;

use support::{json, stderr, stdout, Server};

fn server() -> Server {
    Server::start_with_args(&["--disable-agent"])
}

/// Poll `f` until it is true (a bound on a retry loop, not a timing claim).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// kubectl with only a bearer token as credentials.
fn kubectl_with_token(s: &Server, token: &str, args: &[&str]) -> Output {
    let kubeconfig = s.write_file("empty.yaml", "apiVersion: v1\nkind: Config\n");
    s.net()
        .command(support::KUBECTL)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(s.dir().join("cache-token"))
        .args(["--server", &s.url(""), "--insecure-skip-tls-verify"])
        .args(["--token", token])
        .args(args)
        .output()
        .unwrap()
}

/// A token's claims, decoded without checking anything.
fn claims(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn create_token(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["create", "token"];
    all.extend_from_slice(args);
    s.kubectl_ok(&all).trim().to_string()
}

fn wait_for_default_account(s: &Server, ns: &str) {
    eventually(&format!("the default ServiceAccount in {ns}"), || {
        s.kubectl(&["get", "sa", "default", "-n", ns])
            .status
            .success()
    });
}

/// What RBAC lets `default/default` do here: read pods, cluster-wide.
fn let_default_read_pods(s: &Server) {
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "default-reads-pods",
        "--clusterrole=pod-reader",
        "--serviceaccount=default:default",
    ]);
}

#[test]
fn kubectl_create_token_gives_a_token_that_reads_but_does_not_write() {
    let s = server();
    wait_for_default_account(&s, "default");
    let_default_read_pods(&s);
    let token = create_token(&s, &["default"]);
    let c = claims(&token);
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(c["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        c["aud"],
        serde_json::json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(c["kubernetes.io"]["namespace"], "default");
    let uid = s.kubectl_ok(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"], uid.as_str());
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c}");

    let out = kubectl_with_token(&s, &token, &["get", "pods", "-A"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl_with_token(&s, &token, &["get", "secrets"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(r#"Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:default:default" cannot list resource "secrets" in API group "" in the namespace "default""#),
        "{}",
        stderr(&out)
    );
    let out = kubectl_with_token(&s, &token, &["create", "configmap", "sneaky"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"configmaps is forbidden: User "system:serviceaccount:default:default" cannot create resource "configmaps""#),
        "{}",
        stderr(&out)
    );
    assert!(!s.kubectl(&["get", "cm", "sneaky"]).status.success());

    // A token for another audience is not one for the API server.
    let other = create_token(&s, &["default", "--duration=10m", "--audience=x"]);
    let c = claims(&other);
    assert_eq!(c["aud"], serde_json::json!(["x"]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    let out = kubectl_with_token(&s, &other, &["get", "pods"]);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
    // A forged one neither.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let out = kubectl_with_token(&s, &forged, &["get", "pods"]);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));

    // Upstream's refusals.
    let out = s.kubectl_err(&["create", "token", "default", "--duration=5m"]);
    assert!(
        stderr(&out).contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{}",
        stderr(&out)
    );
    let out = s.kubectl_err(&["create", "token", "nosuch"]);
    assert!(
        stderr(&out).contains(r#"serviceaccounts "nosuch" not found"#),
        "{}",
        stderr(&out)
    );
    // Longer than a day is shortened, with a warning.
    let out = s.kubectl(&["create", "token", "default", "--duration=48h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("requested expiration of 172800 seconds shortened to 86400 seconds"),
        "{}",
        stderr(&out)
    );
    let c = claims(stdout(&out).trim());
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        86400
    );

    // kubectl auth whoami, as the token and as the admin.
    let out = kubectl_with_token(&s, &token, &["auth", "whoami"]);
    assert!(
        stdout(&out).contains("system:serviceaccount:default:default"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(s.kubectl_ok(&["auth", "whoami"]).contains("system:admin"));

    // Discovery lists the subresource as upstream does.
    let (code, body) = s.curl_get(
        "/api/v1",
        &["-H", &format!("Authorization: Bearer {}", s.admin_token())],
    );
    assert_eq!(code, 200, "{body}");
    let list = json(&body);
    let token_sub = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .unwrap_or_else(|| panic!("no serviceaccounts/token in {body}"));
    assert_eq!(token_sub["verbs"], serde_json::json!(["create"]));
    assert_eq!(token_sub["kind"], "TokenRequest");
    assert_eq!(token_sub["group"], "authentication.k8s.io");
}

#[test]
fn every_namespace_gets_a_default_account_and_the_root_ca_kept_right() {
    let s = server();
    s.namespace("team");
    wait_for_default_account(&s, "team");
    let ca = std::fs::read_to_string(s.data_dir().join("server/tls/server-ca.crt")).unwrap();
    let get_ca = || s.kubectl(&["get", "cm", "kube-root-ca.crt", "-n", "team", "-o", "json"]);
    eventually("kube-root-ca.crt in team", || get_ca().status.success());
    let cm = json(&stdout(&get_ca()));
    assert_eq!(cm["data"]["ca.crt"], ca.as_str());
    assert!(
        cm["metadata"]["annotations"]["kubernetes.io/description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Contains a CA bundle")),
        "{cm}"
    );

    // Deleted: made again (a new object).
    let uid = s.kubectl_ok(&[
        "get",
        "sa",
        "default",
        "-n",
        "team",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    s.kubectl_ok(&["delete", "sa", "default", "-n", "team"]);
    eventually("the default ServiceAccount made again", || {
        let out = s.kubectl(&[
            "get",
            "sa",
            "default",
            "-n",
            "team",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        out.status.success() && stdout(&out) != uid
    });
    s.kubectl_ok(&["delete", "cm", "kube-root-ca.crt", "-n", "team"]);
    eventually("kube-root-ca.crt made again", || get_ca().status.success());
    // Edited: put back.
    s.kubectl_ok(&[
        "patch",
        "cm",
        "kube-root-ca.crt",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered","extra":"x"}}"#,
    ]);
    eventually("kube-root-ca.crt put right", || {
        let cm = json(&stdout(&get_ca()));
        cm["data"] == serde_json::json!({"ca.crt": ca})
    });
    // The system namespaces have them too.
    for ns in ["kube-system", "kube-public", "kube-node-lease"] {
        wait_for_default_account(&s, ns);
    }
    // A namespace that goes takes them with it and they stay gone.
    s.kubectl_ok(&["delete", "ns", "team"]);
    eventually("namespace team gone", || {
        !s.kubectl(&["get", "ns", "team"]).status.success()
    });
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: NAME, namespace: default}
spec:
  nodeName: NODE
  containers:
  - name: c
    image: busybox
    envFrom: [{configMapRef: {name: CM}}]
";

fn pod(s: &Server, name: &str, node: &str, cm: &str) -> String {
    let manifest = POD
        .replace("NAME", name)
        .replace("NODE", node)
        .replace("CM", cm);
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    s.kubectl_ok(&["get", "pod", name, "-o", "jsonpath={.metadata.uid}"])
}

#[test]
fn a_pod_bound_token_stops_working_when_its_pod_is_deleted() {
    let s = server();
    wait_for_default_account(&s, "default");
    let_default_read_pods(&s);
    let uid = pod(&s, "p1", "node-a", "cfg");
    let out = s.kubectl_err(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=p1",
        "--bound-object-uid=not-its-uid",
    ]);
    assert!(
        stderr(&out).contains(
            "the UID in the bound object reference (not-its-uid) does not match the UID in record"
        ),
        "{}",
        stderr(&out)
    );
    let token = create_token(
        &s,
        &[
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=p1",
        ],
    );
    let c = claims(&token);
    assert_eq!(
        c["kubernetes.io"]["pod"],
        serde_json::json!({"name": "p1", "uid": uid})
    );
    assert_eq!(c["kubernetes.io"]["node"]["name"], "node-a");
    let out = kubectl_with_token(&s, &token, &["get", "pods"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // kubectl auth whoami (SelfSubjectReview) shows the pod it is bound to.
    let out = kubectl_with_token(&s, &token, &["auth", "whoami", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let me = json(&stdout(&out));
    let user = &me["status"]["userInfo"];
    assert_eq!(
        user["username"], "system:serviceaccount:default:default",
        "{me}"
    );
    assert_eq!(
        user["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["p1"])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-uid"],
        serde_json::json!([uid])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/node-name"],
        serde_json::json!(["node-a"])
    );
    // TokenReview, as the admin.
    let review = |token: &str| {
        let body = format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{token}"}}}}"#
        );
        // Without client-side validation: kubectl checks CRDs for a kind
        // without PATCH, and there is no CRD API yet.
        let out = s.kubectl_stdin(
            &["create", "--validate=false", "-f", "-", "-o", "json"],
            &body,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        json(&stdout(&out))
    };
    let r = review(&token);
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(
        r["status"]["audiences"],
        serde_json::json!(["https://kubernetes.default.svc.cluster.local"]),
        "{r}"
    );
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );
    s.kubectl_ok(&["delete", "pod", "p1", "--grace-period=0", "--force"]);
    // Remembered for at most 10 s, as upstream's token cache.
    eventually("the token refused", || {
        let out = kubectl_with_token(&s, &token, &["get", "pods"]);
        !out.status.success() && stderr(&out).contains("Unauthorized")
    });
    let r = review(&token);
    assert_eq!(r["status"]["authenticated"], serde_json::Value::Null, "{r}");
    assert!(
        r["status"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{r}"
    );
    // A pod of the same name is another pod.
    pod(&s, "p1", "node-a", "cfg");
    let out = kubectl_with_token(&s, &token, &["get", "pods"]);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
}

/// curl as a client certificate: (HTTP code, body).
fn curl_as(
    s: &Server,
    cert: &(PathBuf, PathBuf),
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let (crt, key) = (cert.0.to_str().unwrap(), cert.1.to_str().unwrap());
    let mut args = vec!["--cert", crt, "--key", key, "-X", method];
    if !body.is_empty() {
        args.extend(["-H", "Content-Type: application/json", "--data", body]);
    }
    s.curl_get(path, &args)
}

#[test]
fn a_node_reads_only_what_its_pods_use() {
    let s = server();
    wait_for_default_account(&s, "default");
    s.kubectl_ok(&["create", "configmap", "used", "--from-literal=k=v"]);
    s.kubectl_ok(&["create", "configmap", "unused", "--from-literal=k=v"]);
    s.kubectl_ok(&["create", "configmap", "theirs", "--from-literal=k=v"]);
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "hidden",
        "--from-literal=k=v",
    ]);
    s.namespace("elsewhere");
    let mine = pod(&s, "mine", "node-a", "used");
    let theirs = pod(&s, "theirs", "node-b", "theirs");
    let node = s.client_cert("node-a", "system:node:node-a", &["system:nodes"]);
    let get = |path: &str| curl_as(&s, &node, "GET", path, "").0;
    let cms = "/api/v1/namespaces/default/configmaps";
    assert_eq!(get(&format!("{cms}/used")), 200);
    assert_eq!(get(&format!("{cms}/unused")), 403);
    assert_eq!(
        get(&format!("{cms}/theirs")),
        403,
        "used by a pod of another node"
    );
    assert_eq!(
        get(&format!("{cms}?fieldSelector=metadata.name%3Dused")),
        200
    );
    assert_eq!(
        get(&format!("{cms}?fieldSelector=metadata.name%3Dunused")),
        403
    );
    assert_eq!(get(cms), 403, "a list of everything");
    eventually("kube-root-ca.crt in default", || {
        s.kubectl(&["get", "cm", "kube-root-ca.crt"])
            .status
            .success()
    });
    assert_eq!(get(&format!("{cms}/kube-root-ca.crt")), 200);
    eventually("kube-root-ca.crt in elsewhere", || {
        s.kubectl(&["get", "cm", "kube-root-ca.crt", "-n", "elsewhere"])
            .status
            .success()
    });
    assert_eq!(
        get("/api/v1/namespaces/elsewhere/configmaps/kube-root-ca.crt"),
        403,
        "no pod of the node there"
    );
    assert_eq!(get("/api/v1/namespaces/default/secrets/hidden"), 403);
    assert_eq!(
        get("/api/v1/namespaces/default/serviceaccounts/default"),
        200
    );
    // The 403 is upstream's.
    let (code, body) = curl_as(&s, &node, "GET", &format!("{cms}/unused"), "");
    assert_eq!(code, 403);
    assert_eq!(
        json(&body)["message"],
        r#"configmaps "unused" is forbidden: User "system:node:node-a" cannot get resource "configmaps" in API group "" in the namespace "default""#
    );

    // Tokens: for its own pod's account, bound to its own pod, only.
    let request = |name: &str, uid: &str| {
        format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{{"boundObjectRef":{{"kind":"Pod","apiVersion":"v1","name":"{name}","uid":"{uid}"}}}}}}"#
        )
    };
    let token_path = "/api/v1/namespaces/default/serviceaccounts/default/token";
    let (code, body) = curl_as(&s, &node, "POST", token_path, &request("mine", &mine));
    assert_eq!(code, 201, "{body}");
    let issued = json(&body);
    assert!(issued["status"]["token"]
        .as_str()
        .is_some_and(|t| t.starts_with("eyJ")));
    let (code, body) = curl_as(&s, &node, "POST", token_path, &request("theirs", &theirs));
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("node requested token bound to a pod scheduled on a different node"),
        "{body}"
    );
    let (code, body) = curl_as(&s, &node, "POST", token_path, r#"{"spec":{}}"#);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("node requested token not bound to a pod"),
        "{body}"
    );
    // An account none of its pods uses.
    s.kubectl_ok(&["create", "sa", "builder"]);
    let (code, body) = curl_as(
        &s,
        &node,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/builder/token",
        &request("mine", &mine),
    );
    assert_eq!(code, 403, "{body}");
}
