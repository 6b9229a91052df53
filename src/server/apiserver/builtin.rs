//! The built-in kinds skiff serves, described as the real apiserver's
//! discovery describes them (verbs, short names, categories, subresources).
//! The order is discovery order, which is also the order `kubectl get all`
//! queries the `all` category in.

use super::registry::{ResourceDef, SubresourceDef, ALL_VERBS};

/// Kinds whose collection cannot be deleted in one call (namespaces and
/// services have no `deletecollection` on a real apiserver).
const NO_COLLECTION_DELETE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const CREATE_GET: &[&str] = &["create", "get"];
const CREATE: &[&str] = &["create"];
const GET: &[&str] = &["get"];
const UPDATE: &[&str] = &["update"];
const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];
const ALL: &[&str] = &["all"];

const fn sub(
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> SubresourceDef {
    SubresourceDef {
        name,
        group,
        version,
        kind,
        verbs,
    }
}

/// `<plural>/status` returning the kind itself.
const fn status(group: &'static str, kind: &'static str) -> SubresourceDef {
    sub("status", group, "v1", kind, GET_PATCH_UPDATE)
}

/// `<plural>/scale` always answers an `autoscaling/v1 Scale`.
const SCALE: SubresourceDef = sub("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE);

// Subresources are listed alphabetically, as real discovery lists them.
const POD_SUBRESOURCES: &[SubresourceDef] = &[
    sub("attach", "", "v1", "PodAttachOptions", CREATE_GET),
    sub("binding", "", "v1", "Binding", CREATE),
    sub("ephemeralcontainers", "", "v1", "Pod", GET_PATCH_UPDATE),
    sub("eviction", "policy", "v1", "Eviction", CREATE),
    sub("exec", "", "v1", "PodExecOptions", CREATE_GET),
    sub("log", "", "v1", "Pod", GET),
    sub("portforward", "", "v1", "PodPortForwardOptions", CREATE_GET),
    sub("proxy", "", "v1", "PodProxyOptions", PROXY_VERBS),
    status("", "Pod"),
];
const SERVICE_SUBRESOURCES: &[SubresourceDef] = &[
    sub("proxy", "", "v1", "ServiceProxyOptions", PROXY_VERBS),
    status("", "Service"),
];
const NAMESPACE_SUBRESOURCES: &[SubresourceDef] = &[
    sub("finalize", "", "v1", "Namespace", UPDATE),
    status("", "Namespace"),
];
const NODE_SUBRESOURCES: &[SubresourceDef] = &[
    sub("proxy", "", "v1", "NodeProxyOptions", PROXY_VERBS),
    status("", "Node"),
];
const SERVICEACCOUNT_SUBRESOURCES: &[SubresourceDef] = &[sub(
    "token",
    "authentication.k8s.io",
    "v1",
    "TokenRequest",
    CREATE,
)];

const PV_SUBRESOURCES: &[SubresourceDef] = &[status("", "PersistentVolume")];
const PVC_SUBRESOURCES: &[SubresourceDef] = &[status("", "PersistentVolumeClaim")];
const DEPLOYMENT_SUBRESOURCES: &[SubresourceDef] = &[SCALE, status("apps", "Deployment")];
const REPLICASET_SUBRESOURCES: &[SubresourceDef] = &[SCALE, status("apps", "ReplicaSet")];
const STATEFULSET_SUBRESOURCES: &[SubresourceDef] = &[SCALE, status("apps", "StatefulSet")];
const DAEMONSET_SUBRESOURCES: &[SubresourceDef] = &[status("apps", "DaemonSet")];
const JOB_SUBRESOURCES: &[SubresourceDef] = &[status("batch", "Job")];
const CRONJOB_SUBRESOURCES: &[SubresourceDef] = &[status("batch", "CronJob")];

#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    verbs: &'static [&'static str],
    subresources: &'static [SubresourceDef],
) -> ResourceDef {
    ResourceDef {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        categories,
        verbs,
        subresources,
    }
}

pub fn builtin_resources() -> Vec<ResourceDef> {
    vec![
        // core/v1
        res(
            "",
            "pods",
            "pod",
            "Pod",
            true,
            &["po"],
            ALL,
            ALL_VERBS,
            POD_SUBRESOURCES,
        ),
        res(
            "",
            "services",
            "service",
            "Service",
            true,
            &["svc"],
            ALL,
            NO_COLLECTION_DELETE,
            SERVICE_SUBRESOURCES,
        ),
        res(
            "",
            "endpoints",
            "endpoints",
            "Endpoints",
            true,
            &["ep"],
            &[],
            ALL_VERBS,
            &[],
        ),
        res(
            "",
            "namespaces",
            "namespace",
            "Namespace",
            false,
            &["ns"],
            &[],
            NO_COLLECTION_DELETE,
            NAMESPACE_SUBRESOURCES,
        ),
        res(
            "",
            "nodes",
            "node",
            "Node",
            false,
            &["no"],
            &[],
            ALL_VERBS,
            NODE_SUBRESOURCES,
        ),
        res(
            "",
            "configmaps",
            "configmap",
            "ConfigMap",
            true,
            &["cm"],
            &[],
            ALL_VERBS,
            &[],
        ),
        res(
            "",
            "secrets",
            "secret",
            "Secret",
            true,
            &[],
            &[],
            ALL_VERBS,
            &[],
        ),
        res(
            "",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            &["sa"],
            &[],
            ALL_VERBS,
            SERVICEACCOUNT_SUBRESOURCES,
        ),
        res(
            "",
            "events",
            "event",
            "Event",
            true,
            &["ev"],
            &[],
            ALL_VERBS,
            &[],
        ),
        res(
            "",
            "persistentvolumes",
            "persistentvolume",
            "PersistentVolume",
            false,
            &["pv"],
            &[],
            ALL_VERBS,
            PV_SUBRESOURCES,
        ),
        res(
            "",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            &[],
            ALL_VERBS,
            PVC_SUBRESOURCES,
        ),
        // apps/v1
        res(
            "apps",
            "deployments",
            "deployment",
            "Deployment",
            true,
            &["deploy"],
            ALL,
            ALL_VERBS,
            DEPLOYMENT_SUBRESOURCES,
        ),
        res(
            "apps",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            true,
            &["rs"],
            ALL,
            ALL_VERBS,
            REPLICASET_SUBRESOURCES,
        ),
        res(
            "apps",
            "statefulsets",
            "statefulset",
            "StatefulSet",
            true,
            &["sts"],
            ALL,
            ALL_VERBS,
            STATEFULSET_SUBRESOURCES,
        ),
        res(
            "apps",
            "daemonsets",
            "daemonset",
            "DaemonSet",
            true,
            &["ds"],
            ALL,
            ALL_VERBS,
            DAEMONSET_SUBRESOURCES,
        ),
        // batch/v1
        res(
            "batch",
            "jobs",
            "job",
            "Job",
            true,
            &[],
            ALL,
            ALL_VERBS,
            JOB_SUBRESOURCES,
        ),
        res(
            "batch",
            "cronjobs",
            "cronjob",
            "CronJob",
            true,
            &["cj"],
            ALL,
            ALL_VERBS,
            CRONJOB_SUBRESOURCES,
        ),
        // coordination.k8s.io/v1
        res(
            "coordination.k8s.io",
            "leases",
            "lease",
            "Lease",
            true,
            &[],
            &[],
            ALL_VERBS,
            &[],
        ),
        // discovery.k8s.io/v1
        res(
            "discovery.k8s.io",
            "endpointslices",
            "endpointslice",
            "EndpointSlice",
            true,
            &[],
            &[],
            ALL_VERBS,
            &[],
        ),
        // events.k8s.io/v1
        res(
            "events.k8s.io",
            "events",
            "event",
            "Event",
            true,
            &["ev"],
            &[],
            ALL_VERBS,
            &[],
        ),
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
                "deployments",
                "replicasets",
                "statefulsets",
                "daemonsets",
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
                    .any(|o| o.group == r.group && o.plural == r.plural),
                "duplicate {}",
                r.plural
            );
            let names: Vec<&str> = r.subresources.iter().map(|s| s.name).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "subresources of {} sorted", r.plural);
        }
        let pods = &rs[0];
        assert_eq!(
            pods.subresource("eviction").map(|s| s.group),
            Some("policy")
        );
        assert_eq!(pods.subresource("log").map(|s| s.verbs), Some(GET));
        let deploy = rs.iter().find(|r| r.plural == "deployments");
        assert_eq!(
            deploy
                .and_then(|d| d.subresource("scale"))
                .map(|s| (s.group, s.kind)),
            Some(("autoscaling", "Scale"))
        );
        assert!(rs.iter().all(|r| r.plural != "replicationcontrollers"));
    }
}
