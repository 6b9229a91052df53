//! What the API defines for each built-in kind, as data: how its names are
//! checked, and which defaulting and validation functions it has
//! (`defaulting`, `validation`). A registry entry names its kind's
//! [`KindRules`]; the entry points ([`crate::api::defaulting::apply_defaults`],
//! [`crate::api::validation::validate_create`], `validate_update`) take the
//! rules, so no shared code dispatches on group or kind. Adding a kind is a
//! static here naming its functions.
//!

use serde_json::Value;

use super::defaulting::autoscaling as da;
use super::defaulting::{cluster_kinds as dk, core_kinds as dc, pod as dp, workloads as dw};
use super::status::Cause;
use super::validation::autoscaling as va;
use super::validation::{cluster_kinds as vk, core_kinds as vc, pod as vp, update as vu};
use super::validation::{events as ve, rbac as vr, workloads as vw};

/// How a kind's names (and generateName prefixes) are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain: most kinds.
    Subdomain,
    /// A DNS-1123 label: namespaces.
    Label,
    /// A DNS-1035 label: services (their names become DNS labels).
    Dns1035,
    /// RBAC objects: any path segment.
    PathSegment,
}

/// The defaulting and validation of one kind. `None` means "nothing beyond
/// what every object gets" (metadata checks).
#[derive(Debug)]
pub struct KindRules {
    pub name: NameRule,
    /// A shorter name limit than the rule's own, checked with the name.
    pub name_max: Option<usize>,
    /// Fills missing fields; runs on every create and update.
    pub defaults: Option<fn(&mut Value)>,
    /// Checks of the object beyond its metadata.
    pub validate: Option<fn(&Value) -> Vec<Cause>>,
    /// Fields that may not change, given (old, new).
    pub validate_update: Option<fn(&Value, &Value) -> Vec<Cause>>,
}

/// Rules are compared by identity: two entries share rules only when they
/// name the same static, and function pointers do not compare reliably.
impl PartialEq for KindRules {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for KindRules {}

/// A kind with metadata checks only.
pub static PLAIN: KindRules = BASE;

const BASE: KindRules = KindRules {
    name: NameRule::Subdomain,
    name_max: None,
    defaults: None,
    validate: None,
    validate_update: None,
};

// core/v1
pub static POD: KindRules = KindRules {
    defaults: Some(dp::pod),
    validate: Some(vp::validate_pod),
    validate_update: Some(vu::pod_update),
    ..BASE
};
pub static POD_TEMPLATE: KindRules = KindRules {
    defaults: Some(dp::pod_template),
    validate: Some(vp::validate_pod_template),
    ..BASE
};
pub static REPLICATION_CONTROLLER: KindRules = KindRules {
    defaults: Some(dw::replication_controller),
    validate: Some(vw::validate_replication_controller),
    ..BASE
};
pub static SERVICE: KindRules = KindRules {
    name: NameRule::Dns1035,
    defaults: Some(dc::service),
    validate: Some(vc::validate_service),
    validate_update: Some(vu::service_update),
    ..BASE
};
pub static CONFIG_MAP: KindRules = KindRules {
    validate: Some(vc::validate_config_map),
    validate_update: Some(vu::config_map_update),
    ..BASE
};
pub static SECRET: KindRules = KindRules {
    defaults: Some(dc::secret),
    validate: Some(vc::validate_secret),
    validate_update: Some(vu::secret_update),
    ..BASE
};
pub static PERSISTENT_VOLUME_CLAIM: KindRules = KindRules {
    defaults: Some(dc::pvc),
    validate: Some(vc::validate_pvc),
    validate_update: Some(vu::pvc_update),
    ..BASE
};
pub static PERSISTENT_VOLUME: KindRules = KindRules {
    defaults: Some(dc::pv),
    ..BASE
};
pub static NAMESPACE: KindRules = KindRules {
    name: NameRule::Label,
    defaults: Some(dc::namespace),
    ..BASE
};
pub static ENDPOINTS: KindRules = KindRules {
    defaults: Some(dc::endpoints),
    ..BASE
};

pub static CORE_EVENT: KindRules = KindRules {
    validate: Some(ve::validate_core_event),
    ..BASE
};
pub static RESOURCE_QUOTA: KindRules = KindRules {
    validate: Some(vk::validate_resource_quota),
    ..BASE
};
pub static LIMIT_RANGE: KindRules = KindRules {
    defaults: Some(dk::limit_range),
    validate: Some(vk::validate_limit_range),
    ..BASE
};

// apps/v1
pub static DEPLOYMENT: KindRules = KindRules {
    defaults: Some(dw::deployment),
    validate: Some(vw::validate_deployment),
    validate_update: Some(vu::selector_update),
    ..BASE
};
pub static REPLICA_SET: KindRules = KindRules {
    defaults: Some(dw::replica_set),
    validate: Some(vw::validate_replica_set),
    validate_update: Some(vu::selector_update),
    ..BASE
};
pub static STATEFUL_SET: KindRules = KindRules {
    defaults: Some(dw::stateful_set),
    validate: Some(vw::validate_stateful_set),
    validate_update: Some(vu::sts_update),
    ..BASE
};
pub static DAEMON_SET: KindRules = KindRules {
    defaults: Some(dw::daemon_set),
    validate: Some(vw::validate_daemon_set),
    validate_update: Some(vu::selector_update),
    ..BASE
};

// batch/v1
pub static JOB: KindRules = KindRules {
    defaults: Some(dw::job),
    validate: Some(vw::validate_job),
    validate_update: Some(vu::job_update),
    ..BASE
};
/// CronJob names leave room for the 11-character suffix of their Jobs.
pub static CRON_JOB: KindRules = KindRules {
    name_max: Some(52),
    defaults: Some(dw::cron_job),
    validate: Some(vw::validate_cron_job),
    ..BASE
};

// networking.k8s.io/v1
pub static NETWORK_POLICY: KindRules = KindRules {
    defaults: Some(dc::network_policy),
    ..BASE
};

pub static INGRESS: KindRules = KindRules {
    validate: Some(vk::validate_ingress),
    ..BASE
};
pub static INGRESS_CLASS: KindRules = KindRules {
    validate: Some(vk::validate_ingress_class),
    validate_update: Some(vk::ingress_class_update),
    ..BASE
};

// events.k8s.io/v1
pub static EVENT: KindRules = KindRules {
    validate: Some(ve::validate_event),
    ..BASE
};

// policy/v1
pub static POD_DISRUPTION_BUDGET: KindRules = KindRules {
    validate: Some(vk::validate_pdb),
    ..BASE
};

// scheduling.k8s.io/v1
pub static PRIORITY_CLASS: KindRules = KindRules {
    defaults: Some(dk::priority_class),
    validate: Some(vk::validate_priority_class),
    validate_update: Some(vk::priority_class_update),
    ..BASE
};

// storage.k8s.io/v1
pub static STORAGE_CLASS: KindRules = KindRules {
    defaults: Some(dk::storage_class),
    validate: Some(vk::validate_storage_class),
    validate_update: Some(vk::storage_class_update),
    ..BASE
};
pub static CSI_DRIVER: KindRules = KindRules {
    defaults: Some(dk::csi_driver),
    ..BASE
};

// node.k8s.io/v1
pub static RUNTIME_CLASS: KindRules = KindRules {
    validate: Some(vk::validate_runtime_class),
    validate_update: Some(vk::runtime_class_update),
    ..BASE
};

// autoscaling/v2 and v1
pub static HPA_V2: KindRules = KindRules {
    defaults: Some(da::hpa_v2),
    validate: Some(va::validate_hpa_v2),
    ..BASE
};
pub static HPA_V1: KindRules = KindRules {
    defaults: Some(da::hpa_v1),
    validate: Some(va::validate_hpa_v1),
    ..BASE
};

// rbac.authorization.k8s.io/v1
pub static ROLE: KindRules = KindRules {
    name: NameRule::PathSegment,
    validate: Some(vr::validate_role),
    ..BASE
};
pub static CLUSTER_ROLE: KindRules = KindRules {
    name: NameRule::PathSegment,
    validate: Some(vr::validate_cluster_role),
    ..BASE
};
pub static ROLE_BINDING: KindRules = KindRules {
    name: NameRule::PathSegment,
    defaults: Some(dc::role_binding),
    validate: Some(vr::validate_role_binding),
    validate_update: Some(vr::binding_update),
    ..BASE
};
pub static CLUSTER_ROLE_BINDING: KindRules = KindRules {
    name: NameRule::PathSegment,
    defaults: Some(dc::role_binding),
    validate: Some(vr::validate_cluster_role_binding),
    validate_update: Some(vr::binding_update),
    ..BASE
};

/// The rules of a kind by its apiVersion and kind, for the tests of
/// `defaulting` and `validation`, which are written against kinds by name.
#[cfg(test)]
pub(crate) fn by_kind(api_version: &str, kind: &str) -> &'static KindRules {
    const ALL: &[(&str, &str, &KindRules)] = &[
        ("v1", "Pod", &POD),
        ("v1", "PodTemplate", &POD_TEMPLATE),
        ("v1", "ReplicationController", &REPLICATION_CONTROLLER),
        ("v1", "Service", &SERVICE),
        ("v1", "ConfigMap", &CONFIG_MAP),
        ("v1", "Secret", &SECRET),
        ("v1", "PersistentVolumeClaim", &PERSISTENT_VOLUME_CLAIM),
        ("v1", "PersistentVolume", &PERSISTENT_VOLUME),
        ("v1", "Namespace", &NAMESPACE),
        ("v1", "Endpoints", &ENDPOINTS),
        ("v1", "Event", &CORE_EVENT),
        ("events.k8s.io/v1", "Event", &EVENT),
        ("v1", "ResourceQuota", &RESOURCE_QUOTA),
        ("v1", "LimitRange", &LIMIT_RANGE),
        ("apps/v1", "Deployment", &DEPLOYMENT),
        ("apps/v1", "ReplicaSet", &REPLICA_SET),
        ("apps/v1", "StatefulSet", &STATEFUL_SET),
        ("apps/v1", "DaemonSet", &DAEMON_SET),
        ("batch/v1", "Job", &JOB),
        ("batch/v1", "CronJob", &CRON_JOB),
        ("networking.k8s.io/v1", "NetworkPolicy", &NETWORK_POLICY),
        ("networking.k8s.io/v1", "Ingress", &INGRESS),
        ("networking.k8s.io/v1", "IngressClass", &INGRESS_CLASS),
        ("policy/v1", "PodDisruptionBudget", &POD_DISRUPTION_BUDGET),
        ("autoscaling/v2", "HorizontalPodAutoscaler", &HPA_V2),
        ("autoscaling/v1", "HorizontalPodAutoscaler", &HPA_V1),
        ("scheduling.k8s.io/v1", "PriorityClass", &PRIORITY_CLASS),
        ("storage.k8s.io/v1", "StorageClass", &STORAGE_CLASS),
        ("storage.k8s.io/v1", "CSIDriver", &CSI_DRIVER),
        ("node.k8s.io/v1", "RuntimeClass", &RUNTIME_CLASS),
        ("rbac.authorization.k8s.io/v1", "Role", &ROLE),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", &CLUSTER_ROLE),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", &ROLE_BINDING),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            &CLUSTER_ROLE_BINDING,
        ),
    ];
    ALL.iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
        .map_or(&PLAIN, |(_, _, r)| *r)
}
