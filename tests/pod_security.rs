//! Pod Security admission with real kubectl: a namespace labelled
//! `enforce=restricted` refuses a privileged pod with upstream's message,
//! takes a compliant one, warns (and does not refuse) a Deployment whose
//! template breaks it, and a namespace with an invalid level is refused.

mod support;

use support::{stderr, stdout, Server};

#[test]
fn restricted_namespaces_refuse_privileged_pods_with_upstreams_message() {
    let s = Server::start_with_args(&["--disable-agent"]);
    s.kubectl_ok(&["create", "namespace", "locked"]);
    s.kubectl_ok(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let out = s.kubectl_stdin(
        &["apply", "-n", "locked", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers:
  - name: shell
    image: busybox
    securityContext: {privileged: true}
"#,
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged (container "shell" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "shell" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "shell" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "shell" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "shell" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#),
        "{err}"
    );
    assert!(!s
        .kubectl(&["get", "pod", "root", "-n", "locked"])
        .status
        .success());

    // A pod that keeps to the standard is taken.
    s.kubectl_stdin(
        &["apply", "-n", "locked", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: careful}
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: app
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"#,
    );
    s.kubectl_ok(&["get", "pod", "careful", "-n", "locked"]);

    // A Deployment is warned, not refused (its pods would be).
    let out = s.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "locked",
        "--image=busybox",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(r#"Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "busybox" must set securityContext.allowPrivilegeEscalation=false)"#),
        "{}",
        stderr(&out)
    );

    // An invalid level is refused with upstream's cause.
    let out = s.kubectl(&[
        "label",
        "namespace",
        "locked",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=strict",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#),
        "{}",
        stderr(&out)
    );
    // An unlabelled namespace is privileged.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers:
  - name: shell
    image: busybox
    securityContext: {privileged: true}
"#,
    );
    s.kubectl_ok(&["get", "pod", "root"]);
    // Tightening the level then warns about it (and is allowed).
    let out = s.kubectl(&[
        "label",
        "namespace",
        "default",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"Warning: existing pods in namespace "default" violate the new PodSecurity enforce level "baseline:latest""#)
            && err.contains("Warning: root: privileged"),
        "{err}"
    );
}
