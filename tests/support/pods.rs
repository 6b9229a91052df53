//! Pods on a real server's own node: a server whose agent runs pods, with
//! the busybox image loaded, and polling helpers for pods' status.
//!
//! Include with `mod support; #[path = "support/containers.rs"] mod containers;
//! #[path = "support/pods.rs"] mod pods;`.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use crate::containers;
use crate::support::Server;

/// A server (and its agent) on node `node`, with busybox:latest loaded.
pub fn server_with_busybox(node: &str) -> Server {
    let s = Server::start_with_args(&["--node-name", node]);
    let archive = containers::build_busybox_archive(s.dir());
    skiff(&s, &["load", "-i", archive.to_str().expect("utf-8 path")]);
    s
}

/// Run the skiff CLI on the server's engine root; its stdout.
pub fn skiff(s: &Server, args: &[&str]) -> String {
    let out = s
        .net()
        .command(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(s.data_dir())
        .arg("--run-dir")
        .arg(s.dir().join("run"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skiff {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn get(s: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&s.kubectl_ok(&["get", "pod", name, "-o", "json"])).unwrap()
}

/// Poll the pod until `pred` holds (bounded: a limit on waiting, not an
/// assertion on time).
pub fn wait_pod(
    s: &Server,
    name: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // Not there (yet, or for a moment: a static pod's mirror is made
        // again when its manifest changes) is only not yet.
        let out = s.kubectl(&["get", "pod", name, "-o", "json"]);
        let v: serde_json::Value = if out.status.success() {
            serde_json::from_slice(&out.stdout).unwrap_or_default()
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("NotFound"), "kubectl get pod {name}: {err}");
            serde_json::Value::Null
        };
        if !v.is_null() && pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never {what}: {:#}\n{}",
            v["status"],
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The status of container `name` (or init container).
pub fn container<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            v["status"]["initContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .find(|c| c["name"] == name)
        .unwrap_or(&serde_json::Value::Null)
}
