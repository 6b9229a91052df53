//! What pods read from the API, for real: a ConfigMap-mounted page served
//! by one pod to another by pod IP, a Secret in env, a ConfigMap change
//! reaching the mounted volume, and an in-pod client (the real kubectl, a
//! static binary bound in, with its in-cluster configuration) listing pods
//! through the API with the token the ServiceAccount admission projects.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::{container, wait_pod};

const NODE: &str = "config-node";

fn server() -> support::Server {
    // Pods reach the API on the bridge's address, which the serving
    // certificate then names.
    let s = support::Server::start_with_args(&[
        "--node-name",
        NODE,
        "--bind-address",
        "0.0.0.0",
        "--tls-san",
        "10.42.0.1",
    ]);
    let archive = containers::build_busybox_archive(s.dir());
    pods::skiff(&s, &["load", "-i", archive.to_str().expect("utf-8 path")]);
    s
}

fn page(s: &support::Server, ip: &str) -> String {
    let out = s
        .net()
        .command("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://{ip}:8080/index.html"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pods_read_config_maps_secrets_and_the_api() {
    let s = server();
    // What RBAC lets the pod's account do: list pods here.
    s.kubectl_ok(&[
        "create",
        "role",
        "pod-lister",
        "--verb=list",
        "--resource=pods",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "default-lists-pods",
        "--role=pod-lister",
        "--serviceaccount=default:default",
    ]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: site}
data:
  index.html: "<h1>v1</h1>"
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData:
  password: s3cret
"#,
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  volumes:
  - name: site
    configMap: {{name: site}}
  containers:
  - name: httpd
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "test \"$PASSWORD\" = s3cret || exit 9; exec httpd -f -p 8080 -h /www"]
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    volumeMounts:
    - {{name: site, mountPath: /www}}
    readinessProbe:
      httpGet: {{path: /index.html, port: 8080}}
      periodSeconds: 1
"#
        ),
    );
    let v = wait_pod(&s, "web", "became ready", |v| {
        container(v, "httpd")["ready"] == true
    });
    let ip = v["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(page(&s, &ip), "<h1>v1</h1>");

    // Another pod reads it by pod IP; and lists pods through the API with
    // its projected token.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {NODE}
  restartPolicy: Never
  volumes:
  - name: kubectl
    hostPath: {{path: /usr/bin/kubectl, type: File}}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    volumeMounts:
    - {{name: kubectl, mountPath: /bin/kubectl, readOnly: true}}
    command: ["sh", "-c"]
    args:
    - |
      set -e
      wget -qO- http://{ip}:8080/index.html | grep -q v1
      SA=/var/run/secrets/kubernetes.io/serviceaccount
      test "$(cat $SA/namespace)" = default
      grep -q "BEGIN CERTIFICATE" $SA/ca.crt
      # The API through the `kubernetes` Service, as the environment
      # names it (10.43.0.1:443).
      test "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT" = 10.43.0.1:443
      kubectl get pods -o name > /tmp/pods
      cat /tmp/pods
      grep -q pod/web /tmp/pods
      # And by its name in the cluster DNS, with the projected token.
      kubectl --server=https://kubernetes.default.svc --certificate-authority=$SA/ca.crt \
        --token="$(cat $SA/token)" get pods -o name | grep -q pod/web
      # Its Role lets it list pods, not write.
      ! kubectl create configmap x 2>/dev/null
"#
        ),
    );
    let v = wait_pod(&s, "client", "finished", |v| {
        matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let logs = s.kubectl(&["logs", "client"]);
    assert_eq!(
        v["status"]["phase"],
        "Succeeded",
        "{:#}\n{}",
        v["status"],
        String::from_utf8_lossy(&logs.stdout)
    );
    let pod = pods::get(&s, "client");
    assert_eq!(pod["spec"]["serviceAccountName"], "default");

    // A change to the ConfigMap reaches the mounted files.
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "site",
        "-p",
        r#"{"data":{"index.html":"<h1>v2</h1>"}}"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while page(&s, &ip) != "<h1>v2</h1>" {
        assert!(
            Instant::now() < deadline,
            "the page never changed: {}",
            page(&s, &ip)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A missing key in env is CreateContainerConfigError with kubelet's message.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: broken}}
spec:
  nodeName: {NODE}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
    env:
    - name: X
      valueFrom: {{configMapKeyRef: {{name: site, key: nope}}}}
"#
        ),
    );
    let v = wait_pod(&s, "broken", "failed to start", |v| {
        container(v, "main")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    assert_eq!(
        container(&v, "main")["state"]["waiting"]["message"],
        "couldn't find key nope in ConfigMap default/site"
    );

    // A ConfigMap volume that does not exist holds the pod in
    // ContainerCreating (it has no init containers), with a FailedMount event.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: unmounted}}
spec:
  nodeName: {NODE}
  volumes: [{{name: conf, configMap: {{name: absent}}}}]
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
    volumeMounts: [{{name: conf, mountPath: /conf}}]
"#
        ),
    );
    let v = wait_pod(&s, "unmounted", "waits for its volume", |v| {
        v["status"]["podIP"].is_string() && container(v, "main")["state"]["waiting"].is_object()
    });
    assert_eq!(
        container(&v, "main")["state"]["waiting"]["reason"],
        "ContainerCreating",
        "{:#}",
        v["status"]
    );
    let out = s.kubectl_ok(&["get", "pod", "unmounted", "--no-headers"]);
    assert!(out.contains("ContainerCreating"), "{out}");

    // runAsNonRoot holds against the image's user (busybox's is root).
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: rooted}}
spec:
  nodeName: {NODE}
  securityContext: {{runAsNonRoot: true}}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
"#
        ),
    );
    let v = wait_pod(&s, "rooted", "was refused", |v| {
        container(v, "main")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let msg = container(&v, "main")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.starts_with("container has runAsNonRoot and image will run as root"),
        "{msg}"
    );

    // Termination messages: the file at terminationMessagePath (default and
    // custom, writable by a non-root user), and the log's tail under
    // FallbackToLogsOnError when the file is empty.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: last-words}}
spec:
  nodeName: {NODE}
  restartPolicy: Never
  containers:
  - name: default
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo -n 'bye from default' > /dev/termination-log; exit 3"]
  - name: custom
    image: busybox:latest
    imagePullPolicy: Never
    securityContext: {{runAsUser: 1000}}
    terminationMessagePath: /tmp/said
    command: ["sh", "-c", "echo -n 'bye from custom' > /tmp/said"]
  - name: fallback
    image: busybox:latest
    imagePullPolicy: Never
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first; echo last words >&2; exit 1"]
"#
        ),
    );
    let v = wait_pod(&s, "last-words", "finished", |v| {
        v["status"]["phase"] == "Failed"
    });
    let said = |c: &str| container(&v, c)["state"]["terminated"]["message"].clone();
    assert_eq!(said("default"), "bye from default", "{:#}", v["status"]);
    assert_eq!(said("custom"), "bye from custom", "{:#}", v["status"]);
    assert_eq!(said("fallback"), "first\nlast words\n", "{:#}", v["status"]);

    // hostPID and hostIPC: the node's own namespaces; without them, the
    // pod's.
    let ns_pod = |name: &str, host: bool| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {NODE}
  restartPolicy: Never
  hostPID: {host}
  hostIPC: {host}
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "readlink /proc/self/ns/pid && readlink /proc/self/ns/ipc && stat -c %d /dev/shm"]
"#
        )
    };
    s.kubectl_stdin(&["apply", "-f", "-"], &ns_pod("host-ns", true));
    s.kubectl_stdin(&["apply", "-f", "-"], &ns_pod("own-ns", false));
    let mut ours: Vec<String> = ["pid", "ipc"]
        .iter()
        .map(|k| {
            std::fs::read_link(format!("/proc/self/ns/{k}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    // hostIPC's /dev/shm is the node's, as containerd binds it.
    ours.push(
        std::os::unix::fs::MetadataExt::dev(&std::fs::metadata("/dev/shm").unwrap()).to_string(),
    );
    for (name, shared) in [("host-ns", true), ("own-ns", false)] {
        wait_pod(&s, name, "finished", |v| {
            v["status"]["phase"] == "Succeeded"
        });
        let logs = s.kubectl_ok(&["logs", name]);
        let seen: Vec<&str> = logs.lines().collect();
        assert_eq!(seen.len(), 3, "{logs}");
        for (seen, ours) in seen.iter().zip(&ours) {
            assert_eq!(*seen == ours.as_str(), shared, "{name}: {seen} vs {ours}");
        }
    }

    // shareProcessNamespace: one container sees the other's processes,
    // under a PID 1 of the pod's own; it goes with the pod.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: shared-pids}}
spec:
  nodeName: {NODE}
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "6543"]
  - name: looker
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "for i in $(seq 100); do ps -o args | grep -q '^sleep 6543' && break; sleep 0.2; done; ps -o pid,args; tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc/1/root/ >/dev/null 2>&1 && echo root-is-\"\"visible; echo mounts=$(cat /proc/1/mountinfo 2>/dev/null | wc -l); sleep 600"]
"#
        ),
    );
    wait_pod(&s, "shared-pids", "ran", |v| {
        v["status"]["phase"] == "Running" && container(v, "looker")["ready"] == true
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let logs = s.kubectl_ok(&["logs", "shared-pids", "-c", "looker"]);
        if logs.contains("mounts=") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(logs.contains("sleep 6543"), "{logs}");
    assert!(
        logs.lines().any(|l| l.trim_end().ends_with("pid-holder")),
        "{logs}"
    );
    // The holder is confined: nothing of the host through its /proc.
    assert!(!logs.contains("root-is-visible"), "{logs}");
    assert!(
        logs.contains("mounts=0") || logs.contains("mounts=1\n"),
        "the holder's mounts show through: {logs}"
    );
    let holders = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c.ends_with(b"\0pid-holder\0"))
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = holders();
    assert!(!before.is_empty());
    s.kubectl_ok(&[
        "delete",
        "pod",
        "shared-pids",
        "--wait=true",
        "--timeout=60s",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while holders().iter().any(|p| before.contains(p)) {
        assert!(
            Instant::now() < deadline,
            "the PID namespace holder outlived its pod"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
