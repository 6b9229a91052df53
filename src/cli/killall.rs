//! `skiff killall`: stop every container of this root and remove what the
//! engine put on the node (like k3s-killall.sh): containers and their shims,
//! pod sandboxes, volumes and cgroups, rootfs mounts, network namespaces, veths, the bridge and
//! table `ip skiff`.
//! Images, volumes and the container records' logs stay.

use std::process::ExitCode;

use anyhow::Context;

use crate::runtime::container::lifecycle;
use crate::runtime::engine::Engine;

pub fn killall(engine: &Engine) -> anyhow::Result<ExitCode> {
    // As recorded, not reconciled: everything goes anyway.
    let paths = engine.paths();
    let state = paths
        .open_records()
        .context("opening the container state")?;
    let mut failed = 0;
    for rec in state.list()? {
        if let Err(e) = lifecycle::remove(paths, &state, &rec, true) {
            eprintln!("skiff: error: removing {}: {e}", rec.name);
            failed += 1;
        }
    }
    // Their pinned IPC and UTS namespaces would outlive the bridge.
    for name in engine.sandbox_names() {
        if let Err(e) = engine.remove_sandbox(&name) {
            eprintln!("skiff: error: removing sandbox {name}: {e}");
            failed += 1;
        }
    }
    // Pods' volumes: their tmpfs mounts would keep secrets in memory.
    if let Err(e) = crate::agent::pods::volumes::tear_down_all(paths.node_root()) {
        eprintln!("skiff: error: removing pods' volumes: {e}");
        failed += 1;
    }
    // Pods' cgroups, the ones this root's agent noted (the tree is shared
    // with any other agent on the host), now that their containers are gone.
    use crate::agent::pods::pod_cgroup;
    let cgroup_root = pod_cgroup::recorded_root(paths.node_root())
        .unwrap_or_else(|| pod_cgroup::default_root().to_string());
    for (uid, parent, _) in pod_cgroup::existing(paths.node_root(), &cgroup_root) {
        match pod_cgroup::tear_down(&parent) {
            Ok(()) => pod_cgroup::unmark(paths.node_root(), &uid),
            Err(e) => {
                eprintln!("skiff: error: removing the cgroup of pod {uid}: {e}");
                failed += 1;
            }
        }
    }
    pod_cgroup::remove_empty_tree(&cgroup_root);
    engine
        .network(None)
        .teardown()
        .context("removing the container network")?;
    if failed > 0 {
        anyhow::bail!("{failed} containers could not be removed");
    }
    Ok(ExitCode::SUCCESS)
}
