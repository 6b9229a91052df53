//! Manifests dropped into `<data-dir>/server/manifests` are applied, as
//! k3s's auto-deploy does: at start and whenever a file changes (looked at
//! every few seconds), each object server-side applied by field manager
//! `skiff-deploy`; objects a changed file no longer has are deleted, and a
//! removed file (or one named by `--disable NAME`) takes its objects with
//! it. What each file applied is kept in a ConfigMap
//! `kube-system/skiff-manifest-<name>` (its checksum and objects), so a
//! restart neither applies an unchanged file again nor forgets what to
//! remove.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub const AGENT: &str = "skiff-deploy";
/// The user the manifests are applied as: an admin's, as k3s applies them.
pub const USER: &str = "system:skiff:deploy";
const NAMESPACE: &str = "kube-system";
const PREFIX: &str = "skiff-manifest-";
const LABEL: &str = "skiff.io/manifest";
/// How often the directory is looked at.
const INTERVAL: Duration = Duration::from_secs(5);
/// A manifest larger than this is refused (a bundle of CRDs is a few MiB).
const MAX_FILE: u64 = 8 << 20;

#[derive(Clone)]
pub struct Config {
    pub dir: PathBuf,
    /// Manifest names (file names without their extension) not applied,
    /// and removed if they were (`--disable`).
    pub disabled: Vec<String>,
}

/// One applied object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    api_version: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
}

/// The manifests in `dir` that are applied: name → path.
fn manifests(cfg: &Config) -> BTreeMap<String, PathBuf> {
    let Ok(entries) = std::fs::read_dir(&cfg.dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let path = e.path();
            let file = path.file_name()?.to_str()?.to_string();
            let stem = ["yaml", "yml", "json"]
                .iter()
                .find_map(|ext| file.strip_suffix(&format!(".{ext}")))?;
            let name = record_name(stem)?;
            (!file.starts_with('.') && !cfg.disabled.iter().any(|d| d == stem))
                .then_some((name, path))
        })
        .collect()
}

/// The record's name for manifest `stem`: a DNS label, or None (the file
/// is skipped and said so).
fn record_name(stem: &str) -> Option<String> {
    let ok = !stem.is_empty()
        && stem.len() + PREFIX.len() <= 253
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !ok {
        tracing::warn!(
            manifest = stem,
            "manifest skipped: name it with lowercase letters, digits, '-' and '.'"
        );
    }
    ok.then(|| stem.to_string())
}

fn checksum(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// One manifest as read: its path, contents and checksum (None: it could
/// not be read; what it applied stays).
struct Read {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
    sum: String,
}

/// The manifests, read.
fn read_all(cfg: &Config) -> BTreeMap<String, Read> {
    manifests(cfg)
        .into_iter()
        .map(|(name, path)| {
            let bytes = read_bounded(&path)
                .map_err(|e| tracing::warn!(manifest = %path.display(), "reading: {e}"))
                .ok();
            let sum = bytes.as_deref().map(checksum).unwrap_or_default();
            (name, Read { path, bytes, sum })
        })
        .collect()
}

pub async fn run(client: kube::Client, cfg: Config, cancel: CancellationToken) {
    let records: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    // The manifests (name → checksum) as last applied in full: while the
    // directory stays so, the API is not asked anything.
    let mut settled: Option<BTreeMap<String, String>> = None;
    loop {
        let files = read_all(&cfg);
        let now: BTreeMap<String, String> = files
            .iter()
            .map(|(n, r)| (n.clone(), r.sum.clone()))
            .collect();
        if settled.as_ref() != Some(&now) {
            match sync(&client, &records, files).await {
                Ok(true) => settled = Some(now),
                Ok(false) => settled = None,
                Err(e) => {
                    settled = None;
                    tracing::warn!("applying manifests from {}: {e}", cfg.dir.display());
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Bring the applied objects in step with `files`; whether every file
/// was applied.
async fn sync(
    client: &kube::Client,
    records: &Api<ConfigMap>,
    files: BTreeMap<String, Read>,
) -> Result<bool, kube::Error> {
    let mut all = true;
    let existing: BTreeMap<String, ConfigMap> = records
        .list(&ListParams::default().labels(LABEL))
        .await?
        .items
        .into_iter()
        .filter_map(|cm| {
            Some((
                cm.metadata.name.clone()?.strip_prefix(PREFIX)?.to_string(),
                cm,
            ))
        })
        .collect();
    for (name, Read { path, bytes, sum }) in &files {
        let Some(bytes) = bytes else {
            all = false;
            continue;
        };
        let record = existing.get(name);
        if record.and_then(|r| r.data.as_ref()?.get("checksum")) == Some(sum) {
            continue;
        }
        let before = record.map(objects_of).unwrap_or_default();
        match apply_file(client, bytes).await {
            Ok(applied) => {
                for gone in before.iter().filter(|o| !applied.contains(o)) {
                    delete(client, gone).await;
                }
                save_record(records, name, path, sum, &applied).await?;
                tracing::info!(manifest = %path.display(), objects = applied.len(), "applied the manifest");
            }
            Err(e) => {
                all = false;
                tracing::warn!(manifest = %path.display(), "applying: {e}");
            }
        }
    }
    for (name, record) in &existing {
        if files.contains_key(name) {
            continue;
        }
        for o in objects_of(record) {
            delete(client, &o).await;
        }
        records
            .delete(&format!("{PREFIX}{name}"), &DeleteParams::default())
            .await?;
        tracing::info!(
            manifest = name,
            "the manifest is gone (or disabled): removed its objects"
        );
    }
    Ok(all)
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE} bytes"
        )));
    }
    Ok(out)
}

fn objects_of(record: &ConfigMap) -> Vec<ObjectRef> {
    record
        .data
        .as_ref()
        .and_then(|d| d.get("objects"))
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default()
}

/// Apply every object of a manifest; the objects applied.
async fn apply_file(client: &kube::Client, bytes: &[u8]) -> Result<Vec<ObjectRef>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(text).map_err(|e| format!("not YAML: {e}"))?;
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let mut obj: DynamicObject =
            serde_json::from_value(doc).map_err(|e| format!("not a Kubernetes object: {e}"))?;
        let types = obj
            .types
            .clone()
            .ok_or("an object without apiVersion and kind")?;
        let name = obj
            .metadata
            .name
            .clone()
            .ok_or("an object without a name")?;
        let gvk = GroupVersionKind::try_from(&types).map_err(|e| e.to_string())?;
        let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|e| format!("{}/{}: {e}", types.api_version, types.kind))?;
        let namespaced = caps.scope == kube::discovery::Scope::Namespaced;
        let namespace = namespaced.then(|| {
            obj.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into())
        });
        obj.metadata.namespace = namespace.clone();
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply(AGENT).force(),
            &Patch::Apply(&obj),
        )
        .await
        .map_err(|e| format!("{} {name}: {e}", types.kind))?;
        applied.push(ObjectRef {
            api_version: types.api_version,
            kind: types.kind,
            namespace,
            name,
        });
    }
    applied.sort();
    applied.dedup();
    Ok(applied)
}

async fn delete(client: &kube::Client, o: &ObjectRef) {
    let types = kube::core::TypeMeta {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
    };
    let Ok(gvk) = GroupVersionKind::try_from(&types) else {
        return;
    };
    let Ok((resource, _)) = kube::discovery::pinned_kind(client, &gvk).await else {
        return;
    };
    let api: Api<DynamicObject> = match &o.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    match api.delete(&o.name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            tracing::warn!(kind = %o.kind, name = %o.name, "removing an object of a manifest: {e}")
        }
    }
}

async fn save_record(
    records: &Api<ConfigMap>,
    name: &str,
    path: &Path,
    sum: &str,
    applied: &[ObjectRef],
) -> Result<(), kube::Error> {
    let objects = serde_json::to_string(applied).unwrap_or_else(|_| "[]".into());
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{PREFIX}{name}"), "namespace": NAMESPACE, "labels": {LABEL: "true"}},
        "data": {"file": path.display().to_string(), "checksum": sum, "objects": objects},
    }))
    .map_err(kube::Error::SerdeError)?;
    let full = format!("{PREFIX}{name}");
    match records.replace(&full, &PostParams::default(), &cm).await {
        Err(kube::Error::Api(e)) if e.code == 404 => records
            .create(&PostParams::default(), &cm)
            .await
            .map(|_| ()),
        r => r.map(|_| ()),
    }
}
