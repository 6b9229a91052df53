//! Static pods: pods the node runs from manifest files in its
//! pod-manifests directory (kubelet's `staticPodPath`), whatever the API
//! says. Each file holds one Pod; the node runs it as
//! `<name>-<node>` in its namespace (`default` when none), with a UID
//! that is a hash of the manifest, so that the same file is the same pod
//! across agent restarts and an edited file is a new pod. The API sees a
//! mirror pod of each (mirror.rs) with the status the node reports.
//!
//! The directory is watched with inotify and read again every 20 s
//! (kubelet's `fileCheckFrequency`). A file that does not parse (half
//! written, or wrong) keeps the pod its last good version described, so an
//! editor saving a file never stops a running pod on the way.

pub mod mirror;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// kubelet's annotations on static pods and their mirrors.
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// kubelet's `fileCheckFrequency`.
const RESCAN: Duration = Duration::from_secs(20);
/// A manifest is a small file; anything bigger is not read.
const MAX_MANIFEST: u64 = 1 << 20;
/// At most this many manifests are run (a node runs at most 110 pods).
const MAX_MANIFESTS: usize = 256;

/// The static pods, as the source last read them.
pub type Statics = Arc<Vec<Pod>>;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}: not a YAML or JSON document: {1}")]
    Parse(String, String),
    #[error("{0}: the manifest is a {1}, not a Pod (one Pod per file)")]
    NotAPod(String, String),
    #[error("{0}: the pod is invalid: {1}")]
    Invalid(String, String),
    #[error("{0}: larger than {MAX_MANIFEST} bytes")]
    TooLarge(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Whether `pod` is a mirror pod (the API's view of some node's static
/// pod), which no agent runs from the API.
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, MIRROR_ANNOTATION).is_some()
}

pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Whether `uid` is a static pod's (32 hex digits; the API's are UUIDs).
pub fn is_static_uid(uid: &str) -> bool {
    uid.len() == 32
        && uid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `<namespace>/<name>`.
pub fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// The static pod manifest `text` (read from `path`) describes, as node
/// `node` runs it.
pub fn load(path: &Path, text: &str, node: &str) -> Result<Pod, ManifestError> {
    let shown = path.display().to_string();
    let mut v: Value = serde_saphyr::from_str(text)
        .map_err(|e| ManifestError::Parse(shown.clone(), e.to_string()))?;
    if !v.is_object() {
        return Err(ManifestError::Parse(shown, "not a mapping".into()));
    }
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = v.get("apiVersion").and_then(Value::as_str);
    if kind != "Pod" || api_version.is_some_and(|a| a != "v1") {
        let what = format!("{} {kind}", api_version.unwrap_or_default());
        return Err(ManifestError::NotAPod(shown, what.trim().to_string()));
    }
    v["apiVersion"] = json!("v1");
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ManifestError::Invalid(shown.clone(), "metadata.name: Required value".into())
        })?
        .to_string();
    crate::api::defaulting::apply_defaults(&crate::api::rules::POD, &mut v);
    // The UID is the manifest's (as defaulted), the node's and the file's:
    // stable across restarts, new when any of them changes.
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&crate::api::sort_keys(&v)).unwrap_or_default());
    hasher.update(format!("host:{node}").as_bytes());
    hasher.update(format!("file:{shown}").as_bytes());
    let uid = hex::encode(&hasher.finalize()[..16]);
    let meta = v
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ManifestError::Invalid(shown.clone(), "metadata: Required value".into()))?;
    meta.insert(
        "name".into(),
        json!(format!("{name}-{}", node.to_lowercase())),
    );
    if meta
        .get("namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        meta.insert("namespace".into(), json!("default"));
    }
    meta.insert("uid".into(), json!(uid));
    for server_owned in ["resourceVersion", "creationTimestamp", "deletionTimestamp"] {
        meta.remove(server_owned);
    }
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| {
            ManifestError::Invalid(shown.clone(), "metadata.annotations: not a map".into())
        })?;
    annotations.insert(HASH_ANNOTATION.into(), json!(uid));
    annotations.insert(SOURCE_ANNOTATION.into(), json!("file"));
    annotations.remove(MIRROR_ANNOTATION);
    let spec = v
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ManifestError::Invalid(shown.clone(), "spec: Required value".into()))?;
    spec.insert("nodeName".into(), json!(node));
    // Never evicted for a node condition, as kubelet's static pods.
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(t) = tolerations.as_array_mut() {
        t.push(json!({"operator": "Exists", "effect": "NoExecute"}));
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    let causes = crate::api::validation::validate_create(&crate::api::rules::POD, &v);
    if !causes.is_empty() {
        let why: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        return Err(ManifestError::Invalid(shown, why.join("; ")));
    }
    serde_json::from_value(v).map_err(|e| ManifestError::Invalid(shown, e.to_string()))
}

/// Whether the directory entry `name` is read as a manifest: every file
/// but hidden ones, as kubelet (an editor's backup copy names the same pod
/// as its original, and is ignored as a duplicate).
fn is_manifest(name: &str) -> bool {
    !name.starts_with('.')
}

fn read_manifest(path: &Path) -> Result<String, ManifestError> {
    use std::io::Read;
    let shown = || path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| ManifestError::Io(shown(), e))?;
    let mut text = String::new();
    file.take(MAX_MANIFEST + 1)
        .read_to_string(&mut text)
        .map_err(|e| ManifestError::Io(shown(), e))?;
    if text.len() as u64 > MAX_MANIFEST {
        return Err(ManifestError::TooLarge(shown()));
    }
    Ok(text)
}

/// What the source remembers of each file between reads.
#[derive(Default)]
pub struct Scanner {
    dir: PathBuf,
    node: String,
    /// The last good pod of each file.
    good: HashMap<PathBuf, Pod>,
    /// The error last logged for each file, not logged again.
    failed: HashMap<PathBuf, String>,
    /// Files naming a pod another file names first, already logged.
    duplicates: HashSet<PathBuf>,
}

impl Scanner {
    pub fn new(dir: PathBuf, node: String) -> Scanner {
        Scanner {
            dir,
            node,
            ..Default::default()
        }
    }

    /// Read the directory: the static pods it describes, in file order,
    /// one per pod name.
    pub fn scan(&mut self) -> Vec<Pod> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(is_manifest))
                .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
                .map(|e| e.path())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                // Unreadable for now: what ran keeps running.
                tracing::warn!(dir = %self.dir.display(), "reading the static pod manifests: {e}");
                return self.good.values().cloned().collect();
            }
        };
        files.sort();
        if files.len() > MAX_MANIFESTS {
            tracing::warn!(
                dir = %self.dir.display(),
                "{} static pod manifests; only the first {MAX_MANIFESTS} are run",
                files.len()
            );
            files.truncate(MAX_MANIFESTS);
        }
        let present: HashSet<&PathBuf> = files.iter().collect();
        self.good.retain(|p, _| present.contains(p));
        self.failed.retain(|p, _| present.contains(p));
        self.duplicates.retain(|p| present.contains(p));
        let mut pods = Vec::new();
        let mut names: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
        for path in &files {
            match read_manifest(path).and_then(|t| load(path, &t, &self.node)) {
                Ok(pod) => {
                    self.failed.remove(path);
                    self.good.insert(path.clone(), pod);
                }
                Err(e) => {
                    let msg = e.to_string();
                    if self.failed.get(path) != Some(&msg) {
                        let kept = if self.good.contains_key(path) {
                            "; the pod its last good version describes runs on"
                        } else {
                            ""
                        };
                        tracing::warn!("static pod manifest {msg}{kept}");
                        self.failed.insert(path.clone(), msg);
                    }
                }
            }
            let Some(pod) = self.good.get(path) else {
                continue;
            };
            let k = key(pod);
            if let Some(first) = names.get(&k) {
                if self.duplicates.insert(path.clone()) {
                    tracing::warn!(
                        "static pod manifest {}: pod {}/{} is already described by {}; this file is ignored",
                        path.display(),
                        k.0,
                        k.1,
                        first.display()
                    );
                }
                continue;
            }
            self.duplicates.remove(path);
            names.insert(k, path.clone());
            pods.push(pod.clone());
        }
        pods
    }
}

fn uids(pods: &[Pod]) -> Vec<Option<String>> {
    pods.iter().map(|p| p.metadata.uid.clone()).collect()
}

/// Read `dir` now, then follow it until `cancel`: the receiver always
/// holds the static pods as last read. The directory is made (private: a
/// manifest may carry secrets) when it is missing.
pub async fn follow(
    dir: PathBuf,
    node: String,
    cancel: CancellationToken,
) -> watch::Receiver<Statics> {
    let made = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
        })
        .await
    };
    if let Ok(Err(e)) = made {
        tracing::warn!(dir = %dir.display(), "making the static pod directory: {e}");
    }
    let mut scanner = Scanner::new(dir.clone(), node);
    let (scanner, first) = match tokio::task::spawn_blocking(move || {
        let pods = scanner.scan();
        (scanner, pods)
    })
    .await
    {
        Ok(r) => r,
        Err(_) => (Scanner::new(dir.clone(), String::new()), Vec::new()),
    };
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(watch_dir(dir, scanner, tx, cancel));
    rx
}

/// The identity of `dir` (device, inode): a directory removed and made
/// again needs a new watch.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// An inotify descriptor on `dir`, when one can be had (without it the
/// directory is still read every 20 s).
fn notifier(dir: &Path) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).ok()?;
    let flags = WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MOVED_TO
        | WatchFlags::MOVED_FROM
        | WatchFlags::ATTRIB
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF;
    if let Err(e) = inotify::add_watch(fd.as_fd(), dir, flags) {
        tracing::debug!(dir = %dir.display(), "watching the static pod directory: {e}");
        return None;
    }
    // SAFETY: the descriptor is valid and owned by the AsyncFd, which
    // closes it when dropped.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok()
}

async fn watch_dir(
    dir: PathBuf,
    mut scanner: Scanner,
    tx: watch::Sender<Statics>,
    cancel: CancellationToken,
) {
    let mut watched = identity(&dir);
    let mut notify = notifier(&dir);
    let mut tick = tokio::time::interval(RESCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let woke = async {
            match notify.as_mut() {
                Some(fd) => match fd.readable().await {
                    Ok(mut guard) => {
                        // Only that something changed matters: drain.
                        let mut buf = [0u8; 4096];
                        while rustix::io::read(guard.get_inner().as_fd(), &mut buf)
                            .is_ok_and(|n| n > 0)
                        {}
                        guard.clear_ready();
                        true
                    }
                    Err(_) => false,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            ok = woke => {
                if !ok {
                    notify = None;
                }
                // A file being written sends several events: read once
                // they settle.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // The directory may have been made (or made again) since.
        let now = identity(&dir);
        if notify.is_none() || now != watched {
            watched = now;
            notify = notifier(&dir);
        }
        let scanned = tokio::task::spawn_blocking(move || {
            let pods = scanner.scan();
            (scanner, pods)
        })
        .await;
        let Ok((back, pods)) = scanned else { return };
        scanner = back;
        if uids(&pods) != uids(&tx.borrow()) {
            tracing::info!(dir = %dir.display(), pods = pods.len(), "the static pods changed");
            tx.send_replace(Arc::new(pods));
        }
    }
}
