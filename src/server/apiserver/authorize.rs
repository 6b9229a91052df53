//! Whether a request may do what it asks: whom it acts as (impersonation),
//! the authorizer's decision (`auth`, then the node authorizer's graph),
//! what the audit record learns of both, and upstream's NodeRestriction
//! for a node's writes to pods.

use http::Method;
use serde_json::Value;

use super::path::ApiPath;
use super::query::Query;
use super::{audit, auth, impersonate, node_graph, ApiState, Call};
use crate::api::fields::FieldSelector;
use crate::api::status::ApiError;
use crate::server::pki::Identity;

/// Who a request acts as (whom it impersonates, if allowed) and its verb,
/// once it is allowed to do what it asks; the audit record learns each as
/// it is known.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    state: &ApiState,
    record: Option<&audit::Shared>,
    who: Identity,
    parsed: &ApiPath<'_>,
    path: &str,
    method: &Method,
    q: &Query,
    headers: &http::HeaderMap,
) -> Result<(Identity, String), ApiError> {
    let selector = q.get("fieldSelector").map(FieldSelector::parse);
    let selected = match &selector {
        Some(Ok(sel)) => sel.requires_exact("metadata.name"),
        _ => None,
    };
    let target = auth::Target::of(parsed, path);
    let verb = auth::verb(method, &target, q.flag("watch"));
    let target = target.narrowed(&verb, selected);
    let audited = state.audit.as_ref().zip(record);
    let caller = audited.map(|_| who.clone());
    let acting = impersonate::resolve(&state.rbac, who, headers);
    if let (Some((auditor, record)), Some(caller)) = (audited, &caller) {
        let resource = match (parsed, &target) {
            (
                ApiPath::Resource(r),
                auth::Target::Resource {
                    group,
                    resource,
                    subresource,
                    namespace,
                    name,
                },
            ) => Some(audit::ObjectRef {
                group,
                version: r.def.version,
                resource,
                subresource: *subresource,
                namespace: *namespace,
                name: *name,
            }),
            _ => None,
        };
        let seen = audit::Seen {
            user: caller,
            acting: acting.as_ref().unwrap_or(caller),
            verb: &verb,
            path,
            resource,
        };
        auditor.seen(record, seen).await;
    }
    let decided = match acting {
        Ok(who) => decide(state, &who, &verb, &target).await.map(|()| who),
        Err(e) => Err(e),
    };
    if let Some(record) = record {
        audit::decided(record, decided.is_ok());
    }
    Ok((decided?, verb))
}

/// Whether `who` may do `verb` to `target`: the authorizer's rules, then,
/// for what they refuse a node, the node authorizer's graph.
pub async fn decide(
    state: &ApiState,
    who: &Identity,
    verb: &str,
    target: &auth::Target<'_>,
) -> Result<(), ApiError> {
    let Err(refused) = auth::authorize(&state.rbac, who, verb, target) else {
        return Ok(());
    };
    match auth::node_graph_question(who, verb, target) {
        Some(question) if node_graph::allows(state, &question).await? => Ok(()),
        _ => Err(refused),
    }
}

/// Upstream's NodeRestriction for pods: a node writes (reports, deletes)
/// only the pods bound to it. A pod's nodeName never changes once set, so
/// reading it before the write decides for the write.
pub async fn check_node_pod(call: &Call<'_>, name: &str, what: &str) -> Result<(), ApiError> {
    let Some(node) = auth::node_of(&call.ctx.who) else {
        return Ok(());
    };
    let def = call.r.def;
    if (def.group, def.plural) != ("", "pods") {
        return Ok(());
    }
    let cur = call
        .state
        .objects
        .must_get(def, call.r.namespace.as_deref(), name)
        .await?;
    let bound = cur.obj.pointer("/spec/nodeName").and_then(Value::as_str);
    if bound == Some(node) {
        return Ok(());
    }
    let mut e = ApiError::forbidden(format!(
        "pods {name:?} is forbidden: node {node:?} can only {what} pods with spec.nodeName set to itself"
    ));
    e.kind = Some("pods".into());
    e.name = Some(name.to_string());
    Err(e)
}
