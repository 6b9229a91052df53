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
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
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

/// Discovery and OpenAPI documents.
fn is_discovery(target: &Target<'_>) -> bool {
    let Target::Path(path) = target else {
        return false;
    };
    let p = path.trim_end_matches('/');
    matches!(p, "/api" | "/apis" | "/openapi")
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
/// The controller that keeps a `default` ServiceAccount in each namespace.
pub const SERVICE_ACCOUNT_CONTROLLER_USER: &str = "system:controller:service-account-controller";
/// The controller that publishes the cluster CA (`kube-root-ca.crt`).
pub const ROOT_CA_PUBLISHER_USER: &str = "system:controller:root-ca-cert-publisher";

/// The shared informers of the scheduler and the controllers: they read
/// and watch, nothing else.
pub const INFORMERS_USER: &str = "system:skiff:informers";
/// The scheduler, named as upstream's.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";

/// The ReplicaSet controller, named as upstream's controller role.
pub const REPLICASET_CONTROLLER_USER: &str = "system:controller:replicaset-controller";

/// The Deployment controller, named as upstream's controller role.
pub const DEPLOYMENT_CONTROLLER_USER: &str = "system:controller:deployment-controller";

/// The Job controller, named as upstream's controller role.
pub const JOB_CONTROLLER_USER: &str = "system:controller:job-controller";

/// The CronJob controller, named as upstream's controller role.
pub const CRONJOB_CONTROLLER_USER: &str = "system:controller:cronjob-controller";

/// The DaemonSet controller, named as upstream's controller role.
pub const DAEMONSET_CONTROLLER_USER: &str = "system:controller:daemon-set-controller";

/// The StatefulSet controller, named as upstream's controller role.
pub const STATEFULSET_CONTROLLER_USER: &str = "system:controller:statefulset-controller";

/// The disruption controller, named as upstream's controller role.
pub const DISRUPTION_CONTROLLER_USER: &str = "system:controller:disruption-controller";

/// The node lifecycle controller, named as upstream's controller role.
pub const NODE_CONTROLLER_USER: &str = "system:controller:node-controller";

/// The pod garbage collector, named as upstream's controller role.
pub const POD_GC_USER: &str = "system:controller:pod-garbage-collector";

/// The HorizontalPodAutoscaler controller, named as upstream's.
pub const HPA_CONTROLLER_USER: &str = "system:controller:horizontal-pod-autoscaler";

/// The TTL-after-finished controller, named as upstream's.
pub const TTL_AFTER_FINISHED_USER: &str = "system:controller:ttl-after-finished-controller";

/// Leader election of the controllers and the scheduler.
pub const LEADER_ELECTION_USER: &str = "system:skiff:leader-election";

/// The Endpoints and EndpointSlice controller, named as upstream's
/// endpoint controller role.
/// The load balancer controller (servicelb).
pub const SERVICE_LB_USER: &str = "system:skiff:service-lb-controller";
/// The ClusterRole aggregation controller (upstream's
/// system:controller:clusterrole-aggregation-controller).
pub const ROLE_AGGREGATION_USER: &str = "system:skiff:clusterrole-aggregation-controller";
/// The cluster DNS Service's controller.
pub const CLUSTER_DNS_USER: &str = "system:skiff:cluster-dns";
pub const ENDPOINT_CONTROLLER_USER: &str = "system:controller:endpoint-controller";

/// The ReplicationController controller, named as upstream's.
pub const REPLICATION_CONTROLLER_USER: &str = "system:controller:replication-controller";

/// Every one of skiff's own components.
const COMPONENTS: &[&str] = &[
    BOOTSTRAP_USER,
    NAMESPACE_CONTROLLER_USER,
    GARBAGE_COLLECTOR_USER,
    SERVICE_ACCOUNT_CONTROLLER_USER,
    ROOT_CA_PUBLISHER_USER,
    INFORMERS_USER,
    SCHEDULER_USER,
    REPLICASET_CONTROLLER_USER,
    DEPLOYMENT_CONTROLLER_USER,
    JOB_CONTROLLER_USER,
    CRONJOB_CONTROLLER_USER,
    DAEMONSET_CONTROLLER_USER,
    STATEFULSET_CONTROLLER_USER,
    DISRUPTION_CONTROLLER_USER,
    NODE_CONTROLLER_USER,
    POD_GC_USER,
    HPA_CONTROLLER_USER,
    TTL_AFTER_FINISHED_USER,
    LEADER_ELECTION_USER,
    SERVICE_LB_USER,
    ROLE_AGGREGATION_USER,
    CLUSTER_DNS_USER,
    ENDPOINT_CONTROLLER_USER,
    REPLICATION_CONTROLLER_USER,
];

/// Whether `user` is one of skiff's own components, whose rights
/// [`component_may`] holds rather than RBAC.
pub fn is_component(user: &str) -> bool {
    COMPONENTS.contains(&user)
}

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
        // Discovery, whatever becomes of the system:discovery binding:
        // the garbage collector and the autoscaler map kinds through it.
        return is_component(user) && verb == "get" && is_discovery(target);
    };
    match user {
        BOOTSTRAP_USER => {
            let object = matches!(
                (*group, *resource),
                ("", "namespaces" | "services")
                    | ("scheduling.k8s.io", "priorityclasses")
                    | (
                        "rbac.authorization.k8s.io",
                        "clusterroles" | "clusterrolebindings"
                    )
            );
            // The API server's own endpoints (default/kubernetes) move
            // with its address.
            let endpoints = matches!(
                (*group, *resource),
                ("", "endpoints") | ("discovery.k8s.io", "endpointslices")
            ) && *namespace == Some("default")
                && matches!(name, None | Some("kubernetes"));
            // It writes the bootstrap policy, whose roles hold what no
            // one holds yet (as upstream's API server's own loopback user).
            let policy =
                *group == "rbac.authorization.k8s.io" && matches!(verb, "escalate" | "bind");
            subresource.is_none()
                && ((object && matches!(verb, "get" | "list" | "create"))
                    || (endpoints && matches!(verb, "get" | "create" | "update"))
                    || policy)
        }
        INFORMERS_USER => subresource.is_none() && matches!(verb, "get" | "list" | "watch"),
        // Load balancers: read Services and Nodes, set Services' status,
        // say why one is pending.
        SERVICE_LB_USER => match (*group, *resource, *subresource) {
            ("", "services", None) | ("", "nodes", None) => {
                matches!(verb, "get" | "list" | "watch")
            }
            ("", "services", Some("status")) => matches!(verb, "get" | "patch" | "update"),
            ("", "events", None) | ("events.k8s.io", "events", None) => {
                matches!(verb, "create" | "patch" | "update")
            }
            _ => false,
        },
        // ClusterRoles: read them, write the aggregated ones' rules.
        ROLE_AGGREGATION_USER => {
            *group == "rbac.authorization.k8s.io"
                && *resource == "clusterroles"
                && subresource.is_none()
                && matches!(verb, "get" | "list" | "watch" | "update" | "escalate")
        }
        // The cluster DNS Service and its slice of nodes, nothing else.
        CLUSTER_DNS_USER => {
            let (svc, slice) = (
                crate::server::controllers::cluster_dns::SERVICE,
                crate::server::controllers::cluster_dns::SLICE,
            );
            subresource.is_none()
                && *namespace == Some(crate::server::controllers::cluster_dns::NAMESPACE)
                && match (*group, *resource) {
                    ("", "services") => {
                        matches!((verb, *name), ("get", Some(n)) if n == svc)
                            || (verb == "create" && name.is_none())
                    }
                    ("discovery.k8s.io", "endpointslices") => {
                        matches!((verb, *name), ("get" | "update", Some(n)) if n == slice)
                            || (verb == "create" && name.is_none())
                    }
                    _ => false,
                }
        }
        // Upstream's system:kube-scheduler: bind pods, report why a pod
        // waits, evict for preemption, record events.
        SCHEDULER_USER => match (*group, *resource, *subresource) {
            ("", "pods", Some("binding")) => verb == "create",
            ("", "pods", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "pods", None) => matches!(verb, "get" | "list" | "watch" | "delete"),
            ("", "events", None) | ("events.k8s.io", "events", None) => {
                matches!(verb, "create" | "patch" | "update")
            }
            ("", "nodes", None) => matches!(verb, "get" | "list" | "watch"),
            _ => false,
        },
        // Upstream's system:controller:replicaset-controller: make and
        // remove pods, adopt and release them, report status.
        REPLICASET_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("", "pods", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "delete" | "patch" | "update"
            ),
            ("apps", "replicasets", None) => matches!(verb, "get" | "list" | "watch"),
            ("apps", "replicasets", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:deployment-controller: manage
        // ReplicaSets, annotate and report on Deployments.
        DEPLOYMENT_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("apps", "replicasets", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "update" | "patch" | "delete"
            ),
            ("apps", "deployments", None) => {
                matches!(verb, "get" | "list" | "watch" | "update" | "patch")
            }
            ("apps", "deployments", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "pods", None) => matches!(verb, "get" | "list" | "watch"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:job-controller: run and release
        // pods, report on Jobs.
        JOB_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("", "pods", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "delete" | "patch" | "update"
            ),
            ("batch", "jobs", None) => matches!(verb, "get" | "list" | "watch"),
            ("batch", "jobs", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:cronjob-controller: start and remove
        // Jobs, report on CronJobs.
        CRONJOB_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("batch", "jobs", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "update" | "patch" | "delete"
            ),
            ("batch", "cronjobs", None) => matches!(verb, "get" | "list" | "watch" | "update"),
            ("batch", "cronjobs", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:daemon-set-controller: run pods on
        // nodes, keep the template history, report on DaemonSets.
        DAEMONSET_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("", "pods", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "delete" | "patch"
            ),
            ("apps", "controllerrevisions", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "update" | "patch" | "delete"
            ),
            ("apps", "daemonsets", None) => matches!(verb, "get" | "list" | "watch"),
            ("apps", "daemonsets", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "nodes", None) => matches!(verb, "get" | "list" | "watch"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:statefulset-controller: members and
        // their claims, the template history, report on StatefulSets.
        STATEFULSET_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("", "pods", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "delete" | "update" | "patch"
            ),
            ("", "persistentvolumeclaims", None) => {
                matches!(
                    verb,
                    "get" | "list" | "watch" | "create" | "update" | "patch"
                )
            }
            ("apps", "controllerrevisions", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "update" | "patch" | "delete"
            ),
            ("apps", "statefulsets", None) => matches!(verb, "get" | "list" | "watch"),
            ("apps", "statefulsets", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:disruption-controller: read pods and
        // their controllers, report on budgets.
        DISRUPTION_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("policy", "poddisruptionbudgets", None) => matches!(verb, "get" | "list" | "watch"),
            ("policy", "poddisruptionbudgets", Some("status")) => {
                matches!(verb, "patch" | "update")
            }
            ("", "pods" | "replicationcontrollers", None)
            | ("apps", "replicasets" | "deployments" | "statefulsets", None) => {
                matches!(verb, "get" | "list" | "watch")
            }
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:node-controller: node conditions
        // and taints, pod readiness and eviction.
        NODE_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("", "nodes", None) => matches!(
                verb,
                "get" | "list" | "watch" | "update" | "patch" | "delete"
            ),
            ("", "nodes", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "pods", None) => matches!(verb, "get" | "list" | "watch" | "delete"),
            ("", "pods", Some("status")) => matches!(verb, "patch" | "update"),
            ("coordination.k8s.io", "leases", None) => matches!(verb, "get" | "list" | "watch"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:pod-garbage-collector: force-delete
        // pods no node will end.
        POD_GC_USER => match (*group, *resource, *subresource) {
            ("", "pods", None) => matches!(verb, "get" | "list" | "watch" | "delete"),
            ("", "pods", Some("status")) => matches!(verb, "patch"),
            ("", "nodes", None) => matches!(verb, "get" | "list" | "watch"),
            _ => false,
        },
        // Upstream's system:controller:horizontal-pod-autoscaler: read
        // and resize any scalable target, read pods and their metrics,
        // report on autoscalers.
        HPA_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("autoscaling", "horizontalpodautoscalers", None) => {
                matches!(verb, "get" | "list" | "watch")
            }
            ("autoscaling", "horizontalpodautoscalers", Some("status")) => {
                matches!(verb, "patch" | "update")
            }
            (_, _, Some("scale")) => matches!(verb, "get" | "update"),
            ("", "pods", None) => verb == "list",
            ("metrics.k8s.io", "pods", None) => verb == "list",
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:ttl-after-finished-controller.
        TTL_AFTER_FINISHED_USER => {
            (*group, *resource, *subresource) == ("batch", "jobs", None)
                && matches!(verb, "get" | "list" | "watch" | "delete")
        }
        // Its two Leases, nothing else.
        LEADER_ELECTION_USER => {
            (*group, *resource) == ("coordination.k8s.io", "leases")
                && subresource.is_none()
                && *namespace == Some(crate::server::leader::NAMESPACE)
                && match name {
                    Some(n) => {
                        crate::server::leader::LEASES.contains(n)
                            && matches!(verb, "get" | "update")
                    }
                    None => verb == "create",
                }
        }
        // Upstream's system:controller:endpoint-controller and
        // endpointslice-controller: keep a Service's endpoints.
        ENDPOINT_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("", "endpoints", None) | ("discovery.k8s.io", "endpointslices", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "update" | "delete"
            ),
            ("", "services" | "pods", None) => matches!(verb, "get" | "list" | "watch"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        REPLICATION_CONTROLLER_USER => match (*group, *resource, *subresource) {
            ("", "pods", None) => matches!(
                verb,
                "get" | "list" | "watch" | "create" | "delete" | "patch" | "update"
            ),
            ("", "replicationcontrollers", None) => matches!(verb, "get" | "list" | "watch"),
            ("", "replicationcontrollers", Some("status")) => matches!(verb, "patch" | "update"),
            ("", "events", None) => matches!(verb, "create" | "patch" | "update"),
            _ => false,
        },
        // Upstream's system:controller:generic-garbage-collector: read,
        // update and delete anything (owner references and finalizers).
        GARBAGE_COLLECTOR_USER => {
            subresource.is_none()
                && matches!(
                    verb,
                    "get" | "list" | "watch" | "update" | "patch" | "delete"
                )
        }
        // Upstream's system:controller:service-account-controller and
        // system:controller:root-ca-cert-publisher: follow namespaces, keep
        // one object in each.
        SERVICE_ACCOUNT_CONTROLLER_USER | ROOT_CA_PUBLISHER_USER => {
            let kept = if user == SERVICE_ACCOUNT_CONTROLLER_USER {
                "serviceaccounts"
            } else {
                "configmaps"
            };
            let read = matches!(verb, "get" | "list" | "watch");
            let write = match verb {
                "create" => true,
                "update" => kept == "configmaps",
                _ => false,
            };
            group.is_empty()
                && subresource.is_none()
                && ((*resource == "namespaces" && read) || (*resource == kept && (read || write)))
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
#[path = "auth_tests.rs"]
mod tests;
