//! Images written by hand for the image tests: layers are tar streams built
//! from raw headers (so hostile entries — `..`, absolute links — can be
//! written, which `tar::Builder`'s path setters refuse), compressed as asked,
//! with a config whose diff_ids match and an OCI manifest. An index can join
//! several per-platform images. `Registry::push_image` uploads them.

#![allow(dead_code)]

use std::io::Write;

use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A tar stream built entry by entry from raw headers.
pub struct LayerTar {
    b: tar::Builder<Vec<u8>>,
}

fn header(name: &str, ty: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let old = h.as_old_mut();
    assert!(name.len() <= old.name.len(), "test name too long");
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl Default for LayerTar {
    fn default() -> Self {
        LayerTar::new()
    }
}

impl LayerTar {
    pub fn new() -> LayerTar {
        LayerTar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn raw(mut self, mut h: tar::Header, data: &[u8]) -> Self {
        h.set_cksum();
        self.b.append(&h, data).expect("append to in-memory tar");
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        let h = header(name, tar::EntryType::Regular, 0o644, data.len() as u64);
        self.raw(h, data)
    }

    pub fn dir(self, name: &str) -> Self {
        let h = header(name, tar::EntryType::Directory, 0o755, 0);
        self.raw(h, &[])
    }

    fn link(self, ty: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = header(name, ty, 0o777, 0);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, &[])
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, name, target)
    }

    pub fn bytes(self) -> Vec<u8> {
        self.b.into_inner().expect("finish in-memory tar")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip");
                e.finish().expect("gzip")
            }
            Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd"),
        }
    }
}

/// A blob with the descriptor fields a manifest needs.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub data: Vec<u8>,
    /// What the manifest claims; `data.len()` unless a test lies.
    pub claimed_size: u64,
}

impl Blob {
    pub fn digest(&self) -> String {
        sha256(&self.data)
    }

    fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.claimed_size,
        })
    }
}

/// One platform image: config, layers and the manifest bytes.
#[derive(Debug, Clone)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Vec<u8>,
}

impl Image {
    /// An image of `layers` (uncompressed tars) compressed with `c`.
    pub fn new(arch: &str, layers: &[Vec<u8>], c: Compression) -> Image {
        let blobs: Vec<Blob> = layers
            .iter()
            .map(|tar| {
                let data = c.compress(tar);
                Blob {
                    media_type: c.media_type().to_string(),
                    claimed_size: data.len() as u64,
                    data,
                }
            })
            .collect();
        let diff_ids: Vec<String> = layers.iter().map(|t| sha256(t)).collect();
        Image::assemble(arch, blobs, diff_ids)
    }

    /// Build from given layer blobs and diff_ids (hostile tests pass lies).
    pub fn assemble(arch: &str, layers: Vec<Blob>, diff_ids: Vec<String>) -> Image {
        let config = serde_json::json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let data = serde_json::to_vec(&config).expect("config JSON");
        let config = Blob {
            media_type: OCI_CONFIG.to_string(),
            claimed_size: data.len() as u64,
            data,
        };
        let mut image = Image {
            config,
            layers,
            manifest: Vec::new(),
        };
        image.rewrite_manifest();
        image
    }

    /// Recompute the manifest after a test changed a descriptor.
    pub fn rewrite_manifest(&mut self) {
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config.descriptor(),
            "layers": self.layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        self.manifest = serde_json::to_vec(&m).expect("manifest JSON");
    }

    pub fn manifest_digest(&self) -> String {
        sha256(&self.manifest)
    }

    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// An OCI index over per-architecture images (all linux).
pub fn index(images: &[(&str, &Image)]) -> Vec<u8> {
    let manifests: Vec<_> = images
        .iter()
        .map(|(arch, image)| {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": image.manifest_digest(),
                "size": image.manifest.len(),
                "platform": {"architecture": arch, "os": "linux"},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("index JSON")
}
