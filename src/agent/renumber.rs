//! A node whose pod subnet is not the one its bridge was made for: its
//! Node was deleted and made again with another subnet (the old one went
//! to another node meanwhile), or the box ran `skiff run` containers on
//! the engine's default subnet before it joined a cluster with another
//! `--cluster-cidr`. Pods cannot be attached to a bridge of another
//! subnet, so once no container uses the old one (the pods of the old
//! Node are stopped by the pod manager, as they are no longer in the API)
//! the node network is torn down, and the next pod makes it anew.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::net::cidr::Ipv4Cidr;

/// Time between looks at the old bridge while containers still use it.
const POLL: Duration = Duration::from_secs(2);

/// Wait for the bridge of subnet `old` to be idle, then tear it down.
pub async fn follow(
    root: std::path::PathBuf,
    run_dir: std::path::PathBuf,
    old: Ipv4Cidr,
    new: Ipv4Cidr,
    cancel: CancellationToken,
) {
    let bridge =
        crate::net::HostBridge::new(&root, &run_dir, crate::net::host::DEFAULT_BRIDGE, old);
    let bridge = std::sync::Arc::new(bridge);
    let mut told = false;
    loop {
        let b = bridge.clone();
        match tokio::task::spawn_blocking(move || b.teardown_if_idle()).await {
            Ok(Ok(true)) => {
                tracing::info!(%old, %new, "the node's pod subnet changed: its bridge was removed, to be made again for the new subnet");
                return;
            }
            Ok(Ok(false)) => {
                if !told {
                    tracing::warn!(%old, %new, "the node's pod subnet changed, but containers still use the bridge of the old one; new pods wait until they stop (`skiff ps` lists them)");
                    told = true;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(%old, %new, "removing the bridge of the node's old pod subnet: {e}")
            }
            Err(e) => tracing::warn!("removing the bridge of the node's old pod subnet: {e}"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
