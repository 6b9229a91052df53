//! What skiff does not serve is answered as upstream answers it, and
//! discovery lists only what is served, because clients choose by it:
//! any method on a path that serves nothing is a 404 NotFound Status (a 405
//! told clients the path exists), also over HTTP/2; a subresource that is
//! not implemented is neither listed nor served; and `kubectl drain`
//! evicts through pods/eviction (listed now) a pod no kubelet runs, with
//! the DeleteOptions it sends in protobuf.

mod support;

use support::{json, stderr, Server};

#[test]
fn writes_to_what_is_not_served_are_404_over_http1_and_http2() {
    let s = Server::start();
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    for path in [
        "/apis/widgets.example.com/v1/namespaces/default/widgets",
        "/apis/widgets.example.com/v1/namespaces/default/widgets/w1",
        "/api/v1/namespaces/default/widgets",
        "/api/v1/namespaces/default/pods/p1/proxy",
        "/nonsense/path",
    ] {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            for http in ["--http1.1", "--http2"] {
                let (code, body) = s.curl_get(
                    path,
                    &[
                        http,
                        "-X",
                        method,
                        "-H",
                        &auth,
                        "-H",
                        "Content-Type: application/json",
                        "-d",
                        r#"{"apiVersion":"v1","kind":"Widget"}"#,
                    ],
                );
                assert_eq!(code, 404, "{method} {path} {http}: {body}");
                let status = json(&body);
                assert_eq!(
                    (status["kind"].as_str(), status["reason"].as_str()),
                    (Some("Status"), Some("NotFound")),
                    "{method} {path} {http}: {body}"
                );
            }
        }
    }
}

#[test]
fn discovery_lists_only_the_subresources_that_are_served() {
    let s = Server::start();
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let (code, body) = s.curl_get("/api/v1", &["-H", &auth]);
    assert_eq!(code, 200, "{body}");
    let names: Vec<String> = json(&body)["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    for served in [
        "pods",
        "pods/status",
        "pods/log",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "pods/binding",
        "pods/eviction",
        "namespaces/finalize",
        "services/status",
        "nodes/proxy",
    ] {
        assert!(
            names.iter().any(|n| n == served),
            "{served} missing: {names:?}"
        );
    }
    for unserved in ["pods/proxy", "pods/ephemeralcontainers", "services/proxy"] {
        assert!(!names.iter().any(|n| n == unserved), "{unserved} listed");
    }
}

#[test]
fn drain_evicts_a_pod_no_kubelet_runs() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: default}\n\
         spec:\n  nodeName: node1\n  containers: [{name: c, image: busybox}]\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // No agent runs the pod, so it is deleted at once (--grace-period=0)
    // rather than waiting for a kubelet to confirm.
    let out = s.kubectl(&[
        "drain",
        "node1",
        "--force",
        "--grace-period=0",
        "--timeout=60s",
    ]);
    assert!(out.status.success(), "drain: {}", stderr(&out));
    let pods = json(&s.kubectl_ok(&["get", "pods", "-o", "json"]));
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(0), "{pods}");
    let node = json(&s.kubectl_ok(&["get", "node", "node1", "-o", "json"]));
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");
}
