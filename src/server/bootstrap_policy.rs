//! The ClusterRoles and ClusterRoleBindings every cluster starts with, as
//! upstream's bootstrap policy (plugin/pkg/auth/authorizer/rbac/
//! bootstrappolicy): `cluster-admin` for `system:masters`; the
//! user-facing `admin`, `edit` and `view`, aggregated from the
//! `system:aggregate-to-*` roles (and from any ClusterRole a user or an
//! operator labels `rbac.authorization.k8s.io/aggregate-to-*`); and the
//! discovery, basic-user and public-info roles every authenticated (or, for
//! the last, anonymous) caller has. Written by bootstrap when missing;
//! kept as the user leaves them afterwards.

use serde_json::{json, Value};

const RBAC: &str = "rbac.authorization.k8s.io/v1";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const AGGREGATE: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn meta(name: &str, labels: &[(String, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in labels {
        l.insert(k.clone(), json!(v));
    }
    json!({
        "name": name,
        "labels": l,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn role(name: &str, labels: &[(String, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": meta(name, labels), "rules": rules})
}

/// A role whose rules are those of the roles labelled `aggregate-to-<to>`.
fn aggregated(name: &str, labels: &[(String, &str)]) -> Value {
    json!({
        "apiVersion": RBAC,
        "kind": "ClusterRole",
        "metadata": meta(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {format!("{AGGREGATE}{name}"): "true"}}
        ]},
        "rules": [],
    })
}

fn into(to: &str) -> Vec<(String, &'static str)> {
    vec![(format!("{AGGREGATE}{to}"), "true")]
}

/// The bootstrap ClusterRoles, the aggregated ones holding their rules
/// already: a fresh cluster's `admin` grants what it should from the first
/// request on, not from the aggregation controller's first pass.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = unaggregated();
    aggregate(&mut roles);
    roles
}

/// What the aggregation controller would make of `roles`, by passes until
/// nothing changes (`admin` takes in `edit`, which takes in `view`).
fn aggregate(roles: &mut [Value]) {
    use crate::server::controllers::clusterrole_aggregation::aggregate;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    for _ in 0..roles.len() {
        let typed: Vec<std::sync::Arc<ClusterRole>> = roles
            .iter()
            .filter_map(|r| serde_json::from_value(r.clone()).ok())
            .map(std::sync::Arc::new)
            .collect();
        let mut changed = false;
        for (value, role) in roles.iter_mut().zip(&typed) {
            let Some(rules) = aggregate(role, &typed) else {
                continue;
            };
            let rules = serde_json::to_value(rules).unwrap_or_default();
            if value["rules"] != rules {
                value["rules"] = rules;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn unaggregated() -> Vec<Value> {
    let both = |a: &[&'static str], b: &[&'static str]| [a, b].concat();
    vec![
        role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[]),
        aggregated("edit", &into("admin")),
        aggregated("view", &into("edit")),
        role(
            "system:aggregate-to-admin",
            &into("admin"),
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    &both(WRITE, READ),
                ),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &into("edit"),
            vec![
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                    READ,
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE,
                ),
                rule(&["coordination.k8s.io"], &["leases"], &both(WRITE, READ)),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &into("view"),
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                    READ,
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ,
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ,
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ,
                ),
            ],
        ),
        role(
            "system:discovery",
            &[],
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
            ],
        ),
    ]
}

fn binding(role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": meta(role, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", &["system:masters"]),
        binding("system:discovery", &["system:authenticated"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validation::rbac::{validate_cluster_role, validate_cluster_role_binding};

    #[test]
    fn admin_edit_and_view_start_aggregated() {
        let roles = cluster_roles();
        let rules = |name: &str| {
            let r = roles
                .iter()
                .find(|r| r["metadata"]["name"] == name)
                .unwrap();
            r["rules"].as_array().unwrap().clone()
        };
        let (admin, edit, view) = (rules("admin"), rules("edit"), rules("view"));
        assert!(!view.is_empty());
        assert!(view.iter().all(|r| edit.contains(r)), "edit holds view");
        assert!(edit.iter().all(|r| admin.contains(r)), "admin holds edit");
        assert!(admin.len() > edit.len() && edit.len() > view.len());
    }

    #[test]
    fn the_policy_passes_the_apis_own_validation() {
        for r in cluster_roles() {
            assert!(validate_cluster_role(&r).is_empty(), "{r}");
        }
        for b in cluster_role_bindings() {
            assert!(validate_cluster_role_binding(&b).is_empty(), "{b}");
        }
        let names: Vec<String> = cluster_roles()
            .iter()
            .map(|r| {
                r["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        for b in cluster_role_bindings() {
            assert!(names.iter().any(|n| b["roleRef"]["name"] == *n), "{b}");
        }
        // view feeds edit, edit feeds admin.
        let view = &cluster_roles()[3];
        assert_eq!(
            view["metadata"]["labels"][format!("{AGGREGATE}edit")],
            "true"
        );
    }
}
