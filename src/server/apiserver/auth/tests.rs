//! Tests of the authorization decisions in `auth.rs`.

use super::*;
use serde_json::json;

fn who(user: &str, groups: &[&str]) -> Identity {
    Identity {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// The bootstrap policy alone.
fn rbac() -> Rbac {
    let mut objects = crate::server::bootstrap_policy::cluster_roles();
    objects.extend(crate::server::bootstrap_policy::cluster_role_bindings());
    Rbac::of(&objects)
}

fn pods<'a>(ns: Option<&'a str>, name: Option<&'a str>) -> Target<'a> {
    Target::Resource {
        group: "",
        resource: "pods",
        subresource: None,
        namespace: ns,
        name,
    }
}

#[test]
fn masters_may_do_everything() {
    let admin = who("system:admin", &["system:masters"]);
    assert!(authorize(&rbac(), &admin, "delete", &pods(Some("default"), Some("x"))).is_ok());
    assert!(authorize(&rbac(), &admin, "post", &Target::Path("/anything")).is_ok());
}

#[test]
fn others_get_upstreams_forbidden() {
    let node = who("system:node:x", &["system:nodes"]);
    let secrets = Target::Resource {
        group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some("default"),
        name: None,
    };
    let e = authorize(&rbac(), &node, "list", &secrets).unwrap_err();
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    assert_eq!(
        e.message,
        r#"secrets is forbidden: User "system:node:x" cannot list resource "secrets" in API group "" in the namespace "default""#
    );
    let e = authorize(
        &rbac(),
        &node,
        "get",
        &Target::Resource {
            group: "apps",
            resource: "deployments",
            subresource: Some("scale"),
            namespace: None,
            name: Some("web"),
        },
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        r#"deployments.apps "web" is forbidden: User "system:node:x" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
    );
    assert_eq!(e.kind.as_deref(), Some("deployments"));
    // No group at all is no better.
    let nobody = who("mallory", &[]);
    assert!(authorize(&rbac(), &nobody, "create", &pods(Some("default"), None)).is_err());
    let e = authorize(&rbac(), &nobody, "get", &Target::Path("/metrics")).unwrap_err();
    assert_eq!(
        e.message,
        r#"forbidden: User "mallory" cannot get path "/metrics""#
    );
}

#[test]
fn discovery_is_open_to_the_authenticated() {
    let nobody = who("mallory", &["system:authenticated"]);
    for p in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/openapi/v3",
        "/version",
    ] {
        assert!(
            authorize(&rbac(), &nobody, "get", &Target::Path(p)).is_ok(),
            "{p}"
        );
    }
    assert!(authorize(&rbac(), &nobody, "post", &Target::Path("/api")).is_err());
}

#[test]
fn a_node_keeps_its_own_node_and_lease_only() {
    let node = who("system:node:edge-1", &["system:nodes"]);
    let res = |group, resource, sub, ns, name| Target::Resource {
        group,
        resource,
        subresource: sub,
        namespace: ns,
        name,
    };
    let lease_ns = Some("kube-node-lease");
    for (verb, t) in [
        ("create", res("", "nodes", None, None, None)),
        ("list", res("", "nodes", None, None, None)),
        // The service proxy and DNS the agent runs.
        ("watch", res("", "services", None, None, None)),
        (
            "list",
            res("discovery.k8s.io", "endpointslices", None, None, None),
        ),
        ("patch", res("", "nodes", None, None, Some("edge-1"))),
        (
            "patch",
            res("", "nodes", Some("status"), None, Some("edge-1")),
        ),
        (
            "create",
            res("coordination.k8s.io", "leases", None, lease_ns, None),
        ),
        (
            "update",
            res(
                "coordination.k8s.io",
                "leases",
                None,
                lease_ns,
                Some("edge-1"),
            ),
        ),
    ] {
        assert!(authorize(&rbac(), &node, verb, &t).is_ok(), "{verb} {t:?}");
    }
    for (verb, t) in [
        ("patch", res("", "nodes", None, None, Some("other"))),
        (
            "update",
            res("", "nodes", Some("status"), None, Some("other")),
        ),
        ("delete", res("", "nodes", None, None, Some("edge-1"))),
        (
            "update",
            res(
                "coordination.k8s.io",
                "leases",
                None,
                lease_ns,
                Some("other"),
            ),
        ),
        (
            "update",
            res(
                "coordination.k8s.io",
                "leases",
                None,
                Some("default"),
                Some("edge-1"),
            ),
        ),
        ("list", res("", "secrets", None, Some("default"), None)),
        (
            "create",
            res(
                "discovery.k8s.io",
                "endpointslices",
                None,
                Some("default"),
                None,
            ),
        ),
        (
            "delete",
            res("", "services", None, Some("default"), Some("web")),
        ),
    ] {
        assert!(authorize(&rbac(), &node, verb, &t).is_err(), "{verb} {t:?}");
    }
    // The user name alone is not a node; nor is the group alone.
    let impostor = who("system:node:edge-1", &[]);
    assert!(authorize(
        &rbac(),
        &impostor,
        "create",
        &res("", "nodes", None, None, None)
    )
    .is_err());
    let named = |n: &str| json!({"metadata": {"name": n}});
    assert!(check_node_create(&node, "", "nodes", &named("edge-1")).is_ok());
    let e = check_node_create(&node, "", "nodes", &named("other")).unwrap_err();
    assert_eq!(
        e.message,
        r#"nodes "other" is forbidden: node "edge-1" is not allowed to modify node "other""#
    );
    assert!(check_node_create(&node, "coordination.k8s.io", "leases", &named("other")).is_err());
    assert!(check_node_create(&node, "", "configmaps", &named("other")).is_ok());
}

/// NodeRestriction on pods: a node creates only mirror pods of its own,
/// which use no API object.
#[test]
fn nodes_create_only_their_own_mirror_pods() {
    let node = who("system:node:edge-1", &["system:nodes"]);
    let pods = Target::Resource {
        group: "",
        resource: "pods",
        subresource: None,
        namespace: Some("default"),
        name: None,
    };
    assert!(authorize(&rbac(), &node, "create", &pods).is_ok());
    let mirror = json!({
        "metadata": {
            "name": "web-edge-1",
            "annotations": {"kubernetes.io/config.mirror": "abc"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "edge-1", "uid": "u", "controller": true}],
        },
        "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "busybox"}]},
    });
    assert!(check_node_create(&node, "", "pods", &mirror).is_ok());
    let refused = |change: &dyn Fn(&mut serde_json::Value), why: &str| {
        let mut p = mirror.clone();
        change(&mut p);
        let e = check_node_create(&node, "", "pods", &p).unwrap_err();
        assert_eq!(e.code, 403);
        assert!(e.message.contains(why), "{} lacks {why}", e.message);
    };
    refused(
        &|p| p["metadata"]["annotations"] = json!({}),
        "node \"edge-1\" can only create mirror pods",
    );
    refused(
        &|p| p["spec"]["nodeName"] = json!("edge-2"),
        "spec.nodeName set to itself",
    );
    refused(
        &|p| p["metadata"]["ownerReferences"][0]["name"] = json!("edge-2"),
        "single owner reference set to itself",
    );
    refused(
        &|p| p["spec"]["serviceAccountName"] = json!("default"),
        "reference serviceaccounts",
    );
    refused(
        &|p| p["spec"]["imagePullSecrets"] = json!([{"name": "registry"}]),
        "reference secrets",
    );
    refused(
        &|p| {
            p["spec"]["volumes"] = json!([{"name": "e", "ephemeral": {"volumeClaimTemplate": {}}}])
        },
        "reference persistentvolumeclaims",
    );
    refused(
        &|p| p["spec"]["volumes"] = json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]),
        "reference serviceaccounts",
    );
    refused(
        &|p| {
            p["spec"]["initContainers"] =
                json!([{"name": "i", "envFrom": [{"secretRef": {"name": "x"}}]}])
        },
        "reference secrets",
    );
    refused(
        &|p| p["metadata"]["ownerReferences"][0]["controller"] = json!(false),
        "single owner reference set to itself",
    );
    refused(
        &|p| {
            p["spec"]["volumes"] = json!([{"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "x"}}}])
        },
        "reference secrets",
    );
    refused(
        &|p| p["spec"]["resourceClaims"] = json!([{"name": "gpu"}]),
        "reference resourceclaims",
    );
    // A key that only looks like a reference is none.
    let mut plain = mirror.clone();
    plain["spec"]["nodeSelector"] = json!({"secret": "x", "configMap": "y"});
    assert!(check_node_create(&node, "", "pods", &plain).is_ok());
    refused(
        &|p| p["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "x"}}]),
        "reference secrets",
    );
    refused(
        &|p| {
            p["spec"]["containers"][0]["env"] =
                json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}])
        },
        "reference configmaps",
    );
}

#[test]
fn components_get_only_what_they_need() {
    let boot = component(BOOTSTRAP_USER);
    let ns = Target::Resource {
        group: "",
        resource: "namespaces",
        subresource: None,
        namespace: None,
        name: None,
    };
    assert!(authorize(&rbac(), &boot, "create", &ns).is_ok());
    assert!(authorize(&rbac(), &boot, "create", &pods(Some("default"), None)).is_err());
    assert!(authorize(&rbac(), &boot, "delete", &ns).is_err());
    let classes = Target::Resource {
        group: "scheduling.k8s.io",
        resource: "priorityclasses",
        subresource: None,
        namespace: None,
        name: None,
    };
    assert!(authorize(&rbac(), &boot, "create", &classes).is_ok());
    assert!(authorize(&rbac(), &boot, "delete", &classes).is_err());
    let endpoints = |namespace, name| Target::Resource {
        group: "",
        resource: "endpoints",
        subresource: None,
        namespace,
        name,
    };
    let own = endpoints(Some("default"), Some("kubernetes"));
    assert!(authorize(&rbac(), &boot, "update", &own).is_ok());
    assert!(authorize(&rbac(), &boot, "create", &endpoints(Some("default"), None)).is_ok());
    let other = endpoints(Some("default"), Some("web"));
    assert!(authorize(&rbac(), &boot, "update", &other).is_err());
    let elsewhere = endpoints(Some("kube-system"), Some("kubernetes"));
    assert!(authorize(&rbac(), &boot, "update", &elsewhere).is_err());
    let gc = component(GARBAGE_COLLECTOR_USER);
    assert!(authorize(&rbac(), &gc, "update", &pods(Some("d"), Some("x"))).is_ok());
    assert!(authorize(&rbac(), &gc, "create", &pods(Some("d"), None)).is_err());
    let ctl = component(NAMESPACE_CONTROLLER_USER);
    assert!(authorize(&rbac(), &ctl, "delete", &pods(Some("d"), Some("x"))).is_ok());
    assert!(authorize(&rbac(), &ctl, "list", &pods(Some("d"), None)).is_ok());
    assert!(authorize(&rbac(), &ctl, "create", &pods(Some("d"), None)).is_err());
    assert!(authorize(&rbac(), &ctl, "update", &pods(Some("d"), Some("x"))).is_err());
    let finalize = Target::Resource {
        group: "",
        resource: "namespaces",
        subresource: Some("finalize"),
        namespace: Some("d"),
        name: Some("d"),
    };
    assert!(authorize(&rbac(), &ctl, "update", &finalize).is_ok());
    // A name is not a group: a component's user name grants nothing
    // outside its own rules.
    assert!(authorize(&rbac(), &ctl, "get", &Target::Path("/metrics")).is_err());
}

#[test]
fn verbs_follow_the_request() {
    let list = pods(Some("d"), None);
    let one = pods(Some("d"), Some("x"));
    assert_eq!(verb(&Method::GET, &list, false), "list");
    assert_eq!(verb(&Method::GET, &list, true), "watch");
    assert_eq!(verb(&Method::GET, &one, false), "get");
    assert_eq!(verb(&Method::DELETE, &list, false), "deletecollection");
    assert_eq!(verb(&Method::DELETE, &one, false), "delete");
    assert_eq!(verb(&Method::PATCH, &one, false), "patch");
    assert_eq!(verb(&Method::POST, &Target::Path("/x"), false), "post");
}

#[test]
fn service_accounts_get_only_what_their_bindings_grant() {
    let sa = crate::server::apiserver::serviceaccount::identity("dev", "default");
    let res = |resource, name| Target::Resource {
        group: "",
        resource,
        subresource: None,
        namespace: Some("dev"),
        name,
    };
    let bootstrap = rbac();
    for verb in ["get", "list", "watch", "create", "delete"] {
        assert!(
            authorize(&bootstrap, &sa, verb, &res("pods", None)).is_err(),
            "{verb}"
        );
    }
    let e = authorize(&bootstrap, &sa, "list", &res("secrets", None)).unwrap_err();
    assert_eq!(
        e.message,
        r#"secrets is forbidden: User "system:serviceaccount:dev:default" cannot list resource "secrets" in API group "" in the namespace "dev""#
    );
    let mut objects = crate::server::bootstrap_policy::cluster_roles();
    objects.extend(crate::server::bootstrap_policy::cluster_role_bindings());
    objects.push(json!({
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": "dev"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }));
    objects.push(json!({
        "kind": "RoleBinding",
        "metadata": {"name": "reader", "namespace": "dev"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}],
    }));
    let granted = Rbac::of(&objects);
    assert!(authorize(&granted, &sa, "list", &res("configmaps", None)).is_ok());
    assert!(authorize(&granted, &sa, "get", &res("configmaps", Some("x"))).is_ok());
    assert!(authorize(&granted, &sa, "update", &res("configmaps", Some("x"))).is_err());
    assert!(authorize(&granted, &sa, "list", &res("pods", None)).is_err());
    let elsewhere = Target::Resource {
        group: "",
        resource: "configmaps",
        subresource: None,
        namespace: Some("prod"),
        name: None,
    };
    assert!(authorize(&granted, &sa, "list", &elsewhere).is_err());
    // Anyone may ask who they are; only masters (and whom RBAC lets) may
    // review tokens.
    let review = |resource| Target::Resource {
        group: "authentication.k8s.io",
        resource,
        subresource: None,
        namespace: None,
        name: None,
    };
    assert!(authorize(&granted, &sa, "create", &review("selfsubjectreviews")).is_ok());
    assert!(authorize(&granted, &sa, "create", &review("tokenreviews")).is_err());
}

#[test]
fn the_graph_is_asked_only_for_a_nodes_reads_of_pod_objects_and_tokens() {
    let node = who("system:node:n1", &["system:nodes"]);
    let res = |resource, subresource, name| Target::Resource {
        group: "",
        resource,
        subresource,
        namespace: Some("ns"),
        name,
    };
    let q = node_graph_question(&node, "get", &res("secrets", None, Some("s"))).unwrap();
    assert_eq!(
        q,
        GraphQuestion {
            node: "n1",
            verb: "get",
            resource: "secrets",
            namespace: "ns",
            name: "s"
        }
    );
    // A list or watch only when narrowed to one object.
    assert!(node_graph_question(&node, "list", &res("configmaps", None, None)).is_none());
    let narrowed = res("configmaps", None, None).narrowed("watch", Some("c"));
    let q = node_graph_question(&node, "watch", &narrowed);
    assert_eq!(q.map(|q| q.name), Some("c"));
    let tok = res("serviceaccounts", Some("token"), Some("default"));
    let q = node_graph_question(&node, "create", &tok).unwrap();
    assert_eq!(q.resource, "serviceaccounts/token");
    for (verb, t) in [
        ("create", res("secrets", None, Some("s"))),
        ("delete", res("secrets", None, Some("s"))),
        ("get", res("pods", None, Some("p"))),
        (
            "get",
            res("serviceaccounts", Some("token"), Some("default")),
        ),
    ] {
        assert!(
            node_graph_question(&node, verb, &t).is_none(),
            "{verb} {t:?}"
        );
    }
    // Not a node, no graph.
    let nobody = who("system:node:n1", &[]);
    assert!(node_graph_question(&nobody, "get", &res("secrets", None, Some("s"))).is_none());
    // Only a name that could be a path segment narrows.
    for bad in ["", "..", "a/b", "a%2f"] {
        let t = res("configmaps", None, None).narrowed("list", Some(bad));
        assert!(matches!(t, Target::Resource { name: None, .. }), "{bad}");
    }
    let t = res("configmaps", None, None).narrowed("get", Some("c"));
    assert!(matches!(t, Target::Resource { name: None, .. }));
}
