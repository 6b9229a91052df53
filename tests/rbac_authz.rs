//! RBAC decides who may do what, with real kubectl: a namespace admin
//! bound to `admin` manages its namespace and no other, `view` reads and
//! does not write, a service account's token gets exactly what its Role
//! grants, `kubectl auth can-i [--list] [--as]` and `auth whoami` answer,
//! impersonation needs the `impersonate` verb, and nobody grants more than
//! they hold (upstream's escalation checks).

mod support;

use std::process::Output;

use support::{stderr, stdout, Server};

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn forbidden(out: Output, message: &str) {
    assert!(!out.status.success(), "succeeded: {}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("forbidden") && err.contains(message),
        "wanted a 403 saying {message:?}, got: {err}"
    );
}

#[test]
fn namespace_admins_viewers_and_what_they_may_grant() {
    let s = Server::start();
    s.namespace("team-a");
    s.namespace("team-b");
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "ann-admin",
        "-n",
        "team-a",
        "--clusterrole=admin",
        "--user=ann",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "vic-view",
        "-n",
        "team-a",
        "--clusterrole=view",
        "--group=viewers",
    ]);
    let ann = s.user_kubeconfig("ann", "ann", &[]);
    let vic = s.user_kubeconfig("vic", "vic", &["viewers"]);

    // The namespace admin manages its namespace...
    let a = |args: &[&str]| s.kubectl_with(&ann, args);
    ok(
        a(&[
            "create",
            "configmap",
            "settings",
            "-n",
            "team-a",
            "--from-literal=k=v",
        ]),
        "ann creates a ConfigMap",
    );
    ok(
        a(&[
            "create",
            "deployment",
            "web",
            "-n",
            "team-a",
            "--image=busybox",
        ]),
        "ann creates a Deployment",
    );
    ok(a(&["get", "secrets", "-n", "team-a"]), "ann lists Secrets");
    ok(
        a(&["delete", "configmap", "settings", "-n", "team-a"]),
        "ann deletes a ConfigMap",
    );
    // ...and no other.
    forbidden(
        a(&["get", "configmaps", "-n", "team-b"]),
        r#"configmaps is forbidden: User "ann" cannot list resource "configmaps" in API group "" in the namespace "team-b""#,
    );
    forbidden(
        a(&["get", "namespaces"]),
        r#"User "ann" cannot list resource "namespaces" in API group "" at the cluster scope"#,
    );

    // The viewer reads, and writes nothing.
    let v = |args: &[&str]| s.kubectl_with(&vic, args);
    let listed = ok(v(&["get", "deployments", "-n", "team-a"]), "vic lists");
    assert!(listed.contains("web"), "{listed}");
    forbidden(
        v(&["scale", "deployment", "web", "--replicas=2", "-n", "team-a"]),
        r#"deployments.apps "web" is forbidden: User "vic" cannot patch resource "deployments/scale" in API group "apps" in the namespace "team-a""#,
    );
    forbidden(
        v(&["delete", "deployment", "web", "-n", "team-a"]),
        r#"User "vic" cannot delete resource "deployments""#,
    );
    // view does not read Secrets.
    forbidden(
        v(&["get", "secrets", "-n", "team-a"]),
        r#"User "vic" cannot list resource "secrets""#,
    );

    // can-i and whoami, for the caller itself.
    let yes = ok(
        v(&["auth", "can-i", "list", "pods", "-n", "team-a"]),
        "can-i",
    );
    assert_eq!(yes.trim(), "yes");
    let no = v(&["auth", "can-i", "delete", "pods", "-n", "team-a"]);
    assert_eq!(no.status.code(), Some(1), "{}", stderr(&no));
    assert_eq!(stdout(&no).trim(), "no");
    let me = ok(v(&["auth", "whoami", "-o", "json"]), "whoami");
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "vic");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        serde_json::json!(["viewers", "system:authenticated"])
    );

    // Escalation: the admin may hand on what it holds...
    ok(
        a(&[
            "create",
            "rolebinding",
            "bob-edit",
            "-n",
            "team-a",
            "--clusterrole=edit",
            "--user=bob",
        ]),
        "ann binds edit",
    );
    ok(
        a(&[
            "create",
            "role",
            "cm-reader",
            "-n",
            "team-a",
            "--verb=get",
            "--resource=configmaps",
        ]),
        "ann makes a role within her rights",
    );
    // ...and nothing more.
    forbidden(
        a(&[
            "create",
            "rolebinding",
            "bob-root",
            "-n",
            "team-a",
            "--clusterrole=cluster-admin",
            "--user=bob",
        ]),
        r#"rolebindings.rbac.authorization.k8s.io "bob-root" is forbidden: user "ann" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#,
    );
    forbidden(
        a(&[
            "create",
            "role",
            "node-reader",
            "-n",
            "team-a",
            "--verb=get",
            "--resource=nodes",
        ]),
        r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}"#,
    );
    // Changing a role to grant more is the same.
    let patched = a(&[
        "patch",
        "role",
        "cm-reader",
        "-n",
        "team-a",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["persistentvolumes"],"verbs":["list"]}}]"#,
    ]);
    forbidden(patched, r#"Resources:["persistentvolumes"]"#);
    // With `bind` on cluster-admin (given by an admin), binding it is
    // allowed without holding it, as upstream.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bind-cluster-admin}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [cluster-admin]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ann-binds}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bind-cluster-admin}
subjects: [{kind: User, name: ann}]
"#,
    );
    ok(
        a(&[
            "create",
            "rolebinding",
            "bob-root",
            "-n",
            "team-a",
            "--clusterrole=cluster-admin",
            "--user=bob",
        ]),
        "ann binds cluster-admin with the bind verb",
    );
}

#[test]
fn a_service_accounts_token_gets_what_its_role_grants_and_can_i_lists_it() {
    let s = Server::start();
    s.namespace("demo");
    s.kubectl_ok(&["create", "serviceaccount", "app", "-n", "demo"]);
    s.kubectl_ok(&[
        "create",
        "role",
        "cm-reader",
        "-n",
        "demo",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "app-reads-cm",
        "-n",
        "demo",
        "--role=cm-reader",
        "--serviceaccount=demo:app",
    ]);
    let token = s.kubectl_ok(&["create", "token", "app", "-n", "demo"]);
    let bearer = format!("Authorization: Bearer {}", token.trim());
    let (code, body) = s.curl_get("/api/v1/namespaces/demo/configmaps", &["-H", &bearer]);
    assert_eq!(code, 200, "{body}");
    for path in [
        "/api/v1/namespaces/demo/secrets",
        "/api/v1/namespaces/demo/pods",
        "/api/v1/namespaces/default/configmaps",
    ] {
        let (code, body) = s.curl_get(path, &["-H", &bearer]);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(
            body.contains(r#"User \"system:serviceaccount:demo:app\" cannot list resource"#),
            "{body}"
        );
    }

    // The admin asks on its behalf, impersonating it.
    let list = s.kubectl_ok(&[
        "auth",
        "can-i",
        "--list",
        "--as",
        "system:serviceaccount:demo:app",
        "-n",
        "demo",
    ]);
    // Resource rows start at the first column; path rows are indented
    // under it.
    let rows: Vec<(bool, Vec<&str>)> = list
        .lines()
        .skip(1)
        .map(|l| (!l.starts_with(' '), l.split_whitespace().collect()))
        .collect();
    let mut resources: Vec<&str> = rows
        .iter()
        .filter(|(res, _)| *res)
        .map(|(_, r)| r[0])
        .collect();
    resources.sort();
    assert_eq!(
        resources,
        [
            "configmaps",
            "selfsubjectaccessreviews.authorization.k8s.io",
            "selfsubjectreviews.authentication.k8s.io",
            "selfsubjectrulesreviews.authorization.k8s.io",
        ],
        "{list}"
    );
    let cm = rows.iter().find(|(_, r)| r[0] == "configmaps").unwrap();
    assert_eq!(cm.1.last(), Some(&"list]"), "{list}");
    assert!(list.contains("[get list]"), "{list}");
    // Discovery and health, from the bootstrap policy.
    let paths: Vec<&str> = rows
        .iter()
        .filter(|(res, _)| !*res)
        .map(|(_, r)| r[0])
        .collect();
    for p in ["[/apis/*]", "[/healthz]", "[/version]"] {
        assert!(paths.contains(&p), "{p}: {list}");
    }
    let yes = s.kubectl_ok(&[
        "auth",
        "can-i",
        "get",
        "configmaps",
        "--as",
        "system:serviceaccount:demo:app",
        "-n",
        "demo",
    ]);
    assert_eq!(yes.trim(), "yes");
    let no = s.kubectl(&[
        "auth",
        "can-i",
        "get",
        "secrets",
        "--as",
        "system:serviceaccount:demo:app",
        "-n",
        "demo",
    ]);
    assert_eq!(stdout(&no).trim(), "no", "{}", stderr(&no));
}

#[test]
fn impersonation_needs_the_verb() {
    let s = Server::start();
    s.namespace("team-a");
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "bob-edit",
        "-n",
        "team-a",
        "--clusterrole=edit",
        "--user=bob",
    ]);
    let ann = s.user_kubeconfig("ann", "ann", &[]);
    let a = |args: &[&str]| s.kubectl_with(&ann, args);
    // Discovery as herself first: kubectl reports a refused discovery
    // request as "unknown" (it does not read the Status there), so the
    // refusal is seen on the resource request.
    ok(a(&["api-resources"]), "ann reads discovery");
    forbidden(
        a(&["get", "configmaps", "-n", "team-a", "--as", "bob"]),
        r#"users "bob" is forbidden: User "ann" cannot impersonate resource "users" in API group "" at the cluster scope"#,
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonate-bob}
rules:
- apiGroups: [""]
  resources: [users]
  verbs: [impersonate]
  resourceNames: [bob]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ann-is-bob}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate-bob}
subjects: [{kind: User, name: ann}]
"#,
    );
    // As bob, ann has bob's rights and only those.
    ok(
        a(&["get", "configmaps", "-n", "team-a", "--as", "bob"]),
        "ann as bob",
    );
    forbidden(
        a(&["get", "configmaps", "-n", "default", "--as", "bob"]),
        r#"User "bob" cannot list resource "configmaps""#,
    );
    forbidden(
        a(&["get", "configmaps", "-n", "team-a"]),
        r#"User "ann" cannot list resource "configmaps""#,
    );
    forbidden(
        a(&["get", "configmaps", "-n", "team-a", "--as", "carol"]),
        r#"users "carol" is forbidden"#,
    );
    forbidden(
        a(&[
            "get",
            "configmaps",
            "-n",
            "team-a",
            "--as",
            "bob",
            "--as-group",
            "system:masters",
        ]),
        r#"groups "system:masters" is forbidden: User "ann" cannot impersonate resource "groups""#,
    );
    let me = ok(a(&["auth", "whoami", "--as", "bob"]), "whoami as bob");
    assert!(me.contains("bob"), "{me}");
}

#[test]
fn holes_upstream_closes_stay_closed() {
    let s = Server::start();
    s.namespace("team-a");
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: role-editor}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [get, list, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ed-edits-roles}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: role-editor}
subjects: [{kind: User, name: ed}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: one-config, namespace: team-a}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [settings]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: nora-one-config, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: one-config}
subjects: [{kind: User, name: nora}]
"#,
    );
    // Labels decide what an aggregated role gathers: labelling
    // cluster-admin into `view` would hand everything to every viewer.
    let ed = s.user_kubeconfig("ed", "ed", &[]);
    forbidden(
        s.kubectl_with(
            &ed,
            &[
                "label",
                "clusterrole",
                "cluster-admin",
                "rbac.authorization.k8s.io/aggregate-to-view=true",
            ],
        ),
        r#"clusterroles.rbac.authorization.k8s.io "cluster-admin" is forbidden: user "ed" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#,
    );
    forbidden(
        s.kubectl_with(
            &ed,
            &[
                "patch",
                "clusterrole",
                "admin",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/aggregationRule"}]"#,
            ],
        ),
        "must have cluster-admin privileges to use the aggregationRule",
    );
    let view = s.kubectl_ok(&["get", "clusterrole", "view", "-o", "json"]);
    assert!(
        !view.contains(r#""verbs": ["*"]"#) && !view.contains(r#""*""#),
        "{view}"
    );

    // A rule that names one object allows a list or watch narrowed to it.
    s.kubectl_ok(&["create", "configmap", "settings", "-n", "team-a"]);
    let (crt, key) = s.client_cert("nora", "nora", &[]);
    let (crt, key) = (crt.to_str().unwrap(), key.to_str().unwrap());
    let as_nora = ["--cert", crt, "--key", key];
    let (code, body) = s.curl_get(
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3Dsettings",
        &as_nora,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.curl_get("/api/v1/namespaces/team-a/configmaps", &as_nora);
    assert_eq!(code, 403, "{body}");

    // A LocalSubjectAccessReview stays in its namespace.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "team-a"},
            "spec": {"user": "nora", "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}}"#,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "spec.nonResourceAttributes: Invalid value: \"{}\": disallowed on this kind of request"
        ) || stderr(&out).contains("disallowed on this kind of request"),
        "{}",
        stderr(&out)
    );
    let out = s.kubectl_stdin(
        &["create", "-f", "-", "-o", "json"],
        r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "team-a"},
            "spec": {"user": "nora", "resourceAttributes": {"namespace": "team-a", "verb": "get", "resource": "configmaps", "name": "settings"}}}"#,
    );
    let answer = ok(out, "a LocalSubjectAccessReview");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"]["allowed"], true, "{answer}");
}
