//! Bad manifests get kubectl's usual readable errors and nothing is stored;
//! defaults appear as on a real cluster; everyday write commands (set image,
//! rollout pause/resume) change the object.

mod support;

use support::{stderr, Server};

const BAD_FIELDS: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: w1
  bogusField: 1
spec:
  replicas: 1
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      containers: [{name: c, image: busybox, imagee: x}]
";

#[test]
fn unknown_fields_follow_field_validation() {
    let server = Server::start();
    let file = server.write_file("bad.yaml", BAD_FIELDS);
    let out = server.kubectl_err(&["apply", "-f", &file]);
    let err = stderr(&out);
    assert!(
        err.contains("Error from server (BadRequest): error when creating")
            && err.contains("strict decoding error: unknown field \"metadata.bogusField\", unknown field \"spec.template.spec.containers[0].imagee\""),
        "{err}"
    );
    let out = server.kubectl_err(&["get", "deploy", "w1"]);
    assert!(stderr(&out).contains("NotFound"));
    // Warn: stored, with a warning per field.
    let out = server.kubectl(&["apply", "--validate=warn", "-f", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Warning: unknown field \"metadata.bogusField\""),
        "{}",
        stderr(&out)
    );
    // Stored without the unknown fields (kubectl's last-applied annotation
    // still quotes the file, as on a real cluster).
    let obj = support::json(&server.kubectl_ok(&["get", "deploy", "w1", "-o", "json"]));
    assert!(obj["metadata"].get("bogusField").is_none(), "{obj}");
    assert!(
        obj["spec"]["template"]["spec"]["containers"][0]
            .get("imagee")
            .is_none(),
        "{obj}"
    );
}

#[test]
fn invalid_objects_are_refused_with_every_cause() {
    let server = Server::start();
    let bad_name = server.write_file(
        "name.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    let out = server.kubectl_err(&["apply", "-f", &bad_name]);
    assert!(
        stderr(&out).contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{}",
        stderr(&out)
    );
    let mismatch = server.write_file(
        "sel.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: w3}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: c}]
",
    );
    let out = server.kubectl_err(&["apply", "-f", &mismatch]);
    let err = stderr(&out);
    assert!(err.contains("The Deployment \"w3\" is invalid"), "{err}");
    assert!(
        err.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    assert!(
        err.contains("spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );
    let listed = server.kubectl_ok(&["get", "deploy,cm", "-o", "name"]);
    assert!(
        !listed.contains("w3") && !listed.contains("Bad_Name"),
        "{listed}"
    );
}

#[test]
fn defaults_and_immutable_fields() {
    let server = Server::start();
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    let get = |path: &str| {
        server.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            &format!("jsonpath={{{path}}}"),
        ])
    };
    assert_eq!(get(".spec.strategy.type"), "RollingUpdate");
    assert_eq!(get(".spec.strategy.rollingUpdate.maxSurge"), "25%");
    assert_eq!(get(".spec.revisionHistoryLimit"), "10");
    assert_eq!(get(".spec.progressDeadlineSeconds"), "600");
    assert_eq!(get(".spec.template.spec.restartPolicy"), "Always");
    assert_eq!(get(".spec.template.spec.dnsPolicy"), "ClusterFirst");
    assert_eq!(
        get(".spec.template.spec.terminationGracePeriodSeconds"),
        "30"
    );
    assert_eq!(
        get(".spec.template.spec.containers[0].imagePullPolicy"),
        "Always"
    );
    let out = server.kubectl_err(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"selector":{"matchLabels":{"app":"zz"}}}}"#,
    ]);
    assert!(
        stderr(&out).contains("spec.selector: Invalid value")
            && stderr(&out).contains("field is immutable"),
        "{}",
        stderr(&out)
    );
    let out = server.kubectl_err(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":-1}]"#,
    ]);
    assert!(
        stderr(&out)
            .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{}",
        stderr(&out)
    );
    server.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip = server.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43."), "{ip}");
    let out = server.kubectl_err(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"clusterIP":"10.43.99.99"}}"#,
    ]);
    assert!(
        stderr(&out).contains("field is immutable"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn set_image_and_rollout_pause_resume() {
    let server = Server::start();
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=1",
    ]);
    let gen0 = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    let out = server.kubectl_ok(&["set", "image", "deploy/web", "busybox=busybox:1.36"]);
    assert!(out.contains("deployment.apps/web image updated"), "{out}");
    let image = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "busybox:1.36");
    let gen1 = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    assert_eq!(
        gen1.parse::<i64>().unwrap(),
        gen0.parse::<i64>().unwrap() + 1
    );
    server.kubectl_ok(&["rollout", "pause", "deploy/web"]);
    assert_eq!(
        server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.paused}"]),
        "true"
    );
    server.kubectl_ok(&["rollout", "resume", "deploy/web"]);
    assert_eq!(
        server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.paused}"]),
        ""
    );
    let out = server.kubectl_ok(&["rollout", "restart", "deploy/web"]);
    assert!(out.contains("restarted"), "{out}");
    let restarted = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ]);
    assert!(!restarted.is_empty());
}

/// POST `body` to `path` as the admin with curl; `content_type` as raw
/// bytes (it may be anything). Returns (HTTP code, parsed Status or object).
fn post_raw(
    server: &Server,
    path: &str,
    content_type: &[u8],
    body: &str,
) -> (u16, serde_json::Value) {
    use std::os::unix::ffi::OsStrExt;
    let mut header = b"Content-Type: ".to_vec();
    header.extend_from_slice(content_type);
    let auth = format!("Authorization: Bearer {}", server.admin_token());
    let mut cmd = server.net().command("curl");
    cmd.args([
        "-sk",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
    ])
    .args(["-H", &auth, "-H"])
    .arg(std::ffi::OsStr::from_bytes(&header))
    .args(["--data-binary", body])
    .arg(server.url(path));
    let out = cmd.output().expect("run curl");
    let text = support::stdout(&out);
    let (body, code) = text.rsplit_once('\n').expect("curl printed a status");
    (
        code.trim().parse().expect("an HTTP code"),
        support::json(body),
    )
}

fn assert_invalid(code: u16, st: &serde_json::Value, message: &str) {
    assert_eq!(code, 422, "{st}");
    assert_eq!(st["reason"], "Invalid", "{st}");
    assert_eq!(st["message"], message, "{st}");
}

#[test]
fn metadata_holes_are_refused_as_upstream_does() {
    let server = Server::start();
    let cms = "/api/v1/namespaces/default/configmaps";
    let cm = |meta: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c",{meta}}}}}"#)
    };

    let (code, st) = post_raw(
        &server,
        cms,
        b"application/json",
        &cm(r#""finalizers":["a/b/c"]"#),
    );
    assert_invalid(
        code,
        &st,
        r#"ConfigMap "c" is invalid: metadata.finalizers: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#,
    );
    for bad in [r#""""#, r#""ünïcode""#] {
        let (code, st) = post_raw(
            &server,
            cms,
            b"application/json",
            &cm(&format!(r#""finalizers":[{bad}]"#)),
        );
        assert_eq!(code, 422, "finalizer {bad}: {st}");
    }

    let (code, st) = post_raw(
        &server,
        cms,
        b"application/json",
        &cm(r#""ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}]"#),
    );
    assert_invalid(
        code,
        &st,
        r#"ConfigMap "c" is invalid: metadata.ownerReferences.uid: Invalid value: "": must not be empty"#,
    );

    let (code, st) = post_raw(&server, cms, b"application/json", &cm(r#""generation":-1"#));
    assert_invalid(
        code,
        &st,
        r#"ConfigMap "c" is invalid: metadata.generation: Invalid value: -1: must be greater than or equal to 0"#,
    );

    let (code, st) = post_raw(
        &server,
        cms,
        b"application/json",
        r#"{"apiVersion":"v1","kind":5,"metadata":{"name":"c"}}"#,
    );
    assert_eq!((code, &st["reason"]), (400, &"BadRequest".into()), "{st}");
    assert_eq!(
        st["message"],
        "couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string"
    );

    let (code, st) = post_raw(
        &server,
        cms,
        b"application/json\xc3\xa9",
        &cm(r#""labels":{}"#),
    );
    assert_eq!(code, 415, "{st}");
    assert_eq!(st["reason"], "UnsupportedMediaType", "{st}");

    // Nothing of the above was stored.
    let out = server.kubectl_err(&["get", "cm", "c"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
}

#[test]
fn service_cluster_ips_must_be_addresses() {
    let server = Server::start();
    let file = server.write_file(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  clusterIP: 999.1.1.1\n  ports: [{port: 80}]\n",
    );
    let out = server.kubectl_err(&["create", "-f", &file]);
    assert!(
        stderr(&out).contains(
            r#"The Service "s" is invalid: spec.clusterIPs[0]: Invalid value: "999.1.1.1": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#
        ),
        "{}",
        stderr(&out)
    );
    let headless = server.write_file(
        "headless.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: h\nspec:\n  clusterIP: None\n  ports: [{port: 80}]\n",
    );
    server.kubectl_ok(&["create", "-f", &headless]);
    assert_eq!(
        server.kubectl_ok(&["get", "svc", "h", "-o", "jsonpath={.spec.clusterIPs}"]),
        r#"["None"]"#
    );
    // An address asked for in clusterIPs alone is the one given.
    let listed = server.write_file(
        "listed.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: l\nspec:\n  clusterIPs: [10.43.0.50]\n  ports: [{port: 80}]\n",
    );
    server.kubectl_ok(&["create", "-f", &listed]);
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "svc",
            "l",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.clusterIPs}"
        ]),
        r#"10.43.0.50 ["10.43.0.50"]"#
    );
}
