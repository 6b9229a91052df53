//! skiff's own components (bootstrap, the controllers, the scheduler, the
//! informers): their identities, and what each may do — fixed, each
//! explicitly and no more than it needs (the rules of upstream's bootstrap
//! roles for the same work), decided before RBAC is asked.

use super::Target;
use crate::server::pki::Identity;

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

/// The API servers of a shared datastore keeping the `default/kubernetes`
/// endpoints (`server::peers`).
pub const PEERS_USER: &str = "system:skiff:apiserver-peers";

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

/// Node joins (`server::join`): bootstrap tokens and node passwords, both
/// Secrets in kube-system, and whether a Node exists.
pub const NODE_JOIN_USER: &str = "system:skiff:node-join";

/// The token cleaner (`controllers::token_cleaner`), named as upstream's
/// controller role.
pub const TOKEN_CLEANER_USER: &str = "system:controller:token-cleaner";
/// The node password cleaner (`controllers::node_password`).
pub const NODE_PASSWORD_USER: &str = "system:skiff:node-password-cleaner";

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
    PEERS_USER,
    SERVICE_LB_USER,
    ROLE_AGGREGATION_USER,
    CLUSTER_DNS_USER,
    ENDPOINT_CONTROLLER_USER,
    REPLICATION_CONTROLLER_USER,
    NODE_JOIN_USER,
    TOKEN_CLEANER_USER,
    NODE_PASSWORD_USER,
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
pub(super) fn component_may(user: &str, verb: &str, target: &Target<'_>) -> bool {
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
        // Read bootstrap tokens, keep node passwords; see Nodes.
        NODE_JOIN_USER => match (*group, *resource, *subresource) {
            ("", "secrets", None) => {
                *namespace == Some(crate::server::join::tokens::NAMESPACE)
                    && matches!(verb, "get" | "create" | "update")
            }
            ("", "nodes", None) => verb == "get",
            _ => false,
        },
        // Upstream's system:controller:token-cleaner, narrowed to the
        // namespace bootstrap tokens live in.
        // Node passwords (Secrets in kube-system) of Nodes that are gone.
        NODE_PASSWORD_USER => match (*group, *resource, *subresource) {
            ("", "secrets", None) => {
                *namespace == Some(crate::server::join::tokens::NAMESPACE)
                    && matches!(verb, "get" | "list" | "watch" | "delete")
            }
            ("", "nodes", None) => matches!(verb, "get" | "list" | "watch"),
            _ => false,
        },
        TOKEN_CLEANER_USER => {
            (*group, *resource, *subresource) == ("", "secrets", None)
                && *namespace == Some(crate::server::join::tokens::NAMESPACE)
                && matches!(verb, "get" | "list" | "watch" | "delete")
        }
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
        // The kubernetes Service's endpoints, made of the servers' address
        // records (in the datastore, not the API).
        PEERS_USER => match (*group, *resource, *subresource) {
            ("", "endpoints", None) | ("discovery.k8s.io", "endpointslices", None) => {
                *namespace == Some("default")
                    && matches!(name, None | Some("kubernetes"))
                    && matches!(verb, "get" | "create" | "update")
            }
            _ => false,
        },
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
