//! `authorization.k8s.io/v1` reviews, answered at once and never stored:
//!
//! - SubjectAccessReview: may `spec.user` (with `spec.groups`) do what
//!   `spec.resourceAttributes` or `spec.nonResourceAttributes` describe?
//!   Asked of the same decision requests get (`super::decide`), the node
//!   graph included. Who may ask is RBAC's (`system:auth-delegator`).
//! - LocalSubjectAccessReview: the same, confined to the path's namespace.
//! - SelfSubjectAccessReview (`kubectl auth can-i`): the same for the
//!   caller (or whom it impersonates).
//! - SelfSubjectRulesReview (`kubectl auth can-i --list`): the rules the
//!   caller's RBAC roles give it in `spec.namespace`. What skiff's own
//!   components and nodes may do is not written as rules: for them the
//!   answer is `incomplete`, as upstream's node authorizer answers.

use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, Target};
use super::kinds::Review;
use super::negotiate::json_response;
use super::rbac::rule::Rule;
use super::Call;
use crate::api::status::ApiError;
use crate::api::validation::causes;
use crate::server::pki::Identity;

const GROUP: &str = "authorization.k8s.io";

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResourceAttributes {
    namespace: String,
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NonResourceAttributes {
    path: String,
    verb: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    resource_attributes: Option<ResourceAttributes>,
    non_resource_attributes: Option<NonResourceAttributes>,
    user: String,
    groups: Vec<String>,
    namespace: String,
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Answer one review create.
pub async fn create(
    call: &Call<'_>,
    review: Review,
    mut body: Value,
) -> Result<Response, ApiError> {
    let kind = match review {
        Review::SubjectAccess => "SubjectAccessReview",
        Review::LocalSubjectAccess => "LocalSubjectAccessReview",
        Review::SelfSubjectAccess => "SelfSubjectAccessReview",
        Review::SelfSubjectRules => "SelfSubjectRulesReview",
        Review::Token | Review::SelfSubject => {
            return Err(ApiError::internal("not an authorization review"))
        }
    };
    if let Some(k) = body.get("kind").and_then(Value::as_str) {
        if k != kind {
            return Err(ApiError::bad_request(format!(
                "the body of a {kind} request must be a {GROUP}/v1 {kind}, not a {k}"
            )));
        }
    }
    let spec: Spec = match body.get("spec") {
        None | Some(Value::Null) => Spec::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad_request(format!("{kind}: spec: {e}")))?,
    };
    let status = match review {
        Review::SelfSubjectRules => rules_review(call, &spec)?,
        _ => access_review(call, review, kind, spec).await?,
    };
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request(format!("a {kind} must be a JSON object")))?;
    obj.insert("kind".into(), json!(kind));
    obj.insert("apiVersion".into(), json!(format!("{GROUP}/v1")));
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if review == Review::LocalSubjectAccess {
        if let Some(ns) = call.r.namespace.as_deref() {
            meta["namespace"] = json!(ns);
        }
    }
    obj.insert("status".into(), status);
    Ok(json_response(StatusCode::CREATED, &body))
}

async fn access_review(
    call: &Call<'_>,
    review: Review,
    kind: &str,
    spec: Spec,
) -> Result<Value, ApiError> {
    let mut problems = Vec::new();
    match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(_), Some(_)) => problems.push(causes::invalid(
            "spec.nonResourceAttributes",
            "{}",
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => problems.push(causes::invalid(
            "spec.resourceAttributes",
            "null",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    let who = match review {
        Review::SelfSubjectAccess => call.ctx.who.clone(),
        _ => {
            if spec.user.is_empty() && spec.groups.is_empty() {
                problems.push(causes::invalid(
                    "spec.user",
                    "\"\"",
                    "at least one of user or group must be specified",
                ));
            }
            Identity {
                user: spec.user.clone(),
                groups: spec.groups.clone(),
            }
        }
    };
    if review == Review::LocalSubjectAccess {
        // Confined to the namespace of its path, as upstream's validation.
        let ns = call.r.namespace.as_deref().unwrap_or_default();
        if let Some(attrs) = &spec.resource_attributes {
            if attrs.namespace != ns {
                problems.push(causes::invalid(
                    "spec.resourceAttributes.namespace",
                    &causes::go_str(&attrs.namespace),
                    "must match metadata.namespace",
                ));
            }
        }
        if spec.non_resource_attributes.is_some() {
            problems.push(causes::invalid(
                "spec.nonResourceAttributes",
                "{}",
                "disallowed on this kind of request",
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(GROUP, kind, "", problems));
    }
    let (verb, target) = match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(a), _) => (
            a.verb.as_str(),
            Target::Resource {
                group: &a.group,
                resource: &a.resource,
                subresource: non_empty(&a.subresource),
                namespace: non_empty(&a.namespace),
                name: non_empty(&a.name),
            },
        ),
        (None, Some(n)) => (n.verb.as_str(), Target::Path(&n.path)),
        (None, None) => return Err(ApiError::internal("no attributes to review")),
    };
    Ok(
        match super::authorize::decide(call.state, &who, verb, &target).await {
            Ok(()) => json!({"allowed": true}),
            Err(e) if e.code == 403 => json!({"allowed": false}),
            Err(e) => {
                // The reason stays in the server's log, not in the answer.
                tracing::warn!(
                    code = e.code,
                    "an access review could not be decided: {}",
                    e.message
                );
                json!({"allowed": false, "evaluationError": "the authorizer could not decide; see the server's log"})
            }
        },
    )
}

fn rules_review(call: &Call<'_>, spec: &Spec) -> Result<Value, ApiError> {
    let who = &call.ctx.who;
    let Some(ns) = non_empty(&spec.namespace) else {
        return Err(ApiError::bad_request("no namespace on request"));
    };
    let rules = call.state.rbac.policy().rules_for(who, Some(ns));
    let (mut resource_rules, mut url_rules) = (Vec::new(), Vec::new());
    for Rule {
        verbs,
        api_groups,
        resources,
        resource_names,
        non_resource_urls,
    } in rules
    {
        if !resources.is_empty() {
            let mut r = json!({"verbs": verbs, "apiGroups": api_groups, "resources": resources});
            if !resource_names.is_empty() {
                r["resourceNames"] = json!(resource_names);
            }
            resource_rules.push(r);
        }
        if !non_resource_urls.is_empty() {
            url_rules.push(json!({"verbs": verbs, "nonResourceURLs": non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": url_rules,
        "incomplete": false,
    });
    // Masters hold everything through the cluster-admin binding; skiff's
    // components and nodes by rules RBAC does not hold.
    let beyond_rbac = !who
        .groups
        .iter()
        .any(|g| g == crate::server::pki::MASTERS_GROUP)
        && (auth::node_of(who).is_some() || auth::is_component(&who.user));
    if beyond_rbac {
        status["incomplete"] = json!(true);
        status["evaluationError"] =
            json!("the node and component authorizers do not enumerate their rules");
    }
    Ok(status)
}
