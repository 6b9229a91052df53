//! Images for pods: the node's image store (the one `skiff pull` fills),
//! pulled per the container's imagePullPolicy through the registries
//! configuration. A pull failure is kubelet's ErrImagePull, a missing image
//! under `Never` its ErrImageNeverPull.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Container;

use crate::runtime::image::client::RegistryClient;
use crate::runtime::image::credentials::Logins;
use crate::runtime::image::ensure::{self, EnsureError, PullPolicy};
use crate::runtime::image::registries::RegistriesConfig;
use crate::runtime::image::store::Store;

/// What making sure of an image did.
pub struct Ensured {
    /// How long the pull took; None when the image was there already.
    pub pulled: Option<std::time::Duration>,
    /// CRI's imageRef: `<repository>@<digest>` for an image from a
    /// registry, its config digest for one loaded from an archive.
    pub image_id: String,
    pub size: u64,
    /// The image's `User` ("" when it sets none: root).
    pub user: String,
}

#[derive(Clone)]
pub struct Images {
    store: Store,
    client: Arc<RegistryClient>,
    /// For the clients of pulls with a pod's own image pull Secrets.
    root: PathBuf,
    config: RegistriesConfig,
}

impl Images {
    /// The store under `root`, pulling with `registries` (a missing file
    /// is no mirrors and no credentials).
    pub fn open(root: &Path, registries: &Path) -> anyhow::Result<Images> {
        let store = Store::open(root)?;
        let config = RegistriesConfig::load(registries)?;
        let client = Arc::new(ensure::registry_client(root, config.clone())?);
        Ok(Images {
            store,
            client,
            root: root.to_path_buf(),
            config,
        })
    }

    /// Whether making sure of `c`'s image will pull it (for kubelet's
    /// `Pulling` event, sent before the pull).
    pub async fn will_pull(&self, c: &Container) -> bool {
        match c.image_pull_policy.as_deref() {
            Some("Always") => true,
            Some("Never") => false,
            _ => {
                let (store, image) = (self.store.clone(), c.image.clone().unwrap_or_default());
                tokio::task::spawn_blocking(move || {
                    !ensure::present(&store, &image).unwrap_or(false)
                })
                .await
                .unwrap_or(true)
            }
        }
    }

    /// Make sure `c`'s image is here, pulling with the pod's image pull
    /// Secrets (`pull_logins`) first; kubelet's (reason, message) if not.
    pub async fn ensure(
        &self,
        c: &Container,
        pull_logins: Logins,
    ) -> Result<Ensured, (String, String)> {
        let image = c.image.clone().unwrap_or_default();
        if image.is_empty() {
            return Err(("InvalidImageName".into(), "no image given".into()));
        }
        let policy = match c.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        };
        let quiet: crate::runtime::image::pull::Progress = Arc::new(|_| {});
        // A task of its own: the pull's future is not one a generic
        // worker's future can hold (rustc cannot prove it Send there).
        let client = if pull_logins.is_empty() {
            self.client.clone()
        } else {
            // A client of its own: registry tokens are cached per client,
            // and one got with this pod's Secret must not serve others.
            match ensure::registry_client(&self.root, self.config.clone()) {
                Ok(c) => Arc::new(c.with_pod_logins(pull_logins)),
                Err(e) => return Err(("ErrImagePull".into(), e.to_string())),
            }
        };
        let (store, name) = (self.store.clone(), image.clone());
        let began = std::time::Instant::now();
        let pulled = tokio::spawn(async move {
            let pulled = ensure::ensure_async(&store, client, &name, policy, quiet).await?;
            let rows = store.meta().ok().and_then(|m| m.list().ok());
            let row = rows
                .and_then(|rows| crate::runtime::image::catalog::find(&rows, &name).ok())
                .and_then(|found| found.into_iter().next());
            let user = row
                .as_ref()
                .and_then(|r| store.read_blob(&r.config_digest).ok())
                .and_then(|b| {
                    serde_json::from_slice::<crate::runtime::image::manifest::ImageConfig>(&b).ok()
                })
                .and_then(|c| {
                    c.config
                        .get("User")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            Ok::<_, EnsureError>((pulled.is_some(), row, user))
        })
        .await
        .map_err(|e| {
            (
                "ErrImagePull".to_string(),
                format!("the pull task failed: {e}"),
            )
        })?;
        match pulled {
            Ok((pulled, row, user)) => Ok(Ensured {
                pulled: pulled.then(|| began.elapsed()),
                image_id: row.as_ref().map(image_ref).unwrap_or_default(),
                size: row.map_or(0, |r| r.size),
                user,
            }),
            Err(EnsureError::NotPresent(_)) => Err((
                "ErrImageNeverPull".into(),
                format!("Container image \"{image}\" is not present with pull policy of Never"),
            )),
            Err(EnsureError::Reference(e)) => Err(("InvalidImageName".into(), e.to_string())),
            Err(e) => Err((
                "ErrImagePull".into(),
                format!("failed to pull image \"{image}\": {e}"),
            )),
        }
    }
}

/// `<repository>@<digest>` (the index's digest when there was one), or
/// the config digest of an image no registry gave.
fn image_ref(row: &crate::runtime::image::meta::ImageRow) -> String {
    let repo = row
        .name
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'));
    let digest = row.index_digest.as_deref().unwrap_or(&row.manifest_digest);
    match repo {
        Some((repo, _)) if !digest.is_empty() && !row.name.contains('@') => {
            format!("{repo}@{digest}")
        }
        _ if row.name.contains('@') => row.name.clone(),
        _ => row.config_digest.clone(),
    }
}
