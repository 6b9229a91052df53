//! Image-level operations on the store: find by name or ID, tag, remove, and
//! docker-style inspect output.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::manifest::ImageConfig;
use super::meta::ImageRow;
use super::reference::Reference;
use super::store::{ImageStoreError, PruneReport, Store};

/// Find the images a user means: a name (normalised as Docker does), an image
/// ID (config digest, full or a hex prefix of at least 4 characters) or a
/// manifest digest. An ID matches every name of that image.
pub fn find(rows: &[ImageRow], query: &str) -> Result<Vec<ImageRow>, ImageStoreError> {
    if let Ok(r) = Reference::parse(query) {
        let full = r.to_string();
        let by_name: Vec<_> = rows.iter().filter(|i| i.name == full).cloned().collect();
        if !by_name.is_empty() {
            return Ok(by_name);
        }
    }
    let hex = query.strip_prefix("sha256:").unwrap_or(query);
    let is_hex = hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        let hex = hex.to_ascii_lowercase();
        let matches = |d: &str| {
            d.strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(&hex))
        };
        let by_id: Vec<_> = rows
            .iter()
            .filter(|i| matches(&i.config_digest) || matches(&i.manifest_digest))
            .cloned()
            .collect();
        let mut ids: Vec<_> = by_id.iter().map(|i| i.config_digest.as_str()).collect();
        ids.dedup();
        if ids.len() > 1 {
            return Err(ImageStoreError::Ambiguous(query.to_string()));
        }
        if !by_id.is_empty() {
            return Ok(by_id);
        }
    }
    Err(ImageStoreError::NotFound(query.to_string()))
}

/// Give the image `source` another name.
pub fn tag(store: &Store, source: &str, target: &str) -> Result<String, ImageStoreError> {
    let target = Reference::parse(target)?;
    let meta = store.meta()?;
    let rows = meta.list()?;
    let found = find(&rows, source)?;
    let name = target.to_string();
    if let Some(row) = found.first() {
        meta.tag(&name, &row.manifest_digest)?;
    }
    Ok(name)
}

/// What `rmi` did.
#[derive(Debug, Default)]
pub struct Removed {
    pub untagged: Vec<String>,
    pub pruned: PruneReport,
    /// Queries refused (an image a container uses), one error each; the
    /// other queries were still carried out.
    pub refused: Vec<ImageStoreError>,
}

/// What containers need from the store. The image layer knows nothing of
/// containers: the caller gathers this from the container records.
#[derive(Debug, Default)]
pub struct InUse {
    /// (container ID, image ID) for every container, running or stopped.
    pub containers: Vec<(String, String)>,
    /// Snapshot directory names (under `snapshots/`) containers are stacked on.
    pub snapshots: HashSet<String>,
}

fn short_hex(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

/// Docker's refusal when `query` would take away the last name of an image a
/// container uses; None when that is allowed.
fn conflict(rows: &[ImageRow], found: &[ImageRow], query: &str, in_use: &InUse) -> Option<String> {
    let image_id = &found.first()?.config_digest;
    let (container, _) = in_use.containers.iter().find(|(_, i)| i == image_id)?;
    // Removing one of several names only untags (as docker does).
    let left = rows
        .iter()
        .filter(|r| &r.config_digest == image_id)
        .filter(|r| !found.iter().any(|f| f.name == r.name))
        .count();
    if left > 0 {
        return None;
    }
    let by_name =
        Reference::parse(query).is_ok_and(|r| found.iter().any(|f| f.name == r.to_string()));
    Some(if by_name {
        format!(
            "unable to remove repository reference \"{query}\" (must force) - container {} is using its referenced image {}",
            short_hex(container),
            short_hex(image_id)
        )
    } else {
        format!(
            "unable to delete {} (must be forced) - image is being used by container {}",
            short_hex(image_id),
            short_hex(container)
        )
    })
}

/// Untag each query (a name removes that name, an ID every name of the image),
/// then free whatever no image needs any more. An image a container uses
/// keeps its last name unless `force`; even then the snapshots containers
/// are stacked on stay.
pub fn remove(
    store: &Store,
    queries: &[String],
    force: bool,
    in_use: &InUse,
) -> Result<Removed, ImageStoreError> {
    let lock = store.lock_exclusive()?;
    let meta = store.meta()?;
    let mut out = Removed::default();
    for q in queries {
        let rows = meta.list()?;
        let found = match find(&rows, q) {
            Ok(f) => f,
            Err(e) => {
                out.refused.push(e);
                continue;
            }
        };
        if !force {
            if let Some(msg) = conflict(&rows, &found, q, in_use) {
                out.refused.push(ImageStoreError::Conflict(msg));
                continue;
            }
        }
        for row in found {
            if meta.untag(&row.name)? {
                out.untagged.push(row.name);
            }
        }
    }
    out.pruned = store.prune(Some(&lock), &in_use.snapshots)?;
    Ok(out)
}

/// Split a stored name into (repository as docker shows it, tag or `<none>`).
pub fn repo_and_tag(name: &str) -> (String, String) {
    match Reference::parse(name) {
        Ok(r) => (r.familiar_name(), r.tag().unwrap_or("<none>").to_string()),
        Err(_) => (name.to_string(), "<none>".to_string()),
    }
}

/// One image in the shape of `docker image inspect`.
pub fn inspect(
    store: &Store,
    rows: &[ImageRow],
    image: &ImageRow,
) -> Result<Value, ImageStoreError> {
    let config_raw = store.read_blob(&image.config_digest)?;
    let config: ImageConfig = serde_json::from_slice(&config_raw).unwrap_or_default();
    let names: Vec<&ImageRow> = rows
        .iter()
        .filter(|r| r.config_digest == image.config_digest)
        .collect();
    let repo_tags: Vec<String> = names
        .iter()
        .filter_map(|r| Reference::parse(&r.name).ok())
        .filter(|r| r.tag().is_some())
        .map(|r| format!("{}:{}", r.familiar_name(), r.tag().unwrap_or_default()))
        .collect();
    let mut repo_digests: Vec<String> = names
        .iter()
        .filter_map(|r| Reference::parse(&r.name).ok().map(|p| (p, r)))
        .map(|(p, r)| {
            let digest = r.index_digest.as_deref().unwrap_or(&r.manifest_digest);
            format!("{}@{digest}", p.familiar_name())
        })
        .collect();
    repo_digests.sort();
    repo_digests.dedup();
    let layers = store.meta()?.layers(&image.manifest_digest)?;
    Ok(json!({
        "Id": image.config_digest,
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": "",
        "Created": config.created,
        "Author": config.author.unwrap_or_default(),
        "Config": config.config,
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": config.rootfs.diff_ids},
        "Metadata": {"LastTagTime": Value::Null},
        "Skiff": {
            "ManifestDigest": image.manifest_digest,
            "IndexDigest": image.index_digest,
            "Snapshots": layers.iter().map(|l| store.snapshot_path(&l.chain_id).ok()).collect::<Vec<_>>(),
        },
    }))
}
