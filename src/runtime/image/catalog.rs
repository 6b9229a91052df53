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
    remove_locked(store, &lock, queries, force, in_use)
}

/// [`remove`] with the store's exclusive lock already held.
pub fn remove_locked(
    store: &Store,
    lock: &super::store::StoreLock,
    queries: &[String],
    force: bool,
    in_use: &InUse,
) -> Result<Removed, ImageStoreError> {
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
    out.pruned = store.prune(Some(lock), &in_use.snapshots)?;
    Ok(out)
}

/// What an image prune removed, as docker reports it: the names untagged,
/// then the image IDs and layers (snapshot chain IDs) deleted.
#[derive(Debug, Default)]
pub struct Pruned {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
    pub bytes: u64,
}

/// `docker image prune`: remove the images no name points at any more and
/// the content no image needs; with `all`, first untag every image no
/// container uses (`-a`). The snapshots containers are stacked on stay.
pub fn prune(store: &Store, all: bool, in_use: &InUse) -> Result<Pruned, ImageStoreError> {
    let lock = store.lock_exclusive()?;
    let meta = store.meta()?;
    let mut out = Pruned::default();
    if all {
        let used: HashSet<&str> = in_use.containers.iter().map(|(_, i)| i.as_str()).collect();
        for row in meta.list()? {
            if !used.contains(row.config_digest.as_str()) && meta.untag(&row.name)? {
                out.untagged.push(row.name);
            }
        }
    }
    out.deleted = meta.unnamed_images()?;
    let report = store.prune(Some(&lock), &in_use.snapshots)?;
    out.deleted.extend(report.removed_snapshots);
    out.bytes = report.bytes;
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

#[cfg(test)]
mod tests {
    use super::super::meta::{LayerRecord, ManifestRecord};
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// Image `n` (manifest, config and one layer named by `n`), called `name`.
    fn add(store: &Store, n: char, name: &str) {
        let chain_id = digest(n);
        std::fs::create_dir_all(store.snapshot_path(&chain_id).unwrap().join("bin")).unwrap();
        let record = ManifestRecord {
            digest: format!("{}-manifest", digest(n)),
            config_digest: format!("{}-config", digest(n)),
            media_type: "m".into(),
            index_digest: None,
            created: None,
            os: "linux".into(),
            arch: "amd64".into(),
            size: 1,
            layers: vec![LayerRecord {
                blob_digest: format!("{}-blob", digest(n)),
                media_type: "t".into(),
                blob_size: 1,
                diff_id: chain_id.clone(),
                chain_id,
            }],
        };
        store
            .meta()
            .unwrap()
            .register(&record, &[name.to_string()])
            .unwrap();
    }

    #[test]
    fn prune_all_takes_every_image_no_container_uses() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        add(&store, 'a', "docker.io/library/used:1");
        add(&store, 'b', "docker.io/library/spare:1");
        let in_use = InUse {
            containers: vec![("c1".into(), format!("{}-config", digest('a')))],
            ..InUse::default()
        };
        // Without -a, tagged images stay.
        let p = prune(&store, false, &in_use).unwrap();
        assert!(p.untagged.is_empty() && p.deleted.is_empty(), "{p:?}");
        let p = prune(&store, true, &in_use).unwrap();
        assert_eq!(p.untagged, ["docker.io/library/spare:1"]);
        assert_eq!(p.deleted, [format!("{}-config", digest('b')), digest('b')]);
        let names: Vec<String> = store
            .meta()
            .unwrap()
            .list()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["docker.io/library/used:1"]);
        assert!(store.snapshot_path(&digest('a')).unwrap().exists());
        assert!(!store.snapshot_path(&digest('b')).unwrap().exists());
        // A snapshot a container is stacked on stays even unnamed.
        let in_use = InUse {
            snapshots: ["a".repeat(64)].into(),
            ..InUse::default()
        };
        let p = prune(&store, true, &in_use).unwrap();
        assert_eq!(p.untagged, ["docker.io/library/used:1"]);
        assert_eq!(p.deleted, [format!("{}-config", digest('a'))]);
        assert!(store.snapshot_path(&digest('a')).unwrap().exists());
    }
}
