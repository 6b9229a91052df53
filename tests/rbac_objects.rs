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

/// Every cluster starts with upstream's bootstrap roles: cluster-admin
/// bound to system:masters, and admin/edit/view aggregated from the
/// aggregate-to-* roles, which a new labelled role joins.
#[test]
fn bootstrap_roles_are_there_and_aggregate() {
    use std::time::{Duration, Instant};
    let s = Server::start();
    let roles = s.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for want in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
    ] {
        assert!(
            roles
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{want}")),
            "{want}: {roles}"
        );
    }
    let crb = s.kubectl_ok(&["get", "clusterrolebinding", "cluster-admin", "-o", "wide"]);
    assert!(
        crb.contains("ClusterRole/cluster-admin") && crb.contains("system:masters"),
        "{crb}"
    );
    let rules = |role: &str| {
        s.kubectl_ok(&[
            "get",
            "clusterrole",
            role,
            "-o",
            "jsonpath={.rules[*].resources}",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(rules("view").contains("pods")
        && rules("edit").contains("secrets")
        && rules("admin").contains("rolebindings"))
    {
        assert!(
            Instant::now() < deadline,
            "view: {} edit: {} admin: {}",
            rules("view"),
            rules("edit"),
            rules("admin")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // view may not read Secrets; edit (view's rules and its own) may.
    assert!(!rules("view").contains("secrets"), "{}", rules("view"));
    assert!(rules("edit").contains("deployments"), "{}", rules("edit"));
    // An operator's role labelled aggregate-to-view joins view, and so
    // edit and admin.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: widgets-view\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}\nrules:\n- {apiGroups: [example.com], resources: [widgets], verbs: [get, list, watch]}\n",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(rules("view").contains("widgets") && rules("admin").contains("widgets")) {
        assert!(
            Instant::now() < deadline,
            "view: {} admin: {}",
            rules("view"),
            rules("admin")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
