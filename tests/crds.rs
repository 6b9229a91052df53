//! CustomResourceDefinitions with real kubectl: a CRD with a schema is
//! served the moment it is created; its objects are validated (422 with
//! upstream's causes), defaulted, pruned, listed with the CRD's printer
//! columns, watched, scaled through /scale, kept apart from their /status,
//! and removed with the CRD. A real bundle (cert-manager's) installs
//! cleanly; several versions share one storage; names already taken are not
//! accepted; what skiff cannot serve (webhook conversion, CEL rules) is
//! refused at creation with a clear message.

mod support;

use support::{json, stderr, stdout, table, Server};

const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              replicas:
                type: integer
"#;

fn crontab(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: {name}\nspec:\n  cronSpec: '* * * * */5'\n  image: cron:1\n{extra_spec}"
    )
}

#[test]
fn custom_resources_are_validated_defaulted_pruned_printed_watched_scaled_and_removed() {
    let s = Server::start_with_args(&["--disable-agent"]);
    s.kubectl_stdin_ok(&["create", "-f", "-"], CRONTAB_CRD);
    // Served at once: no wait between the CRD and its first object.
    s.kubectl_stdin_ok(&["create", "-f", "-"], &crontab("first", ""));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    let crd = json(&s.kubectl_ok(&["get", "crd", "crontabs.stable.example.com", "-o", "json"]));
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));

    // Defaulted: replicas from the schema's default.
    let first = json(&s.kubectl_ok(&["get", "ct", "first", "-o", "json"]));
    assert_eq!(first["spec"]["replicas"], 1, "{first}");
    assert_eq!(first["metadata"]["generation"], 1);
    // A default the schema gains later shows on read, the stored object
    // untouched (as upstream defaults what it reads).
    s.kubectl_ok(&[
        "patch",
        "crd",
        "crontabs.stable.example.com",
        "--type=json",
        "-p",
        r#"[{"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/timeZone", "value": {"type": "string", "default": "UTC"}}]"#,
    ]);
    let again = json(&s.kubectl_ok(&["get", "ct", "first", "-o", "json"]));
    assert_eq!(again["spec"]["timeZone"], "UTC", "{again}");
    assert_eq!(
        again["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );

    // Invalid objects: upstream's 422 and causes.
    let bad = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad\nspec:\n  cronSpec: '* * * *'\n  replicas: 15\n",
    );
    assert!(!bad.status.success());
    assert_eq!(
        stderr(&bad).trim(),
        "The CronTab \"bad\" is invalid: \n* spec.cronSpec: Invalid value: \"* * * *\": spec.cronSpec in body should match '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'\n* spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10"
    );
    let typed = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad\nspec:\n  replicas: three\n",
    );
    let err = stderr(&typed);
    assert!(err.contains("* spec.cronSpec: Required value"), "{err}");
    assert!(
        err.contains("* spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""),
        "{err}"
    );
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let (code, body) = s.curl_get(
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
        &[
            "-H",
            &auth,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"apiVersion":"stable.example.com/v1","kind":"CronTab","metadata":{"name":"bad"},"spec":{"cronSpec":"x"}}"#,
        ],
    );
    assert_eq!(code, 422, "{body}");
    let status = json(&body);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["group"], "stable.example.com");
    assert_eq!(status["details"]["kind"], "CronTab");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.cronSpec");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueInvalid"
    );

    // Unknown fields: refused under kubectl's Strict, pruned otherwise.
    let extra = crontab("extra", "  color: blue\n");
    let strict = s.kubectl_stdin(&["create", "-f", "-"], &extra);
    assert!(
        stderr(&strict).contains("strict decoding error: unknown field \"spec.color\""),
        "{}",
        stderr(&strict)
    );
    s.kubectl_stdin_ok(&["create", "--validate=false", "-f", "-"], &extra);
    let pruned = json(&s.kubectl_ok(&["get", "ct", "extra", "-o", "json"]));
    assert!(pruned["spec"].get("color").is_none(), "{pruned}");
    assert_eq!(pruned["spec"]["image"], "cron:1");

    // Printer columns.
    let rows = table(&s.kubectl_ok(&["get", "crontabs"]));
    assert_eq!(rows[0], ["NAME", "SPEC", "REPLICAS", "AGE"]);
    assert_eq!(rows[1][..3], ["extra", "* * * * */5", "1"]);

    // Watched: a new object reaches a watch already open.
    let mut watch = s.kubectl_background(&["get", "ct", "--watch", "--no-headers"]);
    watch.wait_for("the existing objects", |o| o.contains("first"));
    s.kubectl_stdin_ok(&["create", "-f", "-"], &crontab("third", ""));
    watch.wait_for("the new object", |o| o.contains("third"));
    watch.stop();

    // Scaled through /scale; spec changes count generations.
    s.kubectl_ok(&["scale", "ct", "first", "--replicas=3"]);
    let scale = json(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/first/scale",
    ]));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    let first = json(&s.kubectl_ok(&["get", "ct", "first", "-o", "json"]));
    assert_eq!(first["spec"]["replicas"], 3);
    assert_eq!(first["metadata"]["generation"], 2);

    // Status belongs to /status: the main resource ignores it, /status
    // takes it (validated), and it does not count as a generation.
    s.kubectl_ok(&[
        "patch",
        "ct",
        "first",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":9}}"#,
    ]);
    let first = json(&s.kubectl_ok(&["get", "ct", "first", "-o", "json"]));
    assert!(first.get("status").is_none(), "{first}");
    s.kubectl_ok(&[
        "patch",
        "ct",
        "first",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2}}"#,
    ]);
    let bad_status = s.kubectl(&[
        "patch",
        "ct",
        "first",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":"two"}}"#,
    ]);
    assert!(
        stderr(&bad_status).contains("status.replicas in body must be of type integer"),
        "{}",
        stderr(&bad_status)
    );
    let first = json(&s.kubectl_ok(&["get", "ct", "first", "-o", "json"]));
    assert_eq!(first["status"]["replicas"], 2);
    assert_eq!(first["metadata"]["generation"], 2);
    let scale = json(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/first/scale",
    ]));
    assert_eq!(scale["status"]["replicas"], 2);

    // No strategic merge patch for custom resources, as upstream.
    let smp = s.kubectl(&["patch", "ct", "first", "-p", r#"{"spec":{"image":"x"}}"#]);
    assert!(
        stderr(&smp).contains("application/strategic-merge-patch+json is not supported by stable.example.com/v1, Kind=CronTab"),
        "{}",
        stderr(&smp)
    );
    // Server-side apply works on them (taking replicas over from the
    // scale's manager, as upstream requires).
    s.kubectl_stdin_ok(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &crontab("first", "  replicas: 4\n"),
    );
    assert_eq!(
        s.kubectl_ok(&["get", "ct", "first", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    // explain reads the CRD's OpenAPI schema.
    let explain = s.kubectl_ok(&["explain", "crontab.spec"]);
    assert!(
        explain.contains("cronSpec\t<string> -required-"),
        "{explain}"
    );

    // Objects owned by a custom resource go with it (garbage collector).
    let uid = first["metadata"]["uid"].as_str().unwrap().to_string();
    s.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  ownerReferences:\n  - apiVersion: stable.example.com/v1\n    kind: CronTab\n    name: first\n    uid: {uid}\n"
        ),
    );
    s.kubectl_ok(&["delete", "ct", "first"]);
    s.kubectl_ok(&["wait", "--for=delete", "configmap/owned", "--timeout=30s"]);

    // A namespace's deletion takes its custom resources with it.
    s.kubectl_ok(&["create", "namespace", "brief"]);
    s.kubectl_stdin_ok(&["create", "-n", "brief", "-f", "-"], &crontab("short", ""));
    s.kubectl_ok(&["delete", "namespace", "brief", "--timeout=60s"]);
    assert!(!s.kubectl(&["get", "namespace", "brief"]).status.success());

    // Deleting the CRD removes its objects, then it and its API go.
    s.kubectl_ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=30s",
    ]);
    let gone = s.kubectl(&["get", "--raw", "/apis/stable.example.com/v1/crontabs"]);
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("NotFound"), "{}", stderr(&gone));
    assert!(!s
        .kubectl(&["get", "crd", "crontabs.stable.example.com"])
        .status
        .success());
    // Made again, it starts empty.
    s.kubectl_stdin_ok(&["create", "-f", "-"], CRONTAB_CRD);
    assert_eq!(
        s.kubectl_ok(&["get", "crontabs", "-A", "--no-headers"])
            .trim(),
        ""
    );
}

#[test]
fn a_real_crd_bundle_installs_cleanly() {
    let s = Server::start_with_args(&["--disable-agent"]);
    let bundle = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cert-manager-v1.18.0"
    );
    s.kubectl_ok(&["create", "-f", bundle]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/name=cert-manager",
        "--timeout=30s",
    ]);
    let resources = s.kubectl_ok(&[
        "api-resources",
        "--api-group=cert-manager.io",
        "--no-headers",
    ]);
    for r in [
        "certificaterequests",
        "certificates",
        "clusterissuers",
        "issuers",
    ] {
        assert!(resources.contains(r), "{resources}");
    }
    // Applying the same bundle again server-side changes nothing.
    s.kubectl_ok(&["apply", "--server-side", "-f", bundle]);

    s.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: selfsigned
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
spec:
  secretName: web-tls
  dnsNames: [web.example.com]
  issuerRef:
    name: selfsigned
"#,
    );
    s.kubectl_ok(&[
        "patch",
        "certificate",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Issued","message":"Certificate is up to date and has not expired","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#,
    ]);
    // The printer columns, filters and priorities included.
    let rows = table(&s.kubectl_ok(&["get", "certs", "-o", "wide"]));
    assert_eq!(
        rows[0],
        ["NAME", "READY", "SECRET", "ISSUER", "STATUS", "AGE"]
    );
    assert_eq!(
        rows[1][..5],
        [
            "web",
            "True",
            "web-tls",
            "selfsigned",
            "Certificate is up to date and has not expired"
        ]
    );
    // The bundle's category lists both.
    let all = s.kubectl_ok(&["get", "cert-manager", "--no-headers"]);
    assert!(all.contains("certificate.cert-manager.io/web"), "{all}");
    assert!(all.contains("issuer.cert-manager.io/selfsigned"), "{all}");
    // A value the schema does not allow.
    let bad = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: bad\nspec:\n  secretName: s\n  issuerRef: {name: i}\n  privateKey: {algorithm: DSA}\n",
    );
    assert!(
        stderr(&bad).contains("spec.privateKey.algorithm: Unsupported value: \"DSA\": supported values: \"RSA\", \"ECDSA\", \"Ed25519\""),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn versions_share_storage_names_in_use_are_refused_and_crds_survive_a_restart() {
    let mut s = Server::start_with_args(&["--disable-agent"]);
    s.kubectl_stdin_ok(
        &["create", "-f", "-"],
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.org
spec:
  group: example.org
  scope: Cluster
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#,
    );
    let created = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: example.org/v1beta1\nkind: Widget\nmetadata:\n  name: w\nsize: 3\n",
    );
    assert!(created.status.success(), "{}", stderr(&created));
    // A deprecated version says so.
    assert!(
        stderr(&created).contains("Warning: example.org/v1beta1 Widget is deprecated"),
        "{}",
        stderr(&created)
    );
    // The GA version is preferred, whatever the order the CRD lists them in.
    let group = json(&s.kubectl_ok(&["get", "--raw", "/apis/example.org"]));
    assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");
    assert_eq!(group["versions"][0]["version"], "v1", "{group}");
    // Stored once, seen in either version; anything kept (preserve-unknown-fields).
    let v1 = json(&s.kubectl_ok(&["get", "--raw", "/apis/example.org/v1/widgets/w"]));
    assert_eq!(v1["apiVersion"], "example.org/v1");
    assert_eq!(v1["size"], 3);
    let beta = json(&s.kubectl_ok(&["get", "--raw", "/apis/example.org/v1beta1/widgets/w"]));
    assert_eq!(beta["apiVersion"], "example.org/v1beta1");
    assert_eq!(beta["metadata"]["uid"], v1["metadata"]["uid"]);

    // A kind already in use in the group is not accepted, and not served.
    s.kubectl_stdin_ok(
        &["create", "-f", "-"],
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.org
spec:
  group: example.org
  scope: Cluster
  names: {plural: gadgets, singular: gadget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
"#,
    );
    s.kubectl_ok(&[
        "wait",
        "--for=condition=NamesAccepted=False",
        "crd/gadgets.example.org",
        "--timeout=20s",
    ]);
    let crd = json(&s.kubectl_ok(&["get", "crd", "gadgets.example.org", "-o", "json"]));
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    let names = conditions
        .iter()
        .find(|c| c["type"] == "NamesAccepted")
        .unwrap();
    assert_eq!(names["reason"], "KindConflict");
    assert_eq!(names["message"], "\"Widget\" is already in use");
    let established = conditions
        .iter()
        .find(|c| c["type"] == "Established")
        .unwrap();
    assert_eq!(established["status"], "False");
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let (code, _) = s.curl_get("/apis/example.org/v1/gadgets", &["-H", &auth]);
    assert_eq!(code, 404);

    // After a restart the CRDs are served again from the store.
    s.restart();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "widgets.v1.example.org",
            "w",
            "-o",
            "jsonpath={.size}"
        ]),
        "3"
    );
}

#[test]
fn what_skiff_cannot_serve_is_refused_at_creation() {
    let s = Server::start_with_args(&["--disable-agent"]);
    let crd = |extra_version: &str, conversion: &str| {
        format!(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.org
spec:
  group: example.org
  scope: Namespaced
  names: {{plural: things, kind: Thing}}
{conversion}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
{extra_version}
"#
        )
    };
    let cel = s.kubectl_stdin(
        &["create", "-f", "-"],
        &crd(
            "            x-kubernetes-validations:\n            - rule: self.size > 0",
            "",
        ),
    );
    let err = stderr(&cel);
    assert!(
        err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations: Forbidden: CEL validation rules are not supported by skiff"),
        "{err}"
    );
    let webhook = s.kubectl_stdin(
        &["create", "-f", "-"],
        &crd(
            "",
            "  conversion:\n    strategy: Webhook\n    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig: {url: 'https://example.org/convert'}",
        ),
    );
    let err = stderr(&webhook);
    assert!(
        err.contains(
            "spec.conversion.strategy: Forbidden: Webhook conversion is not supported by skiff"
        ),
        "{err}"
    );
    let untyped = s.kubectl_stdin(
        &["create", "-f", "-"],
        &crd(
            "            properties:\n              size: {minimum: 1}",
            "",
        ),
    );
    let err = stderr(&untyped);
    assert!(
        err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields"),
        "{err}"
    );
    // Nothing was stored.
    assert_eq!(s.kubectl_ok(&["get", "crd", "--no-headers"]).trim(), "");
    assert!(stdout(&untyped).is_empty());

    // A CRD naming a built-in resource is never served, and deleting it
    // leaves the built-in objects (which share its storage keys) alone.
    s.kubectl_ok(&["create", "role", "keep", "--verb=get", "--resource=pods"]);
    s.kubectl_stdin_ok(
        &["create", "-f", "-"],
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: roles.rbac.authorization.k8s.io
  annotations: {api-approved.kubernetes.io: "unapproved, testing"}
spec:
  group: rbac.authorization.k8s.io
  scope: Namespaced
  names: {plural: roles, singular: fakerole, kind: FakeRole}
  versions:
  - name: v9
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
"#,
    );
    s.kubectl_ok(&[
        "wait",
        "--for=condition=NamesAccepted=False",
        "crd/roles.rbac.authorization.k8s.io",
        "--timeout=20s",
    ]);
    s.kubectl_ok(&[
        "delete",
        "crd",
        "roles.rbac.authorization.k8s.io",
        "--timeout=30s",
    ]);
    s.kubectl_ok(&["get", "role", "keep"]);
}
