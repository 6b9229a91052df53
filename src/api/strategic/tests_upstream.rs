//! The generated tables (`build/patch_facts.rs` from `upstream_patch_facts.tsv`) say
//! what the hand-written table they replaced said, name their provenance,
//! and give every served kind its Go type.

use super::schema::{field, go_type, root, ListStrategy, Ty, PROVENANCE};

#[test]
fn the_facts_name_their_provenance() {
    assert!(
        PROVENANCE.starts_with("github.com/kubernetes/api tag v0.32."),
        "{PROVENANCE}"
    );
    assert!(PROVENANCE.contains("github.com/kubernetes/apimachinery tag v0.32."));
}

/// Each entry of the hand-written table the generated one replaced.
#[test]
fn generated_strategies_keep_the_former_table() {
    use ListStrategy::{Atomic, Merge};
    let expect: &[(&str, &str, ListStrategy, bool)] = &[
        (
            "meta.ObjectMeta",
            "ownerReferences",
            Merge(Some("uid")),
            false,
        ),
        ("meta.ObjectMeta", "finalizers", Merge(None), false),
        ("core.PodSpec", "containers", Merge(Some("name")), false),
        ("core.PodSpec", "initContainers", Merge(Some("name")), false),
        (
            "core.PodSpec",
            "ephemeralContainers",
            Merge(Some("name")),
            false,
        ),
        ("core.PodSpec", "volumes", Merge(Some("name")), true),
        (
            "core.PodSpec",
            "imagePullSecrets",
            Merge(Some("name")),
            false,
        ),
        ("core.PodSpec", "hostAliases", Merge(Some("ip")), false),
        (
            "core.PodSpec",
            "topologySpreadConstraints",
            Merge(Some("topologyKey")),
            false,
        ),
        (
            "core.PodSpec",
            "schedulingGates",
            Merge(Some("name")),
            false,
        ),
        ("core.PodSpec", "resourceClaims", Merge(Some("name")), true),
        ("core.PodSpec", "tolerations", Atomic, false),
        ("core.PodStatus", "conditions", Merge(Some("type")), false),
        ("core.PodStatus", "podIPs", Merge(Some("ip")), false),
        ("core.PodStatus", "hostIPs", Merge(Some("ip")), false),
        (
            "core.PodStatus",
            "resourceClaimStatuses",
            Merge(Some("name")),
            true,
        ),
        (
            "core.Container",
            "ports",
            Merge(Some("containerPort")),
            false,
        ),
        ("core.Container", "env", Merge(Some("name")), false),
        (
            "core.Container",
            "volumeMounts",
            Merge(Some("mountPath")),
            false,
        ),
        (
            "core.Container",
            "volumeDevices",
            Merge(Some("devicePath")),
            false,
        ),
        ("core.Container", "args", Atomic, false),
        ("core.ServiceSpec", "ports", Merge(Some("port")), false),
        ("core.NodeSpec", "podCIDRs", Merge(None), false),
        ("core.NodeStatus", "conditions", Merge(Some("type")), false),
        ("core.NodeStatus", "addresses", Merge(Some("type")), false),
        ("core.ServiceAccount", "secrets", Merge(Some("name")), false),
        ("apps.DeploymentSpec", "strategy", Atomic, true),
        (
            "apps.DeploymentStatus",
            "conditions",
            Merge(Some("type")),
            false,
        ),
    ];
    for &(ty, name, list, retain_keys) in expect {
        let f = field(go_type(ty), name);
        assert_eq!((f.list, f.retain_keys), (list, retain_keys), "{ty}.{name}");
    }
    // The element types the former table walked into.
    let elem = |ty: &str, name: &str| field(go_type(ty), name).ty;
    assert_eq!(
        elem("core.PodSpec", "containers"),
        go_type("core.Container")
    );
    assert_eq!(
        elem("core.PodSpec", "initContainers"),
        go_type("core.Container")
    );
    assert_eq!(
        field(elem("core.PodSpec", "ephemeralContainers"), "env").list,
        Merge(Some("name"))
    );
}

#[test]
fn served_kinds_have_their_go_types() {
    for (av, kind, ty) in [
        ("v1", "Pod", "core.Pod"),
        ("v1", "PodTemplate", "core.PodTemplate"),
        ("v1", "ReplicationController", "core.ReplicationController"),
        ("v1", "Service", "core.Service"),
        ("v1", "Node", "core.Node"),
        ("v1", "Namespace", "core.Namespace"),
        ("v1", "ServiceAccount", "core.ServiceAccount"),
        ("apps/v1", "Deployment", "apps.Deployment"),
        ("apps/v1", "StatefulSet", "apps.StatefulSet"),
        ("batch/v1", "Job", "batch.Job"),
        ("batch/v1", "CronJob", "batch.CronJob"),
        ("coordination.k8s.io/v1", "Lease", "coordination.Lease"),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "discovery.EndpointSlice",
        ),
        ("events.k8s.io/v1", "Event", "events.Event"),
    ] {
        assert_eq!(Some(root(av, kind)), go_type(ty), "{av} {kind}");
    }
    assert_eq!(root("policy/v1", "Eviction"), Ty::BuiltinObject);
    assert_eq!(root("stable.example.com/v1", "Widget"), Ty::Object);
}
