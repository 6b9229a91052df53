//! RBAC objects are served as upstream serves them: `kubectl create role|
//! clusterrole|rolebinding|clusterrolebinding` work, bindings print their
//! role and (wide) their subjects, bad rules and subjects get upstream's
//! 422 causes, and a binding's roleRef cannot change. (Before, a bundle
//! carrying a Role failed with "no matches for kind".)

mod support;

use support::{stderr, Server};

#[test]
fn kubectl_creates_roles_and_bindings_and_the_api_checks_them() {
    let s = Server::start();
    s.namespace("demo");
    s.kubectl_ok(&[
        "create",
        "role",
        "pod-reader",
        "-n",
        "demo",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "node-viewer",
        "--verb=get",
        "--resource=nodes",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "read-pods",
        "-n",
        "demo",
        "--role=pod-reader",
        "--user=jane",
        "--group=devs",
        "--serviceaccount=demo:app",
    ]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "view-nodes",
        "--clusterrole=node-viewer",
        "--user=joe",
    ]);
    let wide = s.kubectl_ok(&[
        "get",
        "rolebinding",
        "read-pods",
        "-n",
        "demo",
        "-o",
        "wide",
    ]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        "{wide}"
    );
    let row = wide.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("read-pods")
            && row.contains("Role/pod-reader")
            && row.contains("jane")
            && row.contains("devs")
            && row.contains("demo/app"),
        "{wide}"
    );
    let crb = s.kubectl_ok(&["get", "clusterrolebinding", "view-nodes"]);
    assert!(crb.contains("ClusterRole/node-viewer"), "{crb}");
    let rules = s.kubectl_ok(&[
        "get",
        "role",
        "pod-reader",
        "-n",
        "demo",
        "-o",
        "jsonpath={.rules[0].verbs}",
    ]);
    assert_eq!(rules, r#"["get","list","watch"]"#);

    // A rule without verbs, a namespaced rule on a URL: upstream's causes.
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: bad, namespace: demo}\nrules:\n- {apiGroups: [''], resources: [pods]}\n- {nonResourceURLs: [/healthz], verbs: [get]}\n",
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("rules[0].verbs: Required value: verbs must contain at least one value")
            && err.contains("rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs"),
        "{err}"
    );
    // A ClusterRoleBinding may only name a ClusterRole.
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: wrong}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}\nsubjects: [{kind: ServiceAccount, name: app}]\n",
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""
        ) && err.contains("subjects[0].namespace: Required value"),
        "{err}"
    );
    // roleRef is fixed once made.
    let out = s.kubectl(&[
        "patch", "rolebinding", "read-pods", "-n", "demo", "--type=merge", "-p",
        r#"{"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"node-viewer"}}"#,
    ]);
    assert!(
        stderr(&out).contains("cannot change roleRef"),
        "{}",
        stderr(&out)
    );
    // Names are path segments: colons are fine (system:… roles).
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "system:custom:reader",
        "--verb=get",
        "--resource=pods",
    ]);
    s.kubectl_ok(&["delete", "role", "pod-reader", "-n", "demo"]);
}
