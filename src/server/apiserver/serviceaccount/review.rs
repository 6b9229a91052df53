//! `authentication.k8s.io/v1` reviews, answered at once and never stored:
//!
//! - TokenReview (`POST /apis/authentication.k8s.io/v1/tokenreviews`):
//!   who `spec.token` stands for, for `spec.audiences` (the API server's
//!   when none), as upstream's: `status.authenticated`, `status.user`
//!   (username, uid, groups, extra) and `status.audiences`, or
//!   `status.error`. Who may ask is the authorizer's (`system:masters`
//!   until RBAC).
//! - SelfSubjectReview (`POST …/selfsubjectreviews`, `kubectl auth
//!   whoami`): the caller's own user info; anyone authenticated may ask.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::authn::ServiceAccountInfo;
use super::AUTHENTICATED_GROUP;
use crate::api::status::ApiError;
use crate::server::apiserver::auth::{self, Bearer};
use crate::server::apiserver::kinds::Review;
use crate::server::apiserver::negotiate::json_response;
use crate::server::apiserver::Call;
use crate::server::pki::Identity;

const API_VERSION: &str = "authentication.k8s.io/v1";

/// Upstream's UserInfo: groups with `system:authenticated` (which
/// upstream's authenticator adds to every user), extra as lists.
fn user_info(who: &Identity, uid: Option<&str>, sa: Option<&ServiceAccountInfo>) -> Value {
    let mut groups = who.groups.clone();
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.to_string());
    }
    let mut user = json!({"username": who.user, "groups": groups});
    if let Some(uid) = uid.filter(|u| !u.is_empty()) {
        user["uid"] = json!(uid);
    }
    if let Some(sa) = sa {
        let extra: Map<String, Value> = sa
            .extra()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!([v])))
            .collect();
        if !extra.is_empty() {
            user["extra"] = Value::Object(extra);
        }
    }
    user
}

/// The review kind's body must be that kind.
fn check_kind(body: &Value, kind: &str) -> Result<(), ApiError> {
    match body.get("kind").and_then(Value::as_str) {
        Some(k) if k != kind => Err(ApiError::bad_request(format!(
            "the body of a {kind} request must be a {API_VERSION} {kind}, not a {k}"
        ))),
        _ => Ok(()),
    }
}

/// Answer one review create.
pub async fn create(call: &Call<'_>, review: Review, body: Value) -> Result<Response, ApiError> {
    let out = match review {
        Review::Token => token_review(call, body).await?,
        Review::SelfSubject => self_subject_review(call, &body).await?,
        _ => return Err(ApiError::internal("not an authentication review")),
    };
    Ok(json_response(StatusCode::CREATED, &out))
}

async fn token_review(call: &Call<'_>, mut body: Value) -> Result<Value, ApiError> {
    const KIND: &str = "TokenReview";
    check_kind(&body, KIND)?;
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            KIND,
            "",
            vec![crate::api::validation::causes::required("spec.token", "")],
        ));
    }
    let asked = crate::server::apiserver::metadata::string_list(body.pointer("/spec/audiences"));
    let state = call.state;
    let audiences = (!asked.is_empty()).then_some(asked.as_slice());
    let found = state
        .auth
        .bearer(&state.objects, &state.registry, &token, audiences)
        .await;
    let status = match found {
        Some(Bearer {
            who,
            uid,
            service_account,
            mut audiences,
        }) => {
            if audiences.is_empty() {
                audiences = state.auth.service_accounts.audiences.clone();
            }
            json!({
            "authenticated": true,
            "user": user_info(&who, uid.as_deref(), service_account.as_deref()),
            "audiences": audiences,
            })
        }
        // Upstream's words for a token no authenticator takes.
        None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
    };
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("a TokenReview must be a JSON object"))?;
    obj.insert("kind".into(), json!(KIND));
    obj.insert("apiVersion".into(), json!(API_VERSION));
    obj.entry("metadata").or_insert_with(|| json!({}));
    obj.insert("status".into(), status);
    Ok(body)
}

async fn self_subject_review(call: &Call<'_>, body: &Value) -> Result<Value, ApiError> {
    check_kind(body, "SelfSubjectReview")?;
    let who = &call.ctx.who;
    // A bearer token says more than the identity (uid, a service
    // account's extra); the authenticator's cache answers it again.
    let state = call.state;
    let bearer = match auth::bearer_token(call.headers) {
        Some(t) => {
            state
                .auth
                .bearer(&state.objects, &state.registry, t, None)
                .await
        }
        None => None,
    };
    let bearer = bearer.filter(|b| b.who.user == who.user);
    let uid = bearer.as_ref().and_then(|b| b.uid.as_deref());
    let sa = bearer.as_ref().and_then(|b| b.service_account.as_deref());
    Ok(json!({
        "kind": "SelfSubjectReview",
        "apiVersion": API_VERSION,
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user_info(who, uid, sa)},
    }))
}
