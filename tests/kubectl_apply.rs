//! Server-side apply with the real kubectl: field managers, conflicts,
//! `--force-conflicts`, and the switch from client-side apply.

mod support;

use support::{stderr, stdout, Server};

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: {image}
        ports:
        - containerPort: 80
"
    )
}

fn managed_fields(s: &Server) -> serde_json::Value {
    let obj =
        support::json(&s.kubectl_ok(&["get", "deploy/web", "-o", "json", "--show-managed-fields"]));
    obj["metadata"]["managedFields"].clone()
}

fn manager<'a>(mf: &'a serde_json::Value, name: &str, op: &str) -> Option<&'a serde_json::Value> {
    mf.as_array()?
        .iter()
        .find(|e| e["manager"] == name && e["operation"] == op)
}

#[test]
fn server_side_apply_conflicts_and_force() {
    let s = Server::start();
    let file = s.write_file("web.yaml", &deployment(2, "nginx:1.27"));
    let out = s.kubectl_ok(&["apply", "--server-side", "-f", &file]);
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let mf = managed_fields(&s);
    let e = manager(&mf, "kubectl", "Apply").unwrap_or_else(|| panic!("{mf:#}"));
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(e["fieldsV1"]["f:spec"]["f:replicas"], serde_json::json!({}));
    assert!(
        e["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            .get(r#"k:{"name":"app"}"#)
            .is_some(),
        "{e:#}"
    );

    // Re-applying the same file is fine and changes nothing.
    let rv = s.kubectl_ok(&[
        "get",
        "deploy/web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    s.kubectl_ok(&["apply", "--server-side", "-f", &file]);
    let rv2 = s.kubectl_ok(&[
        "get",
        "deploy/web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv, rv2, "a no-op apply must not write");

    // Another manager changing replicas conflicts.
    let file3 = s.write_file("web3.yaml", &deployment(3, "nginx:1.27"));
    let out = s.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &file3,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    let replicas = s.kubectl_ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "2");

    // --force-conflicts takes the field over.
    let out = s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &file3,
    ]);
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let replicas = s.kubectl_ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "3");
    let mf = managed_fields(&s);
    let other = manager(&mf, "other", "Apply").unwrap_or_else(|| panic!("{mf:#}"));
    assert!(other["fieldsV1"]["f:spec"].get("f:replicas").is_some());
    let kubectl = manager(&mf, "kubectl", "Apply").unwrap();
    assert!(
        kubectl["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{kubectl:#}"
    );

    // The YAML view shows them too; the default view hides them.
    let yaml = s.kubectl_ok(&["get", "deploy/web", "-o", "yaml", "--show-managed-fields"]);
    assert!(yaml.contains("managedFields:"), "{yaml}");
    assert!(yaml.contains("manager: other"), "{yaml}");
    let yaml = s.kubectl_ok(&["get", "deploy/web", "-o", "yaml"]);
    assert!(!yaml.contains("managedFields:"), "{yaml}");
}

#[test]
fn client_side_then_server_side_apply() {
    let s = Server::start();
    let file = s.write_file("web.yaml", &deployment(2, "nginx:1.27"));
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let mf = managed_fields(&s);
    assert!(
        manager(&mf, "kubectl-client-side-apply", "Update").is_some(),
        "{mf:#}"
    );

    // Switching to server-side apply with a changed file: no conflict, since
    // the fields are still as last client-side applied.
    let file2 = s.write_file("web2.yaml", &deployment(4, "nginx:1.28"));
    // -v=6 logs each request with its answer, to tell kubectl's own give-up
    // (below) from a server that dropped the migration.
    let ssa = s.kubectl(&["apply", "--server-side", "-v=6", "-f", &file2]);
    let log = String::from_utf8_lossy(&ssa.stderr).to_string();
    assert!(ssa.status.success(), "{log}");
    let out = String::from_utf8_lossy(&ssa.stdout).to_string();
    assert_eq!(
        out.trim(),
        "deployment.apps/web serverside-applied",
        "{log}"
    );
    let mut obj =
        support::json(&s.kubectl_ok(&["get", "deploy/web", "-o", "json", "--show-managed-fields"]));
    // kubectl moves the client-side manager with a JSON patch that replaces
    // the resourceVersion, so any write in between gets it a 409; it reads
    // and tries again, five times, then gives up without a word (kubectl
    // 1.32, apply.go migrateToSSAIfNecessary) and tries again on the next
    // apply. The Deployment controller writes the Deployment several times
    // as the new rollout starts, so under load all five can lose. Only that
    // case may re-apply; the server dropping an accepted migration may not.
    let conflicts = log
        .lines()
        .filter(|l| l.contains("PATCH https://") && l.contains(" 409 Conflict"))
        .count();
    if conflicts >= 5 {
        s.kubectl_ok(&["apply", "--server-side", "-f", &file2]);
        obj = support::json(&s.kubectl_ok(&[
            "get",
            "deploy/web",
            "-o",
            "json",
            "--show-managed-fields",
        ]));
    }
    assert_eq!(obj["spec"]["replicas"], 4);
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    // kubectl migrated the client-side manager into its own Apply entry.
    let mf = &obj["metadata"]["managedFields"];
    assert!(manager(mf, "kubectl", "Apply").is_some(), "{mf:#}");
    assert!(
        manager(mf, "kubectl-client-side-apply", "Update").is_none(),
        "{log}\n{mf:#}"
    );
    // The last-applied annotation follows the file.
    let ann = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or_else(|| panic!("{obj:#}"));
    assert!(ann.contains("nginx:1.28"), "{ann}");

    // And client-side apply still works afterwards.
    let file3 = s.write_file("web3.yaml", &deployment(1, "nginx:1.28"));
    s.kubectl_ok(&["apply", "-f", &file3]);
    let replicas = s.kubectl_ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "1");
}

#[test]
fn ordinary_writes_are_recorded() {
    let s = Server::start();
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    s.kubectl_ok(&["scale", "deploy/web", "--replicas=5"]);
    s.kubectl_ok(&["label", "deploy/web", "tier=front"]);
    let mf = managed_fields(&s);
    let create = manager(&mf, "kubectl-create", "Update").unwrap_or_else(|| panic!("{mf:#}"));
    assert!(
        create["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{create:#}"
    );
    let scale = mf
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "scale")
        .unwrap_or_else(|| panic!("{mf:#}"));
    assert_eq!(
        scale["fieldsV1"],
        serde_json::json!({"f:spec": {"f:replicas": {}}})
    );
    let label = manager(&mf, "kubectl-label", "Update").unwrap_or_else(|| panic!("{mf:#}"));
    assert_eq!(
        label["fieldsV1"],
        serde_json::json!({"f:metadata": {"f:labels": {"f:tier": {}}}})
    );
}

/// PATCH with `application/apply-patch+yaml` straight over HTTP: option
/// checks, YAML bodies, create on apply (201) and dry run.
#[test]
fn apply_patch_over_http() {
    let s = Server::start();
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let patch = |query: &str, body: &str| {
        let path = format!("/api/v1/namespaces/default/configmaps/c{query}");
        let (code, text) = s.curl_get(
            &path,
            &[
                "-X",
                "PATCH",
                "-H",
                &auth,
                "-H",
                "Content-Type: application/apply-patch+yaml",
                "--data-binary",
                body,
            ],
        );
        (code, support::json(&text))
    };
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n";
    let (code, st) = patch("", yaml);
    assert_eq!(code, 422, "{st:#}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager: Required value"),
        "{st:#}"
    );
    let (code, st) = patch("?fieldManager=me&dryRun=All", yaml);
    assert_eq!(code, 201, "{st:#}");
    let (code, _) = s.curl_get("/api/v1/namespaces/default/configmaps/c", &["-H", &auth]);
    assert_eq!(code, 404, "dry run must not create");
    let (code, obj) = patch("?fieldManager=me", yaml);
    assert_eq!(code, 201, "{obj:#}");
    assert_eq!(obj["data"]["a"], "b");
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "me");
    let (code, obj) = patch("?fieldManager=me", &yaml.replace("a: b", "a: c"));
    assert_eq!(code, 200, "{obj:#}");
    assert_eq!(obj["data"]["a"], "c");
    let (code, st) = patch("?fieldManager=me", &yaml.replace("ConfigMap", "Secret"));
    assert_eq!(code, 400, "{st:#}");
    let (code, st) = patch("?fieldManager=me", &yaml.replace("name: c", "name: d"));
    assert_eq!(code, 400, "{st:#}");
    let (code, st) = patch("?fieldManager=me", "{not yaml: [");
    assert_eq!(code, 400, "{st:#}");
    let long = format!("?fieldManager={}", "m".repeat(129));
    let (code, st) = patch(&long, yaml);
    assert_eq!(code, 422, "{st:#}");
    let (code, st) = patch("?fieldManager=other", &yaml.replace("a: b", "a: z"));
    assert_eq!(code, 409, "{st:#}");
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(st["details"]["causes"][0]["field"], ".data.a");
}
