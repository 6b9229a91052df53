use super::*;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
}

fn asking(cpu: &str, memory: &str) -> Pod {
    pod(serde_json::json!({"containers": [
        {"name": "a", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    ]}))
}

fn node(v: serde_json::Value) -> Node {
    serde_json::from_value(v).unwrap()
}

fn room() -> host::Resources {
    host::Resources {
        cpu_millis: 2000,
        memory_bytes: 1 << 30,
        ephemeral_storage_bytes: 10 << 30,
        pods: 3,
        ..Default::default()
    }
}

#[test]
fn requests_count_sidecars_and_the_largest_init_container() {
    let p = pod(serde_json::json!({
        "initContainers": [
            {"name": "big", "resources": {"requests": {"cpu": "3", "memory": "10Mi"}}},
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "20Mi"}}},
        ],
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "0.5", "memory": "30Mi", "ephemeral-storage": "1Gi"}}}],
    }));
    assert_eq!(
        requests(&p),
        Requests {
            cpu_millis: 3000,
            memory_bytes: 50 << 20,
            ephemeral_bytes: 1 << 30,
        }
    );
}

#[test]
fn a_pod_that_does_not_fit_is_rejected_as_kubelet_does() {
    let n = node(serde_json::json!({"metadata": {"name": "n"}}));
    let n = Some(&n);
    let one = requests(&asking("1500m", "100Mi"));
    assert!(admit(&asking("500m", "100Mi"), n, &room(), &[one], false, &[]).is_ok());
    let e = admit(&asking("600m", "100Mi"), n, &room(), &[one], false, &[]).unwrap_err();
    assert_eq!(e.reason, "OutOfcpu");
    assert_eq!(
        e.message,
        "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"
    );
    let e = admit(&asking("0", "2Gi"), n, &room(), &[], false, &[]).unwrap_err();
    assert_eq!(e.reason, "OutOfmemory");
    let full = [Requests::default(); 3];
    let e = admit(&asking("0", "0"), n, &room(), &full, false, &[]).unwrap_err();
    assert_eq!(e.reason, "OutOfpods");
    assert_eq!(
        e.message,
        "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"
    );
}

#[test]
fn selectors_and_taints_are_checked() {
    let n = node(serde_json::json!({
        "metadata": {"name": "n", "labels": {"zone": "a"}},
        "spec": {"taints": [
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
            {"key": "evict", "effect": "NoExecute"},
        ]},
    }));
    let n = Some(&n);
    let selecting = pod(serde_json::json!({"containers": [], "nodeSelector": {"zone": "b"}}));
    let e = admit(&selecting, n, &room(), &[], false, &[]).unwrap_err();
    assert_eq!(e.reason, "NodeAffinity");
    // Without the Node nothing but the room is checked.
    assert!(admit(&selecting, None, &room(), &[], false, &[]).is_ok());
    let e = admit(
        &pod(serde_json::json!({"containers": []})),
        n,
        &room(),
        &[],
        false,
        &[],
    )
    .unwrap_err();
    assert_eq!(e.reason, "TaintToleration");
    assert_eq!(
        e.message,
        "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
    );
    // NoSchedule is the scheduler's; NoExecute tolerated, or a static pod.
    let tolerant = pod(serde_json::json!({"containers": [], "tolerations": [
        {"key": "evict", "operator": "Exists", "effect": "NoExecute"}
    ]}));
    assert!(admit(&tolerant, n, &room(), &[], false, &[]).is_ok());
    assert!(admit(
        &pod(serde_json::json!({"containers": []})),
        n,
        &room(),
        &[],
        true,
        &[],
    )
    .is_ok());
}

#[test]
fn sysctls_outside_the_safe_set_are_refused_unless_allowed() {
    let with = |sysctls: serde_json::Value, host_net: bool| {
        pod(serde_json::json!({
            "containers": [],
            "hostNetwork": host_net,
            "securityContext": {"sysctls": sysctls},
        }))
    };
    let safe = with(
        serde_json::json!([{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"},
                           {"name": "kernel/shm_rmid_forced", "value": "1"}]),
        false,
    );
    assert!(admit(&safe, None, &room(), &[], false, &[]).is_ok());
    let unsafe_one = with(
        serde_json::json!([{"name": "kernel.msgmax", "value": "9"}]),
        false,
    );
    let e = admit(&unsafe_one, None, &room(), &[], false, &[]).unwrap_err();
    assert_eq!(e.reason, "SysctlForbidden");
    assert_eq!(
        e.message,
        "forbidden sysctl: \"kernel.msgmax\" not allowlisted"
    );
    assert!(admit(
        &unsafe_one,
        None,
        &room(),
        &[],
        false,
        &["kernel.msg*".into()]
    )
    .is_ok());
    let on_host = with(
        serde_json::json!([{"name": "net.ipv4.tcp_syncookies", "value": "1"}]),
        true,
    );
    let e = admit(&on_host, None, &room(), &[], false, &[]).unwrap_err();
    assert_eq!(
        e.message,
        "forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled"
    );
    assert_eq!(
        super::sysctl_name("net/ipv4/conf/eth0.100/rp_filter"),
        "net.ipv4.conf.eth0/100.rp_filter"
    );
}
