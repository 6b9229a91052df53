//! Pods' volumes on the server's own node, for real: an emptyDir shared by
//! two containers (with a subPath), an emptyDir in memory, a hostPath and a
//! downwardAPI volume; all of it (tmpfs mounts included) gone with the pod.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use pods::{container, server_with_busybox, wait_pod};

const NODE: &str = "vol-node";

/// Mount points at or under `dir`.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| std::path::Path::new(p).starts_with(&dir))
        .map(String::from)
        .collect()
}

#[test]
fn containers_share_empty_dirs_and_see_host_paths_and_their_labels() {
    let s = server_with_busybox(NODE);
    let host_dir = s.dir().join("host-vol");
    let pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: vols}}
spec:
  nodeName: {NODE}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes:
  - name: shared
    emptyDir: {{}}
  - name: mem
    emptyDir: {{medium: Memory, sizeLimit: 2Mi}}
  - name: host
    hostPath: {{path: {host}, type: DirectoryOrCreate}}
  - name: untyped
    hostPath: {{path: {untyped}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
  containers:
  - name: writer
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c"]
    args:
    - |
      set -e
      mkdir -p /shared/sub
      echo hello > /shared/sub/greeting
      echo from-pod > /host/out
      echo untyped > /untyped/out
      grep -q 'app="vols"' /info/labels
      test "$(cat /info/name)" = vols
      grep -q ' /mem tmpfs' /proc/mounts
      # The agent's files are read-only in the container.
      ! touch /info/x 2>/dev/null
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: mem, mountPath: /mem}}
    - {{name: host, mountPath: /host}}
    - {{name: untyped, mountPath: /untyped}}
    - {{name: info, mountPath: /info}}
  - name: reader
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c"]
    args:
    - |
      for i in $(seq 300); do [ -f /sub/greeting ] && break; sleep 0.1; done
      grep -q hello /sub/greeting
    volumeMounts:
    - {{name: shared, mountPath: /sub, subPath: sub, readOnly: true}}
"#,
        host = host_dir.display(),
        // No type: a missing path is made as a directory, as containerd does.
        untyped = host_dir.join("untyped/deeper").display(),
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &pod);
    let v = wait_pod(&s, "vols", "finished", |v| {
        matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    for c in ["writer", "reader"] {
        assert_eq!(
            container(&v, c)["state"]["terminated"]["exitCode"],
            0,
            "{c}: {:#}",
            v["status"]
        );
    }
    assert_eq!(v["status"]["phase"], "Succeeded");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("out")).unwrap(),
        "from-pod\n"
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("untyped/deeper/out")).unwrap(),
        "untyped\n"
    );
    let pods_dir = s.data_dir().join("agent/pods");
    // The memory emptyDir, the projected ServiceAccount volume every pod
    // gets (its token never touches the disk) and the reader's subPath,
    // bound by the agent from what it checked.
    assert_eq!(
        mounts_under(&pods_dir).len(),
        3,
        "{:?}",
        mounts_under(&pods_dir)
    );
    // A finished pod's object goes at once; the agent cleans up after.
    s.kubectl_ok(&["delete", "pod", "vols", "--wait=true", "--timeout=60s"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left: Vec<_> = std::fs::read_dir(&pods_dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let mounts = mounts_under(&pods_dir);
        if left.is_empty() && mounts.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pod's volumes outlived it: {left:?} {mounts:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The host's files stay.
    assert!(host_dir.join("out").exists());

    // A container that plants a symlink to the host's root in a shared
    // volume does not get it into the next one through a subPath.
    let pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: escape
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  volumes:
  - name: shared
    emptyDir: {{}}
  initContainers:
  - name: plant
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "ln -s / /shared/root"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
  containers:
  - name: victim
    image: busybox:latest
    imagePullPolicy: Never
    command: ["ls", "/host/etc"]
    volumeMounts:
    - {{name: shared, mountPath: /host, subPath: root}}
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &pod);
    let v = wait_pod(&s, "escape", "refused its subPath", |v| {
        container(v, "victim")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let message = container(&v, "victim")["state"]["waiting"]["message"].to_string();
    assert!(message.contains("leads out of the volume"), "{message}");
    assert_eq!(v["status"]["phase"], "Pending");
}
