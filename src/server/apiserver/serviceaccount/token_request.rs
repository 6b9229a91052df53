//! `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`: a bound
//! token for a service account (an `authentication.k8s.io/v1`
//! TokenRequest in, the same with `status.token` out, 201), as upstream's
//! TokenREST: the request's name and namespace must match the URL's, the
//! service account must exist, `expirationSeconds` defaults to an hour and
//! must be at least 10 minutes (422 otherwise), longer than the server's
//! maximum is shortened with a warning; `boundObjectRef` names a Pod (of
//! that service account; the token then also names the pod's node), a
//! Secret or a Node in the same namespace, whose uid must match when given
//! (409). A node's agent may ask only for tokens bound to a pod on its node
//! (upstream's NodeRestriction); whether the pod uses the account was
//! checked by the node authorizer (`node_graph`).

use axum::response::Response;
use http::StatusCode;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest};
use serde_json::{json, Value};

use super::jwt::{self, Claims, Kubernetes, Ref};
use super::{DEFAULT_EXPIRATION_SECS, MAX_VALID_EXPIRATION_SECS, MIN_EXPIRATION_SECS};
use crate::api::status::ApiError;
use crate::api::validation::causes;
use crate::server::apiserver::auth;
use crate::server::apiserver::negotiate::json_response;
use crate::server::apiserver::object_store::Stored;
use crate::server::apiserver::{patch, Call};

/// A projected token's usual `expirationSeconds` (kubelet's), which
/// upstream extends to [`EXTENDED_EXPIRATION_SECS`] with a `warnafter`
/// when the token is bound to a pod and meant for the API server
/// (`--service-account-extend-token-expiration`, on by default), so that
/// clients that never re-read their token keep working for a while.
const WARN_ONLY_EXPIRATION_SECS: i64 = 3600 + 7;
const EXTENDED_EXPIRATION_SECS: i64 = 365 * 24 * 3600;

const GROUP: &str = "authentication.k8s.io";
const KIND: &str = "TokenRequest";

/// The bound object a request names, once found.
enum Bound {
    Pod { pod: Stored, node: Option<Ref> },
    Secret(Stored),
    Node(Stored),
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn reference(obj: &Value) -> Ref {
    Ref {
        name: str_at(obj, "/metadata/name").to_string(),
        uid: str_at(obj, "/metadata/uid").to_string(),
    }
}

/// `gvk.String()` of apimachinery: `/v1, Kind=Foo`, `apps/v1, Kind=Foo`.
fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    format!("{group}/{version}, Kind={kind}")
}

async fn get_core(call: &Call<'_>, plural: &str, ns: &str, name: &str) -> Result<Stored, ApiError> {
    let def = call
        .state
        .registry
        .find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no {plural} in the registry")))?;
    let ns = def.namespaced.then_some(ns);
    call.state.objects.must_get(def, ns, name).await
}

/// Find the object `r` names (upstream's order of checks and messages).
async fn find_bound(
    call: &Call<'_>,
    ns: &str,
    sa_name: &str,
    r: &BoundObjectReference,
) -> Result<Bound, ApiError> {
    let api_version = r.api_version.as_deref().unwrap_or_default();
    let kind = r.kind.as_deref().unwrap_or_default();
    let name = r.name.as_deref().unwrap_or_default();
    let core = matches!(api_version, "" | "v1");
    let (bound, kind) = match kind {
        "Pod" if core => {
            let pod = get_core(call, "pods", ns, name).await?;
            if str_at(&pod.obj, "/spec/serviceAccountName") != sa_name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
            // The pod's node goes in the token too; a node that is not
            // there (yet) is named without its uid.
            let node = match str_at(&pod.obj, "/spec/nodeName") {
                "" => None,
                n => Some(match get_core(call, "nodes", ns, n).await {
                    Ok(node) => reference(&node.obj),
                    Err(e) if e.is_not_found() => Ref {
                        name: n.to_string(),
                        uid: String::new(),
                    },
                    Err(e) => return Err(e),
                }),
            };
            (Bound::Pod { pod, node }, "Pod")
        }
        "Secret" if core => (
            Bound::Secret(get_core(call, "secrets", ns, name).await?),
            "Secret",
        ),
        "Node" if core => (
            Bound::Node(get_core(call, "nodes", ns, name).await?),
            "Node",
        ),
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {}",
                gvk_string(api_version, kind)
            )))
        }
    };
    let found = match &bound {
        Bound::Pod { pod, .. } => pod,
        Bound::Secret(s) | Bound::Node(s) => s,
    };
    let uid = str_at(&found.obj, "/metadata/uid");
    if let Some(want) = r.uid.as_deref().filter(|u| !u.is_empty()) {
        if want != uid {
            return Err(ApiError::conflict(
                "",
                kind,
                name,
                &format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
    }
    Ok(bound)
}

/// Upstream's NodeRestriction for tokens: a node asks only for tokens bound
/// to a pod that runs on it.
/// (The uid must be given, so that a pod deleted and made again under the
/// same name, perhaps elsewhere, is not mistaken for the one asked about.)
fn check_node(
    call: &Call<'_>,
    sa_name: &str,
    req: &TokenRequest,
    bound: Option<&Bound>,
) -> Result<(), ApiError> {
    let Some(node) = auth::node_of(&call.ctx.who) else {
        return Ok(());
    };
    let uid_given = req
        .spec
        .bound_object_ref
        .as_ref()
        .and_then(|r| r.uid.as_deref())
        .is_some_and(|u| !u.is_empty());
    let why = match bound {
        Some(Bound::Pod { .. }) if !uid_given => {
            "node requested token with a pod binding without a uid"
        }
        Some(Bound::Pod { pod, .. }) if str_at(&pod.obj, "/spec/nodeName") == node => {
            return Ok(());
        }
        Some(Bound::Pod { .. }) => {
            "node requested token bound to a pod scheduled on a different node"
        }
        _ => "node requested token not bound to a pod",
    };
    Err(ApiError::forbidden_object(
        "",
        "serviceaccounts/token",
        sa_name,
        why,
    ))
}

/// Serve one TokenRequest for service account `sa_name` (see the module
/// docs). `body` is the decoded request.
pub async fn create(call: &Call<'_>, sa_name: &str, body: Value) -> Result<Response, ApiError> {
    let ns = call
        .r
        .namespace
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("namespace is required"))?;
    if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        if kind != KIND {
            return Err(ApiError::bad_request(format!(
                "the body of a token request must be a {GROUP}/v1 {KIND}, not a {kind}"
            )));
        }
    }
    // The status is the server's to fill (clients' protobuf bodies carry
    // an empty one).
    let mut body = body;
    if let Some(obj) = body.as_object_mut() {
        obj.remove("status");
    }
    let req: TokenRequest = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "{KIND} in version \"v1\" cannot be handled as a {KIND}: {e}"
        ))
    })?;
    let invalid = |cause| ApiError::invalid(GROUP, KIND, sa_name, vec![cause]);
    if let Some(n) = req
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty() && *n != sa_name)
    {
        return Err(invalid(causes::invalid(
            "metadata.name",
            &causes::go_str(n),
            "must match the service account name if specified",
        )));
    }
    if let Some(n) = req
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty() && *n != ns)
    {
        return Err(invalid(causes::invalid(
            "metadata.namespace",
            &causes::go_str(n),
            "must match the service account namespace if specified",
        )));
    }
    let sa = get_core(call, "serviceaccounts", ns, sa_name).await?;
    let tokens = &call.state.auth.service_accounts;
    let mut audiences = req.spec.audiences.clone();
    if audiences.is_empty() {
        audiences = tokens.audiences.clone();
    }
    let mut expiration = req
        .spec
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECS);
    // Upstream's validation, with the name left empty as upstream's is.
    let invalid = |cause| ApiError::invalid(GROUP, KIND, "", vec![cause]);
    if expiration < MIN_EXPIRATION_SECS {
        return Err(invalid(causes::invalid(
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        )));
    }
    if expiration > MAX_VALID_EXPIRATION_SECS {
        return Err(invalid(causes::too_long(
            "spec.expirationSeconds",
            MAX_VALID_EXPIRATION_SECS as usize,
        )));
    }
    let bound = match &req.spec.bound_object_ref {
        Some(r) => Some(find_bound(call, ns, sa_name, r).await?),
        None => None,
    };
    check_node(call, sa_name, &req, bound.as_ref())?;
    let mut warnings = Vec::new();
    let max = tokens.max_expiration_secs;
    if max > 0 && expiration > max {
        warnings.push(format!(
            "299 - \"requested expiration of {expiration} seconds shortened to {max} seconds\""
        ));
        expiration = max;
    }
    let for_api = audiences.iter().all(|a| tokens.audiences.contains(a));
    let is_pod = matches!(bound, Some(Bound::Pod { .. }));
    let (valid_for, warn_after) = if is_pod && expiration == WARN_ONLY_EXPIRATION_SECS && for_api {
        (EXTENDED_EXPIRATION_SECS, Some(expiration))
    } else {
        (expiration, None)
    };
    let now = chrono::Utc::now().timestamp();
    let mut private = Kubernetes {
        namespace: ns.to_string(),
        serviceaccount: reference(&sa.obj),
        warnafter: warn_after.map(|w| now + w),
        ..Default::default()
    };
    match &bound {
        Some(Bound::Pod { pod, node }) => {
            private.pod = Some(reference(&pod.obj));
            private.node = node.clone();
        }
        Some(Bound::Secret(s)) => private.secret = Some(reference(&s.obj)),
        Some(Bound::Node(n)) => private.node = Some(reference(&n.obj)),
        None => {}
    }
    let claims = Claims {
        aud: audiences.clone(),
        exp: now + valid_for,
        iat: now,
        iss: tokens.issuer.clone(),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        kubernetes: private,
        nbf: now,
        sub: super::username(ns, sa_name),
    };
    let token = jwt::sign(tokens.key(), &claims)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    tracing::debug!(
        namespace = ns,
        serviceaccount = sa_name,
        expiration,
        "issued a service-account token"
    );
    let at = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(r) = &req.spec.bound_object_ref {
        spec["boundObjectRef"] = serde_json::to_value(r).unwrap_or(Value::Null);
    }
    let out = json!({
        "kind": KIND,
        "apiVersion": format!("{GROUP}/v1"),
        "metadata": {
            "name": sa_name,
            "namespace": ns,
            "uid": str_at(&sa.obj, "/metadata/uid"),
            "creationTimestamp": at(now),
        },
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": at(now + expiration)},
    });
    Ok(patch::with_warnings(
        json_response(StatusCode::CREATED, &out),
        &warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gvk_strings_are_apimachinerys() {
        assert_eq!(gvk_string("v1", "ConfigMap"), "/v1, Kind=ConfigMap");
        assert_eq!(
            gvk_string("apps/v1", "Deployment"),
            "apps/v1, Kind=Deployment"
        );
        assert_eq!(gvk_string("", ""), "/, Kind=");
    }
}
