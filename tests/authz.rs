//! Authorization: until RBAC exists only `system:masters` (the admin
//! certificate and the admin token) may do everything. Any other identity the
//! server authenticates — a certificate the cluster CA signed with another
//! user or group (a node's, anyone's), a token-file user outside
//! `system:masters` — may read discovery, OpenAPI, health and version only and
//! gets upstream's 403 Forbidden Status for everything else.

mod support;

use std::path::PathBuf;

use support::{json, stderr, Server};

/// curl with a client certificate: (HTTP code, body).
fn curl_as(s: &Server, cert: &(PathBuf, PathBuf), method: &str, path: &str) -> (u16, String) {
    let (crt, key) = (cert.0.to_str().unwrap(), cert.1.to_str().unwrap());
    let mut args = vec!["--cert", crt, "--key", key, "-X", method];
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sneaky"},"data":{"k":"v"}}"#;
    if method == "POST" {
        args.extend(["-H", "Content-Type: application/json", "--data", body]);
    }
    s.curl_get(path, &args)
}

fn assert_forbidden(code: u16, body: &str, message: &str) {
    assert_eq!(code, 403, "{body}");
    let st = json(body);
    assert_eq!(st["kind"], "Status", "{body}");
    assert_eq!(st["reason"], "Forbidden", "{body}");
    assert_eq!(st["code"], 403, "{body}");
    assert_eq!(st["message"], message, "{body}");
}

#[test]
fn a_node_certificate_may_not_read_or_write_others_objects() {
    let s = Server::start();
    let node = s.client_cert("node", "system:node:x", &["system:nodes"]);

    let (code, body) = curl_as(&s, &node, "GET", "/api/v1/namespaces/default/secrets");
    assert_forbidden(
        code,
        &body,
        r#"secrets is forbidden: User "system:node:x" cannot list resource "secrets" in API group "" in the namespace "default""#,
    );
    let st = json(&body);
    assert_eq!(st["details"]["kind"], "secrets", "{body}");

    let (code, body) = curl_as(&s, &node, "POST", "/api/v1/namespaces/default/configmaps");
    assert_forbidden(
        code,
        &body,
        r#"configmaps is forbidden: User "system:node:x" cannot create resource "configmaps" in API group "" in the namespace "default""#,
    );
    assert!(
        !s.kubectl(&["get", "cm", "sneaky"]).status.success(),
        "the forbidden create was stored"
    );

    let (code, body) = curl_as(&s, &node, "DELETE", "/api/v1/namespaces/kube-system");
    assert_forbidden(
        code,
        &body,
        r#"namespaces "kube-system" is forbidden: User "system:node:x" cannot delete resource "namespaces" in API group "" in the namespace "kube-system""#,
    );
    s.kubectl_ok(&["get", "ns", "kube-system"]);

    let (code, body) = curl_as(&s, &node, "GET", "/apis/apps/v1/deployments?watch=1");
    assert_forbidden(
        code,
        &body,
        r#"deployments.apps is forbidden: User "system:node:x" cannot watch resource "deployments" in API group "apps" at the cluster scope"#,
    );

    // Discovery, OpenAPI, health and version stay readable.
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/version",
        "/readyz",
    ] {
        let (code, body) = curl_as(&s, &node, "GET", path);
        assert_eq!(code, 200, "GET {path} as a node: {body}");
    }

    // kubectl says what upstream's does.
    let kubeconfig = s.write_file("empty.yaml", "apiVersion: v1\nkind: Config\n");
    let out = s
        .net()
        .command(support::KUBECTL)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(s.dir().join("cache-node"))
        .args(["--server", &s.url(""), "--insecure-skip-tls-verify"])
        .arg("--client-certificate")
        .arg(&node.0)
        .arg("--client-key")
        .arg(&node.1)
        .args(["get", "secrets", "-n", "default"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            r#"Error from server (Forbidden): secrets is forbidden: User "system:node:x" cannot list resource "secrets" in API group "" in the namespace "default""#
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn only_system_masters_certificates_may_do_everything() {
    let s = Server::start();
    // Any other subject the CA signed, with or without groups.
    for (name, user, groups) in [
        ("dev", "alice", &["developers"][..]),
        ("bare", "bob", &[][..]),
        ("almost", "carol", &["system:master"][..]),
    ] {
        let cert = s.client_cert(name, user, groups);
        let (code, body) = curl_as(&s, &cert, "GET", "/api/v1/namespaces");
        assert_forbidden(
            code,
            &body,
            &format!(
                r#"namespaces is forbidden: User "{user}" cannot list resource "namespaces" in API group "" at the cluster scope"#
            ),
        );
        let (code, body) = curl_as(&s, &cert, "GET", "/metrics");
        assert_forbidden(
            code,
            &body,
            &format!(r#"forbidden: User "{user}" cannot get path "/metrics""#),
        );
    }
    // A member of system:masters is an admin, whatever its name.
    let root = s.client_cert("root", "dave", &["system:masters"]);
    let (code, body) = curl_as(&s, &root, "POST", "/api/v1/namespaces/default/configmaps");
    assert_eq!(code, 201, "{body}");
    // And so is the kubeconfig's admin certificate.
    s.kubectl_ok(&["get", "cm", "sneaky"]);
}

#[test]
fn token_users_outside_system_masters_are_forbidden() {
    let mut s = Server::start();
    let tokens = s.data_dir().join("server/cred/tokens.csv");
    let mut text = std::fs::read_to_string(&tokens).unwrap();
    text.push_str("viewer-token-0123456789,viewer,1001,\"viewers\"\n");
    std::fs::write(&tokens, text).unwrap();
    s.restart();

    let (code, body) = s.curl_get(
        "/api/v1/namespaces/default/configmaps",
        &["-H", "Authorization: Bearer viewer-token-0123456789"],
    );
    assert_forbidden(
        code,
        &body,
        r#"configmaps is forbidden: User "viewer" cannot list resource "configmaps" in API group "" in the namespace "default""#,
    );
    // The admin token (system:masters) still may.
    let admin = format!("Authorization: Bearer {}", s.admin_token());
    let (code, body) = s.curl_get("/api/v1/namespaces/default/configmaps", &["-H", &admin]);
    assert_eq!(code, 200, "{body}");
}
