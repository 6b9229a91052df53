//! Making sure an image is in the store before a container is made from it:
//! `skiff run` of an image not pulled yet, `skiff pull` (always), and the
//! agent's imagePullPolicy later. The policy decides; the CLI only prints.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::client::RegistryClient;
use super::credentials::{self, CredentialsError, Logins};
use super::limit::LayerLimit;
use super::pull::{self, Progress, PullError, Pulled};
use super::reference::ReferenceError;
use super::registries::{RegistriesConfig, RegistriesError};
use super::store::{ImageStoreError, Store};
use super::{catalog, Reference};
use crate::runtime::engine::Engine;

/// When to pull (Kubernetes' imagePullPolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Where pulls come from and what they may unpack to.
#[derive(Debug, Clone)]
pub struct PullSource {
    /// registries.yaml: mirrors, credentials and TLS settings.
    pub registries: PathBuf,
    pub limit: LayerLimit,
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error(
        "image {0} is not present and the pull policy is Never: pull it first (skiff pull {0})"
    )]
    NotPresent(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registries(#[from] RegistriesError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The registry client with registries.yaml and the `skiff login`
/// credentials saved under `root`.
pub fn registry_client(
    root: &Path,
    config: RegistriesConfig,
) -> Result<RegistryClient, CredentialsError> {
    let logins = Logins::load(&credentials::path(root))?;
    Ok(RegistryClient::new(config).with_logins(logins))
}

/// The runtime blocking callers run the (async) registry client on.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Whether `reference` (a name or an image ID) is in the store.
pub fn present(store: &Store, reference: &str) -> Result<bool, ImageStoreError> {
    match catalog::find(&store.meta()?.list()?, reference) {
        Ok(found) => Ok(!found.is_empty()),
        Err(ImageStoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Pull `reference` if `policy` asks for it; `None` when it was already
/// there. For callers already on a tokio runtime (the agent).
pub async fn ensure_async(
    store: &Store,
    client: Arc<RegistryClient>,
    reference: &str,
    policy: PullPolicy,
    progress: Progress,
) -> Result<Option<Pulled>, EnsureError> {
    if policy != PullPolicy::Always && present(store, reference)? {
        return Ok(None);
    }
    if policy == PullPolicy::Never {
        return Err(EnsureError::NotPresent(reference.to_string()));
    }
    let image = Reference::parse(reference)?;
    Ok(Some(pull::pull(store, client, &image, progress).await?))
}

/// As `ensure_async`, blocking (the CLI).
pub fn ensure(
    engine: &Engine,
    reference: &str,
    policy: PullPolicy,
    from: &PullSource,
    progress: Progress,
) -> Result<Option<Pulled>, EnsureError> {
    // A name that cannot be pulled is refused before anything is opened.
    if policy == PullPolicy::Always {
        Reference::parse(reference)?;
    }
    // An image that is there needs no registry configuration.
    let store = engine.images()?.clone().with_layer_limit(from.limit);
    if policy != PullPolicy::Always && present(&store, reference)? {
        return Ok(None);
    }
    let config = RegistriesConfig::load(&from.registries)?;
    let client = Arc::new(registry_client(engine.root(), config)?);
    let rt = tokio_runtime().map_err(EnsureError::Runtime)?;
    rt.block_on(ensure_async(&store, client, reference, policy, progress))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_refuses_a_missing_image_without_a_registry() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("root"), &dir.path().join("run"));
        let from = PullSource {
            registries: dir.path().join("none.yaml"),
            limit: LayerLimit::default(),
        };
        let quiet: Progress = Arc::new(|_| {});
        let err = ensure(&engine, "busybox:1", PullPolicy::Never, &from, quiet).unwrap_err();
        assert!(
            matches!(&err, EnsureError::NotPresent(r) if r == "busybox:1"),
            "{err}"
        );
        assert!(err.to_string().contains("skiff pull busybox:1"));
    }
}
