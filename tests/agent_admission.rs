//! kubelet's admission on the node: a pod bound to it that does not fit
//! (more CPU than the node has, a nodeSelector its labels do not match) is
//! rejected before anything of it runs — phase Failed with upstream's
//! reason and message — and still goes when deleted; one that fits runs.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use pods::{server_with_busybox, skiff, wait_pod};

const NODE: &str = "admit-node";

fn pod(name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
{extra}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
    resources:
      requests: {{cpu: "{cpu}"}}
"#,
        cpu = if name == "huge" { "100000" } else { "10m" }
    )
}

#[test]
fn pods_that_do_not_fit_are_rejected() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("huge", ""));
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("elsewhere", "  nodeSelector: {zone: mars}"),
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("fits", ""));

    let v = wait_pod(&s, "huge", "was rejected", |v| {
        v["status"]["phase"] == "Failed"
    });
    assert_eq!(v["status"]["reason"], "OutOfcpu");
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 100000000, used: "
        ),
        "{msg}"
    );
    // kubectl shows the reason as the pod's status.
    let row = s.kubectl_ok(&["get", "pod", "huge", "--no-headers"]);
    assert!(row.contains("OutOfcpu"), "{row}");
    let described = s.kubectl_ok(&["describe", "pod", "huge"]);
    assert!(described.contains("OutOfcpu"), "{described}");

    let v = wait_pod(&s, "elsewhere", "was rejected", |v| {
        v["status"]["phase"] == "Failed"
    });
    assert_eq!(v["status"]["reason"], "NodeAffinity");

    wait_pod(&s, "fits", "ran", |v| v["status"]["phase"] == "Running");

    // Sysctls: one of the safe set is set in the pod's own namespaces;
    // one outside it is kubelet's SysctlForbidden.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: tuned}}
spec:
  nodeName: {NODE}
  restartPolicy: Never
  securityContext:
    sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: "80"}}]
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]
"#
        ),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "unsafe-sysctl",
            "  securityContext:\n    sysctls: [{name: kernel.msgmax, value: \"9000\"}]",
        ),
    );
    let v = wait_pod(&s, "tuned", "ran", |v| v["status"]["phase"] == "Succeeded");
    assert_eq!(v["status"]["phase"], "Succeeded");
    assert_eq!(s.kubectl_ok(&["logs", "tuned"]).trim(), "80");
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_ne!(host.trim(), "80", "the host's own value is untouched");
    let v = wait_pod(&s, "unsafe-sysctl", "was rejected", |v| {
        v["status"]["phase"] == "Failed"
    });
    assert_eq!(v["status"]["reason"], "SysctlForbidden");
    assert_eq!(
        v["status"]["message"],
        "Pod was rejected: forbidden sysctl: \"kernel.msgmax\" not allowlisted"
    );
    s.kubectl_ok(&["delete", "pod", "tuned", "unsafe-sysctl", "--wait=true"]);
    // Nothing of the rejected pods ran.
    let ps = skiff(&s, &["ps", "-a", "--format", "{{.Labels}}"]);
    assert!(!ps.contains("io.kubernetes.pod.name=huge"), "{ps}");
    assert!(!ps.contains("io.kubernetes.pod.name=elsewhere"), "{ps}");
    s.kubectl_ok(&[
        "delete",
        "pod",
        "huge",
        "elsewhere",
        "fits",
        "--wait=true",
        "--timeout=60s",
    ]);
}
