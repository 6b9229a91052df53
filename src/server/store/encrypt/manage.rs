//! The encryption configuration's file and what changes it: start-up
//! (generated for `--secrets-encryption`, or the user's
//! `--encryption-provider-config`), reloads when the file changes, key
//! rotation and re-encryption. The API's `/skiff/v1/secrets-encryption`
//! endpoints call these; `skiff secrets-encrypt` calls those.
//!
//! The file is the source of truth: a rotation writes it (atomically: a
//! temporary file, fsync, rename, fsync of the directory) before the new
//! transformers are put in force, so a crash at any point leaves a file that
//! reads everything stored. Only the generated file is rewritten by skiff; a
//! user's own file is theirs to edit (then `reencrypt`).

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::{self, ConfigError, EncryptionConfiguration, Transformers};
use super::reencrypt::{Census, Rewritten};
use super::transform::Provider;
use super::Encrypted;
use crate::server::store::{self, Backend};

/// How often the file is looked at for changes.
const POLL_EVERY: Duration = Duration::from_secs(5);

/// The file is read whole: a configuration is a few keys, never this big.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the encryption configuration {path}: {source}")]
    Config { path: PathBuf, source: ConfigError },
    #[error(
        "rotate-keys rewrites only the configuration skiff generated for \
         --secrets-encryption; with --encryption-provider-config {path}, put the new key first \
         in that file (the server reloads it) and run `skiff secrets-encrypt reencrypt`"
    )]
    NotManaged { path: PathBuf },
    #[error("the store: {0}")]
    Store(#[from] store::Error),
    #[error(
        "the database holds encrypted values but the encryption configuration {path} is \
         missing: restore it from where you keep it (a new key could not read them); skiff \
         does not make a new one over encrypted data"
    )]
    KeyFileMissing { path: PathBuf },
    #[error(
        "rotate-keys is not available on a datastore several servers share yet: each \
         server keeps a copy of the key file, and a new key on one would leave the others \
         unable to read what it encrypts"
    )]
    Shared,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ManageError + 'a {
    move |source| ManageError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What the server was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--secrets-encryption`: use (made when missing) `generated`.
    pub secrets_encryption: bool,
    /// `--encryption-provider-config`: the user's own file.
    pub provider_config: Option<PathBuf>,
    /// `<data-dir>/server/cred/encryption-config.json`.
    pub generated: PathBuf,
    /// The datastore is shared by several servers, which share the
    /// generated file through it (pki::shared) and do not rotate it yet.
    pub shared: bool,
}

/// The encryption in force and its file.
pub struct Manager {
    encrypted: Arc<Encrypted>,
    path: PathBuf,
    /// Whether skiff generated the file (and so may rewrite it).
    managed: bool,
    /// Other servers use the same file (`Options::shared`).
    shared: bool,
    /// The file as last read or written, to notice changes.
    seen: std::sync::Mutex<Stamp>,
    /// One change at a time: rotation, re-encryption, reload.
    ops: tokio::sync::Mutex<()>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Stamp {
    mtime: i64,
    mtime_nsec: i64,
    len: u64,
    hash: [u8; 32],
}

/// What `skiff secrets-encrypt status` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub enabled: bool,
    pub config_file: String,
    /// Whether skiff generated the file (rotate-keys works only then).
    pub managed: bool,
    pub resources: Vec<String>,
    /// The key that writes the first entry's resources (None: identity).
    pub active_key: Option<KeyInfo>,
    pub keys: Vec<KeyInfo>,
    pub objects: Census,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub active: bool,
}

/// What `reencrypt` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reencryption {
    pub reencrypted: Rewritten,
    pub objects: Census,
    /// The revision history was compacted to, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compacted_revision: Option<store::Revision>,
}

/// What `rotate-keys` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    pub new_key: String,
    pub reencrypted: Rewritten,
    pub objects: Census,
    /// Whether the older keys were taken out of the file (only once nothing
    /// needs them).
    pub old_keys_removed: bool,
}

impl Manager {
    /// The encryption the flags ask for, over `store`; None when there is
    /// none. Without flags, a generated file left by an earlier
    /// `--secrets-encryption` is still used: what it encrypted must stay
    /// readable (turning encryption off is identity first + reencrypt).
    pub async fn setup(
        opts: &Options,
        store: Arc<dyn Backend>,
    ) -> Result<Option<Arc<Manager>>, ManageError> {
        let (path, managed) = match &opts.provider_config {
            Some(p) => (p.clone(), false),
            None if opts.secrets_encryption => {
                remove_stale_temporaries(&opts.generated);
                if !opts.generated.exists() {
                    if holds_ciphertext(store.as_ref()).await? {
                        return Err(ManageError::KeyFileMissing {
                            path: opts.generated.clone(),
                        });
                    }
                    let key = config::new_key().map_err(|source| ManageError::Config {
                        path: opts.generated.clone(),
                        source,
                    })?;
                    let cfg = EncryptionConfiguration::generated(key);
                    write_config(&opts.generated, &cfg)?;
                    tracing::info!(path = %opts.generated.display(),
                        "generated the secrets encryption configuration with a new aescbc key");
                }
                (opts.generated.clone(), true)
            }
            None if opts.generated.exists() => {
                tracing::warn!(path = %opts.generated.display(),
                    "secrets encryption stays on without --secrets-encryption: this \
                     configuration encrypted what is stored; to turn it off, put identity \
                     first, run `skiff secrets-encrypt reencrypt`, then remove the file");
                (opts.generated.clone(), true)
            }
            None => return Ok(None),
        };
        let (text, stamp) = read_file(&path)?;
        let transformers = load(&path, &text)?;
        tracing::info!(path = %path.display(), resources = ?resource_names(&transformers),
            active_key = ?active_key(&transformers).map(|k| k.name),
            "secrets encryption at rest is on");
        Ok(Some(Arc::new(Manager {
            encrypted: Arc::new(Encrypted::new(store, transformers)),
            path,
            managed,
            shared: opts.shared,
            seen: std::sync::Mutex::new(stamp),
            ops: tokio::sync::Mutex::new(()),
        })))
    }

    /// The store as the API server must use it.
    pub fn backend(&self) -> Arc<dyn Backend> {
        self.encrypted.clone()
    }

    pub fn encrypted(&self) -> &Arc<Encrypted> {
        &self.encrypted
    }

    pub async fn status(&self) -> Result<Status, ManageError> {
        let t = self.encrypted.transformers();
        let objects = self.encrypted.census().await?;
        let active = active_key(&t);
        let mut keys: Vec<KeyInfo> = Vec::new();
        for (_, chain) in t.rules() {
            let writer = chain.writer().map(|w| w.name.clone());
            for p in chain.providers() {
                let Provider::Keys(entries) = p else { continue };
                for e in entries {
                    let info = KeyInfo {
                        kind: e.kind.as_str(),
                        name: e.name.clone(),
                        active: writer.as_deref() == Some(e.name.as_str()),
                    };
                    match keys
                        .iter_mut()
                        .find(|k| k.kind == info.kind && k.name == info.name)
                    {
                        Some(k) => k.active |= info.active,
                        None => keys.push(info),
                    }
                }
            }
        }
        Ok(Status {
            enabled: t.encrypts(),
            config_file: self.path.display().to_string(),
            managed: self.managed,
            resources: resource_names(&t),
            active_key: active,
            keys,
            objects,
        })
    }

    /// Rewrites what the first provider did not write; with `compact`,
    /// then drops every older version of every key (the store's history up
    /// to now), which held the values as they were written before.
    pub async fn reencrypt(&self, compact: bool) -> Result<Reencryption, ManageError> {
        let _op = self.ops.lock().await;
        let reencrypted = self.encrypted.reencrypt().await?;
        let objects = self.encrypted.census().await?;
        let compacted_revision = match compact {
            // Watches from before this revision get 410 Gone and list
            // again, as after any compaction.
            true => Some(self.encrypted.compact(0).await?),
            false => None,
        };
        if let Some(rev) = compacted_revision {
            tracing::info!(
                revision = rev,
                "store history compacted after re-encryption"
            );
        }
        Ok(Reencryption {
            reencrypted,
            objects,
            compacted_revision,
        })
    }

    /// k3s's rotate-keys: a new aescbc key first in the file (older keys
    /// after it, so what they encrypted stays readable), in force at once,
    /// everything re-encrypted with it; then, when nothing stored needs the
    /// older keys any more, the history up to now is compacted (its older
    /// versions were written under them: watches from before get 410 Gone
    /// and list again) and the older keys leave the file.
    pub async fn rotate_keys(&self) -> Result<Rotation, ManageError> {
        let _op = self.ops.lock().await;
        if !self.managed {
            return Err(ManageError::NotManaged {
                path: self.path.clone(),
            });
        }
        if self.shared {
            return Err(ManageError::Shared);
        }
        let key = config::new_key().map_err(|source| ManageError::Config {
            path: self.path.clone(),
            source,
        })?;
        let name = key.name.clone();
        let next = self
            .encrypted
            .transformers()
            .config
            .clone()
            .with_first_key(key);
        self.put_in_force(next.clone()).await?;
        tracing::info!(key = %name, "rotated the secrets encryption key; re-encrypting");
        let reencrypted = self.encrypted.reencrypt().await?;
        let objects = self.encrypted.census().await?;
        let done = reencrypted.failed == 0 && objects.stale == 0 && objects.unreadable == 0;
        let trimmed = next.clone().without_keys_after(&name);
        let old_keys_removed = done && trimmed != next;
        if old_keys_removed {
            let rev = self.encrypted.compact(0).await?;
            self.put_in_force(trimmed).await?;
            tracing::info!(key = %name, compacted_revision = rev,
                "history compacted and older secrets encryption keys removed");
        } else if !done {
            tracing::warn!(
                failed = reencrypted.failed,
                stale = objects.stale,
                unreadable = objects.unreadable,
                "older keys kept: not everything was re-encrypted with the new one"
            );
        }
        Ok(Rotation {
            new_key: name,
            reencrypted,
            objects,
            old_keys_removed,
        })
    }

    /// Writes `cfg` to the file and puts it in force (checked first: a
    /// configuration that does not build is never written).
    async fn put_in_force(&self, cfg: EncryptionConfiguration) -> Result<(), ManageError> {
        let t = config::build(cfg.clone()).map_err(|source| ManageError::Config {
            path: self.path.clone(),
            source,
        })?;
        let stamp = write_config(&self.path, &cfg)?;
        self.encrypted.swap(t).await;
        if let Ok(mut seen) = self.seen.lock() {
            *seen = stamp;
        }
        Ok(())
    }

    /// Reads the file again if it changed, and puts it in force if it
    /// builds; a file that does not keeps the configuration in force and is
    /// reported once per change. Returns whether a new one is in force.
    pub async fn reload_if_changed(&self) -> bool {
        let _op = self.ops.lock().await;
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        // Read whole every time (it is small): a change that keeps the
        // size and the mtime (`cp -p`, a coarse clock) is still seen.
        if std::fs::metadata(&self.path).is_err() {
            if seen != Stamp::default() {
                tracing::warn!(path = %self.path.display(),
                    "the encryption configuration is gone; the one read last stays in force");
                if let Ok(mut s) = self.seen.lock() {
                    *s = Stamp::default();
                }
            }
            return false;
        }
        let (text, stamp) = match read_file(&self.path) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the changed encryption configuration");
                return false;
            }
        };
        let changed = stamp.hash != seen.hash;
        if let Ok(mut s) = self.seen.lock() {
            *s = stamp;
        }
        if !changed {
            return false;
        }
        match load(&self.path, &text) {
            Ok(t) => {
                tracing::info!(path = %self.path.display(), resources = ?resource_names(&t),
                    active_key = ?active_key(&t).map(|k| k.name),
                    "the encryption configuration changed: now in force");
                self.encrypted.swap(t).await;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the changed encryption configuration is not used; \
                    the previous one stays in force");
                false
            }
        }
    }

    /// Looks at the file every few seconds until `cancel`.
    pub async fn watch_file(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.reload_if_changed().await;
        }
    }
}

/// Whether any stored value is encrypted (`k8s:enc:`), read page by page
/// from the raw store: only asked before a new key would be made.
async fn holds_ciphertext(store: &dyn Backend) -> Result<bool, ManageError> {
    let mut opts = store::ListOptions {
        limit: Some(500),
        max_bytes: Some(4 << 20),
        ..Default::default()
    };
    loop {
        let page = store.list("/", opts.clone()).await?;
        if page
            .items
            .iter()
            .any(|kv| kv.value.starts_with(super::transform::ENCRYPTED_MARKER))
        {
            return Ok(true);
        }
        match page.items.last() {
            Some(last) if page.more => {
                opts.start_after = Some(last.key.clone());
                opts.revision = Some(page.revision);
            }
            _ => return Ok(false),
        }
    }
}

/// Temporary files a write of the configuration left when it was cut
/// short (they hold keys).
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn load(path: &Path, text: &str) -> Result<Transformers, ManageError> {
    config::parse(text)
        .and_then(config::build)
        .map_err(|source| ManageError::Config {
            path: path.to_path_buf(),
            source,
        })
}

fn resource_names(t: &Transformers) -> Vec<String> {
    t.rules()
        .filter(|(_, chain)| chain.writer().is_some())
        .flat_map(|(names, _)| names.iter().cloned())
        .collect()
}

fn active_key(t: &Transformers) -> Option<KeyInfo> {
    t.rules().find_map(|(_, chain)| {
        chain.writer().map(|w| KeyInfo {
            kind: w.kind.as_str(),
            name: w.name.clone(),
            active: true,
        })
    })
}

fn read_file(path: &Path) -> Result<(String, Stamp), ManageError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(io("reading", path))?;
    let meta = file.metadata().map_err(io("reading", path))?;
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.mode() & 0o7777),
            "the encryption configuration holds keys but other users may read it: make it 0600");
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(io("reading", path))?;
    let stamp = Stamp {
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        len: meta.len(),
        hash: Sha256::digest(text.as_bytes()).into(),
    };
    Ok((text, stamp))
}

/// Writes `cfg` as JSON, 0600 in a 0700 directory, atomically. Returns the
/// written file's stamp.
/// A new generated configuration (one aescbc key), as the file holds it:
/// what the servers of a shared datastore put in it for one another.
pub fn generated_config_text() -> Result<Vec<u8>, ManageError> {
    let path = Path::new("encryption-config.json");
    let key = config::new_key().map_err(|source| ManageError::Config {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(config_text(path, &EncryptionConfiguration::generated(key))?.into_bytes())
}

fn config_text(path: &Path, cfg: &EncryptionConfiguration) -> Result<String, ManageError> {
    let mut text = serde_json::to_string_pretty(cfg).map_err(|e| ManageError::Io {
        what: "encoding",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    Ok(text)
}

fn write_config(path: &Path, cfg: &EncryptionConfiguration) -> Result<Stamp, ManageError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::runtime::private::ensure_dir(dir).map_err(io("creating", dir))?;
    let text = config_text(path, cfg)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "encryption-config.json".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}",
        hex::encode(rand::random::<[u8; 6]>())
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("creating", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("renaming into place", path))?;
        // The rename is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    read_file(path).map(|(_, stamp)| stamp)
}

#[cfg(test)]
pub(super) fn write_config_for_test(
    path: &Path,
    cfg: &EncryptionConfiguration,
) -> Result<(), ManageError> {
    write_config(path, cfg).map(|_| ())
}
