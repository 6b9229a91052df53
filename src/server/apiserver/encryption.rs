//! `/skiff/v1/secrets-encryption`: what `skiff secrets-encrypt` asks the
//! running server (the CLI is never a second writer of the database).
//!
//! | request | answer |
//! |---|---|
//! | `GET /skiff/v1/secrets-encryption` | the status: enabled, keys, how many stored objects are under the active key |
//! | `POST /skiff/v1/secrets-encryption/rotate-keys` | a new key first, everything re-encrypted, older keys dropped |
//! | `POST /skiff/v1/secrets-encryption/reencrypt[?compact=true]` | everything not under the active key rewritten; with `compact`, the store's history up to now dropped |
//!
//! These are non-resource URLs, authorized as any other (verbs `get` and
//! `post`): only what holds `*` on non-resource URLs (cluster-admin,
//! system:masters) may use them. Key material never appears in an answer.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::json;

use super::negotiate::json_response;
use super::query::Query;
use super::ApiState;
use crate::api::status::ApiError;
use crate::server::store::encrypt::manage::ManageError;

pub const PATH: &str = "/skiff/v1/secrets-encryption";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Status,
    RotateKeys,
    Reencrypt,
}

impl Action {
    /// The action a path below `/skiff/v1/secrets-encryption` names.
    pub fn parse(rest: &[&str]) -> Option<Action> {
        match rest {
            [] => Some(Action::Status),
            ["rotate-keys"] => Some(Action::RotateKeys),
            ["reencrypt"] => Some(Action::Reencrypt),
            _ => None,
        }
    }

    fn path(self) -> String {
        match self {
            Action::Status => PATH.to_string(),
            Action::RotateKeys => format!("{PATH}/rotate-keys"),
            Action::Reencrypt => format!("{PATH}/reencrypt"),
        }
    }
}

pub async fn serve(
    state: &ApiState,
    method: &Method,
    action: Action,
    q: &Query,
) -> Result<Response, ApiError> {
    let reading = method == Method::GET || method == Method::HEAD;
    match (action, reading, method == Method::POST) {
        (Action::Status, true, _) | (Action::RotateKeys | Action::Reencrypt, _, true) => {}
        _ => {
            return Err(ApiError::method_not_supported(
                &action.path(),
                method.as_str(),
            ))
        }
    }
    let Some(manager) = state.encryption.as_ref() else {
        if action == Action::Status {
            return Ok(json_response(StatusCode::OK, &json!({"enabled": false})));
        }
        return Err(ApiError::bad_request(
            "secrets encryption is not configured on this server: start it with \
             --secrets-encryption (or --encryption-provider-config FILE)",
        ));
    };
    let answer = match action {
        Action::Status => manager.status().await.map(|s| json!(s)),
        Action::RotateKeys => manager.rotate_keys().await.map(|r| json!(r)),
        Action::Reencrypt => manager.reencrypt(q.flag("compact")).await.map(|r| json!(r)),
    };
    match answer {
        Ok(v) => Ok(json_response(StatusCode::OK, &v)),
        Err(e @ ManageError::NotManaged { .. }) => Err(ApiError::bad_request(e.to_string())),
        Err(e) => {
            tracing::error!(error = %e, ?action, "secrets encryption request failed");
            Err(ApiError::internal(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_by_the_path() {
        assert_eq!(Action::parse(&[]), Some(Action::Status));
        assert_eq!(Action::parse(&["rotate-keys"]), Some(Action::RotateKeys));
        assert_eq!(Action::parse(&["reencrypt"]), Some(Action::Reencrypt));
        assert_eq!(Action::parse(&["prepare"]), None);
        assert_eq!(Action::parse(&["reencrypt", "x"]), None);
    }
}
