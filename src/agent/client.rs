//! The agent's API client: kube's, over TLS from the agent's kubeconfig
//! (its node client certificate and the cluster CA), exactly as a remote
//! agent's, also when the agent runs in the server's process.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading the agent's kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("the agent's API client: {0}")]
    Client(#[from] kube::Error),
}

/// The client the kubeconfig at `path` describes, and the API's URL.
pub async fn from_kubeconfig(path: &Path) -> Result<(kube::Client, http::Uri), ClientError> {
    // rustls needs a process-wide provider; ring is the only one built in.
    // Installing fails harmlessly when it already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bad = |source| ClientError::Kubeconfig {
        path: path.display().to_string(),
        source,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(bad)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(bad)?;
    let url = config.cluster_url.clone();
    Ok((kube::Client::try_from(config)?, url))
}
