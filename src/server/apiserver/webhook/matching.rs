//! Which webhooks a request goes to, as upstream's matchers decide: a rule
//! (operation, group, version, resource/subresource, scope), then the
//! namespace selector on the namespace's labels and the object selector on
//! the object's or the old object's labels.

use serde_json::{Map, Value};

use super::config::{Hook, Rule};
use super::{Operation, Request};

/// The group whose configurations never go through webhooks, so a broken
/// webhook can always be removed (upstream's exempt admission
/// configuration resources).
pub const EXEMPT_GROUP: &str = "admissionregistration.k8s.io";

/// Whether one of `hook`'s rules matches the request.
pub fn rules_match(hook: &Hook, req: &Request<'_>) -> bool {
    hook.rules.iter().any(|r| rule_matches(r, req))
}

fn rule_matches(r: &Rule, req: &Request<'_>) -> bool {
    let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
    scope_matches(&r.scope, req)
        && any(&r.operations, req.op.as_str())
        && any(&r.groups, req.def.group)
        && any(&r.versions, req.def.version)
        && resource_matches(&r.resources, req)
}

fn scope_matches(scope: &str, req: &Request<'_>) -> bool {
    let namespace_object = req.def.group.is_empty() && req.def.plural == "namespaces";
    match scope {
        "Namespaced" => !namespace_object && req.namespace.is_some(),
        "Cluster" => namespace_object || req.namespace.is_none(),
        _ => true,
    }
}

/// `pods` matches the resource only; `pods/status`, `pods/*`, `*/status`
/// and `*/*` subresources too; `*` every resource but no subresource.
fn resource_matches(resources: &[String], req: &Request<'_>) -> bool {
    let sub = req.subresource.unwrap_or("");
    resources.iter().any(|r| {
        let (res, rsub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == req.def.plural) && (rsub == "*" || rsub == sub)
    })
}

/// The object selector: the new or the old object's labels match (a
/// missing object matches nothing, unless the selector is empty).
pub fn object_matches(hook: &Hook, obj: Option<&Value>, old: Option<&Value>) -> bool {
    let sel = &hook.object_selector;
    sel.is_empty()
        || obj.is_some_and(|o| sel.matches_object(o))
        || old.is_some_and(|o| sel.matches_object(o))
}

/// Whether the namespace selector needs the namespace's labels at all:
/// cluster-scoped objects other than namespaces are never exempted.
pub fn needs_namespace(hook: &Hook, req: &Request<'_>) -> bool {
    !hook.namespace_selector.is_empty() && (req.namespace.is_some() || is_namespace(req))
}

pub fn is_namespace(req: &Request<'_>) -> bool {
    req.def.group.is_empty() && req.def.plural == "namespaces" && req.subresource.is_none()
}

pub fn namespace_matches(hook: &Hook, ns_labels: &Map<String, Value>) -> bool {
    hook.namespace_selector.matches(ns_labels)
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::apiserver::registry::Registry;
    use crate::server::apiserver::webhook::config::{read, Phase};
    use crate::server::pki::Identity;
    use serde_json::json;

    fn hook(rules: Value, extra: Value) -> Hook {
        let mut h = json!({
            "name": "h.example.com",
            "clientConfig": {"url": "https://example.com/"},
            "rules": rules, "sideEffects": "None", "admissionReviewVersions": ["v1"],
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            h[k] = v.clone();
        }
        read(&json!({"webhooks": [h]}), Phase::Validating)
            .pop()
            .expect("a hook")
    }

    fn check(h: &Hook, plural: &str, sub: Option<&str>, ns: Option<&str>, op: Operation) -> bool {
        let reg = Registry::builtin();
        let def = reg
            .all()
            .into_iter()
            .find(|d| d.plural == plural)
            .expect("a served resource");
        let who = Identity {
            user: "u".into(),
            groups: vec![],
        };
        let req = Request {
            op,
            def,
            subresource: sub,
            namespace: ns,
            name: "x",
            who: &who,
            dry_run: false,
            kind: None,
            deadline: std::time::Instant::now(),
        };
        rules_match(h, &req)
    }

    #[test]
    fn rules_match_as_upstreams() {
        let pods = hook(
            json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]),
            json!({}),
        );
        assert!(check(&pods, "pods", None, Some("a"), Operation::Create));
        assert!(!check(&pods, "pods", None, Some("a"), Operation::Update));
        assert!(!check(
            &pods,
            "pods",
            Some("status"),
            Some("a"),
            Operation::Create
        ));
        assert!(!check(
            &pods,
            "configmaps",
            None,
            Some("a"),
            Operation::Create
        ));

        let subs = hook(
            json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}]),
            json!({}),
        );
        assert!(check(
            &subs,
            "pods",
            Some("status"),
            Some("a"),
            Operation::Update
        ));
        assert!(!check(&subs, "pods", None, Some("a"), Operation::Update));

        let cluster = hook(
            json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}]),
            json!({}),
        );
        assert!(check(&cluster, "namespaces", None, None, Operation::Create));
        assert!(check(&cluster, "nodes", None, None, Operation::Create));
        assert!(!check(&cluster, "pods", None, Some("a"), Operation::Create));
        let namespaced = hook(
            json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"}]),
            json!({}),
        );
        assert!(!check(
            &namespaced,
            "namespaces",
            None,
            None,
            Operation::Create
        ));
        assert!(check(
            &namespaced,
            "pods",
            None,
            Some("a"),
            Operation::Delete
        ));
    }

    #[test]
    fn object_selector_takes_either_version() {
        let h = hook(
            json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]),
            json!({"objectSelector": {"matchLabels": {"watch": "yes"}}}),
        );
        let yes = json!({"metadata": {"labels": {"watch": "yes"}}});
        let no = json!({"metadata": {}});
        assert!(object_matches(&h, Some(&yes), None));
        assert!(object_matches(&h, Some(&no), Some(&yes)));
        assert!(!object_matches(&h, Some(&no), None));
        assert!(!object_matches(&h, None, None));
    }
}
