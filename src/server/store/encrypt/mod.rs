//! Encryption at rest, as kube-apiserver's `--encryption-provider-config`
//! and k3s's `--secrets-encryption`.
//!
//! [`Encrypted`] is a [`Backend`] over the real one: values under the
//! configured resources' keys are sealed on `create`/`update` and opened on
//! every read (`get`, `list`, `delete`'s returned value, and both versions
//! of each `watch` event), so the API server, its caches and its controllers
//! see plaintext while the database, its WAL and any copy of them hold only
//! ciphertext. Everything else (revisions, compaction, holds, readiness)
//! passes through.
//!
//! - [`config`]: upstream's `EncryptionConfiguration`, checked as upstream;
//!   [`resources`]: its resource names mapped to storage prefixes.
//! - [`transform`]: the aescbc / aesgcm / identity envelopes, byte-compatible
//!   with upstream's.
//! - [`reencrypt`]: rewriting what the first provider did not write (after a
//!   rotation, or once encryption is turned on), and counting it.
//! - [`manage`]: the configuration file (generated for
//!   `--secrets-encryption`, or the user's), reloaded when it changes, and
//!   key rotation; what `skiff secrets-encrypt` drives through the API.
//!
//! The transformers sit behind a lock as one `Arc`, swapped whole when the
//! configuration changes: a read or write takes the `Arc` once and uses one
//! consistent configuration. A value that does not decrypt fails that read
//! with [`Error::Backend`] naming the storage key and the key name (never
//! key material); other keys and other kinds read on.
//!
//! What encryption does not reach: old versions of a key keep the bytes
//! they were written with until compaction removes them (the SQLite
//! backend zeroes freed pages, `secure_delete`), and frames of the WAL keep
//! old page images until they are overwritten. Re-encrypting and then
//! compacting to the current revision is the way to purge them.

pub mod config;
pub mod manage;
pub mod reencrypt;
pub mod resources;
pub mod transform;

#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use self::config::Transformers;
use super::{
    Backend, Error, Event, KeyValue, ListOptions, ListResult, Result, Revision, RevisionHold,
    WatchReceiver,
};

/// Events buffered between the wrapped watch and its consumer: the inner
/// watch buffers already, this only decouples the decrypting task.
const WATCH_BUFFER: usize = 64;

/// The store, with values encrypted at rest as the transformers say.
pub struct Encrypted {
    inner: Arc<dyn Backend>,
    current: Arc<Current>,
    /// Held (shared) by each write from sealing to commit, and (alone) by
    /// a swap: once a swap returns, no write sealed under the configuration
    /// before it is still in flight, so a census after it sees them all.
    writes: tokio::sync::RwLock<()>,
}

/// The transformers in force, swapped whole.
struct Current(RwLock<Arc<Transformers>>);

impl Current {
    fn get(&self) -> Arc<Transformers> {
        match self.0.read() {
            Ok(t) => t.clone(),
            // A panic while swapping left a whole Arc in place either way.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, next: Arc<Transformers>) {
        match self.0.write() {
            Ok(mut t) => *t = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

impl std::fmt::Debug for Encrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encrypted").finish_non_exhaustive()
    }
}

impl Encrypted {
    pub fn new(inner: Arc<dyn Backend>, transformers: Transformers) -> Encrypted {
        Encrypted {
            inner,
            current: Arc::new(Current(RwLock::new(Arc::new(transformers)))),
            writes: tokio::sync::RwLock::new(()),
        }
    }

    /// The store under the encryption (what is really stored).
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// The configuration in force.
    pub fn transformers(&self) -> Arc<Transformers> {
        self.current.get()
    }

    /// Puts `next` in force for every read and write from now on, once
    /// the writes sealed under the one before are committed.
    pub async fn swap(&self, next: Transformers) {
        let _writes = self.writes.write().await;
        self.current.set(Arc::new(next));
    }

    fn seal(&self, key: &str, value: Bytes) -> Result<Bytes> {
        let t = self.transformers();
        match t.for_key(key) {
            Some(chain) => chain
                .seal(key, value)
                .map_err(|e| Error::Backend(e.to_string())),
            None => Ok(value),
        }
    }
}

/// The plaintext of one stored version.
fn open(t: &Transformers, mut kv: KeyValue) -> Result<KeyValue> {
    if let Some(chain) = t.for_key(&kv.key) {
        let opened = chain.open(&kv.key, kv.value).map_err(|e| {
            tracing::warn!(error = ?e, "a stored value does not decrypt");
            Error::Backend(e.to_string())
        })?;
        kv.value = opened.plain;
    }
    Ok(kv)
}

/// An event with both versions opened. A previous version that no longer
/// decrypts (written under a key since removed, replayed from history) is
/// left out rather than ending the watch: watchers need the new version;
/// only a new version that does not decrypt ends it.
fn open_event(t: &Transformers, ev: Event) -> Result<Event> {
    Ok(Event {
        kind: ev.kind,
        kv: open(t, ev.kv)?,
        prev: ev.prev.and_then(|p| open(t, p).ok()),
    })
}

#[async_trait]
impl Backend for Encrypted {
    fn current_revision(&self) -> Revision {
        self.inner.current_revision()
    }

    async fn latest_revision(&self) -> Result<Revision> {
        self.inner.latest_revision().await
    }

    fn compacted_revision(&self) -> Revision {
        self.inner.compacted_revision()
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        match self.inner.get(key, revision).await? {
            Some(kv) => open(&self.transformers(), kv).map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let mut res = self.inner.list(prefix, opts).await?;
        let t = self.transformers();
        res.items = res
            .items
            .into_iter()
            .map(|kv| open(&t, kv))
            .collect::<Result<_>>()?;
        Ok(res)
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let _sealing = self.writes.read().await;
        let sealed = self.seal(key, value.clone())?;
        let mut kv = self.inner.create(key, sealed).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let _sealing = self.writes.read().await;
        let sealed = self.seal(key, value.clone())?;
        let mut kv = self.inner.update(key, sealed, expected).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn renew(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let _sealing = self.writes.read().await;
        let sealed = self.seal(key, value.clone())?;
        let mut kv = self.inner.renew(key, sealed, expected).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let kv = self.inner.delete(key, expected).await?;
        open(&self.transformers(), kv)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchReceiver> {
        let mut inner = self.inner.watch(prefix, after).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        // Each event is opened with the configuration in force when it
        // arrives (a rotation swaps it while watches run).
        let current = self.current.clone();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    item = inner.recv() => item,
                    // The consumer is gone: stop, dropping the inner watch.
                    () = tx.closed() => return,
                };
                let Some(item) = item else { return };
                let mapped = item.and_then(|ev| open_event(&current.get(), ev));
                let last = mapped.is_err();
                if tx.send(mapped).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }

    async fn compact(&self, keep: i64) -> Result<Revision> {
        self.inner.compact(keep).await
    }

    fn hold(&self, revision: Revision) -> RevisionHold {
        self.inner.hold(revision)
    }
}
