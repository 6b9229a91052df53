//! The JSON documents of an image: manifests (Docker v2 schema 2 and OCI share
//! one shape), indexes / manifest lists, and the image config. Only the fields
//! skiff acts on are typed; the raw bytes are stored as they came, so digests
//! stay valid and nothing is lost.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Every manifest type a pull accepts, for the `Accept` header.
pub const ACCEPTED: &[&str] = &[
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
];

/// Layer media types the unpacker understands.
pub const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// The image config (`application/vnd.oci.image.config.v1+json`); the
/// runtime part (`config`) is kept as JSON for the container spec builder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub config: serde_json::Value,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// What a manifest endpoint returned.
#[derive(Debug, Clone)]
pub enum Fetched {
    Manifest(Manifest),
    Index(Index),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("malformed manifest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest has schemaVersion {0}, want 2")]
    Schema(u32),
    #[error("layer {digest} has unsupported media type {media_type:?}")]
    LayerType { digest: String, media_type: String },
    #[error("image config lists {diff_ids} diff_ids for {layers} layers")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("malformed digest {0:?}")]
    Digest(String),
}

/// Decide what a manifest document is: by its declared media type, or by its
/// shape when an OCI document leaves the type out.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Fetched, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    let media_type = probe
        .media_type
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
        .filter(|m| !m.is_empty() && m != "application/json");
    let is_index = match media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        None => probe.manifests.is_some(),
        Some(other) => return Err(ManifestError::MediaType(other.to_string())),
    };
    if is_index {
        let index: Index = serde_json::from_slice(bytes)?;
        if index.schema_version != 2 {
            return Err(ManifestError::Schema(index.schema_version));
        }
        Ok(Fetched::Index(index))
    } else {
        let manifest: Manifest = serde_json::from_slice(bytes)?;
        if manifest.schema_version != 2 {
            return Err(ManifestError::Schema(manifest.schema_version));
        }
        for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
            check_digest(&d.digest)?;
        }
        for layer in &manifest.layers {
            if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                return Err(ManifestError::LayerType {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
        }
        Ok(Fetched::Manifest(manifest))
    }
}

fn check_digest(digest: &str) -> Result<(), ManifestError> {
    super::reference::validate_digest(digest).map_err(|_| ManifestError::Digest(digest.to_string()))
}

/// Parse a config and check that it describes as many layers as the manifest.
pub fn parse_config(bytes: &[u8], layers: usize) -> Result<ImageConfig, ManifestError> {
    let config: ImageConfig = serde_json::from_slice(bytes)?;
    if config.rootfs.diff_ids.len() != layers {
        return Err(ManifestError::LayerCount {
            layers,
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    for d in &config.rootfs.diff_ids {
        check_digest(d)?;
    }
    Ok(config)
}

/// The architecture name images use for this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Pick the manifest for linux + `arch` from an index.
pub fn pick_platform<'a>(index: &'a Index, arch: &str) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    })
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// OCI image spec: chainid(L1) = diffid(L1), chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let ids = vec![d(1), d(2), d(3)];
        let chain = chain_ids(&ids);
        assert_eq!(chain[0], ids[0]);
        assert_eq!(
            chain[1],
            sha256_digest(format!("{} {}", d(1), d(2)).as_bytes())
        );
        assert_eq!(
            chain[2],
            sha256_digest(format!("{} {}", chain[1], d(3)).as_bytes())
        );
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn parses_manifests_and_indexes() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{}","size":10}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":20}}]}}"#,
            d(1),
            d(2)
        );
        assert!(matches!(
            parse(m.as_bytes(), None),
            Ok(Fetched::Manifest(_))
        ));
        // OCI without mediaType: decided by shape.
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5,"platform":{{"architecture":"arm64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            d(3),
            d(4)
        );
        let Ok(Fetched::Index(index)) = parse(i.as_bytes(), None) else {
            panic!("not an index")
        };
        assert_eq!(
            pick_platform(&index, "amd64").map(|d| d.digest.clone()),
            Some(d(4))
        );
        assert!(pick_platform(&index, "s390x").is_none());
    }

    #[test]
    fn rejects_bad_manifests() {
        let bad_layer = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{}","size":1}},"layers":[{{"mediaType":"application/x-foo","digest":"{}","size":1}}]}}"#,
            d(1),
            d(2)
        );
        assert!(matches!(
            parse(bad_layer.as_bytes(), None),
            Err(ManifestError::LayerType { .. })
        ));
        assert!(matches!(
            parse(br#"{"mediaType":"text/plain"}"#, None),
            Err(ManifestError::MediaType(_))
        ));
        assert!(parse(b"not json", None).is_err());
        let bad_digest =
            r#"{"schemaVersion":2,"config":{"digest":"sha256:../../x","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(bad_digest.as_bytes(), None),
            Err(ManifestError::Digest(_))
        ));
        assert!(matches!(
            parse_config(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#, 1),
            Err(ManifestError::LayerCount { .. })
        ));
    }
}
