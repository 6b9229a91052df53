//! Revisioned key-value store in the style of kine: one append-only log of
//! key versions, where each write gets the next global revision. The API
//! server maps `metadata.resourceVersion` onto these revisions.
//!
//! The [`Backend`] trait is the seam for other stores (PostgreSQL, etcd) of a
//! highly-available control plane; [`sqlite::SqliteBackend`] is the default,
//! [`postgres::PostgresBackend`] one that several servers share
//! ([`datastore::Datastore`] picks one).

#[cfg(test)]
mod conformance;
pub mod datastore;
pub mod encrypt;
mod live;
mod log;
pub mod migrate;
pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

/// A global, strictly increasing write counter. Revision 0 means "nothing".
pub type Revision = i64;

/// One version of one key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    /// The stored bytes (the object's JSON, without `resourceVersion`).
    pub value: Bytes,
    /// Revision at which this key was (last) created.
    pub create_revision: Revision,
    /// Revision of this version. For a delete event: the delete's revision.
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// The revisions reads in progress still read at. A list sent in chunks
/// reads every chunk at its first chunk's revision; compaction must not
/// pass that revision until the list is done, or the list would end
/// half-sent with `Compacted`.
#[derive(Debug, Default)]
pub struct RevisionHolds(Mutex<BTreeMap<Revision, usize>>);

impl RevisionHolds {
    /// Keeps `revision` readable until the returned hold is dropped.
    pub fn hold(self: &Arc<Self>, revision: Revision) -> RevisionHold {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(revision).or_default() += 1;
        }
        RevisionHold {
            holds: Some(Arc::clone(self)),
            revision,
        }
    }

    /// The oldest revision held, if any.
    pub fn oldest(&self) -> Option<Revision> {
        self.0.lock().ok().and_then(|m| m.keys().next().copied())
    }
}

/// See [`RevisionHolds`]; released on drop.
#[derive(Debug)]
pub struct RevisionHold {
    holds: Option<Arc<RevisionHolds>>,
    revision: Revision,
}

impl RevisionHold {
    /// A hold that keeps nothing (for backends whose reads of a revision
    /// are atomic anyway).
    pub fn none(revision: Revision) -> RevisionHold {
        RevisionHold {
            holds: None,
            revision,
        }
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }
}

impl Drop for RevisionHold {
    fn drop(&mut self) {
        let Some(holds) = self.holds.take() else {
            return;
        };
        if let Ok(mut m) = holds.0.lock() {
            if let Some(n) = m.get_mut(&self.revision) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.revision);
                }
            }
        };
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Update,
    Delete,
}

/// A change seen by a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The new version; for `Delete`, the last value with
    /// `mod_revision` set to the delete's revision.
    pub kv: KeyValue,
    /// The version this one replaced (`None` for `Create`).
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// How to read a range of keys.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Read as of this revision (None: the latest). A compacted revision
    /// gives [`Error::Compacted`]; a future one [`Error::FutureRevision`].
    pub revision: Option<Revision>,
    /// Only keys strictly greater than this (for continue tokens).
    pub start_after: Option<String>,
    /// At most this many items (None or 0: no limit).
    pub limit: Option<usize>,
    /// Stop once the values read add up to this many bytes (at least one
    /// item is always returned): a chunk of a list costs a bounded amount
    /// of memory however large its objects are (None or 0: no bound).
    pub max_bytes: Option<usize>,
    /// Count the keys left after the last item ([`ListResult::remaining`]):
    /// a count reads the whole rest of the range, so only a page that
    /// reports it asks.
    pub count_remaining: bool,
}

#[derive(Clone, Debug)]
pub struct ListResult {
    /// Live keys under the prefix, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (the latest one if none was asked).
    pub revision: Revision,
    /// Whether keys follow the last item (false: the list is complete).
    pub more: bool,
    /// How many, when [`ListOptions::count_remaining`] asked (0 when the
    /// list is complete).
    pub remaining: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key} not found")]
    NotFound { key: String },
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("watcher fell behind and was dropped")]
    WatcherLagged,
    #[error("the store is shut down")]
    Closed,
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stream of watch events in revision order. An `Err` item is the last
/// one: the watch has ended (lagged, compacted, closed) and must be re-made.
pub type WatchReceiver = mpsc::Receiver<Result<Event>>;

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The newest committed revision.
    fn current_revision(&self) -> Revision;

    /// The newest committed revision, asked of the store itself where
    /// other servers write too (a list without a resourceVersion must show
    /// everything acknowledged before it, wherever it was written).
    async fn latest_revision(&self) -> Result<Revision> {
        Ok(self.current_revision())
    }

    /// The revision history was compacted at (0 if none): the state at it
    /// and later is intact; reads at an older revision and watches from an
    /// older one fail with `Compacted`.
    fn compacted_revision(&self) -> Revision;

    /// The live version of `key` (as of `revision` if given).
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>>;

    /// Live keys starting with `prefix`.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Number of live keys starting with `prefix`.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Create `key`; fails with `AlreadyExists` if it is live.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replace `key` if its live version is `expected`; `Conflict` otherwise,
    /// `NotFound` if it is not live.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue>;

    /// As `update`, for a heartbeat: a write that changes nothing but when
    /// its writer was last alive (a Lease renewal). A backend may
    /// acknowledge it before it is durable and keep only the newest of a
    /// run of them; a crash may then roll the key back to an earlier
    /// renewal, never past a durable write, and no revision it handed out
    /// is handed out again. The default is a plain update.
    async fn renew(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        self.update(key, value, expected).await
    }

    /// Delete `key` (only if its live version is `expected`, when given).
    /// Returns the deleted value with `mod_revision` = the delete's revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Events for keys under `prefix` with revision > `after`, first the
    /// history from the log, then live ones. `Compacted` if `after` is older
    /// than the compacted revision.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchReceiver>;

    /// Whether writes go through. A backend that saw its last write fail
    /// (a full disk, say) checks again here and says why not; the default
    /// trusts the backend.
    async fn ready(&self) -> Result<()> {
        Ok(())
    }

    /// Drop history older than the newest `keep` revisions (the latest
    /// version of every live key is always kept). Returns the new compacted
    /// revision.
    async fn compact(&self, keep: i64) -> Result<Revision>;

    /// Keeps `revision` readable (compaction stops short of it) until the
    /// hold is dropped. Callers hold only for as long as one request runs.
    fn hold(&self, revision: Revision) -> RevisionHold {
        RevisionHold::none(revision)
    }
}

/// Compacts `store` every `interval`, keeping the newest `keep` revisions.
/// Ends when the store is closed or dropped.
pub(crate) fn spawn_compactor<B: Backend>(
    store: &Arc<B>,
    interval: std::time::Duration,
    keep: i64,
) -> tokio::task::JoinHandle<()> {
    let store = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; nothing to compact right at start.
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { return };
            match store.compact(keep).await {
                Ok(_) => {}
                Err(Error::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "store compaction failed"),
            }
        }
    })
}
