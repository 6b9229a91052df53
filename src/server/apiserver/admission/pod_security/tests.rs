//! Pod Security's checks and policy, against upstream's words.

use serde_json::{json, Value};

use super::*;

fn labels(pairs: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), json!(v)))
        .collect()
}

fn detail(lv: LevelVersion, pod: &Value) -> String {
    forbidden_detail(&evaluate(lv, &pod["metadata"], &pod["spec"]))
}

const RESTRICTED: LevelVersion = LevelVersion {
    level: Level::Restricted,
    minor: None,
};
const BASELINE: LevelVersion = LevelVersion {
    level: Level::Baseline,
    minor: None,
};

#[test]
fn a_plain_pod_breaks_restricted_as_upstream_says() {
    let pod = json!({"metadata": {"name": "nginx"}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
    assert_eq!(
        detail(RESTRICTED, &pod),
        r#"allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    assert_eq!(detail(BASELINE, &pod), "");
}

#[test]
fn a_compliant_pod_passes_restricted() {
    let pod = json!({"metadata": {}, "spec": {
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "i", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "v", "emptyDir": {}}, {"name": "p", "projected": {"sources": []}}],
    }});
    assert_eq!(detail(RESTRICTED, &pod), "");
}

#[test]
fn baseline_names_each_problem_in_upstreams_order() {
    let pod = json!({"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/a": "unconfined"}}, "spec": {
        "hostNetwork": true, "hostPID": true,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax"}, {"name": "net.ipv4.tcp_syncookies"}], "seLinuxOptions": {"type": "spc_t", "user": "u"}},
        "containers": [
            {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}, "ports": [{"containerPort": 80, "hostPort": 9}, {"containerPort": 81, "hostPort": 10}]},
            {"name": "b", "securityContext": {"privileged": true, "procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"}}},
        ],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    }});
    assert_eq!(
        detail(BASELINE, &pod),
        concat!(
            r#"forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/a="unconfined""), "#,
            r#"non-default capabilities (container "a" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add), "#,
            r#"host namespaces (hostNetwork=true, hostPID=true), "#,
            r#"hostPath volumes (volume "root"), "#,
            r#"hostPort (container "a" uses hostPorts 10, 9), "#,
            r#"privileged (containers "a", "b" must not set securityContext.privileged=true), "#,
            r#"procMount (container "b" must not set securityContext.procMount to "Unmasked"), "#,
            r#"seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set), "#,
            r#"seccompProfile (container "b" must not set securityContext.seccompProfile.type to "Unconfined"), "#,
            r#"forbidden sysctls (kernel.msgmax)"#,
        )
    );
}

#[test]
fn explicit_bad_values_win_over_missing_ones() {
    let pod = json!({"metadata": {}, "spec": {
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0},
        "containers": [
            {"name": "a", "securityContext": {"runAsNonRoot": false, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Unconfined"}}},
            {"name": "b", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}},
        ],
        "volumes": [{"name": "n", "nfs": {"server": "x", "path": "/"}}, {"name": "h", "hostPath": {"path": "/"}}],
    }});
    assert_eq!(
        detail(RESTRICTED, &pod),
        concat!(
            r#"restricted volume types (volumes "n", "h" use restricted volume types "hostPath", "nfs"), "#,
            r#"runAsNonRoot != true (container "a" must not set securityContext.runAsNonRoot=false), "#,
            r#"runAsUser=0 (pod must not set runAsUser=0), "#,
            r#"seccompProfile (container "a" must not set securityContext.seccompProfile.type to "Unconfined")"#,
        )
    );
}

#[test]
fn labels_choose_the_policy_and_warn_follows_enforce() {
    let p = Policy::of(None);
    assert_eq!(p.enforce.to_string(), "privileged:latest");
    let l = labels(&[("enforce", "baseline"), ("enforce-version", "v1.25")]);
    let p = Policy::of(Some(&l));
    assert_eq!(p.enforce.to_string(), "baseline:v1.25");
    assert_eq!(p.warn.to_string(), "baseline:v1.25");
    assert_eq!(p.audit.to_string(), "privileged:latest");
    let l = labels(&[("enforce", "baseline"), ("warn", "restricted")]);
    let p = Policy::of(Some(&l));
    assert_eq!(p.warn.to_string(), "restricted:latest");
    // Fail closed on enforce, open on warn.
    let l = labels(&[("enforce", "strict"), ("warn", "loud")]);
    let p = Policy::of(Some(&l));
    assert_eq!(p.enforce.level, Level::Restricted);
    assert_eq!(p.warn.level, Level::Privileged);
}

#[test]
fn invalid_labels_get_upstreams_causes() {
    let l = labels(&[
        ("enforce", "strict"),
        ("warn-version", "1.25"),
        ("audit-version", "v1.01"),
    ]);
    let problems: Vec<String> = label_problems(Some(&l))
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    assert_eq!(
        problems,
        [
            r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#,
            r#"metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "v1.01": must be "latest" or "v1.x""#,
            r#"metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.25": must be "latest" or "v1.x""#,
        ]
    );
    assert!(label_problems(Some(&labels(&[
        ("enforce", "restricted"),
        ("enforce-version", "v1.0")
    ])))
    .is_empty());
}

#[test]
fn older_versions_leave_out_newer_checks() {
    let pod = json!({"metadata": {}, "spec": {
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"},
                            "sysctls": [{"name": "net.ipv4.tcp_rmem"}]},
        "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
    }});
    let at = |minor| LevelVersion {
        level: Level::Restricted,
        minor: Some(minor),
    };
    assert_eq!(
        detail(at(22), &pod),
        "forbidden sysctls (net.ipv4.tcp_rmem)"
    );
    assert_eq!(
        detail(at(23), &pod),
        "forbidden sysctls (net.ipv4.tcp_rmem), runAsUser=0 (pod must not set runAsUser=0)"
    );
    assert_eq!(
        detail(RESTRICTED, &pod),
        "runAsUser=0 (pod must not set runAsUser=0)"
    );
}

#[test]
fn only_significant_pod_updates_are_checked() {
    let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
    let mut relabelled = old.clone();
    relabelled["metadata"] = json!({"labels": {"a": "b"}});
    assert!(!significant(&old, &relabelled));
    let mut reimaged = old.clone();
    reimaged["spec"]["containers"][0]["image"] = json!("y");
    assert!(significant(&old, &reimaged));
    let mut debugged = old.clone();
    debugged["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "image": "busybox"}]);
    assert!(significant(&old, &debugged));
}

#[test]
fn existing_pods_are_checked_when_the_level_tightens() {
    let lv = |level, minor| LevelVersion { level, minor };
    let (b, r, p) = (Level::Baseline, Level::Restricted, Level::Privileged);
    assert!(tightened(lv(p, None), lv(b, None)));
    assert!(tightened(lv(b, None), lv(r, None)));
    assert!(!tightened(lv(r, None), lv(b, None)));
    assert!(!tightened(lv(b, None), lv(p, None)));
    assert!(!tightened(lv(b, None), lv(b, None)));
    assert!(tightened(lv(r, None), lv(b, Some(25))));
}
