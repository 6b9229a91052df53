//! Upstream's escalation prevention: whoever writes a Role or ClusterRole
//! must already hold every rule it grants (or have the `escalate` verb on
//! it), and whoever binds a role must hold every rule of that role (or
//! have the `bind` verb on it) — else RBAC would let a user with write
//! access to roles or bindings grant itself anything. An aggregated
//! ClusterRole collects rules from roles yet to come, so only a caller
//! holding everything may write one.

use serde_json::Value;

use super::rule::{uncovered, Rule, MAX_CHECKS};
use crate::api::status::{qualified_resource, ApiError};
use crate::server::apiserver::auth::{self, Target};
use crate::server::apiserver::registry::ResourceDef;
use crate::server::apiserver::ApiState;
use crate::server::pki::Identity;

const GROUP: &str = "rbac.authorization.k8s.io";

/// Whether an update changes no more than the garbage collector's fields
/// (owner references, finalizers): only then is it not checked, as
/// upstream's IsOnlyMutatingGCFields. Labels count: they decide which roles
/// an aggregated role gathers.
fn only_gc_fields(old: Option<&Value>, new: &Value) -> bool {
    let Some(old) = old else {
        return false;
    };
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "ownerReferences",
                "finalizers",
                "managedFields",
                "resourceVersion",
                "generation",
            ] {
                m.remove(f);
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// Upstream's hasAggregationRule: at least one selector.
fn aggregates(role: Option<&Value>) -> bool {
    role.and_then(|r| r.pointer("/aggregationRule/clusterRoleSelectors"))
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

fn rules(v: Option<&Value>) -> Result<Vec<Rule>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        // Validation has checked their shape already.
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad_request(format!("rules: {e}"))),
    }
}

fn forbidden(def: &ResourceDef, name: &str, why: String) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "{} {name:?} is forbidden: {why}",
        qualified_resource(def.group, def.plural)
    ));
    e.group = Some(def.group.to_string());
    e.kind = Some(def.plural.to_string());
    e.name = Some(name.to_string());
    e
}

/// Upstream's words for the rules a caller lacks.
fn not_held(who: &Identity, missing: &[Rule]) -> String {
    let groups: Vec<String> = who.groups.iter().map(|g| format!("{g:?}")).collect();
    let rules: Vec<String> = missing.iter().map(Rule::compact).collect();
    format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        who.user,
        groups.join(" "),
        rules.join("\n")
    )
}

/// Refuse a write of an RBAC object (`old` is the stored version of an
/// update) that would give more than its writer holds.
pub fn check(
    state: &ApiState,
    who: &Identity,
    def: &ResourceDef,
    ns: Option<&str>,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    if def.group != GROUP
        || who
            .groups
            .iter()
            .any(|g| g == crate::server::pki::MASTERS_GROUP)
    {
        return Ok(());
    }
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if only_gc_fields(old, new) {
        return Ok(());
    }
    // `escalate` is asked of the role written; a create's path names none,
    // as upstream's.
    let written = old.map(|_| name);
    let may = |verb: &str, resource: &str, object: Option<&str>| {
        let target = Target::Resource {
            group: GROUP,
            resource,
            subresource: None,
            namespace: ns,
            name: object,
        };
        auth::authorize(&state.rbac, who, verb, &target).is_ok()
    };
    let policy = state.rbac.policy();
    let wanted = match def.plural {
        "roles" | "clusterroles" => {
            if may("escalate", def.plural, written) {
                return Ok(());
            }
            // Adding, changing or removing an aggregation rule decides
            // what the role gathers from roles yet to come.
            if aggregates(old) || aggregates(Some(new)) {
                let everything = [
                    Rule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Rule::default()
                    },
                    Rule {
                        verbs: vec!["*".into()],
                        non_resource_urls: vec!["*".into()],
                        ..Rule::default()
                    },
                ];
                let cluster = policy.rules_for(who, None);
                if !uncovered(&cluster, &everything).is_ok_and(|m| m.is_empty()) {
                    return Err(forbidden(
                        def,
                        name,
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    ));
                }
            }
            rules(new.get("rules"))?
        }
        "rolebindings" | "clusterrolebindings" => {
            let field = |f: &str| {
                new.pointer(&format!("/roleRef/{f}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let (kind, role) = (field("kind"), field("name"));
            let resource = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may("bind", resource, Some(role)) {
                return Ok(());
            }
            match policy.role_rules(kind, role, ns) {
                Some(r) => r,
                None => {
                    return Err(forbidden(
                        def,
                        name,
                        format!("{} {role:?} not found", qualified_resource(GROUP, resource)),
                    ))
                }
            }
        }
        _ => return Ok(()),
    };
    // Only now: a caller with `escalate` or `bind` is not asked for it.
    let held = policy.rules_for(who, ns);
    let missing = uncovered(&held, &wanted).map_err(|checks| {
        ApiError::invalid(
            def.group,
            def.kind,
            name,
            vec![crate::api::validation::causes::invalid(
                "rules",
                &checks.to_string(),
                &format!(
                    "too many combinations of the rules' verbs, apiGroups, resources, resourceNames and nonResourceURLs to check against the caller's rules (at most {MAX_CHECKS})"
                ),
            )],
        )
    })?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(forbidden(def, name, not_held(who, &missing)))
    }
}
