//! Named volumes: directories under `<root>/volumes/<name>/_data` that
//! outlive containers, with `<root>/volumes/<name>/meta.json` beside them.
//!
//! Every change is a rename, so other processes (a CLI beside an agent)
//! never see half a volume: `create` builds the whole directory under a
//! hidden temporary name and renames it into place (the loser of a race
//! finds the winner's volume), `remove` renames the volume away before
//! deleting its data. Hidden leftovers of crashed processes are swept by
//! `prune`.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The only driver: a directory on the local disk.
pub const DRIVER: &str = "local";
const META: &str = "meta.json";
const DATA: &str = "_data";
/// Prefixes of the hidden working directories (never valid volume names).
const TMP: &str = ".tmp-";
const DOOMED: &str = ".rm-";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid volume name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+, at most 255 characters")]
    InvalidName(String),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("volume {0} is in use by a container")]
    InUse(String),
    #[error("unsupported volume driver {0:?} (only \"local\")")]
    Driver(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("volume metadata {path}: {source}")]
    Meta {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What meta.json holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    name: String,
    /// RFC 3339, UTC.
    created: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    driver: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub name: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub labels: BTreeMap<String, String>,
    pub driver: String,
    /// The directory containers mount (`…/<name>/_data`).
    pub mountpoint: PathBuf,
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub names: Vec<String>,
    /// Bytes of regular files in the removed volumes.
    pub bytes: u64,
}

/// The volumes under one skiff root.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

/// Docker's rule, so names move between the tools; it also keeps every name
/// a single, non-hidden path component.
pub fn validate_name(name: &str) -> Result<(), VolumeError> {
    let b = name.as_bytes();
    let ok = (2..=255).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(VolumeError::InvalidName(name.to_string()))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Volumes {
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("volumes"),
        }
    }

    /// Create a volume; an existing one of that name is returned unchanged.
    pub fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        validate_name(name)?;
        match self.get(name) {
            Err(VolumeError::NotFound(_)) => {}
            found => return found,
        }
        self.ensure_dir()?;
        let tmp = self.hidden(TMP);
        let result = self.build(&tmp, name, labels);
        let renamed = result.and_then(|()| match std::fs::rename(&tmp, self.dir.join(name)) {
            Ok(()) => Ok(true),
            // Someone else created it first.
            Err(e) if matches!(e.raw_os_error(), Some(EEXIST) | Some(ENOTEMPTY)) => Ok(false),
            Err(e) => Err(io_err(&tmp)(e)),
        });
        if !matches!(renamed, Ok(true)) {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        if renamed? {
            tracing::info!(volume = name, "created volume");
        }
        self.get(name)
    }

    fn build(
        &self,
        tmp: &Path,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), VolumeError> {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(tmp)
            .map_err(io_err(tmp))?;
        let data = tmp.join(DATA);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&data)
            .map_err(io_err(&data))?;
        let meta = Meta {
            name: name.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            driver: DRIVER.to_string(),
        };
        let path = tmp.join(META);
        let json = serde_json::to_vec_pretty(&meta).map_err(|source| VolumeError::Meta {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, json).map_err(io_err(&path))
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        validate_name(name)?;
        let dir = self.dir.join(name);
        let path = dir.join(META);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let meta: Meta =
            serde_json::from_slice(&text).map_err(|source| VolumeError::Meta { path, source })?;
        Ok(Volume {
            name: name.to_string(),
            created: meta.created,
            labels: meta.labels,
            driver: meta.driver,
            mountpoint: dir.join(DATA),
        })
    }

    /// Every volume, by name. One damaged volume is logged and skipped so
    /// it cannot hide the others.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let mut out = Vec::new();
        for name in self.names()? {
            match self.get(&name) {
                Ok(v) => out.push(v),
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => tracing::warn!(volume = name, "skipping damaged volume: {e}"),
            }
        }
        Ok(out)
    }

    /// Remove a volume and its data unless `in_use` says a container uses
    /// it (also with `force`: deleting data under a running container is
    /// never wanted). `force` makes a missing volume not an error.
    /// Returns whether a volume was removed. The caller holds whatever lock
    /// keeps containers from starting meanwhile.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<bool, VolumeError> {
        validate_name(name)?;
        if in_use(name) {
            return Err(VolumeError::InUse(name.to_string()));
        }
        let doomed = self.hidden(DOOMED);
        match std::fs::rename(self.dir.join(name), &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && force => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io_err(&self.dir.join(name))(e)),
        }
        std::fs::remove_dir_all(&doomed).map_err(io_err(&doomed))?;
        tracing::info!(volume = name, "removed volume");
        Ok(true)
    }

    /// The data directory to mount for `name`, creating the volume on first
    /// use as `docker run -v name:/path` does.
    pub fn mountpoint(&self, name: &str) -> Result<PathBuf, VolumeError> {
        Ok(self.create(name, BTreeMap::new())?.mountpoint)
    }

    /// Remove every volume no container uses, and the hidden leftovers of
    /// processes that died halfway through a create or remove.
    pub fn prune(&self, in_use: &dyn Fn(&str) -> bool) -> Result<Pruned, VolumeError> {
        let mut pruned = Pruned::default();
        for v in self.list()? {
            if in_use(&v.name) {
                continue;
            }
            let bytes = dir_size(&self.dir.join(&v.name));
            if self.remove(&v.name, true, in_use)? {
                pruned.bytes += bytes;
                pruned.names.push(v.name);
            }
        }
        self.sweep();
        Ok(pruned)
    }

    fn names(&self) -> Result<Vec<String>, VolumeError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            if let Some(name) = entry.file_name().to_str() {
                if validate_name(name).is_ok() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn ensure_dir(&self) -> Result<(), VolumeError> {
        // `<root>` itself is private (runtime/private.rs); created so here
        // rather than 0701 by the recursive create below.
        if let Some(root) = self.dir.parent() {
            crate::runtime::private::ensure_dir(root).map_err(io_err(root))?;
        }
        // Like docker's 0701: containers running as other users may traverse
        // to their `_data`, but nobody else may list the volumes.
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o701)
            .create(&self.dir)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(io_err(&self.dir)(e)),
        }
    }

    /// A hidden working name that records its owner's PID, so `sweep` can
    /// tell a crashed process's leftover from work still in progress.
    fn hidden(&self, prefix: &str) -> PathBuf {
        self.dir.join(format!(
            "{prefix}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(TMP).or_else(|| name.strip_prefix(DOOMED)) else {
                continue;
            };
            let owner = rest.split('-').next().unwrap_or("");
            let alive = !owner.is_empty() && Path::new("/proc").join(owner).exists();
            if !alive {
                tracing::info!(
                    dir = name,
                    "removing leftover of an interrupted volume operation"
                );
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(dir = name, "cannot remove leftover: {e}");
                }
            }
        }
    }
}

const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
const ENOTEMPTY: i32 = nix::errno::Errno::ENOTEMPTY as i32;

/// Bytes of regular files under `dir`, not following symlinks; unreadable
/// parts count as nothing (the figure is informational).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            total += dir_size(&entry.path());
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    total
}
