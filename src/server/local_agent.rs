//! The agent in the server's process (unless `--disable-agent`): a node
//! like any other, with credentials the server issues itself instead of a
//! join. They are renewed while it runs, as a joined agent renews its own:
//! every few hours the server writes them again (which mints new ones only
//! when they are within 90 days of expiry, or no longer fit the node), and
//! when they changed the agent starts again on them, in this process, its
//! running pods adopted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::agent::config::AgentConfig;
use crate::server::pki::ClusterPki;

/// How often the credentials are looked at.
const RENEWAL_CHECK: Duration = Duration::from_secs(6 * 3600);
/// Waits between attempts to write them while that fails.
const MAX_RETRY: Duration = Duration::from_secs(7);

/// What the agent's credentials are now: its kubeconfig and its kubelet
/// serving certificate (a change in either means a restart on them).
fn fingerprint(config: &AgentConfig) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let dir = config.kubeconfig.parent().unwrap_or(Path::new("."));
    (
        std::fs::read(&config.kubeconfig).ok(),
        std::fs::read(dir.join(crate::server::pki::KUBELET_CERT_FILE)).ok(),
    )
}

/// Write the agent's credentials unless they are current (blocking).
fn write(
    pki: &ClusterPki,
    url: &str,
    config: &AgentConfig,
) -> Result<(), crate::server::pki::PkiError> {
    pki.write_node_kubeconfig(&config.kubeconfig, url, &config.node_name)?;
    let dir = config.kubeconfig.parent().unwrap_or(Path::new("."));
    pki.write_kubelet_serving(dir, &config.node_name, &[config.node_ip])
}

/// Run the agent until `cancel`, on credentials kept current.
pub async fn run(
    pki: Arc<ClusterPki>,
    url: String,
    config: AgentConfig,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        // Retried: the agent's trouble must not stop the control plane it
        // runs beside.
        let mut wait = Duration::from_millis(100);
        loop {
            let (pki, url, c) = (pki.clone(), url.clone(), config.clone());
            match tokio::task::spawn_blocking(move || write(&pki, &url, &c)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => tracing::warn!("writing the agent's credentials: {e}"),
                Err(e) => tracing::warn!("writing the agent's credentials: {e}"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(MAX_RETRY);
        }
        let run = cancel.child_token();
        let renewal = {
            let (pki, url, config, run) = (pki.clone(), url.clone(), config.clone(), run.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = run.cancelled() => return,
                        _ = tokio::time::sleep(RENEWAL_CHECK) => {}
                    }
                    let c = config.clone();
                    let (pki, url) = (pki.clone(), url.clone());
                    let renewed = tokio::task::spawn_blocking(move || {
                        let before = fingerprint(&c);
                        write(&pki, &url, &c).map(|()| fingerprint(&c) != before)
                    })
                    .await;
                    match renewed {
                        Ok(Ok(true)) => {
                            tracing::info!("renewed the node's certificates");
                            run.cancel();
                            return;
                        }
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => tracing::warn!("renewing the agent's credentials: {e}"),
                        Err(e) => tracing::warn!("renewing the agent's credentials: {e}"),
                    }
                }
            })
        };
        let result = crate::agent::run(config.clone(), run, || {}).await;
        renewal.abort();
        if cancel.is_cancelled() || result.is_err() {
            return result;
        }
        tracing::info!("starting the agent again on its renewed certificates");
    }
}
