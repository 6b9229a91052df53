//! Reading archives (see mod.rs for the safety rules).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{sniff_layer_type, ArchiveError, MAX_DOCUMENT};
use crate::runtime::image::manifest::{self, Descriptor, Fetched, ImageConfig, Manifest};
use crate::runtime::image::meta::{LayerRecord, ManifestRecord};
use crate::runtime::image::reference::Reference;
use crate::runtime::image::store::{ImageStoreError, Store};

/// One regular file of the archive, now in a temporary file of the store.
struct Entry {
    tmp: PathBuf,
    digest: String,
    size: u64,
    head: Vec<u8>,
}

/// The archive's files by name; temporaries are removed on drop (committed
/// ones have been renamed away, so the remove finds nothing).
struct Extracted {
    files: HashMap<String, Entry>,
    /// Symlinks between archive members (old `docker save` links shared
    /// layers); resolved by name only, never on disk.
    links: HashMap<String, String>,
}

impl Drop for Extracted {
    fn drop(&mut self) {
        for e in self.files.values() {
            let _ = fs::remove_file(&e.tmp);
        }
    }
}

/// `./a/../b` → `b`; None for names that climb out of the archive.
fn clean(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Extracted {
    fn read(store: &Store, input: &Path) -> Result<Extracted, ArchiveError> {
        let file = fs::File::open(input).map_err(ArchiveError::io(input))?;
        let mut archive = tar::Archive::new(BufReader::with_capacity(256 << 10, file));
        let mut out = Extracted {
            files: HashMap::new(),
            links: HashMap::new(),
        };
        let entries = archive.entries().map_err(ArchiveError::io(input))?;
        for entry in entries {
            let mut entry = entry.map_err(ArchiveError::io(input))?;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = clean(&raw_name) else {
                tracing::warn!(entry = %raw_name, "ignoring an archive entry outside the archive root");
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let base = name.rsplit_once('/').map_or("", |(d, _)| d);
                    if let Some(t) = clean(&format!("{base}/{target}")) {
                        out.links.insert(name, t);
                    }
                    continue;
                }
                _ => continue,
            }
            let tmp = store.temp_blob_path();
            // Registered before writing so that Drop removes it on any error.
            out.files.insert(
                name.clone(),
                Entry {
                    tmp: tmp.clone(),
                    digest: String::new(),
                    size: 0,
                    head: Vec::new(),
                },
            );
            let mut f = fs::File::create(&tmp).map_err(ArchiveError::io(&tmp))?;
            let mut hasher = Sha256::new();
            let mut head = Vec::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = entry.read(&mut buf).map_err(ArchiveError::io(input))?;
                if n == 0 {
                    break;
                }
                if head.len() < 8 {
                    head.extend_from_slice(&buf[..n.min(8 - head.len())]);
                }
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n]).map_err(ArchiveError::io(&tmp))?;
                size += n as u64;
            }
            f.sync_all().map_err(ArchiveError::io(&tmp))?;
            if let Some(e) = out.files.get_mut(&name) {
                e.digest = format!("sha256:{}", hex::encode(hasher.finalize()));
                e.size = size;
                e.head = head;
            }
        }
        Ok(out)
    }

    fn get(&self, name: &str) -> Result<&Entry, ArchiveError> {
        let mut name = clean(name).ok_or_else(|| ArchiveError::Missing(name.to_string()))?;
        for _ in 0..8 {
            if let Some(e) = self.files.get(&name) {
                return Ok(e);
            }
            match self.links.get(&name) {
                Some(t) => name = t.clone(),
                None => break,
            }
        }
        Err(ArchiveError::Missing(name))
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_ok()
    }

    /// A small document, read into memory.
    fn document(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let e = self.get(name)?;
        if e.size > MAX_DOCUMENT {
            return Err(ArchiveError::Invalid {
                what: name.to_string(),
                message: format!("{} bytes is too large for a JSON document", e.size),
            });
        }
        fs::read(&e.tmp).map_err(ArchiveError::io(&e.tmp))
    }

    /// An OCI layout blob, checked against the digest in its name.
    fn blob(&self, digest: &str) -> Result<&Entry, ArchiveError> {
        let hex = crate::runtime::image::store::digest_hex(digest)?;
        let name = format!("blobs/sha256/{hex}");
        let e = self.get(&name)?;
        if e.digest != digest {
            return Err(ArchiveError::DigestMismatch {
                what: name,
                expected: digest.to_string(),
                actual: e.digest.clone(),
            });
        }
        Ok(e)
    }
}

/// An image found in the archive, ready to be stored.
struct Found {
    names: Vec<String>,
    manifest_raw: Vec<u8>,
    manifest: Manifest,
    config_raw: Vec<u8>,
    config: ImageConfig,
    /// Archive file holding each layer blob, by blob digest.
    layer_files: Vec<String>,
}

/// Load every image of the archive at `input`; returns the names registered.
pub fn load(store: &Store, input: &Path) -> Result<Vec<String>, ArchiveError> {
    let _lock = store.lock_shared()?;
    let archive = Extracted::read(store, input)?;
    let found = if archive.has("manifest.json") {
        docker_images(&archive)?
    } else if archive.has("index.json") {
        oci_images(&archive)?
    } else {
        return Err(ArchiveError::UnknownFormat);
    };
    let mut committed = HashSet::new();
    let mut loaded = Vec::new();
    for image in found {
        let label = image
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| image.manifest.config.digest.clone());
        let manifest_digest = manifest::sha256_digest(&image.manifest_raw);
        store.put_blob(&manifest_digest, &image.manifest_raw)?;
        store.put_blob(&image.manifest.config.digest, &image.config_raw)?;
        let diff_ids = &image.config.rootfs.diff_ids;
        let chain_ids = manifest::chain_ids(diff_ids);
        let count = image.manifest.layers.len();
        let mut layers = Vec::with_capacity(count);
        let mut size = 0;
        for (i, desc) in image.manifest.layers.iter().enumerate() {
            let what = format!("layer {}/{count} {}", i + 1, desc.digest);
            let entry = archive.get(&image.layer_files[i])?;
            if !store.has_blob(&desc.digest)? && committed.insert(desc.digest.clone()) {
                store.commit_blob(&entry.tmp, &desc.digest)?;
            }
            size += store.unpack_snapshot(
                &label,
                &what,
                &desc.digest,
                &desc.media_type,
                &diff_ids[i],
                &chain_ids[i],
            )?;
            layers.push(LayerRecord {
                blob_digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                blob_size: desc.size,
                diff_id: diff_ids[i].clone(),
                chain_id: chain_ids[i].clone(),
            });
        }
        let record = ManifestRecord {
            digest: manifest_digest,
            config_digest: image.manifest.config.digest.clone(),
            media_type: image
                .manifest
                .media_type
                .clone()
                .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string()),
            index_digest: None,
            created: image.config.created.clone(),
            os: image.config.os.clone(),
            arch: image.config.architecture.clone(),
            size,
            layers,
        };
        let mut names = image.names;
        if names.is_empty() {
            // Untagged images still need a name to be kept (and shown).
            let hex = crate::runtime::image::store::digest_hex(&record.config_digest)?;
            names.push(format!("localhost/loaded-{}:latest", &hex[..12]));
        }
        store
            .meta()?
            .register(&record, &names)
            .map_err(ImageStoreError::from)?;
        tracing::info!(image = %label, digest = %record.digest, "loaded");
        loaded.extend(names);
    }
    Ok(loaded)
}

fn bad_manifest(what: &str) -> impl FnOnce(manifest::ManifestError) -> ArchiveError + '_ {
    move |source| ArchiveError::Manifest {
        what: what.to_string(),
        source,
    }
}

fn normalise(name: &str) -> Result<String, ArchiveError> {
    Reference::parse(name)
        .map(|r| r.to_string())
        .map_err(|e| ArchiveError::Invalid {
            what: format!("image name {name:?}"),
            message: e.to_string(),
        })
}

fn docker_images(archive: &Extracted) -> Result<Vec<Found>, ArchiveError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Item {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let raw = archive.document("manifest.json")?;
    let items: Vec<Item> = serde_json::from_slice(&raw).map_err(|e| ArchiveError::Invalid {
        what: "manifest.json".into(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for item in items {
        let config_raw = archive.document(&item.config)?;
        let config_digest = manifest::sha256_digest(&config_raw);
        // `docker save` names configs by their digest; hold it to that.
        if let Some(hex) = item
            .config
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|h| h.len() == 64)
        {
            if format!("sha256:{hex}") != config_digest {
                return Err(ArchiveError::DigestMismatch {
                    what: item.config.clone(),
                    expected: format!("sha256:{hex}"),
                    actual: config_digest,
                });
            }
        }
        let config = manifest::parse_config(&config_raw, item.layers.len())
            .map_err(bad_manifest(&item.config))?;
        let mut layers = Vec::new();
        for name in &item.layers {
            let e = archive.get(name)?;
            layers.push(Descriptor {
                media_type: sniff_layer_type(&e.head).to_string(),
                digest: e.digest.clone(),
                size: e.size,
                platform: None,
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest::DOCKER_MANIFEST.to_string()),
            config: Descriptor {
                media_type: manifest::DOCKER_CONFIG.to_string(),
                digest: config_digest,
                size: config_raw.len() as u64,
                platform: None,
            },
            layers,
        };
        let manifest_raw = serde_json::to_vec(&manifest).map_err(|e| ArchiveError::Invalid {
            what: "manifest".into(),
            message: e.to_string(),
        })?;
        let names = item
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|n| normalise(n))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Found {
            names,
            manifest_raw,
            manifest,
            config_raw,
            config,
            layer_files: item.layers,
        });
    }
    Ok(out)
}

fn oci_images(archive: &Extracted) -> Result<Vec<Found>, ArchiveError> {
    let raw = archive.document("index.json")?;
    let index = match manifest::parse(&raw, Some(manifest::OCI_INDEX)) {
        Ok(Fetched::Index(i)) => i,
        Ok(Fetched::Manifest(_)) => {
            return Err(ArchiveError::Invalid {
                what: "index.json".into(),
                message: "is a manifest, not an index".into(),
            })
        }
        Err(source) => {
            return Err(ArchiveError::Manifest {
                what: "index.json".into(),
                source,
            })
        }
    };
    // Annotations are not in the typed index; read them from the raw JSON.
    let annotated: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
    let mut out = Vec::new();
    for (i, entry) in index.manifests.iter().enumerate() {
        let ann = &annotated["manifests"][i]["annotations"];
        let name = ann["io.containerd.image.name"]
            .as_str()
            .or_else(|| ann["org.opencontainers.image.ref.name"].as_str());
        let names = match name {
            Some(n) => vec![normalise(n)?],
            None => Vec::new(),
        };
        let mut digest = entry.digest.clone();
        let mut media_type = entry.media_type.clone();
        // A nested index (multi-platform): take the host's platform.
        for _ in 0..2 {
            let what = format!("manifest {digest}");
            let raw = read_blob_doc(archive, &digest)?;
            match manifest::parse(&raw, Some(&media_type)).map_err(bad_manifest(&what))? {
                Fetched::Index(nested) => {
                    let arch = manifest::host_arch();
                    let pick = manifest::pick_platform(&nested, arch).ok_or_else(|| {
                        ArchiveError::Invalid {
                            what: what.clone(),
                            message: format!("no manifest for linux/{arch}"),
                        }
                    })?;
                    digest = pick.digest.clone();
                    media_type = pick.media_type.clone();
                }
                Fetched::Manifest(manifest) => {
                    let config_raw = read_blob_doc(archive, &manifest.config.digest)?;
                    let config = manifest::parse_config(&config_raw, manifest.layers.len())
                        .map_err(bad_manifest(&what))?;
                    let mut layer_files = Vec::new();
                    for l in &manifest.layers {
                        archive.blob(&l.digest)?;
                        let hex = crate::runtime::image::store::digest_hex(&l.digest)?;
                        layer_files.push(format!("blobs/sha256/{hex}"));
                    }
                    out.push(Found {
                        names: names.clone(),
                        manifest_raw: raw,
                        manifest,
                        config_raw,
                        config,
                        layer_files,
                    });
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn read_blob_doc(archive: &Extracted, digest: &str) -> Result<Vec<u8>, ArchiveError> {
    let e = archive.blob(digest)?;
    if e.size > MAX_DOCUMENT {
        return Err(ArchiveError::Invalid {
            what: format!("blob {digest}"),
            message: format!("{} bytes is too large for a JSON document", e.size),
        });
    }
    fs::read(&e.tmp).map_err(ArchiveError::io(&e.tmp))
}
