//! Image garbage collection on a real node: with the disk over the high
//! threshold, an image no container is made from goes once it is older
//! than the minimum age and no pod names it; the image a running pod is
//! made from stays, and so does one a pod names but has not started yet.
//! The thresholds are set so that any disk is "too full" (1 %, down to
//! 0 %), which is the one fault here that cannot be made for real without
//! filling the test machine's disk.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use pods::{skiff, wait_pod};

const NODE: &str = "gc-node";

#[test]
fn unused_images_go_when_the_disk_is_full_and_used_ones_stay() {
    let s = support::Server::start_with_args(&[
        "--node-name",
        NODE,
        "--image-gc-high-threshold",
        "1",
        "--image-gc-low-threshold",
        "0",
        // Long enough for the pod below to be made from busybox first.
        "--minimum-image-ttl-duration",
        "20s",
        "--image-gc-period",
        "1s",
    ]);
    let archive = containers::build_busybox_archive(s.dir());
    skiff(&s, &["load", "-i", archive.to_str().unwrap()]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: keeper}}
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
    wait_pod(&s, "keeper", "ran", |v| v["status"]["phase"] == "Running");

    // A second image, which nothing uses.
    let spare_dir = s.dir().join("spare");
    std::fs::create_dir_all(&spare_dir).unwrap();
    let oci = support::busybox::oci_image(&spare_dir, support::busybox::Contents::Minimal);
    let spare = spare_dir.join("spare.tar");
    support::run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", &oci])
            .arg(format!("docker-archive:{}:spare:1", spare.display())),
    );
    skiff(&s, &["load", "-i", spare.to_str().unwrap()]);
    assert!(skiff(&s, &["images"]).contains("spare"));

    // A pod that names it, still in its init container: no container is
    // made from the image yet, and it must stay (under `Never` it could
    // not come back).
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: later}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: first
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "600"]
  containers:
  - name: main
    image: spare:1
    imagePullPolicy: Never
"#
        ),
    );
    wait_pod(&s, "later", "initializing", |v| {
        v["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
    });
    // Past the minimum age and many passes of the collector.
    std::thread::sleep(Duration::from_secs(25));
    assert!(
        skiff(&s, &["images"]).contains("spare"),
        "an image a pod names went"
    );
    s.kubectl_ok(&["delete", "pod", "later", "--wait=true", "--timeout=60s"]);

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let images = skiff(&s, &["images"]);
        if !images.contains("spare") {
            assert!(images.contains("busybox"), "{images}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unused image was never removed: {images}\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The agent logs the removal just after it: the log may trail the
    // image's going by a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.logs().contains("removed an unused image") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.logs().contains("removed an unused image"), "{}", s.logs());
    let v = pods::get(&s, "keeper");
    assert_eq!(v["status"]["phase"], "Running");
}
