//! Authentication (client certificates, bearer tokens, 401 for anonymous
//! requests), the files `skiff server` writes, and durability across SIGKILL.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{json, stderr, Server, DEMO_MANIFEST, PORT};

/// A kubeconfig with no clusters or users, so that only the flags count.
fn empty_kubeconfig(s: &Server) -> String {
    s.write_file("empty-kubeconfig.yaml", "apiVersion: v1\nkind: Config\n")
}

#[test]
fn unauthenticated_requests_get_401_status() {
    let s = Server::start();
    for path in [
        "/api/v1/namespaces",
        "/api",
        "/apis",
        "/api/v1/namespaces/default/configmaps",
    ] {
        let (code, body) = s.curl_get(path, &[]);
        assert_eq!(code, 401, "GET {path} without credentials: {body}");
        let st = json(&body);
        assert_eq!(st["kind"], "Status", "{body}");
        assert_eq!(st["apiVersion"], "v1", "{body}");
        assert_eq!(st["status"], "Failure", "{body}");
        assert_eq!(st["reason"], "Unauthorized", "{body}");
        assert_eq!(st["code"], 401, "{body}");
    }
    // A wrong bearer token is rejected too.
    let (code, body) = s.curl_get(
        "/api/v1/namespaces",
        &["-H", "Authorization: Bearer not-a-token"],
    );
    assert_eq!(code, 401, "{body}");

    // And kubectl says so as it does against Kubernetes.
    let out = s
        .net()
        .command(support::KUBECTL)
        .arg("--kubeconfig")
        .arg(empty_kubeconfig(&s))
        .arg("--cache-dir")
        .arg(s.dir().join("cache-anon"))
        .args([
            "--server",
            &s.url(""),
            "--insecure-skip-tls-verify",
            "--token",
            "wrong",
        ])
        .args(["get", "ns"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("error: You must be logged in to the server ("),
        "{}",
        stderr(&out)
    );
}

#[test]
fn health_and_version_are_public() {
    let s = Server::start();
    for path in ["/readyz", "/livez", "/healthz"] {
        let (code, body) = s.curl_get(path, &[]);
        assert_eq!((code, body.as_str()), (200, "ok"), "GET {path}");
    }
    let (code, body) = s.curl_get("/version", &[]);
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["major"], "1", "{body}");
    assert_eq!(v["minor"], "32", "{body}");
    let gv = v["gitVersion"].as_str().unwrap_or_default();
    assert!(gv.starts_with("v1.32.") && gv.ends_with("-skiff"), "{body}");
}

#[test]
fn admin_bearer_token_from_tokens_csv_works() {
    let s = Server::start();
    let token = s.admin_token();
    assert!(token.len() >= 16, "admin token {token:?} is too short");
    let auth = format!("Authorization: Bearer {token}");
    let (code, body) = s.curl_get("/api/v1/namespaces", &["-H", &auth]);
    assert_eq!(code, 200, "{body}");
    let list = json(&body);
    assert_eq!(list["kind"], "NamespaceList", "{body}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(4), "{body}");

    // kubectl with only the token (no kubeconfig credentials).
    let out = s
        .net()
        .command(support::KUBECTL)
        .arg("--kubeconfig")
        .arg(empty_kubeconfig(&s))
        .arg("--cache-dir")
        .arg(s.dir().join("cache-token"))
        .args([
            "--server",
            &s.url(""),
            "--insecure-skip-tls-verify",
            "--token",
            &token,
        ])
        .args(["get", "ns", "default", "-o", "name"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "namespace/default\n");

    // A write with the token.
    let cm =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"by-token"},"data":{"k":"v"}}"#;
    let url = s.url("/api/v1/namespaces/default/configmaps");
    let out = s.curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        "--data",
        cm,
        &url,
    ]);
    let text = support::stdout(&out);
    assert!(
        text.ends_with("\n201"),
        "POST configmap with bearer token: {text}"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "by-token", "-o", "jsonpath={.data.k}"]),
        "v"
    );
}

#[test]
fn server_writes_kubeconfig_token_and_certificates() {
    let s = Server::start();
    let kc = s.kubeconfig();
    let mode = std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "kubeconfig mode {mode:o}");
    let text = std::fs::read_to_string(&kc).unwrap();
    let doc: serde_json::Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("kubeconfig YAML: {e}\n{text}"));
    let cluster = &doc["clusters"][0]["cluster"];
    assert_eq!(
        cluster["server"],
        format!("https://127.0.0.1:{PORT}"),
        "kubeconfig:\n{text}"
    );
    let user = &doc["users"][0]["user"];
    for (v, what) in [
        (
            &cluster["certificate-authority-data"],
            "certificate-authority-data",
        ),
        (&user["client-certificate-data"], "client-certificate-data"),
        (&user["client-key-data"], "client-key-data"),
    ] {
        assert!(
            v.as_str().is_some_and(|s| !s.is_empty()),
            "{what} in kubeconfig:\n{text}"
        );
    }

    let token = std::fs::read_to_string(s.data_dir().join("server/token")).unwrap();
    let token = token.trim();
    let rest = token
        .strip_prefix("K10")
        .unwrap_or_else(|| panic!("join token {token:?} lacks K10"));
    let (hash, secret) = rest
        .split_once("::")
        .unwrap_or_else(|| panic!("join token {token:?} lacks ::"));
    assert_eq!(hash.len(), 64, "{token}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert!(!secret.is_empty(), "{token}");

    // The hash is the sha256 of the CA PEM in the kubeconfig.
    use base64::Engine;
    let ca_b64 = cluster["certificate-authority-data"].as_str().unwrap();
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_b64)
        .unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&ca_pem)),
        hash.to_lowercase()
    );

    assert!(s.data_dir().join("server/db/state.db").exists());
    assert!(s.data_dir().join("server/tls").is_dir());

    // kubectl verifies the serving certificate against the CA (no -k).
    s.kubectl_ok(&["get", "ns", "default"]);
}

fn snapshot(s: &Server) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for (kind, ns) in [
        ("namespaces", None),
        ("configmaps", Some("demo")),
        ("deployments", Some("demo")),
        ("services", Some("demo")),
    ] {
        let mut args = vec!["get", kind, "-o", "json"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let list = json(&s.kubectl_ok(&args));
        for item in list["items"].as_array().unwrap() {
            let m = &item["metadata"];
            v.push((
                format!("{kind}/{}", m["name"].as_str().unwrap()),
                m["uid"].as_str().unwrap().to_string(),
                m["resourceVersion"].as_str().unwrap().to_string(),
            ));
        }
    }
    v.sort();
    v
}

#[test]
fn data_survives_sigkill_and_restart() {
    let mut s = Server::start();
    let file = s.write_file("demo.yaml", DEMO_MANIFEST);
    s.kubectl_ok(&["apply", "-f", &file]);
    s.kubectl_ok(&["label", "cm", "app-config", "-n", "demo", "tier=backend"]);
    let before = snapshot(&s);
    assert!(
        before.iter().any(|(k, _, _)| k == "configmaps/app-config"),
        "{before:?}"
    );
    let cm_before = s.kubectl_ok(&["get", "cm", "app-config", "-n", "demo", "-o", "yaml"]);
    let token_before = std::fs::read_to_string(s.data_dir().join("server/token")).unwrap();
    let kubeconfig_before = std::fs::read_to_string(s.kubeconfig()).unwrap();

    s.kill();
    s.restart();

    // Same objects, same uids and resourceVersions, same content.
    assert_eq!(snapshot(&s), before);
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "app-config", "-n", "demo", "-o", "yaml"]),
        cm_before
    );
    // Certificates and token are reused: the old kubeconfig still works.
    assert_eq!(
        std::fs::read_to_string(s.data_dir().join("server/token")).unwrap(),
        token_before
    );
    let kubeconfig_after = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let ca = |t: &str| {
        t.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .map(str::to_string)
    };
    assert_eq!(
        ca(&kubeconfig_after),
        ca(&kubeconfig_before),
        "cluster CA changed"
    );

    // Writes after the restart get newer resourceVersions.
    let max_before: u64 = before
        .iter()
        .map(|(_, _, rv)| rv.parse::<u64>().expect("numeric resourceVersion"))
        .max()
        .unwrap();
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n  namespace: demo\ndata:\n  a: b\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rv: u64 = s
        .kubectl_ok(&[
            "get",
            "cm",
            "after",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .unwrap();
    assert!(
        rv > max_before,
        "resourceVersion {rv} after restart <= {max_before}"
    );

    // A second kill right after a write keeps the write.
    s.kill();
    s.restart();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "after",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
}

#[test]
fn request_body_over_3_mib_is_rejected() {
    let s = Server::start();
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 1024)
    );
    let file = s.write_file("big.json", &big);
    let url = s.url("/api/v1/namespaces/default/configmaps");
    let data = format!("@{file}");
    let out = s.curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        "--data-binary",
        &data,
        &url,
    ]);
    let text = support::stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    assert_eq!(code, "413", "{body}");
    let st = json(body);
    assert_eq!(st["kind"], "Status", "{body}");
    assert_eq!(st["reason"], "RequestEntityTooLarge", "{body}");
    assert_eq!(st["code"], 413, "{body}");
    let err = s.kubectl_err(&["get", "cm", "big"]);
    assert!(stderr(&err).contains("NotFound"), "{}", stderr(&err));
}
