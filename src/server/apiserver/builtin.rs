//! The built-in kinds skiff serves, described as the real apiserver's
//! discovery describes them (verbs, short names, categories, subresources).
//! The order is discovery order, which is also the order `kubectl get all`
//! queries the `all` category in. Each entry points at its kind's strategy,
//! its defaulting and validation rules and its table printer.

use super::kinds::{self, KindRef};
use super::registry::{ResourceDef, SubresourceDef, ALL_VERBS};
use super::table;
use crate::api::rules;

/// Kinds whose collection cannot be deleted in one call (namespaces and
/// services have no `deletecollection` on a real apiserver).
const NO_COLLECTION_DELETE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const UPDATE: &[&str] = &["update"];
const CREATE: &[&str] = &["create"];
const ALL: &[&str] = &["all"];

/// `<plural>/status` returning the kind itself.
const fn status(group: &'static str, kind: &'static str) -> SubresourceDef {
    SubresourceDef {
        name: "status",
        group,
        version: "v1",
        kind,
        verbs: GET_PATCH_UPDATE,
    }
}

/// `<plural>/scale` always answers an `autoscaling/v1 Scale`.
const SCALE: SubresourceDef = SubresourceDef {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: GET_PATCH_UPDATE,
};

// Subresources are listed alphabetically, as real discovery lists them.
// Only those that are served: clients read discovery to choose (`kubectl
// drain` evicts only when pods/eviction is listed, and deletes otherwise),
// so one listed but refused breaks them. Upstream's
// pods/ephemeralcontainers, eviction and proxy, and
// services/proxy each come back here
// when they are implemented; until then they are 404, as any subresource a
// server does not have.
const CREATE_GET: &[&str] = &["create", "get"];
const GET: &[&str] = &["get"];
const GET_LIST: &[&str] = &["get", "list"];
/// Served by the node's kubelet API, through the server (kubelet_proxy.rs).
const fn kubelet(
    name: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> SubresourceDef {
    SubresourceDef {
        name,
        group: "",
        version: "v1",
        kind,
        verbs,
    }
}
const POD_SUBRESOURCES: &[SubresourceDef] = &[
    kubelet("attach", "PodAttachOptions", CREATE_GET),
    SubresourceDef {
        name: "binding",
        group: "",
        version: "v1",
        kind: "Binding",
        verbs: &["create"],
    },
    SubresourceDef {
        name: "eviction",
        group: "policy",
        version: "v1",
        kind: "Eviction",
        verbs: &["create"],
    },
    kubelet("exec", "PodExecOptions", CREATE_GET),
    kubelet("log", "Pod", GET),
    kubelet("portforward", "PodPortForwardOptions", CREATE_GET),
    status("", "Pod"),
];
const SERVICE_SUBRESOURCES: &[SubresourceDef] = &[status("", "Service")];
const NAMESPACE_SUBRESOURCES: &[SubresourceDef] = &[
    SubresourceDef {
        name: "finalize",
        group: "",
        version: "v1",
        kind: "Namespace",
        verbs: UPDATE,
    },
    status("", "Namespace"),
];
const RC_SUBRESOURCES: &[SubresourceDef] = &[SCALE, status("", "ReplicationController")];
const QUOTA_SUBRESOURCES: &[SubresourceDef] = &[status("", "ResourceQuota")];
const NODE_SUBRESOURCES: &[SubresourceDef] = &[
    kubelet("proxy", "NodeProxyOptions", PROXY),
    status("", "Node"),
];
/// What upstream lists for `nodes/proxy` (every method is passed on).
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];
/// `serviceaccounts/token` (TokenRequest, `serviceaccount::token_request`).
const SERVICEACCOUNT_SUBRESOURCES: &[SubresourceDef] = &[SubresourceDef {
    name: "token",
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenRequest",
    verbs: CREATE,
}];

const PV_SUBRESOURCES: &[SubresourceDef] = &[status("", "PersistentVolume")];
const PVC_SUBRESOURCES: &[SubresourceDef] = &[status("", "PersistentVolumeClaim")];
const DEPLOYMENT_SUBRESOURCES: &[SubresourceDef] = &[SCALE, status("apps", "Deployment")];
const REPLICASET_SUBRESOURCES: &[SubresourceDef] = &[SCALE, status("apps", "ReplicaSet")];
const STATEFULSET_SUBRESOURCES: &[SubresourceDef] = &[SCALE, status("apps", "StatefulSet")];
const DAEMONSET_SUBRESOURCES: &[SubresourceDef] = &[status("apps", "DaemonSet")];
const JOB_SUBRESOURCES: &[SubresourceDef] = &[status("batch", "Job")];
const HPA_V2_SUBRESOURCES: &[SubresourceDef] = &[SubresourceDef {
    version: "v2",
    ..status("autoscaling", "HorizontalPodAutoscaler")
}];
const HPA_V1_SUBRESOURCES: &[SubresourceDef] = &[status("autoscaling", "HorizontalPodAutoscaler")];
const CRONJOB_SUBRESOURCES: &[SubresourceDef] = &[status("batch", "CronJob")];
const PDB_SUBRESOURCES: &[SubresourceDef] = &[status("policy", "PodDisruptionBudget")];
const CRD_SUBRESOURCES: &[SubresourceDef] = &[SubresourceDef {
    version: "v1",
    ..status("apiextensions.k8s.io", "CustomResourceDefinition")
}];
const INGRESS_SUBRESOURCES: &[SubresourceDef] = &[status("networking.k8s.io", "Ingress")];
const POLICY_SUBRESOURCES: &[SubresourceDef] = &[SubresourceDef {
    version: "v1",
    ..status("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
}];

/// The fields most entries share; each entry names what differs.
const BASE: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "",
    singular: "",
    kind: "",
    namespaced: true,
    short_names: &[],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[],
    strategy: KindRef(&kinds::PLAIN),
    rules: &rules::PLAIN,
    printer: None,
    stored_as: None,
    custom: None,
};

pub fn builtin_resources() -> Vec<ResourceDef> {
    vec![
        // core/v1
        ResourceDef {
            plural: "pods",
            singular: "pod",
            kind: "Pod",
            rules: &rules::POD,
            short_names: &["po"],
            categories: ALL,
            subresources: POD_SUBRESOURCES,
            strategy: KindRef(&kinds::pod::POD),
            printer: Some(&table::pod::PODS),
            ..BASE
        },
        ResourceDef {
            plural: "services",
            singular: "service",
            kind: "Service",
            rules: &rules::SERVICE,
            short_names: &["svc"],
            categories: ALL,
            verbs: NO_COLLECTION_DELETE,
            subresources: SERVICE_SUBRESOURCES,
            strategy: KindRef(&kinds::service::SERVICE),
            printer: Some(&table::core::SERVICES),
            ..BASE
        },
        ResourceDef {
            plural: "replicationcontrollers",
            singular: "replicationcontroller",
            kind: "ReplicationController",
            rules: &rules::REPLICATION_CONTROLLER,
            short_names: &["rc"],
            categories: ALL,
            subresources: RC_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::REPLICA_SET),
            printer: Some(&table::workloads::REPLICATIONCONTROLLERS),
            ..BASE
        },
        ResourceDef {
            plural: "endpoints",
            singular: "endpoints",
            kind: "Endpoints",
            rules: &rules::ENDPOINTS,
            short_names: &["ep"],
            printer: Some(&table::core::ENDPOINTS),
            ..BASE
        },
        ResourceDef {
            plural: "namespaces",
            singular: "namespace",
            kind: "Namespace",
            rules: &rules::NAMESPACE,
            namespaced: false,
            short_names: &["ns"],
            verbs: NO_COLLECTION_DELETE,
            subresources: NAMESPACE_SUBRESOURCES,
            strategy: KindRef(&kinds::namespace::NAMESPACE),
            printer: Some(&table::core::NAMESPACES),
            ..BASE
        },
        ResourceDef {
            plural: "nodes",
            singular: "node",
            kind: "Node",
            namespaced: false,
            short_names: &["no"],
            subresources: NODE_SUBRESOURCES,
            strategy: KindRef(&kinds::node::NODE),
            printer: Some(&table::core::NODES),
            ..BASE
        },
        ResourceDef {
            plural: "configmaps",
            singular: "configmap",
            kind: "ConfigMap",
            rules: &rules::CONFIG_MAP,
            short_names: &["cm"],
            printer: Some(&table::core::CONFIGMAPS),
            ..BASE
        },
        ResourceDef {
            plural: "secrets",
            singular: "secret",
            kind: "Secret",
            rules: &rules::SECRET,
            strategy: KindRef(&kinds::core::SECRET),
            printer: Some(&table::core::SECRETS),
            ..BASE
        },
        ResourceDef {
            plural: "serviceaccounts",
            singular: "serviceaccount",
            kind: "ServiceAccount",
            short_names: &["sa"],
            subresources: SERVICEACCOUNT_SUBRESOURCES,
            printer: Some(&table::core::SERVICEACCOUNTS),
            ..BASE
        },
        ResourceDef {
            plural: "events",
            singular: "event",
            kind: "Event",
            rules: &rules::CORE_EVENT,
            short_names: &["ev"],
            strategy: KindRef(&kinds::core::CORE_EVENT),
            printer: Some(&table::events::EVENTS),
            ..BASE
        },
        ResourceDef {
            plural: "persistentvolumes",
            singular: "persistentvolume",
            kind: "PersistentVolume",
            rules: &rules::PERSISTENT_VOLUME,
            namespaced: false,
            short_names: &["pv"],
            subresources: PV_SUBRESOURCES,
            printer: Some(&table::volumes::PERSISTENTVOLUMES),
            ..BASE
        },
        ResourceDef {
            plural: "persistentvolumeclaims",
            singular: "persistentvolumeclaim",
            kind: "PersistentVolumeClaim",
            rules: &rules::PERSISTENT_VOLUME_CLAIM,
            short_names: &["pvc"],
            subresources: PVC_SUBRESOURCES,
            printer: Some(&table::volumes::PERSISTENTVOLUMECLAIMS),
            ..BASE
        },
        ResourceDef {
            plural: "resourcequotas",
            singular: "resourcequota",
            kind: "ResourceQuota",
            rules: &rules::RESOURCE_QUOTA,
            short_names: &["quota"],
            subresources: QUOTA_SUBRESOURCES,
            printer: Some(&table::cluster::RESOURCEQUOTAS),
            ..BASE
        },
        ResourceDef {
            plural: "limitranges",
            singular: "limitrange",
            kind: "LimitRange",
            rules: &rules::LIMIT_RANGE,
            short_names: &["limits"],
            // Upstream prints a LimitRange as the default table does.
            ..BASE
        },
        ResourceDef {
            plural: "podtemplates",
            singular: "podtemplate",
            kind: "PodTemplate",
            rules: &rules::POD_TEMPLATE,
            printer: Some(&table::workloads::PODTEMPLATES),
            ..BASE
        },
        // apps/v1
        ResourceDef {
            group: "apps",
            plural: "deployments",
            singular: "deployment",
            kind: "Deployment",
            rules: &rules::DEPLOYMENT,
            short_names: &["deploy"],
            categories: ALL,
            subresources: DEPLOYMENT_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::WORKLOAD),
            printer: Some(&table::workloads::DEPLOYMENTS),
            ..BASE
        },
        ResourceDef {
            group: "apps",
            plural: "replicasets",
            singular: "replicaset",
            kind: "ReplicaSet",
            rules: &rules::REPLICA_SET,
            short_names: &["rs"],
            categories: ALL,
            subresources: REPLICASET_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::REPLICA_SET),
            printer: Some(&table::workloads::REPLICASETS),
            ..BASE
        },
        ResourceDef {
            group: "apps",
            plural: "statefulsets",
            singular: "statefulset",
            kind: "StatefulSet",
            rules: &rules::STATEFUL_SET,
            short_names: &["sts"],
            categories: ALL,
            subresources: STATEFULSET_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::WORKLOAD),
            printer: Some(&table::workloads::STATEFULSETS),
            ..BASE
        },
        ResourceDef {
            group: "apps",
            plural: "daemonsets",
            singular: "daemonset",
            kind: "DaemonSet",
            rules: &rules::DAEMON_SET,
            short_names: &["ds"],
            categories: ALL,
            subresources: DAEMONSET_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::WORKLOAD),
            printer: Some(&table::workloads::DAEMONSETS),
            ..BASE
        },
        // autoscaling/v2, stored, and v1, a view of the same objects
        ResourceDef {
            group: "autoscaling",
            version: "v2",
            plural: "horizontalpodautoscalers",
            singular: "horizontalpodautoscaler",
            kind: "HorizontalPodAutoscaler",
            rules: &rules::HPA_V2,
            short_names: &["hpa"],
            categories: ALL,
            subresources: HPA_V2_SUBRESOURCES,
            strategy: KindRef(&kinds::autoscaling::HPA),
            printer: Some(&table::autoscaling::HPAS),
            ..BASE
        },
        ResourceDef {
            group: "autoscaling",
            version: "v1",
            plural: "horizontalpodautoscalers",
            singular: "horizontalpodautoscaler",
            kind: "HorizontalPodAutoscaler",
            rules: &rules::HPA_V1,
            short_names: &["hpa"],
            categories: ALL,
            subresources: HPA_V1_SUBRESOURCES,
            strategy: KindRef(&kinds::autoscaling::HPA),
            printer: Some(&table::autoscaling::HPAS),
            stored_as: Some(&kinds::autoscaling::AS_V2),
            ..BASE
        },
        // batch/v1
        ResourceDef {
            group: "batch",
            plural: "jobs",
            singular: "job",
            kind: "Job",
            rules: &rules::JOB,
            categories: ALL,
            subresources: JOB_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::JOB),
            printer: Some(&table::workloads::JOBS),
            ..BASE
        },
        ResourceDef {
            group: "batch",
            plural: "cronjobs",
            singular: "cronjob",
            kind: "CronJob",
            rules: &rules::CRON_JOB,
            short_names: &["cj"],
            categories: ALL,
            subresources: CRONJOB_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::WORKLOAD),
            printer: Some(&table::workloads::CRONJOBS),
            ..BASE
        },
        ResourceDef {
            group: "apps",
            plural: "controllerrevisions",
            singular: "controllerrevision",
            kind: "ControllerRevision",
            printer: Some(&table::workloads::CONTROLLERREVISIONS),
            ..BASE
        },
        // coordination.k8s.io/v1
        ResourceDef {
            group: "coordination.k8s.io",
            plural: "leases",
            singular: "lease",
            kind: "Lease",
            printer: Some(&table::core::LEASES),
            ..BASE
        },
        // discovery.k8s.io/v1
        ResourceDef {
            group: "discovery.k8s.io",
            plural: "endpointslices",
            singular: "endpointslice",
            kind: "EndpointSlice",
            printer: Some(&table::core::ENDPOINTSLICES),
            ..BASE
        },
        // events.k8s.io/v1
        ResourceDef {
            group: "events.k8s.io",
            plural: "events",
            singular: "event",
            kind: "Event",
            rules: &rules::EVENT,
            short_names: &["ev"],
            strategy: KindRef(&kinds::core::EVENT),
            printer: Some(&table::events::EVENTS_V1),
            stored_as: Some(&kinds::events::AS_CORE_EVENTS),
            ..BASE
        },
        // networking.k8s.io/v1
        // metrics.k8s.io/v1beta1: answered from the kubelets, never stored
        // (metrics_api.rs), as metrics-server's aggregated API.
        ResourceDef {
            group: "metrics.k8s.io",
            version: "v1beta1",
            plural: "nodes",
            singular: "nodemetrics",
            kind: "NodeMetrics",
            namespaced: false,
            verbs: GET_LIST,
            ..BASE
        },
        ResourceDef {
            group: "metrics.k8s.io",
            version: "v1beta1",
            plural: "pods",
            singular: "podmetrics",
            kind: "PodMetrics",
            namespaced: true,
            verbs: GET_LIST,
            ..BASE
        },
        // Reviews: created only, answered at once, never stored.
        ResourceDef {
            group: "authentication.k8s.io",
            plural: "selfsubjectreviews",
            singular: "selfsubjectreview",
            kind: "SelfSubjectReview",
            namespaced: false,
            verbs: CREATE,
            strategy: KindRef(&kinds::review::SELF_SUBJECT_REVIEW),
            ..BASE
        },
        ResourceDef {
            group: "authentication.k8s.io",
            plural: "tokenreviews",
            singular: "tokenreview",
            kind: "TokenReview",
            namespaced: false,
            verbs: CREATE,
            strategy: KindRef(&kinds::review::TOKEN_REVIEW),
            ..BASE
        },
        ResourceDef {
            group: "authorization.k8s.io",
            plural: "subjectaccessreviews",
            singular: "subjectaccessreview",
            kind: "SubjectAccessReview",
            namespaced: false,
            verbs: CREATE,
            strategy: KindRef(&kinds::review::SUBJECT_ACCESS_REVIEW),
            ..BASE
        },
        ResourceDef {
            group: "authorization.k8s.io",
            plural: "localsubjectaccessreviews",
            singular: "localsubjectaccessreview",
            kind: "LocalSubjectAccessReview",
            namespaced: true,
            verbs: CREATE,
            strategy: KindRef(&kinds::review::LOCAL_SUBJECT_ACCESS_REVIEW),
            ..BASE
        },
        ResourceDef {
            group: "authorization.k8s.io",
            plural: "selfsubjectaccessreviews",
            singular: "selfsubjectaccessreview",
            kind: "SelfSubjectAccessReview",
            namespaced: false,
            verbs: CREATE,
            strategy: KindRef(&kinds::review::SELF_SUBJECT_ACCESS_REVIEW),
            ..BASE
        },
        ResourceDef {
            group: "authorization.k8s.io",
            plural: "selfsubjectrulesreviews",
            singular: "selfsubjectrulesreview",
            kind: "SelfSubjectRulesReview",
            namespaced: false,
            verbs: CREATE,
            strategy: KindRef(&kinds::review::SELF_SUBJECT_RULES_REVIEW),
            ..BASE
        },
        ResourceDef {
            group: "networking.k8s.io",
            plural: "ingresses",
            singular: "ingress",
            kind: "Ingress",
            rules: &rules::INGRESS,
            short_names: &["ing"],
            subresources: INGRESS_SUBRESOURCES,
            printer: Some(&table::cluster::INGRESSES),
            ..BASE
        },
        ResourceDef {
            group: "networking.k8s.io",
            plural: "ingressclasses",
            singular: "ingressclass",
            kind: "IngressClass",
            rules: &rules::INGRESS_CLASS,
            namespaced: false,
            printer: Some(&table::cluster::INGRESSCLASSES),
            ..BASE
        },
        ResourceDef {
            group: "networking.k8s.io",
            plural: "networkpolicies",
            singular: "networkpolicy",
            kind: "NetworkPolicy",
            rules: &rules::NETWORK_POLICY,
            short_names: &["netpol"],
            printer: Some(&table::cluster::NETWORKPOLICIES),
            ..BASE
        },
        // policy/v1
        ResourceDef {
            group: "policy",
            plural: "poddisruptionbudgets",
            singular: "poddisruptionbudget",
            kind: "PodDisruptionBudget",
            rules: &rules::POD_DISRUPTION_BUDGET,
            short_names: &["pdb"],
            subresources: PDB_SUBRESOURCES,
            strategy: KindRef(&kinds::workloads::WORKLOAD),
            printer: Some(&table::cluster::PODDISRUPTIONBUDGETS),
            ..BASE
        },
        // rbac.authorization.k8s.io/v1: stored and served; not yet what
        // authorizes requests (see auth.rs).
        ResourceDef {
            group: "rbac.authorization.k8s.io",
            plural: "roles",
            singular: "role",
            kind: "Role",
            rules: &rules::ROLE,
            ..BASE
        },
        ResourceDef {
            group: "rbac.authorization.k8s.io",
            plural: "rolebindings",
            singular: "rolebinding",
            kind: "RoleBinding",
            rules: &rules::ROLE_BINDING,
            printer: Some(&table::rbac::BINDINGS),
            ..BASE
        },
        ResourceDef {
            group: "rbac.authorization.k8s.io",
            plural: "clusterroles",
            singular: "clusterrole",
            kind: "ClusterRole",
            rules: &rules::CLUSTER_ROLE,
            namespaced: false,
            ..BASE
        },
        ResourceDef {
            group: "rbac.authorization.k8s.io",
            plural: "clusterrolebindings",
            singular: "clusterrolebinding",
            kind: "ClusterRoleBinding",
            rules: &rules::CLUSTER_ROLE_BINDING,
            namespaced: false,
            printer: Some(&table::rbac::BINDINGS),
            ..BASE
        },
        // scheduling.k8s.io/v1
        ResourceDef {
            group: "scheduling.k8s.io",
            plural: "priorityclasses",
            singular: "priorityclass",
            kind: "PriorityClass",
            rules: &rules::PRIORITY_CLASS,
            namespaced: false,
            short_names: &["pc"],
            strategy: KindRef(&kinds::scheduling::PRIORITY_CLASS),
            printer: Some(&table::cluster::PRIORITYCLASSES),
            ..BASE
        },
        // apiextensions.k8s.io/v1: the kinds users add (crd/).
        ResourceDef {
            group: "apiextensions.k8s.io",
            plural: "customresourcedefinitions",
            singular: "customresourcedefinition",
            kind: "CustomResourceDefinition",
            namespaced: false,
            short_names: &["crd", "crds"],
            categories: &["api-extensions"],
            subresources: CRD_SUBRESOURCES,
            strategy: KindRef(&super::crd::definition::STRATEGY),
            rules: &super::crd::definition::RULES,
            ..BASE
        },
        // admissionregistration.k8s.io/v1: dynamic admission (webhook/).
        ResourceDef {
            group: "admissionregistration.k8s.io",
            plural: "mutatingwebhookconfigurations",
            singular: "mutatingwebhookconfiguration",
            kind: "MutatingWebhookConfiguration",
            namespaced: false,
            categories: &["api-extensions"],
            rules: &super::webhook::config::MUTATING_RULES,
            printer: Some(&table::cluster::WEBHOOK_CONFIGURATIONS),
            ..BASE
        },
        ResourceDef {
            group: "admissionregistration.k8s.io",
            plural: "validatingwebhookconfigurations",
            singular: "validatingwebhookconfiguration",
            kind: "ValidatingWebhookConfiguration",
            namespaced: false,
            categories: &["api-extensions"],
            rules: &super::webhook::config::VALIDATING_RULES,
            printer: Some(&table::cluster::WEBHOOK_CONFIGURATIONS),
            ..BASE
        },
        ResourceDef {
            group: "admissionregistration.k8s.io",
            plural: "validatingadmissionpolicies",
            singular: "validatingadmissionpolicy",
            kind: "ValidatingAdmissionPolicy",
            namespaced: false,
            categories: &["api-extensions"],
            subresources: POLICY_SUBRESOURCES,
            rules: &super::webhook::config::POLICY_RULES,
            ..BASE
        },
        ResourceDef {
            group: "admissionregistration.k8s.io",
            plural: "validatingadmissionpolicybindings",
            singular: "validatingadmissionpolicybinding",
            kind: "ValidatingAdmissionPolicyBinding",
            namespaced: false,
            categories: &["api-extensions"],
            ..BASE
        },
        // storage.k8s.io/v1
        ResourceDef {
            group: "storage.k8s.io",
            plural: "storageclasses",
            singular: "storageclass",
            kind: "StorageClass",
            rules: &rules::STORAGE_CLASS,
            namespaced: false,
            short_names: &["sc"],
            printer: Some(&table::cluster::STORAGECLASSES),
            ..BASE
        },
        ResourceDef {
            group: "storage.k8s.io",
            plural: "csidrivers",
            singular: "csidriver",
            kind: "CSIDriver",
            rules: &rules::CSI_DRIVER,
            namespaced: false,
            printer: Some(&table::cluster::CSIDRIVERS),
            ..BASE
        },
        ResourceDef {
            group: "storage.k8s.io",
            plural: "csinodes",
            singular: "csinode",
            kind: "CSINode",
            namespaced: false,
            printer: Some(&table::cluster::CSINODES),
            ..BASE
        },
        // node.k8s.io/v1
        ResourceDef {
            group: "node.k8s.io",
            plural: "runtimeclasses",
            singular: "runtimeclass",
            kind: "RuntimeClass",
            rules: &rules::RUNTIME_CLASS,
            namespaced: false,
            printer: Some(&table::cluster::RUNTIMECLASSES),
            ..BASE
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_all_order_follows_discovery() {
        let all: Vec<&str> = builtin_resources()
            .iter()
            .filter(|r| r.categories.contains(&"all"))
            .map(|r| r.plural)
            .collect();
        assert_eq!(
            all,
            [
                "pods",
                "services",
                "replicationcontrollers",
                "deployments",
                "replicasets",
                "statefulsets",
                "daemonsets",
                "horizontalpodautoscalers",
                "horizontalpodautoscalers",
                "jobs",
                "cronjobs"
            ]
        );
    }

    #[test]
    fn names_are_unique_and_consistent() {
        let rs = builtin_resources();
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(r.singular, r.kind.to_lowercase(), "{}", r.plural);
            assert!(
                !rs[..i]
                    .iter()
                    .any(|o| o.group == r.group && o.version == r.version && o.plural == r.plural),
                "duplicate {}",
                r.plural
            );
            let names: Vec<&str> = r.subresources.iter().map(|s| s.name).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "subresources of {} sorted", r.plural);
        }
        // Only what is served is listed (pods/eviction, attach... when
        // they are implemented).
        let pods = &rs[0];
        let names: Vec<&str> = pods.subresources.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "attach",
                "binding",
                "eviction",
                "exec",
                "log",
                "portforward",
                "status"
            ]
        );
        let deploy = rs.iter().find(|r| r.plural == "deployments");
        assert_eq!(
            deploy
                .and_then(|d| d.subresource("scale"))
                .map(|s| (s.group, s.kind)),
            Some(("autoscaling", "Scale"))
        );
    }

    /// Each entry names the defaulting and validation of its own kind (the
    /// tests of `api::defaulting` and `api::validation` look kinds up by
    /// name), and exactly one entry is the namespace kind.
    #[test]
    fn rules_and_namespace_kind_are_wired() {
        let rs = builtin_resources();
        // The CRD and webhook kinds' rules are the apiserver's own
        // (crd::definition, webhook::config), as they serve what they
        // validate.
        let own = ["apiextensions.k8s.io", "admissionregistration.k8s.io"];
        for r in rs.iter().filter(|r| !own.contains(&r.group)) {
            assert!(
                std::ptr::eq(r.rules, rules::by_kind(&r.api_version(), r.kind)),
                "rules of {}",
                r.plural
            );
        }
        let ns: Vec<&str> = rs
            .iter()
            .filter(|r| r.strategy.is_namespace())
            .map(|r| r.plural)
            .collect();
        assert_eq!(ns, ["namespaces"]);
    }
}
