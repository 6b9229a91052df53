//! Writing archives. Every blob is re-hashed as it is copied out, so a store
//! damaged on disk cannot produce an archive that lies about its content.
//! The archive is written to a temporary file beside the output and renamed
//! only when complete.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ArchiveError, ArchiveFormat};
use crate::runtime::image::catalog;
use crate::runtime::image::manifest::{self, Fetched, Manifest};
use crate::runtime::image::meta::ImageRow;
use crate::runtime::image::reference::Reference;
use crate::runtime::image::store::{self, Store};
use crate::runtime::image::unpack;

/// One image to write: the row (name), its manifest and config bytes.
struct Selected {
    row: ImageRow,
    manifest_raw: Vec<u8>,
    manifest: Manifest,
    config_raw: Vec<u8>,
}

pub fn save(
    store: &Store,
    queries: &[String],
    format: ArchiveFormat,
    output: &Path,
) -> Result<(), ArchiveError> {
    // Shared lock: a prune must not delete blobs while they are copied out.
    let _lock = store.lock_shared()?;
    let rows = store.meta()?.list().map_err(store::ImageStoreError::from)?;
    let mut selected = Vec::new();
    for q in queries {
        let found = catalog::find(&rows, q).map_err(|_| ArchiveError::NotFound(q.clone()))?;
        // A name selects that name; an ID selects the image under its first name.
        let Some(row) = found.into_iter().next() else {
            return Err(ArchiveError::NotFound(q.clone()));
        };
        let manifest_raw = store.read_blob(&row.manifest_digest)?;
        let manifest = match manifest::parse(&manifest_raw, None) {
            Ok(Fetched::Manifest(m)) => m,
            Ok(Fetched::Index(_)) => {
                return Err(ArchiveError::Invalid {
                    what: row.name.clone(),
                    message: "stored manifest is an index".into(),
                })
            }
            Err(source) => {
                return Err(ArchiveError::Manifest {
                    what: row.name.clone(),
                    source,
                })
            }
        };
        let config_raw = store.read_blob(&manifest.config.digest)?;
        selected.push(Selected {
            row,
            manifest_raw,
            manifest,
            config_raw,
        });
    }

    let dir = output.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = match dir {
        Some(d) => d.join(format!(".skiff-save-{}", uuid::Uuid::new_v4().simple())),
        None => format!(".skiff-save-{}", uuid::Uuid::new_v4().simple()).into(),
    };
    let result = (|| {
        let file = fs::File::create(&tmp).map_err(ArchiveError::io(&tmp))?;
        let mut tar = tar::Builder::new(io::BufWriter::new(file));
        match format {
            ArchiveFormat::Docker => write_docker(store, &selected, &mut tar)?,
            ArchiveFormat::Oci => write_oci(store, &selected, &mut tar)?,
        }
        let mut w = tar.into_inner().map_err(ArchiveError::io(&tmp))?;
        w.flush().map_err(ArchiveError::io(&tmp))?;
        let f = w.into_inner().map_err(|e| ArchiveError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(ArchiveError::io(&tmp))?;
        fs::rename(&tmp, output).map_err(ArchiveError::io(output))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

type Tar = tar::Builder<io::BufWriter<fs::File>>;

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append_bytes(tar: &mut Tar, name: &str, data: &[u8]) -> Result<(), ArchiveError> {
    let mut h = header(data.len() as u64);
    tar.append_data(&mut h, name, data)
        .map_err(ArchiveError::io(name))
}

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn check(what: &str, expected: &str, hasher: Sha256) -> Result<(), ArchiveError> {
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != expected {
        return Err(ArchiveError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Copy a stored blob into the archive, checking its digest on the way.
fn append_blob(store: &Store, tar: &mut Tar, name: &str, digest: &str) -> Result<(), ArchiveError> {
    let path = store.blob_path(digest)?;
    let file = fs::File::open(&path).map_err(ArchiveError::io(&path))?;
    let size = file.metadata().map_err(ArchiveError::io(&path))?.len();
    let mut reader = Hashing {
        inner: BufReader::with_capacity(256 << 10, file),
        hasher: Sha256::new(),
    };
    let mut h = header(size);
    tar.append_data(&mut h, name, &mut reader)
        .map_err(ArchiveError::io(name))?;
    check(&format!("blob {digest}"), digest, reader.hasher)
}

fn write_oci(store: &Store, images: &[Selected], tar: &mut Tar) -> Result<(), ArchiveError> {
    append_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = HashSet::new();
    let mut entries = Vec::new();
    for image in images {
        let digests = std::iter::once(&image.manifest.config)
            .chain(&image.manifest.layers)
            .map(|d| d.digest.clone())
            .chain(std::iter::once(image.row.manifest_digest.clone()));
        for digest in digests {
            if written.insert(digest.clone()) {
                let name = format!("blobs/sha256/{}", store::digest_hex(&digest)?);
                append_blob(store, tar, &name, &digest)?;
            }
        }
        let reference = Reference::parse(&image.row.name).ok();
        let mut annotations = serde_json::Map::new();
        annotations.insert("io.containerd.image.name".into(), json!(image.row.name));
        if let Some(tag) = reference.as_ref().and_then(|r| r.tag()) {
            annotations.insert("org.opencontainers.image.ref.name".into(), json!(tag));
        }
        entries.push(json!({
            "mediaType": image.manifest.media_type.as_deref().unwrap_or(manifest::OCI_MANIFEST),
            "digest": image.row.manifest_digest,
            "size": image.manifest_raw.len(),
            "annotations": annotations,
            "platform": {"architecture": image.row.arch, "os": image.row.os},
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": entries,
    });
    let data = serde_json::to_vec(&index).map_err(|e| ArchiveError::Invalid {
        what: "index.json".into(),
        message: e.to_string(),
    })?;
    append_bytes(tar, "index.json", &data)
}

fn write_docker(store: &Store, images: &[Selected], tar: &mut Tar) -> Result<(), ArchiveError> {
    let mut written = HashSet::new();
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let config: manifest::ImageConfig =
            manifest::parse_config(&image.config_raw, image.manifest.layers.len()).map_err(
                |source| ArchiveError::Manifest {
                    what: format!("{}: config", image.row.name),
                    source,
                },
            )?;
        let config_hex = store::digest_hex(&image.manifest.config.digest)?.to_string();
        let config_name = format!("{config_hex}.json");
        if written.insert(config_name.clone()) {
            check(
                &format!("{}: config", image.row.name),
                &image.manifest.config.digest,
                {
                    let mut h = Sha256::new();
                    h.update(&image.config_raw);
                    h
                },
            )?;
            append_bytes(tar, &config_name, &image.config_raw)?;
        }
        let mut layer_names = Vec::new();
        for (i, (desc, diff_id)) in image
            .manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .enumerate()
        {
            let name = format!("{}/layer.tar", store::digest_hex(diff_id)?);
            if written.insert(name.clone()) {
                let what = format!(
                    "{}: layer {}/{} {}",
                    image.row.name,
                    i + 1,
                    image.manifest.layers.len(),
                    desc.digest
                );
                append_uncompressed(store, tar, &name, desc, diff_id, &what)?;
            }
            layer_names.push(name);
        }
        let mut repo_tags = Vec::new();
        if let Ok(r) = Reference::parse(&image.row.name) {
            if let Some(tag) = r.tag() {
                repo_tags.push(format!("{}:{tag}", r.familiar_name()));
                if let Some(top) = config.rootfs.diff_ids.last() {
                    repositories
                        .entry(r.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), store::digest_hex(top)?.to_string());
                }
            }
        }
        manifest_json.push(json!({
            "Config": config_name,
            "RepoTags": repo_tags,
            "Layers": layer_names,
        }));
    }
    let to_vec = |v: &serde_json::Value, what: &str| {
        serde_json::to_vec(v).map_err(|e| ArchiveError::Invalid {
            what: what.into(),
            message: e.to_string(),
        })
    };
    append_bytes(
        tar,
        "manifest.json",
        &to_vec(&json!(manifest_json), "manifest.json")?,
    )?;
    append_bytes(
        tar,
        "repositories",
        &to_vec(&json!(repositories), "repositories")?,
    )
}

/// Docker archives hold uncompressed layer tars: decompress the stored blob
/// into a temporary file (the tar header needs the size first), checking it
/// against the diff_id, then append it.
fn append_uncompressed(
    store: &Store,
    tar: &mut Tar,
    name: &str,
    desc: &manifest::Descriptor,
    diff_id: &str,
    what: &str,
) -> Result<(), ArchiveError> {
    let blob = store.blob_path(&desc.digest)?;
    let file = fs::File::open(&blob).map_err(ArchiveError::io(&blob))?;
    let reader = unpack::decompress(BufReader::with_capacity(256 << 10, file), &desc.media_type)
        .map_err(|e| ArchiveError::Invalid {
            what: what.to_string(),
            message: e.to_string(),
        })?;
    let mut hashing = Hashing {
        inner: reader,
        hasher: Sha256::new(),
    };
    let tmp = store.temp_blob_path();
    let result = (|| {
        let mut out = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(ArchiveError::io(&tmp))?;
        let size = io::copy(&mut hashing, &mut out).map_err(ArchiveError::io(&blob))?;
        check(what, diff_id, hashing.hasher.clone())?;
        out.rewind().map_err(ArchiveError::io(&tmp))?;
        let mut h = header(size);
        tar.append_data(&mut h, name, BufReader::new(out))
            .map_err(ArchiveError::io(name))
    })();
    let _ = fs::remove_file(&tmp);
    result
}
