//! `pull`: resolve a reference, fetch what the store lacks (several layers at
//! once), unpack each layer into its snapshot as soon as it has arrived, and
//! register the image at the end in one transaction.

use std::sync::Arc;

use futures::StreamExt;

use super::client::{ClientError, RegistryClient, Resolved};
use super::manifest::{self, Descriptor};
use super::meta::{LayerRecord, ManifestRecord};
use super::reference::Reference;
use super::store::{ImageStoreError, Store};

/// Layers fetched at once: enough to fill a link, few enough for a small box.
pub const PARALLEL_LAYERS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error("{image}: {layer}: claims {size} bytes but only {available} bytes are free in {dir}")]
    NoSpace {
        image: String,
        layer: String,
        size: u64,
        available: u64,
        dir: String,
    },
    #[error("{0}: a blocking task failed: {1}")]
    Join(String, String),
}

/// What a pull reports as it goes (for progress bars or plain lines).
#[derive(Debug, Clone)]
pub enum PullEvent {
    Resolved { image: String, digest: String },
    LayerStart { digest: String, size: u64 },
    LayerExists { digest: String },
    LayerBytes { digest: String, bytes: u64 },
    LayerDownloaded { digest: String },
    LayerDone { digest: String },
}

pub type Progress = Arc<dyn Fn(PullEvent) + Send + Sync>;

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub name: String,
    pub manifest_digest: String,
    /// The digest users pin to: the index's when there was one.
    pub repo_digest: String,
    pub config_digest: String,
}

pub async fn pull(
    store: &Store,
    client: Arc<RegistryClient>,
    image: &Reference,
    progress: Progress,
) -> Result<Pulled, PullError> {
    // Shared: other pulls may run beside us, but not a prune that could
    // delete a blob we have fetched and not yet registered.
    let lock_store = store.clone();
    let _lock = tokio::task::spawn_blocking(move || lock_store.lock_shared())
        .await
        .map_err(|e| PullError::Join(image.to_string(), e.to_string()))??;

    let resolved = client.resolve(image).await?;
    let name = image.to_string();
    progress(PullEvent::Resolved {
        image: name.clone(),
        digest: resolved.manifest_digest.clone(),
    });
    store.put_blob(&resolved.manifest_digest, &resolved.manifest_raw)?;
    store.put_blob(&resolved.manifest.config.digest, &resolved.config_raw)?;

    let diff_ids = resolved.config.rootfs.diff_ids.clone();
    let chain_ids = manifest::chain_ids(&diff_ids);
    let resolved = Arc::new(resolved);
    let count = resolved.manifest.layers.len();
    // Made up front, owning what they need: a lazy iterator borrowing the
    // manifest, held across the awaits below, would make this future one
    // rustc cannot prove Send (the agent runs pulls as tasks).
    let jobs: Vec<LayerJob> = resolved
        .manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, desc)| LayerJob {
            store: store.clone(),
            client: client.clone(),
            resolved: resolved.clone(),
            image: name.clone(),
            label: format!("layer {}/{count} {}", i + 1, desc.digest),
            desc: desc.clone(),
            diff_id: diff_ids[i].clone(),
            chain_id: chain_ids[i].clone(),
            progress: progress.clone(),
        })
        .collect();
    // Fail fast: the first error stops the others (dropped futures clean up
    // their temporaries in `LayerJob::run`).
    let mut results =
        futures::stream::iter(jobs.into_iter().map(LayerJob::run)).buffered(PARALLEL_LAYERS);
    let mut layers = Vec::with_capacity(count);
    let mut size = 0;
    while let Some(result) = results.next().await {
        let (record, unpacked) = result?;
        size += unpacked;
        layers.push(record);
    }
    drop(results);

    let config = &resolved.config;
    let record = ManifestRecord {
        digest: resolved.manifest_digest.clone(),
        config_digest: resolved.manifest.config.digest.clone(),
        media_type: resolved
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string()),
        index_digest: resolved.index_digest.clone(),
        created: config.created.clone(),
        os: config.os.clone(),
        arch: config.architecture.clone(),
        size,
        layers,
    };
    let mut names = vec![name.clone()];
    // A pull by tag@digest is known under both.
    if image.tag().is_some() && image.digest().is_some() {
        if let Some(tag) = image.tag() {
            if let Ok(tagged) = image.with_tag(tag) {
                names.push(tagged.to_string());
            }
        }
    }
    let mut meta = store.meta()?;
    meta.register(&record, &names)
        .map_err(ImageStoreError::from)?;
    tracing::info!(image = %name, digest = %record.digest, "pulled");
    Ok(Pulled {
        name,
        manifest_digest: record.digest,
        repo_digest: record
            .index_digest
            .unwrap_or_else(|| resolved.manifest_digest.clone()),
        config_digest: record.config_digest,
    })
}

struct LayerJob {
    store: Store,
    client: Arc<RegistryClient>,
    resolved: Arc<Resolved>,
    image: String,
    label: String,
    desc: Descriptor,
    diff_id: String,
    chain_id: String,
    progress: Progress,
}

impl LayerJob {
    async fn run(self) -> Result<(LayerRecord, u64), PullError> {
        let digest = self.desc.digest.clone();
        let have_blob = self.store.has_blob(&digest)?;
        let have_snapshot = self.store.has_snapshot(&self.chain_id)?;
        if have_blob && have_snapshot {
            (self.progress)(PullEvent::LayerExists {
                digest: digest.clone(),
            });
        } else {
            (self.progress)(PullEvent::LayerStart {
                digest: digest.clone(),
                size: self.desc.size,
            });
        }
        if !have_blob {
            self.check_space()?;
            let tmp = TempFile(self.store.temp_blob_path());
            let progress = self.progress.clone();
            let d = digest.clone();
            let on_bytes = move |n: u64| {
                progress(PullEvent::LayerBytes {
                    digest: d.clone(),
                    bytes: n,
                })
            };
            self.client
                .download_blob(
                    &self.resolved.source,
                    &self.image,
                    &self.label,
                    &self.desc,
                    &tmp.0,
                    &on_bytes,
                )
                .await?;
            self.store.commit_blob(&tmp.0, &digest)?;
            (self.progress)(PullEvent::LayerDownloaded {
                digest: digest.clone(),
            });
        }
        let store = self.store.clone();
        let (image, label, media_type, diff_id, chain_id) = (
            self.image.clone(),
            self.label.clone(),
            self.desc.media_type.clone(),
            self.diff_id.clone(),
            self.chain_id.clone(),
        );
        let d = digest.clone();
        let size = tokio::task::spawn_blocking(move || {
            store.unpack_snapshot(&image, &label, &d, &media_type, &diff_id, &chain_id)
        })
        .await
        .map_err(|e| PullError::Join(self.label.clone(), e.to_string()))??;
        if !(have_blob && have_snapshot) {
            (self.progress)(PullEvent::LayerDone {
                digest: digest.clone(),
            });
        }
        Ok((
            LayerRecord {
                blob_digest: digest,
                media_type: self.desc.media_type.clone(),
                blob_size: self.desc.size,
                diff_id: self.diff_id.clone(),
                chain_id: self.chain_id.clone(),
            },
            size,
        ))
    }

    /// Refuse a layer whose claimed size cannot fit, before fetching a byte.
    fn check_space(&self) -> Result<(), PullError> {
        let dir = self.store.dir();
        if let Ok(st) = nix::sys::statvfs::statvfs(dir) {
            let available = st.blocks_available().saturating_mul(st.fragment_size());
            if self.desc.size > available {
                return Err(PullError::NoSpace {
                    image: self.image.clone(),
                    layer: self.label.clone(),
                    size: self.desc.size,
                    available,
                    dir: dir.display().to_string(),
                });
            }
        }
        Ok(())
    }
}

/// A temporary blob file removed on drop unless it was renamed into place
/// (then the remove finds nothing): covers errors and cancelled futures alike.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
