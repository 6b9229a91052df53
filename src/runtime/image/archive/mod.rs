//! `save` and `load`: images as tar archives, in the two shapes users have.
//!
//! * docker-archive (`docker save`): `manifest.json` listing each image's
//!   config file, `RepoTags` and layer tars (uncompressed), plus the legacy
//!   `repositories` file.
//! * OCI image layout (`skopeo copy … oci-archive:`): `oci-layout`,
//!   `index.json`, and every blob under `blobs/sha256/<hex>`, byte for byte.
//!
//! `load` detects which one it got. Archives are hostile input like layers:
//! no name from the archive ever becomes a path on disk. Each regular entry
//! is streamed into a temporary file of the content store while its sha256
//! is computed; entries are then looked up by name in memory. Only blobs an
//! image needs are committed, each under its computed digest, and layers go
//! through the same unpacker (and diff_id check) as pulled ones. Images are
//! registered only once every layer of theirs has been unpacked.

mod load;
mod save;

use std::path::PathBuf;

pub use load::load;
pub use save::save;

use super::manifest::ManifestError;
use super::store::ImageStoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Docker,
    Oci,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error("{what}: {source}")]
    Manifest { what: String, source: ManifestError },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error(
        "not an image archive: it has neither manifest.json (docker) nor index.json (OCI layout)"
    )]
    UnknownFormat,
    #[error("the archive lacks {0}")]
    Missing(String),
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("{0}: no such image")]
    NotFound(String),
}

impl ArchiveError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ArchiveError {
        let path = path.into();
        move |source| ArchiveError::Io { path, source }
    }
}

/// JSON documents inside an archive are small; anything larger is refused.
const MAX_DOCUMENT: u64 = 8 << 20;

/// Media type of a layer by its first bytes (docker archives do not say).
fn sniff_layer_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.docker.image.rootfs.diff.tar"
    }
}
