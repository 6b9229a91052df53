//! The runtime as the agent drives it (runtime/pod.rs): the REAL
//! EnginePodRuntime through the PodRuntime trait — a sandbox, two
//! containers made from ContainerSpecs, one exits with 3 and the exit
//! stream says so, both are found by label, and removing them and the
//! sandbox leaves no mount, cgroup, shim, address or directory behind.
//!
//! The test thread enters the test's network namespace before it starts
//! the tokio runtime, so the blocking pool's threads and the shims they
//! spawn are all in it (namespaces are per thread and inherited).

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use skiff::runtime::container::containerspec::{ContainerSpec, Process};
use skiff::runtime::container::exits::Exit;
use skiff::runtime::pod::{
    ContainerState, EnginePodRuntime, EnginePodRuntimeConfig, PodRuntime, SandboxConfig,
};

fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("netns handle");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

#[test]
fn a_pod_through_the_trait_on_the_real_engine() {
    let e = containers::Engine::new();
    let name = e.net.name().to_string();
    let (root, run, parent) = (e.root(), e.run_dir(), e.cgroup_parent.clone());
    // A thread of its own: it stays in the namespace.
    let ip = std::thread::spawn(move || {
        enter_netns(&name);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        rt.block_on(drive(
            EnginePodRuntime::new(EnginePodRuntimeConfig {
                root,
                run,
                shim_binary: Some(env!("CARGO_BIN_EXE_skiff").into()),
                log_max_size: None,
            }),
            parent,
        ))
    })
    .join()
    .expect("the pod test failed");

    let nets = e.ok(&["network", "inspect"]);
    assert!(!nets.contains("sandbox-p1"), "{nets}");
    // src/net/ipam.rs: one file per address in use.
    let lease = e.root().join("net/ipam").join(ip.to_string());
    assert!(!lease.exists(), "{} still held", lease.display());
    e.assert_clean();
}

/// Returns the sandbox's address.
async fn drive(rt: EnginePodRuntime, cgroup_parent: String) -> std::net::Ipv4Addr {
    let sb = rt
        .run_sandbox(SandboxConfig {
            name: "p1".into(),
            hostname: Some("pod-one".into()),
            ..Default::default()
        })
        .await
        .expect("sandbox");
    let pod: BTreeMap<String, String> = [("skiff.pod".to_string(), "p1".to_string())].into();
    let spec = |name: &str, script: &str| ContainerSpec {
        image: "busybox".into(),
        name: Some(name.into()),
        labels: pod.clone(),
        cgroup_parent: Some(cgroup_parent.clone()),
        process: Process {
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let quits = rt
        .create_container("p1", spec("quits", "sleep 0.3; exit 3"))
        .await
        .expect("create quits");
    let stays = rt
        .create_container("p1", spec("stays", "sleep 1000"))
        .await
        .expect("create stays");
    let created = rt.container_status(&quits).await.expect("status");
    assert_eq!(created.state, ContainerState::Created);
    assert_eq!(created.sandbox.as_deref(), Some("p1"));

    let mut exits = rt.exits(vec![quits.clone()]);
    rt.start_container(&quits).await.expect("start quits");
    rt.start_container(&stays).await.expect("start stays");
    let (id, exit) = exits.next().await.expect("an exit");
    assert_eq!(
        (id.as_str(), exit.expect("wait")),
        (quits.as_str(), Exit::Code(3))
    );
    assert!(exits.next().await.is_none());

    let status = rt.container_status(&quits).await.expect("status");
    assert_eq!(
        (status.state, status.exit_code),
        (ContainerState::Exited, Some(3))
    );
    assert!(status.started_at.is_some() && status.finished_at.is_some());
    let running = rt.container_status(&stays).await.expect("status");
    assert_eq!(running.state, ContainerState::Running);

    let mut found: Vec<String> = rt
        .list_containers(pod.clone())
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    found.sort();
    assert_eq!(found, ["quits", "stays"]);
    let other: BTreeMap<String, String> = [("skiff.pod".to_string(), "p2".to_string())].into();
    assert!(rt.list_containers(other).await.expect("list").is_empty());

    // SIGTERM, or SIGKILL when the command runs as PID 1 without a handler.
    let stopped = rt
        .stop_container(&stays, Duration::from_secs(1))
        .await
        .expect("stop");
    assert!(matches!(stopped, Some(143 | 137)), "{stopped:?}");
    rt.remove_container(&quits).await.expect("rm quits");
    rt.remove_container(&stays).await.expect("rm stays");
    assert!(rt
        .container_status(&quits)
        .await
        .expect_err("removed")
        .is_not_found());
    rt.remove_sandbox(&sb.name).await.expect("rm sandbox");
    assert!(rt
        .remove_sandbox("p1")
        .await
        .expect_err("gone")
        .is_not_found());
    sb.ip
}
