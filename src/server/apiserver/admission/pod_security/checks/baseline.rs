//! The baseline level's checks (which restricted also runs, but for the
//! three it replaces).

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    containers, fail, is_true, join_quote, plural, sc, seccomp_ok, seccomp_type, setters, sorted,
    str_list, volumes, Failure, PodView,
};
use crate::api::validation::causes;

pub fn app_armor_profile(p: &PodView<'_>) -> Option<Failure> {
    fn bad_type(v: Option<&Value>) -> Option<&str> {
        v.and_then(|prof| prof.get("type"))
            .and_then(Value::as_str)
            .filter(|t| !matches!(*t, "RuntimeDefault" | "Localhost"))
    }
    let mut values = BTreeSet::new();
    let pod_bad = bad_type(p.pod_sc("appArmorProfile"));
    if let Some(t) = pod_bad {
        values.insert(t.to_string());
    }
    let mut names = Vec::new();
    for (name, c) in p.containers() {
        if let Some(t) = bad_type(sc(c, "appArmorProfile")) {
            names.push(name);
            values.insert(t.to_string());
        }
    }
    let mut annotations = BTreeSet::new();
    if let Some(a) = p.meta.get("annotations").and_then(Value::as_object) {
        for (k, v) in a {
            if !k.starts_with("container.apparmor.security.beta.kubernetes.io/") {
                continue;
            }
            let v = v.as_str().unwrap_or_default();
            if !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")) {
                annotations.insert(format!("{k}={}", causes::go_str(v)));
            }
        }
    }
    if pod_bad.is_none() && names.is_empty() && annotations.is_empty() {
        return None;
    }
    let mut who = setters(pod_bad.is_some(), &names);
    if !annotations.is_empty() {
        let word = plural("annotation", "annotations", annotations.len());
        who = if who.is_empty() {
            word.to_string()
        } else {
            format!("{who} and {word}")
        };
    }
    let mut all = sorted(values);
    all.extend(annotations);
    fail(
        plural(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            all.len(),
        ),
        format!(
            "{who} must not set AppArmor profile type to {}",
            join_quote(&all)
        ),
    )
}

const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_caps(c: &Value) -> Vec<&str> {
    str_list(
        c.get("securityContext")
            .and_then(|s| s.get("capabilities"))
            .and_then(|s| s.get("add")),
    )
}

pub fn capabilities_baseline(p: &PodView<'_>) -> Option<Failure> {
    let mut names = Vec::new();
    let mut bad = BTreeSet::new();
    for (name, c) in p.containers() {
        let extra: Vec<&str> = added_caps(c)
            .into_iter()
            .filter(|cap| !BASELINE_CAPS.contains(cap))
            .collect();
        if !extra.is_empty() {
            names.push(name);
            bad.extend(extra.into_iter().map(str::to_string));
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&names),
            join_quote(&sorted(bad))
        ),
    )
}

pub fn host_namespaces(p: &PodView<'_>) -> Option<Failure> {
    let on: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| is_true(p.spec.get(**f)))
        .map(|f| format!("{f}=true"))
        .collect();
    if on.is_empty() {
        return None;
    }
    fail("host namespaces", on.join(", "))
}

pub fn host_path_volumes(p: &PodView<'_>) -> Option<Failure> {
    let names: Vec<&str> = volumes(p)
        .into_iter()
        .filter(|(_, v)| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        return None;
    }
    fail(
        "hostPath volumes",
        format!(
            "{} {}",
            plural("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

pub fn host_ports(p: &PodView<'_>) -> Option<Failure> {
    let mut names = Vec::new();
    let mut ports = BTreeSet::new();
    for (name, c) in p.containers() {
        let mine: Vec<i64> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|port| port.get("hostPort").and_then(Value::as_i64))
            .filter(|hp| *hp != 0)
            .collect();
        if !mine.is_empty() {
            names.push(name);
            ports.extend(mine.iter().map(i64::to_string));
        }
    }
    if names.is_empty() {
        return None;
    }
    let ports = sorted(ports);
    fail(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers(&names),
            plural("uses", "use", names.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

pub fn privileged(p: &PodView<'_>) -> Option<Failure> {
    let names: Vec<&str> = p
        .containers()
        .into_iter()
        .filter(|(_, c)| is_true(sc(c, "privileged")))
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        return None;
    }
    fail(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers(&names)
        ),
    )
}

pub fn proc_mount(p: &PodView<'_>) -> Option<Failure> {
    let mut names = Vec::new();
    let mut bad = BTreeSet::new();
    for (name, c) in p.containers() {
        if let Some(m) = sc(c, "procMount").and_then(Value::as_str) {
            if m != "Default" {
                names.push(name);
                bad.insert(m.to_string());
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers(&names),
            join_quote(&sorted(bad))
        ),
    )
}

pub fn se_linux_options(p: &PodView<'_>) -> Option<Failure> {
    let allowed = |t: &str| {
        matches!(
            t,
            "" | "container_t" | "container_init_t" | "container_kvm_t"
        ) || (t == "container_engine_t" && p.minor >= 31)
    };
    let (mut types, mut user, mut role) = (BTreeSet::new(), false, false);
    let mut check = |opts: Option<&Value>| -> bool {
        let Some(o) = opts.filter(|o| o.is_object()) else {
            return false;
        };
        let field = |f: &str| o.get(f).and_then(Value::as_str).unwrap_or_default();
        let mut bad = false;
        if !allowed(field("type")) {
            types.insert(field("type").to_string());
            bad = true;
        }
        if !field("user").is_empty() {
            user = true;
            bad = true;
        }
        if !field("role").is_empty() {
            role = true;
            bad = true;
        }
        bad
    };
    let pod_bad = check(p.pod_sc("seLinuxOptions"));
    let names: Vec<&str> = p
        .containers()
        .into_iter()
        .filter(|(_, c)| check(sc(c, "seLinuxOptions")))
        .map(|(n, _)| n)
        .collect();
    if !pod_bad && names.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        let types = sorted(types);
        data.push(format!(
            "{} {}",
            plural("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if user {
        data.push("user may not be set".to_string());
    }
    if role {
        data.push("role may not be set".to_string());
    }
    fail(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters(pod_bad, &names),
            data.join("; ")
        ),
    )
}

pub fn seccomp_profile_baseline(p: &PodView<'_>) -> Option<Failure> {
    let mut bad = BTreeSet::new();
    let pod_bad = seccomp_type(p.pod_sc("seccompProfile")).filter(|t| !seccomp_ok(t));
    if let Some(t) = pod_bad {
        bad.insert(t.to_string());
    }
    let mut names = Vec::new();
    for (name, c) in p.containers() {
        if let Some(t) = seccomp_type(sc(c, "seccompProfile")).filter(|t| !seccomp_ok(t)) {
            names.push(name);
            bad.insert(t.to_string());
        }
    }
    if pod_bad.is_none() && names.is_empty() {
        return None;
    }
    fail(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters(pod_bad.is_some(), &names),
            join_quote(&sorted(bad))
        ),
    )
}

pub fn sysctls(p: &PodView<'_>) -> Option<Failure> {
    let allowed = |n: &str| match n {
        "kernel.shm_rmid_forced"
        | "net.ipv4.ip_local_port_range"
        | "net.ipv4.tcp_syncookies"
        | "net.ipv4.ping_group_range"
        | "net.ipv4.ip_unprivileged_port_start" => true,
        "net.ipv4.ip_local_reserved_ports" => p.minor >= 27,
        "net.ipv4.tcp_keepalive_time"
        | "net.ipv4.tcp_fin_timeout"
        | "net.ipv4.tcp_keepalive_intvl"
        | "net.ipv4.tcp_keepalive_probes" => p.minor >= 29,
        "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => p.minor >= 32,
        _ => false,
    };
    let bad: Vec<&str> = p
        .pod_sc("sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !allowed(n))
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail("forbidden sysctls", bad.join(", "))
}

pub fn windows_host_process(p: &PodView<'_>) -> Option<Failure> {
    let host_process = |w: Option<&Value>| is_true(w.and_then(|w| w.get("hostProcess")));
    let pod_bad = host_process(p.pod_sc("windowsOptions"));
    let names: Vec<&str> = p
        .containers()
        .into_iter()
        .filter(|(_, c)| host_process(sc(c, "windowsOptions")))
        .map(|(n, _)| n)
        .collect();
    if !pod_bad && names.is_empty() {
        return None;
    }
    fail(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters(pod_bad, &names)
        ),
    )
}
