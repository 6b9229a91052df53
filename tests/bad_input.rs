//! Hostile and malformed request bodies: every one gets a 4xx Status (never
//! a 500, never a dropped connection), and nothing is written.

mod support;

use std::fs;

use support::{json, stdout, Server};

/// Send `body` with `method` and `content_type` to `path` as the admin;
/// return (HTTP code, body).
fn send(
    server: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let file = server.dir().join("body.bin");
    fs::write(&file, body).expect("write body");
    let token = server.admin_token();
    let auth = format!("Authorization: Bearer {token}");
    let ct = format!("Content-Type: {content_type}");
    let data = format!("@{}", file.display());
    let url = server.url(path);
    let out = server.curl(&[
        "-X",
        method,
        "-H",
        &auth,
        "-H",
        &ct,
        "--data-binary",
        &data,
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    let code = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no HTTP status for {method} {path}: {text}"));
    (code, body.to_string())
}

fn expect_4xx(server: &Server, what: &str, method: &str, path: &str, ct: &str, body: &[u8]) {
    let (code, text) = send(server, method, path, ct, body);
    assert!(
        (400..500).contains(&code),
        "{what}: expected a 4xx, got {code}: {text}"
    );
    let status = json(&text);
    assert_eq!(status["kind"], "Status", "{what}: {text}");
    assert_eq!(status["code"], code, "{what}: {text}");
    assert!(
        status["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {text}"
    );
}

fn configmap_names(server: &Server) -> String {
    server.kubectl_ok(&["get", "configmaps", "-o", "name"])
}

#[test]
fn malformed_create_bodies_are_refused() {
    let server = Server::start();
    let before = configmap_names(&server);
    let cms = "/api/v1/namespaces/default/configmaps";
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    let deep_obj = format!(r#"{{"metadata":{{"name":"deep"}},"data":{{}},"x":{deep}}}"#);
    let huge_label = format!(
        r#"{{"metadata":{{"name":"huge","labels":{{"a":"{}"}}}}}}"#,
        "v".repeat(100_000)
    );
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "truncated JSON",
            "application/json",
            br#"{"metadata":{"name":"#.to_vec(),
        ),
        ("JSON array", "application/json", b"[1,2,3]".to_vec()),
        (
            "not UTF-8",
            "application/json",
            vec![0xff, 0xfe, 0x7b, 0x7d],
        ),
        (
            "bad YAML",
            "application/yaml",
            b"metadata: [unclosed\n  name: x".to_vec(),
        ),
        (
            "YAML not UTF-8",
            "application/yaml",
            vec![0x6d, 0x3a, 0x20, 0xff, 0xfe],
        ),
        (
            "protobuf without magic",
            "application/vnd.kubernetes.protobuf",
            b"garbage".to_vec(),
        ),
        (
            "truncated protobuf",
            "application/vnd.kubernetes.protobuf",
            b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x35\x0a\x12".to_vec(),
        ),
        ("deeply nested", "application/json", deep_obj.into_bytes()),
        (
            "huge label value",
            "application/json",
            huge_label.into_bytes(),
        ),
        ("over 3 MiB", "application/json", big.into_bytes()),
        ("unknown media type", "text/csv", b"a,b".to_vec()),
        (
            "wrong kind",
            "application/json",
            br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"}}"#.to_vec(),
        ),
        (
            "wrong type of field",
            "application/json",
            br#"{"metadata":{"name":"t"},"data":"not a map"}"#.to_vec(),
        ),
    ];
    for (what, ct, body) in &cases {
        expect_4xx(&server, what, "POST", cms, ct, body);
    }
    assert_eq!(configmap_names(&server), before, "nothing may be stored");
    // The server is still there and well.
    let (code, _) = server.curl_get("/readyz", &[]);
    assert_eq!(code, 200);
}

#[test]
fn malformed_patches_change_nothing() {
    let server = Server::start();
    server.kubectl_ok(&["create", "deployment", "web", "--image=busybox"]);
    let before = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let cases: Vec<(&str, &str, &[u8])> = vec![
        (
            "merge patch not an object",
            "application/merge-patch+json",
            b"[1]",
        ),
        (
            "merge patch truncated",
            "application/merge-patch+json",
            b"{\"spec\":",
        ),
        (
            "JSON patch not a list",
            "application/json-patch+json",
            b"{\"op\":\"add\"}",
        ),
        (
            "JSON patch unknown op",
            "application/json-patch+json",
            br#"[{"op":"frobnicate","path":"/spec"}]"#,
        ),
        (
            "JSON patch failed test",
            "application/json-patch+json",
            br#"[{"op":"test","path":"/spec/replicas","value":99}]"#,
        ),
        (
            "JSON patch bad path",
            "application/json-patch+json",
            br#"[{"op":"remove","path":"/no/such/thing"}]"#,
        ),
        (
            "strategic patch bad directive",
            "application/strategic-merge-patch+json",
            br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":"nope"}}}}"#,
        ),
        (
            "strategic patch element without key",
            "application/strategic-merge-patch+json",
            br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
        ),
        (
            "apply patch bad YAML",
            "application/apply-patch+yaml",
            b"spec: [\n",
        ),
        (
            "patch invalid result",
            "application/merge-patch+json",
            br#"{"spec":{"replicas":-3}}"#,
        ),
        (
            "patch wrong type",
            "application/merge-patch+json",
            br#"{"spec":{"replicas":"many"}}"#,
        ),
        ("unknown patch type", "application/x-patch", b"{}"),
    ];
    for (what, ct, body) in cases {
        let path = if ct == "application/apply-patch+yaml" {
            format!("{path}?fieldManager=test")
        } else {
            path.to_string()
        };
        expect_4xx(&server, what, "PATCH", &path, ct, body);
    }
    let after = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(before, after, "no patch may have written anything");
}
