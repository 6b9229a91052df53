//! Pods pull from a private registry with their image pull Secrets, as
//! kubelet does: a pod without one is refused by the registry
//! (ErrImagePull), a pod naming a `kubectl create secret docker-registry`
//! Secret runs, and a pod naming none gets its ServiceAccount's. The
//! registry is Debian's docker-registry with TLS from a test CA and
//! htpasswd auth, in the server's own network namespace.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/oci.rs"]
mod oci;
#[path = "support/pods.rs"]
mod pods;
#[path = "support/registry.rs"]
mod registry;
mod support;

use pods::{container, wait_pod};
use registry::{build_busybox_image, Registry};
use support::{Server, TestNet};

const NODE: &str = "pull-node";
const USER: &str = "puller";
const PASS: &str = "pr1vate-Pa55";

fn pod(name: &str, image: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 0
{extra}  containers:
  - name: main
    image: {image}
    imagePullPolicy: Always
    command: ["sleep", "600"]
"#
    )
}

#[test]
fn pods_pull_with_their_secrets_or_their_accounts() {
    let reg = Registry::start_secure(USER, PASS);
    let src = build_busybox_image(reg.dir.path());
    reg.skopeo_copy(&src, "private/busybox:1");
    let image = format!("{}/private/busybox:1", reg.host());
    // The agent trusts the registry's CA; it has no credentials of its own.
    let registries = reg.dir.path().join("registries.yaml");
    let secure = reg.secure.as_ref().expect("secure registry");
    std::fs::write(
        &registries,
        format!(
            "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n",
            reg.host(),
            secure.ca_file.display()
        ),
    )
    .unwrap();
    let s = Server::start_in(
        TestNet::join(&reg.net),
        &[
            "--node-name",
            NODE,
            "--registries",
            registries.to_str().unwrap(),
        ],
    );

    // No Secret: the registry refuses the pull.
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("anonymous", &image, ""));
    let v = wait_pod(&s, "anonymous", "is refused", |v| {
        matches!(
            container(v, "main")["state"]["waiting"]["reason"].as_str(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    });
    let msg = container(&v, "main")["state"]["waiting"]["message"].to_string();
    assert!(msg.to_lowercase().contains("not authorized"), "{msg}");

    // A Secret named by the pod: it runs. The Secret's name is the pod's
    // business; the registry's log shows the user it pulled as.
    s.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server",
        &reg.host(),
        "--docker-username",
        USER,
        "--docker-password",
        PASS,
    ]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "with-secret",
            &image,
            "  imagePullSecrets: [{name: missing}, {name: regcred}]\n",
        ),
    );
    let v = wait_pod(&s, "with-secret", "runs", |v| {
        v["status"]["phase"] == "Running"
    });
    assert!(container(&v, "main")["imageID"]
        .as_str()
        .is_some_and(|id| id.contains("@sha256:")));
    // The Secret that was not there is kubelet's warning.
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=with-secret",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("FailedToRetrieveImagePullSecret") && events.contains("Pulling"),
        "{events}"
    );

    // A pod that names none gets its ServiceAccount's Secrets.
    s.kubectl_ok(&["create", "serviceaccount", "builder"]);
    s.kubectl_ok(&[
        "patch",
        "serviceaccount",
        "builder",
        "-p",
        r#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
    ]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("by-account", &image, "  serviceAccountName: builder\n"),
    );
    let v = wait_pod(&s, "by-account", "runs", |v| {
        v["status"]["phase"] == "Running"
    });
    assert_eq!(v["spec"]["imagePullSecrets"][0]["name"], "regcred");
    // Nothing of the password reaches the server's log.
    assert!(!s.logs().contains(PASS));
}
