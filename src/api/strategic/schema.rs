//! Patch strategies of the built-in kinds: which lists merge, and by which
//! key. This is our own compact description of the `patchStrategy` /
//! `patchMergeKey` struct tags of `k8s.io/api` that matter when a server
//! applies a strategic merge patch.
//!
//! The schema is a small tree of [`Ty`] nodes. Each node lists only the
//! fields that need something other than the default; every field not listed
//! is a plain value: maps merge key by key, lists are replaced atomically.
//! That default is also all an unknown kind (a custom resource) gets below its
//! `metadata`, i.e. JSON merge patch (RFC 7386) semantics.
//!
//! Like the real API server (which reads only `patchMergeKey`, never the
//! `listMapKey`s server-side apply uses), lists merge on one key: container
//! `ports` on `containerPort` alone, Service `ports` on `port` alone,
//! `topologySpreadConstraints` on `topologyKey` alone.
//!
//! Checked against upstream's own statement of these facts (the struct tags
//! of k8s.io/api at Kubernetes 1.32, vendored as `upstream_patch_facts.tsv`
//! with its provenance) by `tests_upstream.rs`.

/// How a list field is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// No strategy: the patch's list replaces the original one.
    Atomic,
    /// `patchStrategy:"merge"`. `Some(key)`: a list of objects merged
    /// element by element on `key`. `None`: a list of primitives merged as a
    /// set union (`finalizers`, `podCIDRs`).
    Merge(Option<&'static str>),
}

/// A node of the schema: the type of an object found at some path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    /// Root of a kind we know nothing about beyond `metadata` (custom
    /// resources, and built-ins without interesting lists).
    Object,
    /// Root of another built-in kind: `metadata` plus `status.conditions`.
    BuiltinObject,
    ObjectMeta,
    /// A `status` whose only merging list is `conditions` (by `type`).
    ConditionsStatus,
    Pod,
    PodSpec,
    PodStatus,
    Container,
    PodTemplateSpec,
    /// Kind `PodTemplate` (core/v1): `template` is a PodTemplateSpec.
    PodTemplate,
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
    /// ReplicationController: `spec.template` is a PodTemplateSpec.
    Workload,
    WorkloadSpec,
    CronJob,
    CronJobSpec,
    /// `spec.jobTemplate` of a CronJob: metadata plus a Job spec.
    JobTemplate,
    Service,
    ServiceSpec,
    Node,
    NodeSpec,
    NodeStatus,
    ServiceAccount,
}

/// What the schema says about one field of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// JSON name of the field.
    pub name: &'static str,
    /// Type of the field's value if it is an object, or of its elements if it
    /// is a list of objects; `None` when nothing below needs a strategy.
    pub ty: Option<Ty>,
    pub list: ListStrategy,
    /// `patchStrategy:"retainKeys"`: clients send `$retainKeys` for this field
    /// (a one-of union). The server honours `$retainKeys` wherever it appears,
    /// so this is informational.
    pub retain_keys: bool,
}

impl Field {
    /// A field the schema doesn't describe: maps merge, lists are atomic.
    pub const PLAIN: Field = Field {
        name: "",
        ty: None,
        list: ListStrategy::Atomic,
        retain_keys: false,
    };
}

/// An object-valued field (or an atomic list of such objects).
const fn obj(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty: Some(ty),
        list: ListStrategy::Atomic,
        retain_keys: false,
    }
}

/// A list of objects merged on `key`, elements of type `ty` (if any).
const fn keyed(name: &'static str, key: &'static str, ty: Option<Ty>) -> Field {
    Field {
        name,
        ty,
        list: ListStrategy::Merge(Some(key)),
        retain_keys: false,
    }
}

/// A list of objects merged on `key` whose elements are one-of unions.
const fn keyed_retain(name: &'static str, key: &'static str) -> Field {
    Field {
        retain_keys: true,
        ..keyed(name, key, None)
    }
}

/// An object-valued one-of union (`patchStrategy:"retainKeys"`).
const fn retain(name: &'static str) -> Field {
    Field {
        name,
        ty: None,
        list: ListStrategy::Atomic,
        retain_keys: true,
    }
}

/// A list of primitives merged as a set.
const fn set(name: &'static str) -> Field {
    Field {
        name,
        ty: None,
        list: ListStrategy::Merge(None),
        retain_keys: false,
    }
}

const META: Field = obj("metadata", Ty::ObjectMeta);
const CONDITIONS: Field = keyed("conditions", "type", None);

/// The table: for each type, the fields that are not plain.
pub(crate) fn fields(ty: Ty) -> &'static [Field] {
    use Ty::*;
    match ty {
        Object => const { &[META] },
        BuiltinObject => const { &[META, obj("status", ConditionsStatus)] },
        ObjectMeta => const { &[keyed("ownerReferences", "uid", None), set("finalizers")] },
        ConditionsStatus => const { &[CONDITIONS] },
        Pod => const { &[META, obj("spec", PodSpec), obj("status", PodStatus)] },
        PodSpec => {
            const {
                &[
                    keyed("containers", "name", Some(Container)),
                    keyed("initContainers", "name", Some(Container)),
                    keyed("ephemeralContainers", "name", Some(Container)),
                    keyed_retain("volumes", "name"),
                    keyed("imagePullSecrets", "name", None),
                    keyed("hostAliases", "ip", None),
                    keyed("topologySpreadConstraints", "topologyKey", None),
                    keyed("schedulingGates", "name", None),
                    keyed_retain("resourceClaims", "name"),
                ]
            }
        }
        PodStatus => {
            const {
                &[
                    CONDITIONS,
                    keyed("podIPs", "ip", None),
                    keyed("hostIPs", "ip", None),
                    keyed_retain("resourceClaimStatuses", "name"),
                ]
            }
        }
        Container => {
            const {
                &[
                    keyed("ports", "containerPort", None),
                    keyed("env", "name", None),
                    keyed("volumeMounts", "mountPath", None),
                    keyed("volumeDevices", "devicePath", None),
                ]
            }
        }
        PodTemplateSpec => const { &[META, obj("spec", PodSpec)] },
        PodTemplate => const { &[META, obj("template", PodTemplateSpec)] },
        Workload => {
            const {
                &[
                    META,
                    obj("spec", WorkloadSpec),
                    obj("status", ConditionsStatus),
                ]
            }
        }
        WorkloadSpec => const { &[obj("template", PodTemplateSpec), retain("strategy")] },
        CronJob => const { &[META, obj("spec", CronJobSpec)] },
        CronJobSpec => const { &[obj("jobTemplate", JobTemplate)] },
        JobTemplate => const { &[META, obj("spec", WorkloadSpec)] },
        Service => {
            const {
                &[
                    META,
                    obj("spec", ServiceSpec),
                    obj("status", ConditionsStatus),
                ]
            }
        }
        ServiceSpec => const { &[keyed("ports", "port", None)] },
        Node => const { &[META, obj("spec", NodeSpec), obj("status", NodeStatus)] },
        NodeSpec => const { &[set("podCIDRs")] },
        NodeStatus => const { &[CONDITIONS, keyed("addresses", "type", None)] },
        ServiceAccount => const { &[META, keyed("secrets", "name", None)] },
    }
}

/// The strategy of field `name` of an object of type `ty` (`None`: a value
/// the schema knows nothing about, e.g. inside a custom resource's spec).
pub(crate) fn field(ty: Option<Ty>, name: &str) -> Field {
    ty.and_then(|t| fields(t).iter().find(|f| f.name == name).copied())
        .unwrap_or(Field::PLAIN)
}

/// API groups served by the real kube-apiserver itself (not by CRDs).
fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps" | "batch" | "autoscaling" | "policy" | "extensions"
    ) || (group.ends_with(".k8s.io") && !group.ends_with(".x-k8s.io"))
}

/// The schema root for objects of `kind` in `api_version` ("v1",
/// "apps/v1", "stable.example.com/v1", …).
pub(crate) fn root(api_version: &str, kind: &str) -> Ty {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("", "Pod") => Ty::Pod,
        ("", "PodTemplate") => Ty::PodTemplate,
        ("", "ReplicationController")
        | ("apps" | "extensions", "Deployment" | "ReplicaSet" | "DaemonSet")
        | ("apps", "StatefulSet")
        | ("batch", "Job") => Ty::Workload,
        ("batch", "CronJob") => Ty::CronJob,
        ("", "Service") => Ty::Service,
        ("", "Node") => Ty::Node,
        ("", "ServiceAccount") => Ty::ServiceAccount,
        (g, _) if is_builtin_group(g) => Ty::BuiltinObject,
        _ => Ty::Object,
    }
}
