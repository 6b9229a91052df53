//! The checks the restricted level adds to baseline's.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    containers, fail, join_quote, plural, sc, seccomp_ok, seccomp_type, setters, sorted, str_list,
    volumes, Failure, PodView,
};

pub fn allow_privilege_escalation(p: &PodView<'_>) -> Option<Failure> {
    if p.windows() {
        return None;
    }
    let names: Vec<&str> = p
        .containers()
        .into_iter()
        .filter(|(_, c)| sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        return None;
    }
    fail(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers(&names)
        ),
    )
}

pub fn capabilities_restricted(p: &PodView<'_>) -> Option<Failure> {
    if p.windows() {
        return None;
    }
    let (mut no_drop, mut adding, mut bad) = (Vec::new(), Vec::new(), BTreeSet::new());
    for (name, c) in p.containers() {
        let caps = c
            .get("securityContext")
            .and_then(|s| s.get("capabilities"))
            .filter(|c| !c.is_null());
        let Some(caps) = caps else {
            no_drop.push(name);
            continue;
        };
        if !str_list(caps.get("drop")).contains(&"ALL") {
            no_drop.push(name);
        }
        let extra: Vec<&str> = str_list(caps.get("add"))
            .into_iter()
            .filter(|c| *c != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name);
            bad.extend(extra.into_iter().map(str::to_string));
        }
    }
    let mut parts = Vec::new();
    if !no_drop.is_empty() {
        parts.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers(&no_drop)
        ));
    }
    if !adding.is_empty() {
        parts.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&adding),
            join_quote(&sorted(bad))
        ));
    }
    if parts.is_empty() {
        return None;
    }
    fail("unrestricted capabilities", parts.join("; "))
}

const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

const NAMED_VOLUMES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

pub fn restricted_volumes(p: &PodView<'_>) -> Option<Failure> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    for (name, v) in volumes(p) {
        let set = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
        if ALLOWED_VOLUMES.iter().any(|k| set(k)) {
            continue;
        }
        let kind = NAMED_VOLUMES
            .iter()
            .find(|k| set(k))
            .copied()
            .unwrap_or("unknown");
        names.push(name);
        types.insert(kind.to_string());
    }
    if names.is_empty() {
        return None;
    }
    let types = sorted(types);
    fail(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", names.len()),
            join_quote(&names),
            plural("uses", "use", names.len()),
            plural(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

pub fn run_as_non_root(p: &PodView<'_>) -> Option<Failure> {
    let pod = p.pod_sc("runAsNonRoot").and_then(Value::as_bool);
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for (name, c) in p.containers() {
        match sc(c, "runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicit.push(name),
            Some(true) => {}
            None if pod == Some(true) => {}
            None => implicit.push(name),
        }
    }
    let pod_bad = pod == Some(false);
    if pod_bad || !explicit.is_empty() {
        return fail(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters(pod_bad, &explicit)
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    fail(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers(&implicit)
        ),
    )
}

pub fn run_as_user(p: &PodView<'_>) -> Option<Failure> {
    let root = |v: Option<&Value>| v.and_then(Value::as_i64) == Some(0);
    let pod_bad = root(p.pod_sc("runAsUser"));
    let names: Vec<&str> = p
        .containers()
        .into_iter()
        .filter(|(_, c)| root(sc(c, "runAsUser")))
        .map(|(n, _)| n)
        .collect();
    if !pod_bad && names.is_empty() {
        return None;
    }
    fail(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters(pod_bad, &names)),
    )
}

pub fn seccomp_profile_restricted(p: &PodView<'_>) -> Option<Failure> {
    if p.windows() {
        return None;
    }
    let pod = seccomp_type(p.pod_sc("seccompProfile"));
    let pod_ok = pod.is_some_and(seccomp_ok);
    let pod_bad = pod.filter(|t| !seccomp_ok(t));
    let mut bad = BTreeSet::new();
    if let Some(t) = pod_bad {
        bad.insert(t.to_string());
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for (name, c) in p.containers() {
        match seccomp_type(sc(c, "seccompProfile")) {
            Some(t) if seccomp_ok(t) => {}
            Some(t) => {
                explicit.push(name);
                bad.insert(t.to_string());
            }
            None if pod_ok => {}
            None => implicit.push(name),
        }
    }
    if pod_bad.is_some() || !explicit.is_empty() {
        return fail(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters(pod_bad.is_some(), &explicit),
                join_quote(&sorted(bad))
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    fail(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers(&implicit)
        ),
    )
}
