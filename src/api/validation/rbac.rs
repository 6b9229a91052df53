//! Validation of rbac.authorization.k8s.io/v1: Roles and ClusterRoles
//! (their policy rules) and the two bindings (their role reference and
//! subjects), with the apiserver's messages (`pkg/apis/rbac/validation`).
//! Names are checked as path segments by the kinds' `NameRule`.

use serde_json::Value;

use super::causes::{self, go_json, go_str, go_string_slice};
use super::meta::path_segment_errors;
use super::{arr_at, is_dns1123_subdomain, str_at};
use crate::api::status::Cause;

const GROUP: &str = "rbac.authorization.k8s.io";

pub fn validate_role(obj: &Value) -> Vec<Cause> {
    rules_of(obj, true)
}

pub fn validate_cluster_role(obj: &Value) -> Vec<Cause> {
    rules_of(obj, false)
}

pub fn validate_role_binding(obj: &Value) -> Vec<Cause> {
    binding(obj, true)
}

pub fn validate_cluster_role_binding(obj: &Value) -> Vec<Cause> {
    binding(obj, false)
}

/// A binding's role reference never changes (a binding to another role is
/// a new binding, so that what it grants is never swapped under it).
pub fn binding_update(old: &Value, new: &Value) -> Vec<Cause> {
    let (was, now) = (old.get("roleRef"), new.get("roleRef"));
    if was == now {
        return Vec::new();
    }
    let shown = now.map(go_json).unwrap_or_else(|| "null".into());
    vec![causes::invalid("roleRef", &shown, "cannot change roleRef")]
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    arr_at(v, key)
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

fn rules_of(obj: &Value, namespaced: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    for (i, rule) in arr_at(obj, "rules").iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if arr_at(rule, "verbs").is_empty() {
            out.push(causes::required(
                &at("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = strings(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let shown = go_string_slice(&urls.iter().map(String::as_str).collect::<Vec<_>>());
            if namespaced {
                out.push(causes::invalid(
                    &at("nonResourceURLs"),
                    &shown,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            let resources = ["apiGroups", "resources", "resourceNames"];
            if resources.iter().any(|k| !arr_at(rule, k).is_empty()) {
                out.push(causes::invalid(
                    &at("nonResourceURLs"),
                    &shown,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr_at(rule, "apiGroups").is_empty() {
            out.push(causes::required(
                &at("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr_at(rule, "resources").is_empty() {
            out.push(causes::required(
                &at("resources"),
                "resource rules must supply at least one resource",
            ));
        }
        if !arr_at(rule, "resourceNames").is_empty() && arr_at(rule, "resources").len() > 1 {
            out.push(causes::required(
                &at("resourceNames"),
                "resource names cannot apply to multiple resources",
            ));
        }
    }
    out
}

fn binding(obj: &Value, namespaced: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
    let group = str_at(&role_ref, "apiGroup").unwrap_or("");
    if group != GROUP {
        out.push(causes::not_supported("roleRef.apiGroup", group, &[GROUP]));
    }
    let kind = str_at(&role_ref, "kind").unwrap_or("");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        out.push(causes::not_supported("roleRef.kind", kind, kinds));
    }
    match str_at(&role_ref, "name").unwrap_or("") {
        "" => out.push(causes::required("roleRef.name", "")),
        name => {
            for msg in path_segment_errors(name) {
                out.push(causes::invalid("roleRef.name", &go_str(name), &msg));
            }
        }
    }
    for (i, s) in arr_at(obj, "subjects").iter().enumerate() {
        out.extend(subject(s, namespaced, &format!("subjects[{i}]")));
    }
    out
}

fn subject(s: &Value, namespaced: bool, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    let at = |f: &str| format!("{path}.{f}");
    let name = str_at(s, "name").unwrap_or("");
    let group = str_at(s, "apiGroup").unwrap_or("");
    if name.is_empty() {
        out.push(causes::required(&at("name"), ""));
    }
    match str_at(s, "kind").unwrap_or("") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in is_dns1123_subdomain(name) {
                    out.push(causes::invalid(&at("name"), &go_str(name), &msg));
                }
            }
            if !group.is_empty() {
                out.push(causes::not_supported(&at("apiGroup"), group, &[""]));
            }
            if !namespaced && str_at(s, "namespace").unwrap_or("").is_empty() {
                out.push(causes::required(&at("namespace"), ""));
            }
        }
        kind @ ("User" | "Group") => {
            if name.is_empty() {
                let what = if kind == "User" { "user" } else { "group" };
                out.push(causes::invalid(
                    &at("name"),
                    "\"\"",
                    &format!("{what} name cannot be empty"),
                ));
            }
            if group != GROUP {
                out.push(causes::not_supported(&at("apiGroup"), group, &[GROUP]));
            }
        }
        other => out.push(causes::not_supported(
            &at("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(causes: Vec<Cause>) -> Vec<String> {
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn policy_rules_as_upstream_checks_them() {
        let role = json!({"rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
            {"nonResourceURLs": ["/x"], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods", "secrets"], "resourceNames": ["a"], "verbs": ["get"]},
        ]});
        assert_eq!(
            messages(validate_role(&role)),
            [
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[2].resources: Required value: resource rules must supply at least one resource",
                "rules[3].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[4].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[4].nonResourceURLs: Invalid value: []string{\"/x\"}: rules cannot apply to both regular resources and non-resource URLs",
                "rules[5].resourceNames: Required value: resource names cannot apply to multiple resources",
            ]
        );
        // A ClusterRole may name URLs.
        let cr = json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert!(validate_cluster_role(&cr).is_empty());
    }

    #[test]
    fn bindings_name_a_role_and_proper_subjects() {
        let good = json!({
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "User", "apiGroup": GROUP, "name": "jane"},
                {"kind": "ServiceAccount", "name": "app", "namespace": "demo"},
                {"kind": "Group", "apiGroup": GROUP, "name": "devs"},
            ]
        });
        assert!(validate_role_binding(&good).is_empty());
        assert_eq!(
            messages(validate_cluster_role_binding(&good)),
            ["roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""]
        );
        let bad = json!({
            "roleRef": {"apiGroup": "example.com", "kind": "Role", "name": "a/b"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "App_1"},
                {"kind": "Robot", "name": "r2"},
                {"kind": "User", "name": "jo"},
            ]
        });
        assert_eq!(
            messages(validate_cluster_role_binding(&bad)),
            [
                "roleRef.apiGroup: Unsupported value: \"example.com\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "roleRef.name: Invalid value: \"a/b\": may not contain '/'",
                "subjects[0].name: Invalid value: \"App_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "subjects[0].namespace: Required value",
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                "subjects[2].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
            ]
        );
        let moved = json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "other"}});
        assert_eq!(
            messages(binding_update(&good, &moved)),
            ["roleRef: Invalid value: {\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"Role\",\"name\":\"other\"}: cannot change roleRef"]
        );
    }
}
