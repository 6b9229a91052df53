//! The default store: a kine-style append-only log in one SQLite file.
//!
//! Layout: [`schema`] (tables, pragmas), [`writer`] (the single writer
//! thread with group commit), [`read`] (reader pool and queries),
//! [`watch`] (catch-up + live fan-out), [`compact`] (history removal).

mod compact;
mod deferred;
mod read;
mod schema;
mod watch;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};

use self::read::{KeyRange, ReadPool};
use self::writer::{Published, Request, WriteOp, Writer};
use super::{
    Backend, Error, KeyValue, ListOptions, ListResult, Result, Revision, RevisionHold,
    WatchReceiver,
};

/// Tunables; the defaults suit the server.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Writes waiting for the writer before callers wait to enqueue.
    pub queue: usize,
    /// Open read connections at most.
    pub readers: usize,
    /// Events the fan-out holds for the slowest watcher (on top of its
    /// `watch_buffer`); beyond that the watcher gets `WatcherLagged`.
    pub fanout_events: usize,
    /// Events buffered per watch receiver.
    pub watch_buffer: usize,
    /// How long a commit group waits for a write lock held elsewhere
    /// before all its writes fail.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 256,
            queue: 4096,
            readers: 4,
            fanout_events: 2048,
            watch_buffer: 512,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

pub struct SqliteBackend {
    path: PathBuf,
    /// None once closed: new writes get `Closed`.
    writer_tx: Mutex<Option<mpsc::Sender<Request>>>,
    /// Fires when the writer thread has finished its last batch.
    writer_done: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    published: Arc<Published>,
    reads: Arc<ReadPool>,
    opts: SqliteOptions,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .field("revision", &self.current_revision())
            .field("compacted", &self.compacted_revision())
            .finish()
    }
}

impl SqliteBackend {
    /// Opens (or creates, mode 0600) the database at `path` and starts the
    /// writer thread. Synchronous and quick; fine to call inside a runtime.
    pub fn open(path: &Path) -> Result<Arc<SqliteBackend>> {
        Self::open_with(path, SqliteOptions::default())
    }

    pub fn open_with(path: &Path, opts: SqliteOptions) -> Result<Arc<SqliteBackend>> {
        schema::prepare_file(path)?;
        let schema::Opened {
            conn,
            last,
            compacted,
            reserved,
        } = schema::open_writer(path, opts.busy_timeout)?;
        let (fanout, _) = broadcast::channel(opts.fanout_events.max(1));
        let published = Arc::new(Published {
            current: AtomicI64::new(last),
            compacted: AtomicI64::new(compacted),
            holds: Arc::default(),
            fanout: Mutex::new(Some(fanout)),
            write_failure: Mutex::new(None),
            deferred: Default::default(),
        });
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let (done_tx, done_rx) = oneshot::channel();
        let writer = Writer::new(conn, last, reserved, opts.max_batch, Arc::clone(&published));
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::Backend(format!("starting store writer: {e}")))?;
        tracing::info!(path = %path.display(), revision = last, compacted, "store opened");
        Ok(Arc::new(SqliteBackend {
            path: path.to_owned(),
            writer_tx: Mutex::new(Some(tx)),
            writer_done: tokio::sync::Mutex::new(Some(done_rx)),
            published,
            reads: Arc::new(ReadPool::new(path.to_owned(), opts.readers)),
            opts,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops taking writes, lets the writer finish what was already queued,
    /// and waits for it. Later writes get `Closed`; watches end with `Closed`.
    pub async fn close(&self) {
        let tx = self.writer_tx.lock().ok().and_then(|mut g| g.take());
        drop(tx);
        // Callers that already hold a sender keep the writer alive until
        // their request is in; it exits when the last sender is gone.
        if let Some(done) = self.writer_done.lock().await.take() {
            let _ = done.await;
        }
        self.reads.clear();
    }

    /// Compacts every `interval`, keeping the newest `keep` revisions. Ends
    /// when the store is closed or dropped.
    pub fn spawn_compactor(
        self: &Arc<Self>,
        interval: Duration,
        keep: i64,
    ) -> tokio::task::JoinHandle<()> {
        super::spawn_compactor(self, interval, keep)
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> Result<T> {
        let tx = self
            .writer_tx
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or(Error::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply)).await.map_err(|_| Error::Closed)?;
        drop(tx);
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Writes renewals that wait in memory (`Backend::renew`) to the file
    /// now; they go with the next durable commit anyway.
    pub async fn flush_renewals(&self) -> Result<()> {
        self.request(|reply| Request::Flush { reply }).await
    }

    async fn write(&self, op: WriteOp) -> Result<KeyValue> {
        self.request(|reply| Request::Write { op, reply }).await
    }

    /// The revision to read at: the latest published one if none is given.
    fn read_revision(&self, requested: Option<Revision>) -> Result<Revision> {
        let current = self.current_revision();
        match requested {
            None | Some(0) => Ok(current),
            Some(r) if r > current => Err(Error::FutureRevision {
                requested: r,
                current,
            }),
            Some(r) => Ok(r),
        }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn current_revision(&self) -> Revision {
        self.published.current.load(Ordering::Acquire)
    }

    fn compacted_revision(&self) -> Revision {
        self.published.compacted.load(Ordering::Acquire)
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        let rev = self.read_revision(revision)?;
        // Before the database snapshot (see `Published::deferred`).
        let deferred = self.published.deferred.snapshot();
        let key = key.to_owned();
        self.reads
            .run(move |tx| read::get(tx, &key, rev, &deferred))
            .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let rev = self.read_revision(opts.revision)?;
        let deferred = self.published.deferred.snapshot();
        let range = KeyRange::prefix(prefix);
        self.reads
            .run(move |tx| {
                let bounds = read::Bounds {
                    limit: opts.limit,
                    max_bytes: opts.max_bytes,
                    count: opts.count_remaining,
                };
                let mut list = read::list(tx, &range, opts.start_after.as_deref(), bounds, rev)?;
                deferred.refresh(&mut list);
                Ok(list)
            })
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let rev = self.current_revision();
        let range = KeyRange::prefix(prefix);
        self.reads.run(move |tx| read::count(tx, &range, rev)).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.write(WriteOp::Create {
            key: key.to_owned(),
            value,
        })
        .await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        self.write(WriteOp::Update {
            key: key.to_owned(),
            value,
            expected,
            defer: false,
        })
        .await
    }

    async fn renew(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        self.write(WriteOp::Update {
            key: key.to_owned(),
            value,
            expected,
            defer: true,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        self.write(WriteOp::Delete {
            key: key.to_owned(),
            expected,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchReceiver> {
        let compacted = self.compacted_revision();
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        let (live, upto) = {
            let fanout = self
                .published
                .fanout
                .lock()
                .map_err(|_| Error::Backend("store fan-out lock poisoned".into()))?;
            let sender = fanout.as_ref().ok_or(Error::Closed)?;
            (sender.subscribe(), self.current_revision())
        };
        Ok(watch::Watch {
            pool: Arc::clone(&self.reads),
            published: Arc::clone(&self.published),
            prefix: prefix.to_owned(),
            after,
            live,
            upto,
            buffer: self.opts.watch_buffer,
        }
        .spawn())
    }

    async fn ready(&self) -> Result<()> {
        // Healthy until a write fails; from then on each check tries one.
        if self.published.write_failure().is_none() {
            return Ok(());
        }
        self.request(|reply| Request::Probe { reply }).await
    }

    async fn compact(&self, keep: i64) -> Result<Revision> {
        self.request(|reply| Request::Compact { keep, reply }).await
    }

    fn hold(&self, revision: Revision) -> RevisionHold {
        self.published.holds.hold(revision)
    }
}
