//! The content store under `<root>/images/`:
//!
//! ```text
//! blobs/sha256/<hex>      manifests, configs, compressed layers (verified before rename)
//! snapshots/<chain hex>/  one unpacked layer each, shared by every image that has it
//! meta.db                 SQLite metadata (see meta.rs)
//! lock                    flock: shared while pulling, exclusive for rmi/prune
//! ```
//!
//! Nothing appears under its final name before it is complete and checked:
//! blobs are written to `blobs/sha256/.tmp-*` and snapshots to
//! `snapshots/.tmp-*`, then renamed. An interrupted pull therefore leaves
//! only temporaries and verified content that the next pull reuses; an image
//! is registered in one transaction at the very end. Every writer of
//! temporaries holds the shared lock, so the temporaries found while nobody
//! holds any lock belong to a process that died: the next open of the store
//! that gets the lock exclusively without waiting removes them (and prune
//! does, under its exclusive lock).
//!
//! Layers are bounded in what they may expand to (see limit.rs).

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::limit::LayerLimit;
use super::meta::{Meta, MetaError};
use super::unpack::{self, UnpackError, UnpackOptions};

#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("{image}: {layer}: {source}")]
    Unpack {
        image: String,
        layer: String,
        source: UnpackError,
    },
    #[error("{image}: {layer}: the layer expands beyond its size limit of {limit}")]
    LayerTooLarge {
        image: String,
        layer: String,
        /// The limit and how to raise it.
        limit: String,
    },
    #[error("{image}: {layer}: uncompressed content has digest {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        image: String,
        layer: String,
        expected: String,
        actual: String,
    },
    #[error("{0}: no such image")]
    NotFound(String),
    #[error("{0}: ambiguous image ID prefix")]
    Ambiguous(String),
    #[error("malformed digest {0:?}")]
    BadDigest(String),
    /// Docker's wording, so scripts matching on it keep working.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Reference(#[from] super::reference::ReferenceError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageStoreError + '_ {
    move |source| ImageStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A held store lock; released on drop.
pub struct StoreLock {
    _flock: crate::lockfile::Guard,
}

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    limit: LayerLimit,
    /// Bytes of dead temporaries removed when this store was opened, until
    /// a prune reports them (once: shared by clones, taken by the first).
    swept: Arc<AtomicU64>,
}

/// What a prune freed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub manifests: usize,
    pub blobs: usize,
    pub snapshots: usize,
    /// The chain IDs of the snapshots removed (docker's layer IDs).
    pub removed_snapshots: Vec<String>,
    pub bytes: u64,
}

/// The hex part of a `sha256:` digest, refusing anything that could be a path.
pub fn digest_hex(digest: &str) -> Result<&str, ImageStoreError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(hex),
        _ => Err(ImageStoreError::BadDigest(digest.to_string())),
    }
}

impl Store {
    /// Open (creating as needed) the store under `<root>/images`.
    pub fn open(root: &Path) -> Result<Store, ImageStoreError> {
        // Snapshots become containers' root filesystems and keep images'
        // device nodes: nobody but root may reach them (see private.rs).
        crate::runtime::private::ensure_dir(root).map_err(io_err(root))?;
        let dir = root.join("images");
        crate::runtime::private::ensure_dir(&dir).map_err(io_err(&dir))?;
        for sub in ["blobs/sha256", "snapshots"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let mut store = Store {
            dir,
            limit: LayerLimit::default(),
            swept: Arc::default(),
        };
        store.swept = Arc::new(AtomicU64::new(store.sweep_leftovers()?));
        Ok(store)
    }

    /// The same store with another bound on what layers may expand to.
    pub fn with_layer_limit(mut self, limit: LayerLimit) -> Store {
        self.limit = limit;
        self
    }

    /// Remove the temporaries of pulls, loads and saves that died (SIGKILL,
    /// power cut), unless some process holds the store lock: then they may
    /// be live, and the next open or prune gets them. Returns bytes freed.
    fn sweep_leftovers(&self) -> Result<u64, ImageStoreError> {
        let path = self.lock_path();
        let Some(_held) = crate::lockfile::try_exclusive(&path).map_err(io_err(&path))? else {
            return Ok(0);
        };
        let mut freed = 0;
        for sub in ["blobs/sha256", "snapshots"] {
            let dir = self.dir.join(sub);
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let entry = entry.map_err(io_err(&dir))?;
                if !entry.file_name().as_encoded_bytes().starts_with(b".tmp-") {
                    continue;
                }
                let p = entry.path();
                freed += remove_counted(&p)?;
                tracing::info!(path = %p.display(), "removed a leftover of an interrupted pull");
            }
        }
        Ok(freed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Held by pulls: several may run at once, but never beside a prune.
    pub fn lock_shared(&self) -> Result<StoreLock, ImageStoreError> {
        let path = self.lock_path();
        let flock = crate::lockfile::shared(&path).map_err(io_err(&path))?;
        Ok(StoreLock { _flock: flock })
    }

    /// Held by rmi and prune, which delete content.
    pub fn lock_exclusive(&self) -> Result<StoreLock, ImageStoreError> {
        let path = self.lock_path();
        let flock = crate::lockfile::exclusive(&path).map_err(io_err(&path))?;
        Ok(StoreLock { _flock: flock })
    }

    /// [`Store::lock_exclusive`] if no pull (nor anything else) holds the
    /// store right now.
    pub fn try_lock_exclusive(&self) -> Result<Option<StoreLock>, ImageStoreError> {
        let path = self.lock_path();
        let flock = crate::lockfile::try_exclusive(&path).map_err(io_err(&path))?;
        Ok(flock.map(|f| StoreLock { _flock: f }))
    }

    pub fn meta(&self) -> Result<Meta, ImageStoreError> {
        Ok(Meta::open(&self.dir.join("meta.db"))?)
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageStoreError> {
        Ok(self.dir.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> Result<bool, ImageStoreError> {
        Ok(self.blob_path(digest)?.is_file())
    }

    /// A fresh temporary path next to the blobs (same filesystem, so rename is atomic).
    pub fn temp_blob_path(&self) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()))
    }

    /// Move a verified, fsynced temporary file into place under its digest.
    pub fn commit_blob(&self, tmp: &Path, digest: &str) -> Result<PathBuf, ImageStoreError> {
        let dest = self.blob_path(digest)?;
        fs::rename(tmp, &dest).map_err(io_err(&dest))?;
        sync_parent(&dest)?;
        Ok(dest)
    }

    /// Write a small blob (manifest, config) that the caller already verified.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), ImageStoreError> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let tmp = self.temp_blob_path();
        let result = (|| {
            let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
            io::Write::write_all(&mut f, bytes).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
            self.commit_blob(&tmp, digest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|_| ())
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageStoreError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(io_err(&p))
    }

    pub fn snapshot_path(&self, chain_id: &str) -> Result<PathBuf, ImageStoreError> {
        Ok(self.dir.join("snapshots").join(digest_hex(chain_id)?))
    }

    pub fn has_snapshot(&self, chain_id: &str) -> Result<bool, ImageStoreError> {
        Ok(self.snapshot_path(chain_id)?.is_dir())
    }

    /// Unpack a stored layer blob into the snapshot `chain_id` unless it is
    /// there already, checking the uncompressed stream against `diff_id` as it
    /// feeds the unpacker. Blocking: run it on a blocking thread. Returns the
    /// uncompressed size.
    pub fn unpack_snapshot(
        &self,
        image: &str,
        layer: &str,
        blob_digest: &str,
        media_type: &str,
        diff_id: &str,
        chain_id: &str,
    ) -> Result<u64, ImageStoreError> {
        let meta = self.meta()?;
        let final_path = self.snapshot_path(chain_id)?;
        if final_path.is_dir() {
            if let Some(size) = meta.snapshot_size(chain_id)? {
                return Ok(size);
            }
        }
        let blob = self.blob_path(blob_digest)?;
        let tmp = self
            .dir
            .join("snapshots")
            .join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = self.unpack_into(image, layer, &blob, media_type, diff_id, &tmp);
        let size = match result {
            Ok(size) => size,
            Err(e) => {
                // The unpacker leaves cleanup of a failed destination to us.
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        match fs::rename(&tmp, &final_path) {
            Ok(()) => sync_parent(&final_path)?,
            // Another pull unpacked the same layer meanwhile: keep theirs.
            Err(_) if final_path.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(io_err(&final_path)(e));
            }
        }
        meta.add_snapshot(chain_id, diff_id, size)?;
        Ok(size)
    }

    fn unpack_into(
        &self,
        image: &str,
        layer: &str,
        blob: &Path,
        media_type: &str,
        diff_id: &str,
        tmp: &Path,
    ) -> Result<u64, ImageStoreError> {
        let unpack_err = |source| ImageStoreError::Unpack {
            image: image.to_string(),
            layer: layer.to_string(),
            source,
        };
        let file = fs::File::open(blob).map_err(io_err(blob))?;
        let compressed = file.metadata().map_err(io_err(blob))?.len();
        let limit = self.limit.for_blob(compressed);
        let too_large = || ImageStoreError::LayerTooLarge {
            image: image.to_string(),
            layer: layer.to_string(),
            limit: self.limit.explain(compressed),
        };
        let decompressed =
            unpack::decompress(BufReader::with_capacity(256 << 10, file), media_type)
                .map_err(unpack_err)?;
        let mut hashing = HashingReader {
            inner: decompressed,
            hasher: Sha256::new(),
            bytes: 0,
            limit,
            exceeded: false,
        };
        // The unpacker wants an existing, empty directory.
        fs::create_dir(tmp).map_err(io_err(tmp))?;
        // Owners from the headers when root. The stream is bounded by the
        // reader above; what the files expand to (sparse entries) by the
        // unpacker.
        let opts = UnpackOptions {
            size_limit: Some(limit),
            sparse_limit: Some(self.limit.max_size),
            ..UnpackOptions::default()
        };
        let unpacked = unpack::unpack_layer(&mut hashing, tmp, &opts).and_then(|_| {
            // The tar reader may stop at the end-of-archive marker; the
            // diff_id covers the whole stream, padding included.
            io::copy(&mut hashing, &mut io::sink()).map_err(UnpackError::Read)
        });
        match unpacked {
            Ok(_) => {}
            Err(_) if hashing.exceeded => return Err(too_large()),
            Err(UnpackError::SizeLimit { .. }) => return Err(too_large()),
            Err(e) => return Err(unpack_err(e)),
        }
        let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        if actual != diff_id {
            return Err(ImageStoreError::DiffIdMismatch {
                image: image.to_string(),
                layer: layer.to_string(),
                expected: diff_id.to_string(),
                actual,
            });
        }
        unpack::sync_dir(tmp).map_err(unpack_err)?;
        Ok(hashing.bytes)
    }

    /// Remove manifests no name points at, then every blob and snapshot (and
    /// leftover temporary) that no registered manifest needs. Snapshots named
    /// in `keep` (directory names under `snapshots/`) stay even when no image
    /// needs them any more: containers' root filesystems are stacked on them.
    /// Takes the exclusive lock unless the caller holds it (`locked`).
    pub fn prune(
        &self,
        locked: Option<&StoreLock>,
        keep: &HashSet<String>,
    ) -> Result<PruneReport, ImageStoreError> {
        let _guard = match locked {
            Some(_) => None,
            None => Some(self.lock_exclusive()?),
        };
        let meta = self.meta()?;
        let mut report = PruneReport {
            manifests: meta.drop_unnamed_manifests()?,
            // Leftovers of dead pulls that opening the store removed.
            bytes: self.swept.swap(0, Ordering::Relaxed),
            ..Default::default()
        };
        let blobs = meta.referenced_blobs()?;
        let blob_dir = self.dir.join("blobs/sha256");
        for entry in fs::read_dir(&blob_dir).map_err(io_err(&blob_dir))? {
            let entry = entry.map_err(io_err(&blob_dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if blobs.contains(&format!("sha256:{name}")) {
                continue;
            }
            report.bytes += remove_counted(&entry.path())?;
            report.blobs += 1;
        }
        let snaps = meta.referenced_snapshots()?;
        let snap_dir = self.dir.join("snapshots");
        for entry in fs::read_dir(&snap_dir).map_err(io_err(&snap_dir))? {
            let entry = entry.map_err(io_err(&snap_dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let chain_id = format!("sha256:{name}");
            if snaps.contains(&chain_id) || keep.contains(&name) {
                continue;
            }
            report.bytes += remove_counted(&entry.path())?;
            meta.forget_snapshot(&chain_id)?;
            report.snapshots += 1;
            report.removed_snapshots.push(chain_id);
        }
        tracing::info!(?report, "pruned image store");
        Ok(report)
    }
}

/// Hashes and counts what passes through, for the diff_id check, and fails
/// once more than `limit` bytes came out of the decompressor.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.bytes >= self.limit {
            // One byte past the limit tells "over" from "exactly at".
            let mut one = [0u8; 1];
            if self.inner.read(&mut one)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::other("layer exceeds its size limit"));
        }
        let room = usize::try_from(self.limit - self.bytes).unwrap_or(usize::MAX);
        let max = buf.len().min(room);
        let n = self.inner.read(&mut buf[..max])?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Remove a file or a whole tree; returns the disk space it held (allocated
/// blocks, each inode once), which is what removing it gives back.
fn remove_counted(path: &Path) -> Result<u64, ImageStoreError> {
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        let bytes = disk_usage(path)?;
        fs::remove_dir_all(path).map_err(io_err(path))?;
        Ok(bytes)
    } else {
        fs::remove_file(path).map_err(io_err(path))?;
        Ok(std::os::unix::fs::MetadataExt::blocks(&meta) * 512)
    }
}

/// Allocated bytes of everything under `dir`, hardlinked files counted once;
/// symlinks are not followed.
fn disk_usage(dir: &Path) -> Result<u64, ImageStoreError> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = fs::symlink_metadata(&d).map_err(io_err(&d))?;
        total += m.blocks() * 512;
        for entry in fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let p = entry.path();
            let m = fs::symlink_metadata(&p).map_err(io_err(&p))?;
            if m.is_dir() {
                stack.push(p);
            } else if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
        }
    }
    Ok(total)
}

/// fsync the directory holding `path` so a rename survives a power cut.
fn sync_parent(path: &Path) -> Result<(), ImageStoreError> {
    if let Some(parent) = path.parent() {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn prune_reports_the_swept_leftovers_once() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let tmp = store.dir().join("blobs/sha256/.tmp-dead-pull");
        fs::write(&tmp, vec![0u8; 4096]).unwrap();
        drop(store);
        let store = Store::open(root.path()).unwrap();
        assert!(!tmp.exists());
        let keep = HashSet::new();
        let first = store.prune(None, &keep).unwrap();
        assert!(first.bytes >= 4096, "{first:?}");
        let second = store.prune(None, &keep).unwrap();
        assert_eq!(second, PruneReport::default());
    }

    #[test]
    fn unpack_checks_diff_id_and_leaves_nothing_on_failure() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let tar = layer_tar(&[("bin/hello", b"hi")]);
        let digest = super::super::manifest::sha256_digest(&tar);
        store.put_blob(&digest, &tar).unwrap();
        let mt = "application/vnd.oci.image.layer.v1.tar";

        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = store
            .unpack_snapshot("img", "layer 1", &digest, mt, &wrong, &wrong)
            .unwrap_err();
        assert!(
            matches!(err, ImageStoreError::DiffIdMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("img") && err.to_string().contains("layer 1"));
        let left: Vec<_> = fs::read_dir(store.dir().join("snapshots"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");

        let size = store
            .unpack_snapshot("img", "layer 1", &digest, mt, &digest, &digest)
            .unwrap_or_else(|e| panic!("{e}: {:?}", std::error::Error::source(&e)));
        assert_eq!(size, tar.len() as u64);
        let snap = store.snapshot_path(&digest).unwrap();
        assert_eq!(fs::read(snap.join("bin/hello")).unwrap(), b"hi");

        // Nothing is registered, so prune frees both the blob and the snapshot.
        fs::write(store.dir().join("blobs/sha256/.tmp-stale"), b"x").unwrap();
        let report = store.prune(None, &HashSet::new()).unwrap();
        assert_eq!((report.blobs, report.snapshots), (2, 1));
        assert!(!snap.exists());
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        io::Write::write_all(&mut e, data).unwrap();
        e.finish().unwrap()
    }

    /// Zeros compress about 1000×: a layer expanding beyond its limit is
    /// refused with an error naming the limit and the flag that raises it,
    /// whether the zeros are a file or trail the archive, and nothing is
    /// left behind.
    #[test]
    fn zeros_bombs_are_refused_at_the_limit() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path())
            .unwrap()
            .with_layer_limit(LayerLimit {
                max_size: 1 << 20,
                max_ratio: 100,
            });
        let file = layer_tar(&[("zeros", &vec![0u8; 4 << 20])]);
        let mut trailing = layer_tar(&[("small", b"x")]);
        trailing.resize(4 << 20, 0);
        let mt = "application/vnd.oci.image.layer.v1.tar+gzip";
        for tar in [file, trailing] {
            let blob = gzip(&tar);
            let digest = super::super::manifest::sha256_digest(&blob);
            let diff_id = super::super::manifest::sha256_digest(&tar);
            store.put_blob(&digest, &blob).unwrap();
            let err = store
                .unpack_snapshot("img", "layer 1/1", &digest, mt, &diff_id, &diff_id)
                .unwrap_err();
            assert!(
                matches!(err, ImageStoreError::LayerTooLarge { .. }),
                "{err}"
            );
            let msg = err.to_string();
            assert!(msg.contains("img") && msg.contains("layer 1/1"), "{msg}");
            assert!(msg.contains("1048576 bytes"), "{msg}");
            assert!(msg.contains("--max-layer-size"), "{msg}");
            let left: Vec<_> = fs::read_dir(store.dir().join("snapshots"))
                .unwrap()
                .collect();
            assert!(left.is_empty(), "nothing left behind: {left:?}");
        }
        // Exactly at the limit is fine.
        let mut exact = layer_tar(&[("small", b"x")]);
        exact.resize(1 << 20, 0);
        let blob = gzip(&exact);
        let digest = super::super::manifest::sha256_digest(&blob);
        let diff_id = super::super::manifest::sha256_digest(&exact);
        store.put_blob(&digest, &blob).unwrap();
        store
            .unpack_snapshot("img", "layer", &digest, mt, &diff_id, &diff_id)
            .unwrap();
    }

    /// Temporaries of a pull that died are removed by the next open, but
    /// not while some process holds the store lock (they may be its own).
    #[test]
    fn open_removes_dead_temporaries_and_prune_counts_what_it_frees() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let snap_tmp = store.dir().join("snapshots/.tmp-dead");
        fs::create_dir_all(snap_tmp.join("usr/lib")).unwrap();
        fs::write(snap_tmp.join("usr/lib/big"), vec![7u8; 1 << 20]).unwrap();
        let blob_tmp = store.dir().join("blobs/sha256/.tmp-dead");
        fs::write(&blob_tmp, vec![7u8; 256 << 10]).unwrap();

        let held = store.lock_shared().unwrap();
        let busy = Store::open(root.path()).unwrap();
        assert!(
            snap_tmp.exists() && blob_tmp.exists(),
            "a live pull's files"
        );
        drop(held);
        let reopened = Store::open(root.path()).unwrap();
        assert!(
            !snap_tmp.exists() && !blob_tmp.exists(),
            "leftovers removed"
        );
        drop(busy);

        // What the open removed is part of what prune reports…
        let report = reopened.prune(None, &HashSet::new()).unwrap();
        assert!(report.bytes >= (1 << 20) + (256 << 10), "{report:?}");

        // …and so are the snapshots prune removes itself, not only blobs.
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        let tar = layer_tar(&[("lib/data", &data)]);
        let digest = super::super::manifest::sha256_digest(&tar);
        store.put_blob(&digest, &tar).unwrap();
        let mt = "application/vnd.oci.image.layer.v1.tar";
        store
            .unpack_snapshot("img", "layer", &digest, mt, &digest, &digest)
            .unwrap();
        let report = store.prune(None, &HashSet::new()).unwrap();
        assert_eq!((report.blobs, report.snapshots), (1, 1));
        assert!(report.bytes >= 2 << 20, "blob and snapshot: {report:?}");
    }

    #[test]
    fn digests_never_become_paths() {
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
