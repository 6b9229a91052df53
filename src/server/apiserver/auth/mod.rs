//! Authentication: client certificates signed by the cluster CA (verified
//! during the TLS handshake), static bearer tokens, or service-account
//! tokens (bearer JWTs this server signed, `serviceaccount::authn`).
//! Health and version endpoints stay readable without credentials, as on a
//! real cluster.
//!
//! Authorization: [`authorize`] is the one decision every authenticated
//! request passes, kubectl's and skiff's own components' (which call in
//! through `loopback` with the identities below), so that RBAC can replace
//! it. A node's reads of the objects its pods use are decided by the node
//! authorizer's graph (`node_graph`, which needs the store), asked when
//! [`node_graph_question`] says so.

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};
use serde_json::Value;

mod components;
pub mod node_restriction;

pub use self::components::*;

use super::object_store::Objects;
use super::path::ApiPath;
use super::rbac::Rbac;
use super::registry::Registry;
use super::serviceaccount::{self, authn::StoreLookup, jwt, AUTHENTICATED_GROUP};
use crate::api::status::{qualified_resource, ApiError};
use crate::server::pki::{Identity, TokenAuth, MASTERS_GROUP};

/// The identity the TLS layer established for a connection, if any.
#[derive(Clone, Debug, Default)]
pub struct ConnIdentity(pub Option<Identity>);

pub struct Authenticator {
    pub tokens: TokenAuth,
    /// Issues (TokenRequest) and checks service-account tokens.
    pub service_accounts: serviceaccount::Tokens,
}

/// Paths the apiserver's `system:public-info-viewer` role opens to anyone.
pub fn is_public(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/healthz" | "/livez" | "/readyz" | "/version"
    ) || (is_join(path) && path != crate::server::join::CONFIG_PATH)
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// The paths of node joins, which authenticate their own way
/// (`server::join`).
pub fn is_join(path: &str) -> bool {
    matches!(
        path,
        crate::server::join::CACERTS_PATH
            | crate::server::join::CERTIFICATES_PATH
            | crate::server::join::CONFIG_PATH
    )
}

/// Who a bearer token stands for.
pub struct Bearer {
    pub who: Identity,
    /// The token-file line's uid, or the service account's.
    pub uid: Option<String>,
    /// Set for a service-account token.
    pub service_account: Option<std::sync::Arc<serviceaccount::authn::ServiceAccountInfo>>,
    /// The audiences asked for that the token is good for; empty when none
    /// were asked (it is good for the API server's).
    pub audiences: Vec<String>,
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `who` in `system:authenticated`, as upstream's authenticator puts every
/// user it establishes.
pub fn authenticated(mut who: Identity) -> Identity {
    if !who.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        who.groups.push(AUTHENTICATED_GROUP.to_string());
    }
    who
}

impl Authenticator {
    /// Who a request comes from: the connection's certificate, else its
    /// bearer token (a static one, else a service-account JWT, whose
    /// objects are looked up in `objects`).
    pub async fn authenticate(
        &self,
        objects: &Objects,
        registry: &Registry,
        conn: &ConnIdentity,
        headers: &HeaderMap,
    ) -> Option<Identity> {
        if let Some(id) = &conn.0 {
            return Some(authenticated(id.clone()));
        }
        let token = bearer_token(headers)?;
        let bearer = self.bearer(objects, registry, token, None).await?;
        Some(bearer.who)
    }

    /// Who `token` stands for: a static token, else a service-account JWT
    /// meant for the API server (or, given `audiences`, for one of those).
    pub async fn bearer(
        &self,
        objects: &Objects,
        registry: &Registry,
        token: &str,
        audiences: Option<&[String]>,
    ) -> Option<Bearer> {
        let api = &self.service_accounts.audiences;
        if let Some(who) = self.tokens.authenticate(token) {
            // Static tokens are the API server's own: good for its
            // audiences only, as upstream's non-audience-aware ones.
            let audiences: Vec<String> = match audiences {
                None => Vec::new(),
                Some(asked) => {
                    let good: Vec<String> =
                        asked.iter().filter(|a| api.contains(a)).cloned().collect();
                    if good.is_empty() {
                        return None;
                    }
                    good
                }
            };
            return Some(Bearer {
                who: authenticated(who),
                uid: self.tokens.uid_of(token).map(str::to_string),
                service_account: None,
                audiences,
            });
        }
        if !jwt::looks_like_jwt(token) {
            return None;
        }
        let lookup = StoreLookup { objects, registry };
        let sa = &self.service_accounts;
        let checked = match audiences {
            None => sa
                .authenticate(&lookup, token)
                .await
                .map(|info| (info, Vec::new())),
            Some(asked) => sa.authenticate_for(&lookup, token, asked).await,
        };
        match checked {
            Ok((info, audiences)) => Some(Bearer {
                who: info.identity(),
                uid: Some(info.uid.clone()),
                service_account: Some(info),
                audiences,
            }),
            Err(why) => {
                // Why, never the token.
                tracing::debug!(reason = %why, "service-account token refused");
                None
            }
        }
    }
}

/// What a request asks to do, in the terms of upstream's authorizer
/// attributes: a resource (with its API group, namespace and name) or a
/// plain path (discovery, OpenAPI, health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    Resource {
        group: &'a str,
        resource: &'a str,
        subresource: Option<&'a str>,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    },
    Path(&'a str),
}

impl<'a> Target<'a> {
    /// The target of a request to `path` (already classified as `parsed`).
    pub fn of(parsed: &'a ApiPath<'_>, path: &'a str) -> Target<'a> {
        match parsed {
            ApiPath::Resource(r) => {
                let name = r.name.as_deref();
                // A Namespace is addressed inside itself, as upstream's
                // RequestInfo does it.
                let namespace = if r.def.strategy.is_namespace() {
                    name
                } else {
                    r.namespace.as_deref()
                };
                Target::Resource {
                    group: r.def.group,
                    resource: r.def.plural,
                    subresource: r.subresource.as_deref(),
                    namespace,
                    name,
                }
            }
            _ => Target::Path(path),
        }
    }
}

impl<'a> Target<'a> {
    /// A list or watch narrowed to one object by a `metadata.name=` field
    /// selector names it, as upstream's RequestInfo does (so roles with
    /// resourceNames allow `kubectl get cm x -w`), when the name could be
    /// a path segment.
    pub fn narrowed(self, verb: &str, selected: Option<&'a str>) -> Target<'a> {
        match (self, selected) {
            (
                Target::Resource {
                    group,
                    resource,
                    subresource,
                    namespace,
                    name: None,
                },
                Some(sel),
            ) if matches!(verb, "list" | "watch")
                && !sel.is_empty()
                && !matches!(sel, "." | "..")
                && !sel.contains(['/', '%']) =>
            {
                Target::Resource {
                    group,
                    resource,
                    subresource,
                    namespace,
                    name: Some(sel),
                }
            }
            (t, _) => t,
        }
    }
}

/// The authorizer's verb for a request: `get`/`list`/`watch`, `create`,
/// `update`, `patch`, `delete`/`deletecollection` on resources; the
/// lower-case HTTP method on plain paths.
pub fn verb(method: &Method, target: &Target<'_>, watch: bool) -> String {
    let Target::Resource {
        name,
        group,
        resource,
        subresource,
        ..
    } = target
    else {
        return method.as_str().to_ascii_lowercase();
    };
    // Running something in a pod is `create` however it is asked for:
    // kubectl's WebSocket exec, attach and port-forward are GETs, and a
    // `get` must not open a shell (upstream's
    // AuthorizePodWebsocketUpgradeCreatePermission).
    if group.is_empty()
        && *resource == "pods"
        && matches!(subresource, Some("exec" | "attach" | "portforward"))
    {
        return "create".to_string();
    }
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if name.is_none() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => return method.as_str().to_ascii_lowercase(),
    };
    verb.to_string()
}

/// The group of node credentials.
pub const NODES_GROUP: &str = "system:nodes";

/// The node an identity speaks for: user `system:node:<name>` in group
/// `system:nodes`, both, as upstream's node authorizer requires.
pub fn node_of(who: &Identity) -> Option<&str> {
    if !who.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    who.user
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty())
}

/// What a node's agent may do (upstream's node authorizer, for what the
/// agent uses so far): read nodes, register and report its own Node, keep
/// its own Lease. Which name a create gives is checked at the create
/// ([`check_node_create`], upstream's NodeRestriction admission).
fn node_may(node: &str, verb: &str, target: &Target<'_>) -> bool {
    let Target::Resource {
        group,
        resource,
        subresource,
        namespace,
        name,
    } = target
    else {
        return false;
    };
    let own = *name == Some(node);
    match (*group, *resource, *subresource) {
        ("", "nodes", None) => match verb {
            "get" | "list" | "watch" | "create" => true,
            "update" | "patch" => own,
            _ => false,
        },
        ("", "nodes", Some("status")) => own && matches!(verb, "get" | "update" | "patch"),
        // The pods it runs: read them, report their status, remove them
        // once stopped. (Upstream's NodeRestriction also checks that such a
        // pod is bound to this node; that needs the stored object and comes
        // with agents on other machines.)
        // Creates are of its static pods' mirror pods only
        // ([`check_node_create`]).
        ("", "pods", None) => matches!(verb, "get" | "list" | "watch" | "delete" | "create"),
        // Services: for the service environment of containers, as
        // upstream's node rules allow. With their EndpointSlices: the
        // agent runs the node's service proxy and DNS, which upstream's
        // system:node-proxier role lets read them.
        ("", "services", None) | ("discovery.k8s.io", "endpointslices", None) => {
            matches!(verb, "get" | "list" | "watch")
        }
        ("", "pods", Some("status")) => matches!(verb, "get" | "update" | "patch"),
        ("", "events", None) | ("events.k8s.io", "events", None) => {
            matches!(verb, "create" | "update" | "patch")
        }
        ("coordination.k8s.io", "leases", None) => {
            *namespace == Some("kube-node-lease")
                && match verb {
                    "create" => true,
                    "get" | "update" | "patch" | "delete" => own,
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Upstream's NodeRestriction for creates, whose object the path does not
/// carry: a node creates only its own Node, its own Lease, and mirror
/// pods of its static pods.
pub fn check_node_create(
    who: &Identity,
    group: &str,
    resource: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    let Some(node) = node_of(who) else {
        return Ok(());
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let why = match (group, resource) {
        ("", "nodes") if name != node => {
            format!("node {node:?} is not allowed to modify node {name:?}")
        }
        ("coordination.k8s.io", "leases") if name != node => {
            "can only access node lease with the same name as the requesting node".to_string()
        }
        ("", "pods") => match mirror_pod_refused(node, obj) {
            Some(why) => why,
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    let what = qualified_resource(group, resource);
    let mut e = ApiError::forbidden(format!("{what} {name:?} is forbidden: {why}"));
    e.group = Some(group.to_string());
    e.kind = Some(resource.to_string());
    e.name = Some(name.to_string());
    Err(e)
}

/// Why NodeRestriction refuses the pod `node` creates, if it does: a node
/// makes only mirror pods, bound to itself, owned by nothing but its own
/// Node, and using no API object (a static pod has no access to any).
fn mirror_pod_refused(node: &str, pod: &Value) -> Option<String> {
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_none()
    {
        return Some(format!(
            "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
        ));
    }
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    if spec.get("nodeName").and_then(Value::as_str) != Some(node) {
        return Some(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let own_node = |o: &Value| {
        o.get("apiVersion").and_then(Value::as_str) == Some("v1")
            && o.get("kind").and_then(Value::as_str) == Some("Node")
            && o.get("name").and_then(Value::as_str) == Some(node)
            && o.get("controller").and_then(Value::as_bool) == Some(true)
            && o.get("blockOwnerDeletion").and_then(Value::as_bool) != Some(true)
    };
    if owners.len() > 1 || owners.iter().any(|o| !own_node(o)) {
        return Some(format!(
            "node {node:?} can only create pods with a single owner reference set to itself"
        ));
    }
    if let Some(what) = super::node_graph::first_reference(pod) {
        return Some(format!(
            "node {node:?} can not create pods that reference {what}"
        ));
    }
    None
}

/// A question for the node authorizer's graph (`node_graph`): may `node`
/// do `verb` to the object `name` of `resource` in `namespace`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphQuestion<'a> {
    pub node: &'a str,
    pub verb: &'a str,
    /// `secrets`, `configmaps`, `persistentvolumeclaims`, `serviceaccounts`,
    /// or `serviceaccounts/token`.
    pub resource: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether a request [`authorize`] refused is one the node authorizer
/// decides from the graph of a node's pods, and its question: a node's
/// `get` (or a `list`/`watch` narrowed to one object, see
/// [`Target::narrowed`]) of a Secret, ConfigMap, PersistentVolumeClaim or
/// ServiceAccount, or its `create` of `serviceaccounts/token`.
pub fn node_graph_question<'a>(
    who: &'a Identity,
    verb: &'a str,
    target: &Target<'a>,
) -> Option<GraphQuestion<'a>> {
    let node = node_of(who)?;
    let Target::Resource {
        group: "",
        resource,
        subresource,
        namespace: Some(namespace),
        name,
    } = *target
    else {
        return None;
    };
    let name = match (verb, name) {
        ("get", Some(n)) => n,
        ("list" | "watch", Some(n)) => n,
        ("create", Some(n)) => n,
        _ => return None,
    };
    let resource = match (resource, subresource, verb) {
        ("serviceaccounts", Some("token"), "create") => "serviceaccounts/token",
        (_, _, "create") | (_, Some(_), _) => return None,
        ("secrets", None, _) => "secrets",
        ("configmaps", None, _) => "configmaps",
        ("persistentvolumeclaims", None, _) => "persistentvolumeclaims",
        ("serviceaccounts", None, _) => "serviceaccounts",
        _ => return None,
    };
    Some(GraphQuestion {
        node,
        verb,
        resource,
        namespace,
        name,
    })
}

/// The one authorization decision: members of `system:masters` (the
/// admin certificate and the admin token) may do everything; skiff's own
/// components what [`component_may`] grants them; nodes what [`node_may`]
/// grants theirs (and the graph more, see [`node_graph_question`]);
/// everyone what the RBAC roles bound to them allow (`rbac`). Every
/// authenticated identity is in `system:authenticated`, which the bootstrap
/// policy lets read discovery, OpenAPI, health and version and ask who it
/// is and what it may do.
pub fn authorize(
    rbac: &Rbac,
    who: &Identity,
    verb: &str,
    target: &Target<'_>,
) -> Result<(), ApiError> {
    if who.groups.iter().any(|g| g == MASTERS_GROUP) {
        return Ok(());
    }
    if component_may(&who.user, verb, target) {
        return Ok(());
    }
    if node_of(who).is_some_and(|node| node_may(node, verb, target)) {
        return Ok(());
    }
    if rbac.allows(who, verb, target) {
        return Ok(());
    }
    Err(forbidden(who, verb, target))
}

/// Upstream's 403: `<resource> "<name>" is forbidden: User "<user>" cannot
/// <verb> resource "<resource>" in API group "<group>" in the namespace
/// "<ns>"` (or `at the cluster scope`, or `cannot <verb> path "<path>"`).
fn forbidden(who: &Identity, verb: &str, target: &Target<'_>) -> ApiError {
    let user = &who.user;
    match target {
        Target::Path(p) => {
            ApiError::forbidden(format!("forbidden: User {user:?} cannot {verb} path {p:?}"))
        }
        Target::Resource {
            group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let full = match subresource {
                Some(s) => format!("{resource}/{s}"),
                None => resource.to_string(),
            };
            let why = match namespace {
                Some(ns) => format!(
                    "User {user:?} cannot {verb} resource {full:?} in API group {group:?} in the namespace {ns:?}"
                ),
                None => format!(
                    "User {user:?} cannot {verb} resource {full:?} in API group {group:?} at the cluster scope"
                ),
            };
            let what = qualified_resource(group, resource);
            let message = match name {
                Some(n) => format!("{what} {n:?} is forbidden: {why}"),
                None => format!("{what} is forbidden: {why}"),
            };
            let mut e = ApiError::forbidden(message);
            e.group = Some(group.to_string());
            e.kind = Some(resource.to_string());
            e.name = name.map(str::to_string);
            e
        }
    }
}

#[cfg(test)]
mod tests;
