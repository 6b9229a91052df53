//! Static pods: a manifest in `<data-dir>/agent/pod-manifests` runs as a
//! pod of the node whatever the API says, seen in the API as a mirror pod
//! (`<name>-<node>`, owned by the Node) that carries its status. Deleting
//! the mirror pod does not stop it (the mirror comes back); editing the
//! manifest replaces it; removing the file stops it and its mirror goes; a
//! restart of the server and its agent adopts it without a restart.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::{server_with_busybox, skiff, wait_pod};

const NODE: &str = "static-node";
const MIRROR: &str = "web-static-node";

fn manifest(word: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo {word}; exec sleep 600"]
"#
    )
}

fn container_id(v: &serde_json::Value) -> String {
    v["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn running(v: &serde_json::Value) -> bool {
    v["status"]["phase"] == "Running" && !container_id(v).is_empty()
}

/// Poll until `pred` holds over kubectl's output for `args` (bounded).
fn wait_until(s: &support::Server, what: &str, pred: impl Fn(&support::Server) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !pred(s) {
        assert!(Instant::now() < deadline, "never {what}\n{}", s.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mirror_exists(s: &support::Server) -> bool {
    s.kubectl(&["get", "pod", MIRROR]).status.success()
}

#[test]
fn static_pods_run_from_files_with_mirror_pods() {
    let mut s = server_with_busybox(NODE);
    let dir = s.data_dir().join("agent").join("pod-manifests");
    std::fs::create_dir_all(&dir).unwrap();
    // Written elsewhere, then moved in, as a careful admin (or the
    // installer) does; the half-written file of a plain write is covered
    // by the unit tests.
    let tmp = s.dir().join("web.yaml");
    std::fs::write(&tmp, manifest("first")).unwrap();
    std::fs::rename(&tmp, dir.join("web.yaml")).unwrap();

    wait_until(&s, "made a mirror pod", mirror_exists);
    let v = wait_pod(&s, MIRROR, "ran", running);
    let ann = &v["metadata"]["annotations"];
    let hash = ann["kubernetes.io/config.mirror"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ann["kubernetes.io/config.hash"], hash.as_str());
    assert_eq!(ann["kubernetes.io/config.source"], "file");
    assert_ne!(
        v["metadata"]["uid"],
        hash.as_str(),
        "the mirror is the API's own object"
    );
    let owner = &v["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Node");
    assert_eq!(owner["name"], NODE);
    assert_eq!(v["spec"]["nodeName"], NODE);
    assert!(v["status"]["podIP"].is_string(), "{:#}", v["status"]);
    let first_id = container_id(&v);
    // logs and exec reach it by the mirror's name.
    wait_until(&s, "logged", |s| {
        s.kubectl(&["logs", MIRROR]).stdout.starts_with(b"first")
    });
    assert_eq!(
        s.kubectl_ok(&["exec", MIRROR, "--", "echo", "in"]).trim(),
        "in"
    );

    // Deleting the mirror pod does not stop the static pod: the mirror
    // comes back, with the same container running.
    let old_uid = v["metadata"]["uid"].clone();
    s.kubectl_ok(&["delete", "pod", MIRROR, "--wait=false"]);
    wait_until(&s, "made the mirror pod again", |s| {
        s.kubectl(&["get", "pod", MIRROR, "-o", "jsonpath={.metadata.uid}"])
            .stdout
            .as_slice()
            .ne(old_uid.as_str().unwrap().as_bytes())
            && mirror_exists(s)
    });
    let again = wait_pod(&s, MIRROR, "reported again", |v| {
        running(v) && v["metadata"]["deletionTimestamp"].is_null()
    });
    assert_eq!(
        container_id(&again),
        first_id,
        "the static pod was restarted"
    );

    // A status patch that names another UID is refused (the worker's
    // writes name their mirror pod's).
    let out = s.kubectl(&[
        "patch",
        "pod",
        MIRROR,
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"uid":"0000"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("field is immutable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A restart of the server and agent adopts it.
    s.restart();
    std::thread::sleep(Duration::from_secs(3));
    let after = wait_pod(&s, MIRROR, "adopted", running);
    assert_eq!(
        container_id(&after),
        first_id,
        "the restart replaced the container"
    );
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);

    // An edited manifest is a new pod: the old one stops, the new one runs
    // under a new mirror.
    std::fs::write(&tmp, manifest("second")).unwrap();
    std::fs::rename(&tmp, dir.join("web.yaml")).unwrap();
    let edited = wait_pod(&s, MIRROR, "ran the edited manifest", |v| {
        running(v)
            && v["metadata"]["annotations"]["kubernetes.io/config.mirror"] != hash.as_str()
            && container_id(v) != first_id
    });
    wait_until(&s, "logged the new pod", |s| {
        s.kubectl(&["logs", MIRROR]).stdout.starts_with(b"second")
    });
    assert_eq!(edited["status"]["containerStatuses"][0]["ready"], true);

    // Removing the manifest stops the pod; its mirror goes.
    std::fs::remove_file(dir.join("web.yaml")).unwrap();
    wait_until(&s, "removed the mirror pod", |s| !mirror_exists(s));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !skiff(&s, &["ps", "-aq"]).trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "containers are left\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A mirror pod no manifest describes any more (removed while the agent
/// was down) is removed when the agent lists its pods.
#[test]
fn orphaned_mirror_pods_go() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: gone-{NODE}
  annotations:
    kubernetes.io/config.mirror: "0123456789abcdef0123456789abcdef"
    kubernetes.io/config.source: file
spec:
  nodeName: {NODE}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
"#
        ),
    );
    // A plain pod of the node is left alone.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
"#
        ),
    );
    wait_until(&s, "removed the orphaned mirror pod", |s| {
        !s.kubectl(&["get", "pod", &format!("gone-{NODE}")])
            .status
            .success()
    });
    wait_pod(&s, "plain", "ran", running);
    // The mirror never ran: no container of it.
    let ps = skiff(&s, &["ps", "-a", "--format", "{{.Labels}}"]);
    assert!(!ps.contains(&format!("gone-{NODE}")), "{ps}");
    s.kubectl_ok(&["delete", "pod", "plain", "--wait=true", "--timeout=60s"]);
}

/// A static pod is admitted as any other: one that does not fit the node
/// never runs, and its mirror pod says why.
#[test]
fn a_static_pod_that_does_not_fit_is_rejected() {
    let s = server_with_busybox(NODE);
    let dir = s.data_dir().join("agent").join("pod-manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let huge = manifest("big").replace(
        "    imagePullPolicy: Never\n",
        "    imagePullPolicy: Never\n    resources: {requests: {cpu: \"100000\"}}\n",
    );
    let tmp = s.dir().join("web.yaml");
    std::fs::write(&tmp, huge).unwrap();
    std::fs::rename(&tmp, dir.join("web.yaml")).unwrap();
    wait_until(&s, "made a mirror pod", mirror_exists);
    let v = wait_pod(&s, MIRROR, "was rejected", |v| {
        v["status"]["phase"] == "Failed"
    });
    assert_eq!(v["status"]["reason"], "OutOfcpu");
    assert_eq!(skiff(&s, &["ps", "-aq"]).trim(), "");
    std::fs::remove_file(dir.join("web.yaml")).unwrap();
    wait_until(&s, "removed the mirror pod", |s| !mirror_exists(s));
}
