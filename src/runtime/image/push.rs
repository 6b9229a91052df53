//! `push`: send a stored image to the registry its name points at. For each
//! blob (config, then layers): skip it if the repository has it, else try a
//! cross-repository mount from another repository of the same registry that
//! this store knows holds it, else upload it in chunks streamed from the
//! content store (never a whole layer in memory). The manifest is PUT last,
//! byte for byte as stored, so its digest is unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::catalog;
use super::client::{ClientError, RegistryClient, Source};
use super::manifest::{self, Descriptor, Fetched};
use super::pull::{Progress, PullEvent};
use super::reference::Reference;
use super::store::{ImageStoreError, Store};

/// Bytes per PATCH of a chunked upload (what oci-client sends at most at once).
const CHUNK: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error("{image}: {what}: {message}")]
    Registry {
        image: String,
        what: String,
        message: String,
    },
    #[error("{image}: the stored manifest {digest} is not a single-platform manifest")]
    NotAManifest { image: String, digest: String },
    #[error("{image}: {what} is not in the content store ({path}); pull the image again")]
    MissingBlob {
        image: String,
        what: String,
        path: PathBuf,
    },
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub name: String,
    pub manifest_digest: String,
    pub uploaded: usize,
    pub mounted: usize,
    pub existing: usize,
}

pub async fn push(
    store: &Store,
    client: Arc<RegistryClient>,
    name: &str,
    progress: Progress,
) -> Result<Pushed, PushError> {
    let image = Reference::parse(name).map_err(ImageStoreError::from)?;
    let full = image.to_string();
    let meta = store.meta()?;
    let rows = meta.list().map_err(ImageStoreError::from)?;
    let row = catalog::find(&rows, &full)?
        .into_iter()
        .next()
        .ok_or_else(|| ImageStoreError::NotFound(full.clone()))?;
    let raw = store.read_blob(&row.manifest_digest)?;
    let manifest = match manifest::parse(&raw, None) {
        Ok(Fetched::Manifest(m)) => m,
        _ => {
            return Err(PushError::NotAManifest {
                image: full,
                digest: row.manifest_digest,
            })
        }
    };

    // Other repositories of the same registry that hold each blob, for mounts.
    let mut mount_from: Vec<(String, Vec<String>)> = Vec::new();
    for other in &rows {
        let Ok(r) = Reference::parse(&other.name) else {
            continue;
        };
        if r.api_host() != image.api_host() || r.repository() == image.repository() {
            continue;
        }
        let blobs = meta
            .layers(&other.manifest_digest)
            .map_err(ImageStoreError::from)?
            .into_iter()
            .map(|l| l.blob_digest)
            .chain(std::iter::once(other.config_digest.clone()))
            .collect();
        mount_from.push((r.repository().to_string(), blobs));
    }

    let target = client.push_target(&image)?;
    let reg_err = |what: &str, e: oci_client::errors::OciDistributionError| PushError::Registry {
        image: full.clone(),
        what: what.to_string(),
        message: super::client::registry_message(&e, target.oci_ref.registry()),
    };
    target
        .client
        .auth(
            &target.oci_ref,
            &target.auth,
            oci_client::RegistryOperation::Push,
        )
        .await
        .map_err(|e| reg_err("authentication", e))?;

    let mut pushed = Pushed {
        name: full.clone(),
        manifest_digest: row.manifest_digest.clone(),
        uploaded: 0,
        mounted: 0,
        existing: 0,
    };
    let count = manifest.layers.len();
    let blobs = std::iter::once(("config".to_string(), &manifest.config)).chain(
        manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("layer {}/{count} {}", i + 1, d.digest), d)),
    );
    for (what, desc) in blobs {
        let path = store.blob_path(&desc.digest)?;
        if !path.is_file() {
            return Err(PushError::MissingBlob {
                image: full,
                what,
                path,
            });
        }
        let exists = target
            .client
            .blob_exists(&target.oci_ref, &desc.digest)
            .await
            .map_err(|e| reg_err(&what, e))?;
        if exists {
            pushed.existing += 1;
            progress(PullEvent::LayerExists {
                digest: desc.digest.clone(),
            });
            continue;
        }
        if try_mount(&target, &mount_from, desc).await {
            pushed.mounted += 1;
            progress(PullEvent::LayerExists {
                digest: desc.digest.clone(),
            });
            continue;
        }
        progress(PullEvent::LayerStart {
            digest: desc.digest.clone(),
            size: desc.size,
        });
        upload(&target, path, desc, progress.clone())
            .await
            .map_err(|e| reg_err(&what, e))?;
        pushed.uploaded += 1;
        progress(PullEvent::LayerDone {
            digest: desc.digest.clone(),
        });
    }

    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string());
    let content_type =
        http::HeaderValue::from_str(&media_type).map_err(|e| PushError::Registry {
            image: full.clone(),
            what: "manifest".into(),
            message: format!("media type {media_type:?}: {e}"),
        })?;
    target
        .client
        .push_manifest_raw(&target.oci_ref, raw, content_type)
        .await
        .map_err(|e| reg_err("manifest", e))?;
    tracing::info!(image = %full, digest = %pushed.manifest_digest, uploaded = pushed.uploaded,
        mounted = pushed.mounted, existing = pushed.existing, "pushed");
    Ok(pushed)
}

/// Ask the registry to link the blob from another repository; a refusal
/// (docker-registry answers 202 and opens an upload instead) just means
/// "upload it".
async fn try_mount(
    target: &Source,
    mount_from: &[(String, Vec<String>)],
    desc: &Descriptor,
) -> bool {
    for (repo, blobs) in mount_from {
        if !blobs.contains(&desc.digest) {
            continue;
        }
        let from = oci_client::Reference::with_tag(
            target.endpoint.host.clone(),
            repo.clone(),
            "latest".into(),
        );
        match target
            .client
            .mount_blob(&target.oci_ref, &from, &desc.digest)
            .await
        {
            Ok(()) => {
                tracing::debug!(digest = %desc.digest, from = %repo, "mounted blob");
                return true;
            }
            Err(e) => {
                tracing::debug!(digest = %desc.digest, from = %repo, error = %e, "mount refused")
            }
        }
    }
    false
}

/// Chunked upload, read from the stored file as it goes. The registry checks
/// the digest given at the end against what it received.
async fn upload(
    target: &Source,
    path: PathBuf,
    desc: &Descriptor,
    progress: Progress,
) -> Result<(), oci_client::errors::OciDistributionError> {
    use oci_client::errors::OciDistributionError as E;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| E::GenericError(Some(format!("{}: {e}", path.display()))))?;
    let digest = desc.digest.clone();
    let stream = futures::stream::unfold((file, path), move |(mut file, path)| async move {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        // Fill whole chunks: each stream item becomes one PATCH request.
        while filled < CHUNK {
            match file.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let err = E::GenericError(Some(format!("{}: {e}", path.display())));
                    return Some((Err(err), (file, path)));
                }
            }
        }
        if filled == 0 {
            return None;
        }
        buf.truncate(filled);
        Some((Ok(bytes::Bytes::from(buf)), (file, path)))
    })
    .inspect(move |chunk| {
        if let Ok(c) = chunk {
            progress(PullEvent::LayerBytes {
                digest: digest.clone(),
                bytes: c.len() as u64,
            });
        }
    });
    target
        .client
        .push_blob_stream(&target.oci_ref, stream, &desc.digest, Some(desc.size))
        .await?;
    Ok(())
}
