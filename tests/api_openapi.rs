//! OpenAPI with the real kubectl: `explain` (nested fields, `--recursive`,
//! every served kind, the v2 form), client-side validation of a `kind:
//! List` as `kubectl get -o yaml` writes it (v2 protobuf), and the documents'
//! hashes and cache headers as upstream serves them.

mod support;

use support::{stderr, stdout, Server};

fn auth(s: &Server) -> String {
    format!("Authorization: Bearer {}", s.admin_token())
}

/// `(status line and headers, body)` of a GET with the admin token.
fn get(s: &Server, path: &str, extra: &[&str]) -> (String, Vec<u8>) {
    let dir = s.dir().join(format!("curl-{}", path.len() + extra.len()));
    let headers = dir.with_extension("headers");
    let body = dir.with_extension("body");
    let auth = auth(s);
    let url = s.url(path);
    let mut args = vec![
        "-H",
        &auth,
        "-D",
        headers.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = s.curl(&args);
    assert!(out.status.success(), "curl {path}: {}", stderr(&out));
    (
        std::fs::read_to_string(&headers).unwrap(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

fn header<'h>(headers: &'h str, name: &str) -> Option<&'h str> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn explain_shows_nested_fields() {
    let s = Server::start();
    let out = s.kubectl_ok(&["explain", "deployment.spec.strategy"]);
    for want in [
        "GROUP:      apps",
        "KIND:       Deployment",
        "VERSION:    v1",
        "FIELD: strategy <DeploymentStrategy>",
        "The deployment strategy to use to replace existing pods with new ones.",
        "rollingUpdate\t<RollingUpdateDeployment>",
        "type\t<string>",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    let out = s.kubectl_ok(&["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"]);
    assert!(out.contains("FIELD: maxSurge <IntOrString>"), "{out}");
    let out = s.kubectl_ok(&["explain", "pods.spec.containers.resources"]);
    assert!(out.contains("limits\t<map[string]Quantity>"), "{out}");
}

#[test]
fn explain_recursive_lists_the_whole_tree() {
    let s = Server::start();
    let out = s.kubectl_ok(&["explain", "pod", "--recursive"]);
    for want in [
        "KIND:       Pod",
        "  metadata\t<ObjectMeta>",
        "    containers\t<[]Container> -required-",
        "      livenessProbe\t<Probe>",
        "        httpGet\t<HTTPGetAction>",
        "  status\t<PodStatus>",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    assert!(out.lines().count() > 1000, "{}", out.lines().count());
}

#[test]
fn explain_works_for_every_served_kind() {
    let s = Server::start();
    // Each kind by its own group/version (`-o name` alone would be
    // ambiguous for kubectl: events.events.k8s.io).
    let table = s.kubectl_ok(&["api-resources", "--no-headers"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.len() >= 20, "{table}");
    for row in rows {
        // NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
        let (name, api_version, kind) = (row[0], row[row.len() - 3], row[row.len() - 1]);
        // metrics.k8s.io has no OpenAPI schema yet (metrics-server
        // publishes one through the aggregator; skiff's is still to come).
        if api_version == "metrics.k8s.io/v1beta1" {
            continue;
        }
        let out = s.kubectl(&["explain", name, "--api-version", api_version]);
        let text = stdout(&out);
        assert!(
            out.status.success()
                && text.contains(&format!("KIND:       {kind}\n"))
                && text.contains("FIELDS:"),
            "kubectl explain {name} --api-version {api_version}: {}{}",
            text,
            stderr(&out)
        );
    }
    // kubectl's older renderer reads /openapi/v2 (protobuf).
    let out = s.kubectl_ok(&[
        "explain",
        "deployment.spec.strategy",
        "--output=plaintext-openapiv2",
    ]);
    assert!(out.contains("RESOURCE: strategy <Object>"), "{out}");
    assert!(out.contains("rollingUpdate\t<Object>"), "{out}");
}

#[test]
fn a_list_from_get_o_yaml_applies_with_client_side_validation() {
    let s = Server::start();
    s.kubectl_ok(&["create", "deployment", "web", "--image=nginx"]);
    s.kubectl_ok(&["create", "configmap", "cm1", "--from-literal=a=b"]);
    s.kubectl_ok(&["create", "service", "clusterip", "svc1", "--tcp=80:80"]);
    s.kubectl_ok(&["create", "secret", "generic", "sec1", "--from-literal=k=v"]);
    let list = s.kubectl_ok(&[
        "get",
        "deploy/web",
        "cm/cm1",
        "svc/svc1",
        "secret/sec1",
        "-o",
        "yaml",
    ]);
    assert!(list.starts_with("apiVersion: v1\nitems:"), "{list}");
    assert!(list.contains("\nkind: List\n"), "{list}");
    let file = s.write_file("list.yaml", &list);
    // Live objects, as they were read: each is configured.
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    for want in [
        "deployment.apps/web configured",
        "configmap/cm1 configured",
        "service/svc1 configured",
        "secret/sec1 configured",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    // Gone: each is created again from the file.
    s.kubectl_ok(&["delete", "-f", &file]);
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("secret/sec1 created"), "{out}");
    s.kubectl_ok(&["get", "deploy/web", "cm/cm1", "svc/svc1", "secret/sec1"]);

    // An unknown field in an item: kubectl's own error, before any request
    // writes anything, as against a real cluster.
    let bad = list.replacen("  spec:\n", "  spec:\n    bogus: 1\n", 1);
    assert_ne!(bad, list);
    let bad = s.write_file("bad-list.yaml", &bad);
    let out = s.kubectl_err(&["apply", "-f", &bad]);
    let err = stderr(&out);
    assert!(
        err.contains("error validating data: ValidationError(Deployment.spec): unknown field \"bogus\" in io.k8s.api.apps.v1.DeploymentSpec"),
        "{err}"
    );
}

#[test]
fn strict_validation_of_one_object_stays_the_servers() {
    let s = Server::start();
    let file = s.write_file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\n  bogusField: 1\ndata: {a: b}\n",
    );
    let out = s.kubectl_err(&["apply", "--validate=strict", "-f", &file]);
    let err = stderr(&out);
    assert!(
        err.contains("Error from server (BadRequest): error when creating")
            && err.contains("strict decoding error: unknown field \"metadata.bogusField\""),
        "{err}"
    );
}

#[test]
fn documents_carry_upstream_hashes_and_cache_headers() {
    let s = Server::start();
    let (_, root) = get(&s, "/openapi/v3", &[]);
    let root: serde_json::Value = serde_json::from_slice(&root).unwrap();
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = url.split_once("?hash=").unwrap().1.to_string();
    assert_eq!(hash.len(), 128, "{url}");
    assert!(root["paths"]["api/v1"].is_object(), "{root}");

    let (headers, body) = get(&s, &url, &[]);
    assert!(
        headers.starts_with("HTTP/2 200") || headers.starts_with("HTTP/1.1 200"),
        "{headers}"
    );
    assert_eq!(header(&headers, "cache-control"), Some("public, immutable"));
    assert!(header(&headers, "expires").is_some(), "{headers}");
    assert_eq!(
        header(&headers, "etag"),
        Some(format!("\"{hash}\"").as_str())
    );
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let schemas = &doc["components"]["schemas"];
    let deploy = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deploy["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");

    // Without the hash: the same document, but not immutable.
    let (headers, _) = get(&s, "/openapi/v3/apis/apps/v1", &[]);
    assert_eq!(header(&headers, "cache-control"), None, "{headers}");
    // A stale hash is sent to the current one.
    let (headers, _) = get(&s, "/openapi/v3/apis/apps/v1?hash=ABC", &[]);
    assert!(headers.contains(" 301"), "{headers}");
    assert_eq!(header(&headers, "location"), Some(url.as_str()));
    // Not served: 404.
    let (headers, _) = get(&s, "/openapi/v3/apis/example.com/v1", &[]);
    assert!(headers.contains(" 404"), "{headers}");

    // v2, as kubectl asks for it, and as JSON; a revalidation is a 304.
    let (headers, body) = get(
        &s,
        "/openapi/v2",
        &[
            "-H",
            "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        ],
    );
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );
    assert!(body.len() > 100_000, "{}", body.len());
    let tag = header(&headers, "etag").unwrap().to_string();
    let (headers, body) = get(&s, "/openapi/v2", &["-H", "Accept: application/json"]);
    assert_eq!(header(&headers, "etag"), Some(tag.as_str()));
    let v2: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    assert_eq!(
        v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    let inm = format!("If-None-Match: {tag}");
    let (headers, _) = get(&s, "/openapi/v2", &["-H", &inm]);
    assert!(headers.contains(" 304"), "{headers}");
}
