//! Authentication: client certificates signed by the cluster CA (verified
//! during the TLS handshake) or static bearer tokens. Health and version
//! endpoints stay readable without credentials, as on a real cluster.
//!
//! Authorization: [`authorize`] is the one decision every authenticated
//! request passes, kubectl's and skiff's own components' (which call in
//! through `loopback` with the identities below), so that RBAC and a node
//! authorizer can replace it.

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};

use super::path::ApiPath;
use crate::api::status::{qualified_resource, ApiError};
use crate::server::pki::{Identity, TokenAuth, MASTERS_GROUP};

/// The identity the TLS layer established for a connection, if any.
#[derive(Clone, Debug, Default)]
pub struct ConnIdentity(pub Option<Identity>);

pub struct Authenticator {
    pub tokens: TokenAuth,
}

/// Paths the apiserver's `system:public-info-viewer` role opens to anyone.
pub fn is_public(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/healthz" | "/livez" | "/readyz" | "/version"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

impl Authenticator {
    pub fn authenticate(&self, conn: &ConnIdentity, headers: &HeaderMap) -> Option<Identity> {
        if let Some(id) = &conn.0 {
            return Some(id.clone());
        }
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.tokens.authenticate(token.trim())
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

/// The authorizer's verb for a request: `get`/`list`/`watch`, `create`,
/// `update`, `patch`, `delete`/`deletecollection` on resources; the
/// lower-case HTTP method on plain paths.
pub fn verb(method: &Method, target: &Target<'_>, watch: bool) -> String {
    let Target::Resource { name, .. } = target else {
        return method.as_str().to_ascii_lowercase();
    };
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

/// Paths upstream's `system:discovery` and `system:public-info-viewer`
/// roles open to every authenticated user.
fn is_discovery(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    is_public(path)
        || matches!(p, "/api" | "/apis" | "/openapi")
        || p.starts_with("/api/")
        || p.starts_with("/apis/")
        || p.starts_with("/openapi/")
}

/// The server's start-up writer: the system namespaces and the `kubernetes`
/// Service.
pub const BOOTSTRAP_USER: &str = "system:skiff:bootstrap";
/// The namespace controller, named as upstream's controller role.
pub const NAMESPACE_CONTROLLER_USER: &str = "system:controller:namespace-controller";
/// The garbage collector, named as upstream's controller role.
pub const GARBAGE_COLLECTOR_USER: &str = "system:controller:generic-garbage-collector";

/// The identity of one of skiff's own components (no groups: what it may do
/// is granted to its user name in [`component_may`], nothing more).
pub fn component(user: &str) -> Identity {
    Identity {
        user: user.to_string(),
        groups: Vec::new(),
    }
}

/// What skiff's own components may do, each explicitly and no more than it
/// needs (the rules of upstream's bootstrap roles for the same work).
fn component_may(user: &str, verb: &str, target: &Target<'_>) -> bool {
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
    match user {
        BOOTSTRAP_USER => {
            let object = matches!(
                (*group, *resource),
                ("", "namespaces" | "services") | ("scheduling.k8s.io", "priorityclasses")
            );
            // The API server's own endpoints (default/kubernetes) move
            // with its address.
            let endpoints = matches!(
                (*group, *resource),
                ("", "endpoints") | ("discovery.k8s.io", "endpointslices")
            ) && *namespace == Some("default")
                && matches!(name, None | Some("kubernetes"));
            subresource.is_none()
                && ((object && matches!(verb, "get" | "list" | "create"))
                    || (endpoints && matches!(verb, "get" | "create" | "update")))
        }
        // Upstream's system:controller:generic-garbage-collector: read,
        // update and delete anything (owner references and finalizers).
        GARBAGE_COLLECTOR_USER => {
            subresource.is_none()
                && matches!(
                    verb,
                    "get" | "list" | "watch" | "update" | "patch" | "delete"
                )
        }
        // Upstream's system:controller:namespace-controller: read and
        // delete anything, and release a namespace's finalizer.
        NAMESPACE_CONTROLLER_USER => match subresource {
            None => matches!(
                verb,
                "get" | "list" | "watch" | "delete" | "deletecollection"
            ),
            Some(sub) => {
                group.is_empty()
                    && *resource == "namespaces"
                    && matches!(*sub, "finalize" | "status")
                    && verb == "update"
            }
        },
        _ => false,
    }
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
        ("", "pods", None) => matches!(verb, "get" | "list" | "watch" | "delete"),
        // Services: for the service environment of containers (and the
        // proxy, later), as upstream's node rules allow.
        ("", "services", None) => matches!(verb, "get" | "list" | "watch"),
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

/// Upstream's NodeRestriction for creates, whose name the path does not
/// carry: a node creates only its own Node and its own Lease.
pub fn check_node_create(
    who: &Identity,
    group: &str,
    resource: &str,
    name: &str,
) -> Result<(), ApiError> {
    let Some(node) = node_of(who) else {
        return Ok(());
    };
    let why = match (group, resource) {
        ("", "nodes") if name != node => {
            format!("node {node:?} is not allowed to modify node {name:?}")
        }
        ("coordination.k8s.io", "leases") if name != node => {
            "can only access node lease with the same name as the requesting node".to_string()
        }
        _ => return Ok(()),
    };
    let what = qualified_resource(group, resource);
    let mut e = ApiError::forbidden(format!("{what} {name:?} is forbidden: {why}"));
    e.group = Some(group.to_string());
    e.kind = Some(resource.to_string());
    e.name = Some(name.to_string());
    Err(e)
}

/// The one authorization decision, until RBAC replaces it: members of
/// `system:masters` (the admin certificate and the admin token) may do
/// everything; skiff's own components what [`component_may`] grants them;
/// nodes what [`node_may`] grants theirs; every other authenticated
/// identity (other token-file users, any other certificate the cluster CA
/// signed) may only read discovery, OpenAPI, health and version.
pub fn authorize(who: &Identity, verb: &str, target: &Target<'_>) -> Result<(), ApiError> {
    if who.groups.iter().any(|g| g == MASTERS_GROUP) {
        return Ok(());
    }
    if component_may(&who.user, verb, target) {
        return Ok(());
    }
    if node_of(who).is_some_and(|node| node_may(node, verb, target)) {
        return Ok(());
    }
    if let Target::Path(p) = target {
        if (verb == "get" || verb == "head") && is_discovery(p) {
            return Ok(());
        }
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
mod tests {
    use super::*;

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn pods<'a>(ns: Option<&'a str>, name: Option<&'a str>) -> Target<'a> {
        Target::Resource {
            group: "",
            resource: "pods",
            subresource: None,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn masters_may_do_everything() {
        let admin = who("system:admin", &["system:masters"]);
        assert!(authorize(&admin, "delete", &pods(Some("default"), Some("x"))).is_ok());
        assert!(authorize(&admin, "post", &Target::Path("/anything")).is_ok());
    }

    #[test]
    fn others_get_upstreams_forbidden() {
        let node = who("system:node:x", &["system:nodes"]);
        let secrets = Target::Resource {
            group: "",
            resource: "secrets",
            subresource: None,
            namespace: Some("default"),
            name: None,
        };
        let e = authorize(&node, "list", &secrets).unwrap_err();
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            r#"secrets is forbidden: User "system:node:x" cannot list resource "secrets" in API group "" in the namespace "default""#
        );
        let e = authorize(
            &node,
            "get",
            &Target::Resource {
                group: "apps",
                resource: "deployments",
                subresource: Some("scale"),
                namespace: None,
                name: Some("web"),
            },
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            r#"deployments.apps "web" is forbidden: User "system:node:x" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
        );
        assert_eq!(e.kind.as_deref(), Some("deployments"));
        // No group at all is no better.
        let nobody = who("mallory", &[]);
        assert!(authorize(&nobody, "create", &pods(Some("default"), None)).is_err());
        let e = authorize(&nobody, "get", &Target::Path("/metrics")).unwrap_err();
        assert_eq!(
            e.message,
            r#"forbidden: User "mallory" cannot get path "/metrics""#
        );
    }

    #[test]
    fn discovery_is_open_to_the_authenticated() {
        let nobody = who("mallory", &[]);
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/openapi/v3",
            "/version",
        ] {
            assert!(authorize(&nobody, "get", &Target::Path(p)).is_ok(), "{p}");
        }
        assert!(authorize(&nobody, "post", &Target::Path("/api")).is_err());
    }

    #[test]
    fn a_node_keeps_its_own_node_and_lease_only() {
        let node = who("system:node:edge-1", &["system:nodes"]);
        let res = |group, resource, sub, ns, name| Target::Resource {
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
        };
        let lease_ns = Some("kube-node-lease");
        for (verb, t) in [
            ("create", res("", "nodes", None, None, None)),
            ("list", res("", "nodes", None, None, None)),
            ("patch", res("", "nodes", None, None, Some("edge-1"))),
            (
                "patch",
                res("", "nodes", Some("status"), None, Some("edge-1")),
            ),
            (
                "create",
                res("coordination.k8s.io", "leases", None, lease_ns, None),
            ),
            (
                "update",
                res(
                    "coordination.k8s.io",
                    "leases",
                    None,
                    lease_ns,
                    Some("edge-1"),
                ),
            ),
        ] {
            assert!(authorize(&node, verb, &t).is_ok(), "{verb} {t:?}");
        }
        for (verb, t) in [
            ("patch", res("", "nodes", None, None, Some("other"))),
            (
                "update",
                res("", "nodes", Some("status"), None, Some("other")),
            ),
            ("delete", res("", "nodes", None, None, Some("edge-1"))),
            (
                "update",
                res(
                    "coordination.k8s.io",
                    "leases",
                    None,
                    lease_ns,
                    Some("other"),
                ),
            ),
            (
                "update",
                res(
                    "coordination.k8s.io",
                    "leases",
                    None,
                    Some("default"),
                    Some("edge-1"),
                ),
            ),
            ("list", res("", "secrets", None, Some("default"), None)),
        ] {
            assert!(authorize(&node, verb, &t).is_err(), "{verb} {t:?}");
        }
        // The user name alone is not a node; nor is the group alone.
        let impostor = who("system:node:edge-1", &[]);
        assert!(authorize(&impostor, "create", &res("", "nodes", None, None, None)).is_err());
        assert!(check_node_create(&node, "", "nodes", "edge-1").is_ok());
        let e = check_node_create(&node, "", "nodes", "other").unwrap_err();
        assert_eq!(
            e.message,
            r#"nodes "other" is forbidden: node "edge-1" is not allowed to modify node "other""#
        );
        assert!(check_node_create(&node, "coordination.k8s.io", "leases", "other").is_err());
        assert!(check_node_create(&node, "", "configmaps", "other").is_ok());
    }

    #[test]
    fn components_get_only_what_they_need() {
        let boot = component(BOOTSTRAP_USER);
        let ns = Target::Resource {
            group: "",
            resource: "namespaces",
            subresource: None,
            namespace: None,
            name: None,
        };
        assert!(authorize(&boot, "create", &ns).is_ok());
        assert!(authorize(&boot, "create", &pods(Some("default"), None)).is_err());
        assert!(authorize(&boot, "delete", &ns).is_err());
        let classes = Target::Resource {
            group: "scheduling.k8s.io",
            resource: "priorityclasses",
            subresource: None,
            namespace: None,
            name: None,
        };
        assert!(authorize(&boot, "create", &classes).is_ok());
        assert!(authorize(&boot, "delete", &classes).is_err());
        let endpoints = |namespace, name| Target::Resource {
            group: "",
            resource: "endpoints",
            subresource: None,
            namespace,
            name,
        };
        let own = endpoints(Some("default"), Some("kubernetes"));
        assert!(authorize(&boot, "update", &own).is_ok());
        assert!(authorize(&boot, "create", &endpoints(Some("default"), None)).is_ok());
        let other = endpoints(Some("default"), Some("web"));
        assert!(authorize(&boot, "update", &other).is_err());
        let elsewhere = endpoints(Some("kube-system"), Some("kubernetes"));
        assert!(authorize(&boot, "update", &elsewhere).is_err());
        let gc = component(GARBAGE_COLLECTOR_USER);
        assert!(authorize(&gc, "update", &pods(Some("d"), Some("x"))).is_ok());
        assert!(authorize(&gc, "create", &pods(Some("d"), None)).is_err());
        let ctl = component(NAMESPACE_CONTROLLER_USER);
        assert!(authorize(&ctl, "delete", &pods(Some("d"), Some("x"))).is_ok());
        assert!(authorize(&ctl, "list", &pods(Some("d"), None)).is_ok());
        assert!(authorize(&ctl, "create", &pods(Some("d"), None)).is_err());
        assert!(authorize(&ctl, "update", &pods(Some("d"), Some("x"))).is_err());
        let finalize = Target::Resource {
            group: "",
            resource: "namespaces",
            subresource: Some("finalize"),
            namespace: Some("d"),
            name: Some("d"),
        };
        assert!(authorize(&ctl, "update", &finalize).is_ok());
        // A name is not a group: a component's user name grants nothing
        // outside its own rules.
        assert!(authorize(&ctl, "get", &Target::Path("/metrics")).is_err());
    }

    #[test]
    fn verbs_follow_the_request() {
        let list = pods(Some("d"), None);
        let one = pods(Some("d"), Some("x"));
        assert_eq!(verb(&Method::GET, &list, false), "list");
        assert_eq!(verb(&Method::GET, &list, true), "watch");
        assert_eq!(verb(&Method::GET, &one, false), "get");
        assert_eq!(verb(&Method::DELETE, &list, false), "deletecollection");
        assert_eq!(verb(&Method::DELETE, &one, false), "delete");
        assert_eq!(verb(&Method::PATCH, &one, false), "patch");
        assert_eq!(verb(&Method::POST, &Target::Path("/x"), false), "post");
    }
}
