//! The agent's API client: kube's, over TLS from the agent's kubeconfig
//! (its node client certificate and the cluster CA), exactly as a remote
//! agent's, also when the agent runs in the server's process.

use std::path::Path;
use std::sync::OnceLock;

/// Where this process's agent reaches the API when it is not the URL in
/// its kubeconfig: the load balancer's (agent::balancer), set once it
/// listens. The kubeconfig keeps naming the server the node joined, which
/// its credentials are checked against.
static API_URL: OnceLock<String> = OnceLock::new();

/// Send every API connection of this process's agent to `url`.
pub fn route_through(url: String) {
    let _ = API_URL.set(url);
}

/// The URL to dial for a kubeconfig naming `server`.
pub fn api_url(server: &str) -> &str {
    API_URL.get().map_or(server, String::as_str)
}

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
    let mut config = config;
    if let Some(url) = API_URL.get().and_then(|u| u.parse().ok()) {
        config.cluster_url = url;
    }
    let url = config.cluster_url.clone();
    Ok((kube::Client::try_from(config)?, url))
}
