//! Admission webhooks served by a pod, with real kubectl: a mutating
//! webhook labels ConfigMaps as they are created and updated, a validating
//! one refuses some creates and deletes with upstream's "denied the
//! request" message, selectors pick what is sent, a webhook too slow for
//! its timeout fails the request (failurePolicy Fail) or is skipped
//! (Ignore), dry runs reach only webhooks without side effects, and the
//! configurations themselves never go through webhooks. What skiff cannot
//! evaluate (ValidatingAdmissionPolicy's CEL) is refused at creation.
//!
//! The webhook server is this test binary itself (static, like skiff),
//! run in a busybox pod from a hostPath as the ignored test
//! `serve_in_pod`: a real HTTPS server in a real pod, reached through its
//! Service's endpoints with the test's own CA as caBundle.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use pods::{server_with_busybox, wait_pod};
use support::{stderr, Server};

const NODE: &str = "hook-node";
/// Where the pod finds the server binary, its certificate and its key.
const MOUNT: &str = "/hook";
const SERVE_ENV: &str = "SKIFF_TEST_WEBHOOK_DIR";
const PORT: u16 = 8443;
const ZERO_UID: &str = "00000000-0000-0000-0000-000000000000";

/// The webhook server (run by the pod; does nothing elsewhere).
#[test]
#[ignore = "the webhook server the pod in webhooks_served_by_a_pod runs"]
fn serve_in_pod() {
    let Ok(dir) = std::env::var(SERVE_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(hook_server::serve(Path::new(&dir), PORT));
}

#[test]
fn webhooks_served_by_a_pod() {
    let s = server_with_busybox(NODE);
    let ca_pem = start_hook_pod(&s);
    let ca = base64::engine::general_purpose::STANDARD.encode(&ca_pem);

    s.kubectl_ok(&["create", "namespace", "demo"]);
    s.kubectl_ok(&["label", "namespace", "demo", "webhooks=on"]);
    s.kubectl_ok(&["create", "namespace", "plain"]);
    s.kubectl_stdin_ok(&["apply", "-f", "-"], &configurations(&ca));

    // Mutated on create, only where the namespace selector says.
    s.kubectl_ok(&[
        "create",
        "configmap",
        "a",
        "-n",
        "demo",
        "--from-literal=k=v",
    ]);
    assert_eq!(
        label(&s, "demo", "a", "mutated.webhook.example.com"),
        "create"
    );
    s.kubectl_ok(&[
        "create",
        "configmap",
        "a",
        "-n",
        "plain",
        "--from-literal=k=v",
    ]);
    assert_eq!(label(&s, "plain", "a", "mutated.webhook.example.com"), "");

    // And on update: the webhook sees the operation.
    s.kubectl_ok(&["label", "configmap", "a", "-n", "demo", "extra=1"]);
    assert_eq!(
        label(&s, "demo", "a", "mutated.webhook.example.com"),
        "update"
    );

    // Denied, with the webhook's own code and message, and its warning.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "demo"}, "data": {"forbidden": "x"}}"#,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        // The validating webhook saw what the mutating one added.
        err.contains(
            r#"Error from server (Forbidden): error when creating "STDIN": admission webhook "deny.webhook.example.com" denied the request: the key "forbidden" is not allowed (mutated: create)"#
        ),
        "{err}"
    );
    assert!(
        err.contains("Warning: checked by the test webhook"),
        "{err}"
    );
    assert!(!s
        .kubectl(&["get", "configmap", "b", "-n", "demo"])
        .status
        .success());

    // What a mutating webhook adds is validated as the client's own change:
    // the validating webhook sees the mutated object.
    let out = s.kubectl(&[
        "create",
        "configmap",
        "c",
        "-n",
        "demo",
        "--from-literal=k=v",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dry["metadata"]["labels"]["mutated.webhook.example.com"],
        "create"
    );
    assert!(!s
        .kubectl(&["get", "configmap", "c", "-n", "demo"])
        .status
        .success());

    // A webhook cannot set what only the server sets: a patch of the uid
    // and the deletion timestamp is undone, on create and on update (where
    // it would otherwise delete the object).
    let evil = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evil", "namespace": "demo", "labels": {"evil": "yes"}}}"#;
    s.kubectl_stdin_ok(&["create", "-f", "-"], evil);
    s.kubectl_ok(&["label", "configmap", "evil", "-n", "demo", "again=1"]);
    let got: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "configmap",
        "evil",
        "-n",
        "demo",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_ne!(got["metadata"]["uid"], ZERO_UID, "{got}");
    assert!(got["metadata"]["uid"].is_string(), "{got}");
    assert!(got["metadata"].get("deletionTimestamp").is_none(), "{got}");
    assert_eq!(
        got["metadata"]["labels"]["mutated.webhook.example.com"],
        "update"
    );

    // Exec is a CONNECT, with the command in its options.
    assert_eq!(
        s.kubectl_ok(&["exec", "hook", "--", "echo", "ok"]).trim(),
        "ok"
    );
    let out = s.kubectl(&["exec", "hook", "--", "echo", "forbidden"]);
    assert!(
        stderr(&out).contains(r#"admission webhook "exec.webhook.example.com" denied the request: exec of [echo forbidden] into hook is not allowed"#),
        "{}",
        stderr(&out)
    );

    // Deletes go through validating webhooks with the old object.
    s.kubectl_ok(&["create", "configmap", "p", "-n", "demo"]);
    s.kubectl_ok(&["label", "configmap", "p", "-n", "demo", "protected=true"]);
    let out = s.kubectl(&["delete", "configmap", "p", "-n", "demo"]);
    assert!(
        stderr(&out).contains("denied the request: p is protected"),
        "{}",
        stderr(&out)
    );
    s.kubectl_ok(&["label", "configmap", "p", "-n", "demo", "protected-"]);
    s.kubectl_ok(&["delete", "configmap", "p", "-n", "demo"]);

    // A webhook slower than its timeout fails the request when its policy
    // is Fail, and is skipped when it is Ignore.
    s.kubectl_stdin_ok(&["apply", "-f", "-"], &slow_configuration(&ca, "Fail"));
    let slow = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "slow", "namespace": "plain", "labels": {"slow": "yes"}}}"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], slow);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(r#"Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling webhook "slow.webhook.example.com": failed to call webhook: Post "https://hook.default.svc:443/slow?timeout=1s": context deadline exceeded"#),
        "{err}"
    );
    s.kubectl_stdin_ok(&["apply", "-f", "-"], &slow_configuration(&ca, "Ignore"));
    s.kubectl_stdin_ok(&["create", "-f", "-"], slow);

    // A webhook that cannot be reached at all, failing closed, for every
    // resource; the configurations themselves are never sent to webhooks,
    // so it can still be removed.
    s.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &configurations(&ca)
            .replace("name: hook,", "name: nowhere,")
            .replace(r#"apiGroups: [""]"#, r#"apiGroups: ["*"]"#)
            .replace(r#"resources: ["configmaps"]"#, r#"resources: ["*"]"#),
    );
    let out = s.kubectl(&["create", "configmap", "d", "-n", "demo"]);
    assert!(
        stderr(&out).contains(r#"failed calling webhook "label.webhook.example.com": failed to call webhook: Post "https://nowhere.default.svc:443/mutate?timeout=10s": service "nowhere" not found"#),
        "{}",
        stderr(&out)
    );
    s.kubectl_ok(&[
        "delete",
        "mutatingwebhookconfiguration",
        "label.webhook.example.com",
    ]);
    let listed = support::table(&s.kubectl_ok(&["get", "validatingwebhookconfigurations"]));
    assert_eq!(listed[0][..2], ["NAME", "WEBHOOKS"], "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|r| r[..2] == ["deny.webhook.example.com", "1"]),
        "{listed:?}"
    );
    s.kubectl_ok(&[
        "delete",
        "validatingwebhookconfiguration",
        "deny.webhook.example.com",
    ]);
    s.kubectl_ok(&["create", "configmap", "d", "-n", "demo"]);
}

#[test]
fn bad_configurations_and_policies_are_refused() {
    let s = Server::start();
    let bad = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: bad}
webhooks:
- name: bad
  clientConfig: {url: "http://example.com/x"}
  rules: [{operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"]}]
  admissionReviewVersions: ["v1"]
  timeoutSeconds: 60
"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], bad);
    let err = stderr(&out);
    assert!(!out.status.success());
    for want in [
        r#"webhooks[0].name: Invalid value: "bad": should be a domain with at least three segments separated by dots"#,
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].timeoutSeconds: Invalid value: 60: the timeout value must be between 1 and 30 seconds",
        r#"webhooks[0].clientConfig.url: Invalid value: "http://example.com/x": 'https' is the only allowed URL scheme"#,
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    let policy = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replicas}
spec:
  matchConstraints:
    resourceRules: [{apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["deployments"]}]
  validations:
  - expression: "object.spec.replicas <= 5"
"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], policy);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("CEL"), "{}", stderr(&out));
    // Served, so bundles that list them get that answer, not a 404.
    s.kubectl_ok(&["get", "validatingadmissionpolicies"]);
}

fn label(s: &Server, ns: &str, name: &str, key: &str) -> String {
    let v: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "configmap", name, "-n", ns, "-o", "json"]))
            .unwrap();
    v["metadata"]["labels"][key]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The webhook pod and its Service `hook` in `default`, serving once its
/// endpoint is listed; returns the CA that signed its certificate.
fn start_hook_pod(s: &Server) -> String {
    let dir = s.dir().join("hook");
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = hook_server::certificates("hook.default.svc");
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    std::fs::copy(std::env::current_exe().unwrap(), dir.join("server")).unwrap();
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: hook, labels: {{app: hook}}}}
spec:
  containers:
  - name: hook
    image: busybox:latest
    imagePullPolicy: Never
    command: ["{MOUNT}/server", "--exact", "serve_in_pod", "--ignored", "--nocapture"]
    env: [{{name: {SERVE_ENV}, value: "{MOUNT}"}}]
    ports: [{{containerPort: {PORT}}}]
    readinessProbe:
      tcpSocket: {{port: {PORT}}}
      periodSeconds: 1
    volumeMounts: [{{name: hook, mountPath: {MOUNT}, readOnly: true}}]
  volumes:
  - name: hook
    hostPath: {{path: {dir}, type: Directory}}
---
apiVersion: v1
kind: Service
metadata: {{name: hook}}
spec:
  selector: {{app: hook}}
  ports: [{{port: 443, targetPort: {PORT}}}]
"#,
        dir = dir.display()
    );
    s.kubectl_stdin_ok(&["apply", "-f", "-"], &manifest);
    wait_pod(s, "hook", "ready", |p| {
        p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = s.kubectl(&[
            "get",
            "endpoints",
            "hook",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}",
        ]);
        if out.status.success() && !out.stdout.is_empty() {
            break ca;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook pod never became a ready endpoint: {}",
            s.kubectl_ok(&["get", "pods", "-o", "yaml"])
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn configurations(ca: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: label.webhook.example.com}}
webhooks:
- name: label.webhook.example.com
  clientConfig:
    service: {{namespace: default, name: hook, path: /mutate}}
    caBundle: {ca}
  rules: [{{operations: ["CREATE", "UPDATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["configmaps"]}}]
  namespaceSelector: {{matchLabels: {{webhooks: "on"}}}}
  sideEffects: None
  admissionReviewVersions: ["v1"]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: deny.webhook.example.com}}
webhooks:
- name: deny.webhook.example.com
  clientConfig:
    service: {{namespace: default, name: hook, path: /validate}}
    caBundle: {ca}
  rules: [{{operations: ["CREATE", "UPDATE", "DELETE"], apiGroups: [""], apiVersions: ["v1"], resources: ["configmaps"]}}]
  namespaceSelector: {{matchLabels: {{webhooks: "on"}}}}
  sideEffects: None
  admissionReviewVersions: ["v1", "v1beta1"]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: exec.webhook.example.com}}
webhooks:
- name: exec.webhook.example.com
  clientConfig:
    service: {{namespace: default, name: hook, path: /connect}}
    caBundle: {ca}
  rules: [{{operations: ["CONNECT"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods/exec"]}}]
  sideEffects: None
  admissionReviewVersions: ["v1beta1"]
"#
    )
}

fn slow_configuration(ca: &str, policy: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: slow.webhook.example.com}}
webhooks:
- name: slow.webhook.example.com
  clientConfig:
    service: {{namespace: default, name: hook, path: /slow}}
    caBundle: {ca}
  rules: [{{operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["configmaps"]}}]
  objectSelector: {{matchLabels: {{slow: "yes"}}}}
  failurePolicy: {policy}
  timeoutSeconds: 1
  sideEffects: None
  admissionReviewVersions: ["v1"]
"#
    )
}

/// The test webhook: `/mutate` labels ConfigMaps with the operation,
/// `/validate` refuses a `forbidden` key and deleting a `protected` one,
/// `/slow` answers after 3 seconds.
mod hook_server {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    /// A CA, and a serving certificate and key for `dns_name` it signed
    /// (PEM each).
    pub fn certificates(dns_name: &str) -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![dns_name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca_cert.pem(), cert.pem(), key.serialize_pem())
    }

    pub async fn serve(dir: &Path, port: u16) {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("tls.crt"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .unwrap();
        eprintln!("test webhook serving on {port}");
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(handle);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    }

    async fn handle(
        req: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Full<bytes::Bytes>>, std::convert::Infallible> {
        let path = req.uri().path().to_string();
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        let review: Value = body
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let response = answer(&path, &review).await;
        let out = json!({
            "apiVersion": review["apiVersion"],
            "kind": "AdmissionReview",
            "response": response,
        });
        Ok(hyper::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(serde_json::to_vec(&out).unwrap().into()))
            .unwrap())
    }

    async fn answer(path: &str, review: &Value) -> Value {
        let req = &review["request"];
        let uid = req["uid"].clone();
        let allowed = json!({"uid": uid, "allowed": true});
        match path {
            "/mutate" => {
                let op = req["operation"].as_str().unwrap_or("").to_lowercase();
                let labels = &req["object"]["metadata"]["labels"];
                let mut patch = if labels.is_object() {
                    json!([{"op": "add", "path": "/metadata/labels/mutated.webhook.example.com", "value": op}])
                } else {
                    json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated.webhook.example.com": op}}])
                };
                if labels["evil"] == "yes" {
                    if let Some(ops) = patch.as_array_mut() {
                        ops.push(json!({"op": "add", "path": "/metadata/uid", "value": ZERO_UID}));
                        ops.push(json!({"op": "add", "path": "/metadata/deletionTimestamp", "value": "2020-01-01T00:00:00Z"}));
                    }
                }
                let patch = base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(&patch).unwrap());
                json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
            }
            "/validate" => {
                let warn = json!(["checked by the test webhook"]);
                let obj = &req["object"];
                if obj["data"].get("forbidden").is_some() {
                    // Says what the mutating webhook (run first) labelled.
                    let mutated = obj["metadata"]["labels"]["mutated.webhook.example.com"]
                        .as_str()
                        .unwrap_or("nothing");
                    let msg = format!("the key \"forbidden\" is not allowed (mutated: {mutated})");
                    return json!({"uid": uid, "allowed": false, "warnings": warn,
                        "status": {"code": 403, "message": msg}});
                }
                let old = &req["oldObject"];
                if req["operation"] == "DELETE" && old["metadata"]["labels"]["protected"] == "true"
                {
                    let name = old["metadata"]["name"].as_str().unwrap_or("");
                    return json!({"uid": uid, "allowed": false,
                        "status": {"code": 403, "message": format!("{name} is protected")}});
                }
                json!({"uid": uid, "allowed": true, "warnings": warn})
            }
            "/connect" => {
                let obj = &req["object"];
                let command: Vec<&str> = obj["command"]
                    .as_array()
                    .map(|c| c.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if obj["kind"] == "PodExecOptions" && command.contains(&"forbidden") {
                    let pod = req["name"].as_str().unwrap_or("");
                    let msg = format!("exec of [{}] into {pod} is not allowed", command.join(" "));
                    return json!({"uid": uid, "allowed": false,
                        "status": {"code": 403, "message": msg}});
                }
                allowed
            }
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                allowed
            }
            _ => json!({"uid": uid, "allowed": false, "status": {"message": "unknown path"}}),
        }
    }
}
