//! The store on PostgreSQL (`--datastore-endpoint postgres://…`): the log
//! SQLite keeps (`store::log`), in a table that several servers can share.
//!
//! Layout: [`schema`] (tables, endpoint), [`read`] (queries), [`poll`]
//! (the one task per server that reads new rows and hands their events to
//! watchers), [`watch`] (catch-up + live fan-out).
//!
//! Revisions come from one counter row (`skiff_meta.rev`) that a write
//! updates first in its transaction: the row lock makes writers, on every
//! server, take revisions one after another and commit in that order, a
//! failed write gives its revision back with its rollback, and the
//! counter's committed value is a revision up to which every row is
//! committed. So a reader that reads the counter and the rows in one
//! snapshot sees a complete prefix of the log, and the poller, reading
//! rows above what it has seen, never skips one that commits later.

mod poll;
mod read;
mod schema;
mod watch;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{broadcast, Notify};
use tokio_postgres::error::SqlState;
use tokio_postgres::IsolationLevel;

use self::schema::db_err;
pub use self::schema::{Endpoint, TlsFiles};
use super::log::{check, KeyRange, Latest, WriteOp};
use super::{
    Backend, Error, Event, KeyValue, ListOptions, ListResult, Result, Revision, RevisionHold,
    RevisionHolds, WatchReceiver,
};

/// Tunables; the defaults suit the server.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections to the database at most (reads and writes together).
    pub connections: usize,
    /// Events the fan-out holds for the slowest watcher.
    pub fanout_events: usize,
    /// Events buffered per watch receiver.
    pub watch_buffer: usize,
    /// The poller looks for new rows this often even without a
    /// notification (one lost with a dropped connection, say).
    pub poll_every: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            connections: 8,
            fanout_events: 2048,
            watch_buffer: 512,
            poll_every: Duration::from_secs(1),
        }
    }
}

/// What the poller shares with writers, readers and watchers.
pub(crate) struct Published {
    /// The newest revision known committed (by this server's writes, the
    /// poller, or a read of the counter).
    current: AtomicI64,
    /// The newest revision whose event the poller has sent; at or below
    /// `current`. Moved under the fan-out lock, as watchers subscribe.
    sent: AtomicI64,
    compacted: AtomicI64,
    /// None once the backend is closed, which ends every watcher.
    fanout: Mutex<Option<broadcast::Sender<Arc<Event>>>>,
    /// Wakes the poller at once (after this server's own writes).
    wake: Notify,
    holds: Arc<RevisionHolds>,
    /// The fan-out's capacity, for the poller to make it again.
    fanout_events: usize,
    /// Set by `close`: a fan-out that ends then ends watches for good;
    /// one the poller replaces (see `poll`) makes them watch again.
    closed: AtomicBool,
}

impl Published {
    /// What a watcher whose fan-out ended is told.
    fn ended(&self) -> Error {
        if self.closed.load(Ordering::Acquire) {
            Error::Closed
        } else {
            Error::WatcherLagged
        }
    }
}

impl Published {
    fn saw(&self, rev: Revision) {
        self.current.fetch_max(rev, Ordering::AcqRel);
    }
}

pub struct PostgresBackend {
    pool: Pool,
    endpoint: String,
    published: Arc<Published>,
    poller: Mutex<Option<tokio::task::JoinHandle<()>>>,
    opts: PostgresOptions,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("endpoint", &self.endpoint)
            .field("revision", &self.current_revision())
            .finish()
    }
}

impl PostgresBackend {
    /// Connects, creates the tables if they are missing and starts the
    /// poller. Must run inside a tokio runtime.
    pub async fn open(url: &str, tls: &TlsFiles) -> Result<Arc<PostgresBackend>> {
        Self::open_with(url, tls, PostgresOptions::default()).await
    }

    pub async fn open_with(
        url: &str,
        tls: &TlsFiles,
        opts: PostgresOptions,
    ) -> Result<Arc<PostgresBackend>> {
        let endpoint = Endpoint::parse(url, tls)?;
        let manager = Manager::from_config(
            endpoint.config.clone(),
            endpoint.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.connections.max(2))
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Backend(format!("datastore pool: {e}")))?;
        let client = pool
            .get()
            .await
            .map_err(|e| pool_err(&endpoint.display, e))?;
        client
            .batch_execute(&format!("BEGIN; {} COMMIT;", schema::SCHEMA))
            .await
            .map_err(db_err)?;
        // Keys are UTF-8 and range bounds go up to U+10FFFF: a database in
        // another encoding would fail some of them.
        let encoding: String = client
            .query_one("SELECT current_setting('server_encoding')", &[])
            .await
            .map_err(db_err)?
            .get(0);
        if encoding != "UTF8" {
            return Err(Error::Backend(format!(
                "{}: the database's encoding is {encoding}; skiff needs a UTF8 database \
                 (CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0)",
                endpoint.display
            )));
        }
        let (rev, compacted) = read::meta(&client).await?;
        drop(client);
        let (fanout, _) = broadcast::channel(opts.fanout_events.max(1));
        let published = Arc::new(Published {
            current: AtomicI64::new(rev),
            sent: AtomicI64::new(rev),
            compacted: AtomicI64::new(compacted),
            fanout: Mutex::new(Some(fanout)),
            wake: Notify::new(),
            holds: Arc::default(),
            fanout_events: opts.fanout_events.max(1),
            closed: AtomicBool::new(false),
        });
        // The poller has a connection of its own: when writes and lists
        // take every pooled one, watch events still go out.
        let poll_pool = Pool::builder(Manager::from_config(
            endpoint.config.clone(),
            endpoint.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        ))
        .max_size(1)
        .create_timeout(Some(Duration::from_secs(15)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Backend(format!("datastore pool: {e}")))?;
        let poller = poll::spawn(
            endpoint.config.clone(),
            endpoint.tls.clone(),
            poll_pool,
            Arc::clone(&published),
            opts.poll_every,
        );
        tracing::info!(endpoint = %endpoint.display, revision = rev, compacted, "store opened");
        Ok(Arc::new(PostgresBackend {
            pool,
            endpoint: endpoint.display,
            published,
            poller: Mutex::new(Some(poller)),
            opts,
        }))
    }

    /// Stops the poller and ends every watch; later calls fail with
    /// `Closed`. What was acknowledged is committed already.
    pub async fn close(&self) {
        self.published.closed.store(true, Ordering::Release);
        let poller = self.poller.lock().ok().and_then(|mut p| p.take());
        if let Some(p) = poller {
            p.abort();
            let _ = p.await;
        }
        if let Ok(mut f) = self.published.fanout.lock() {
            f.take();
        }
        self.pool.close();
    }

    /// Compacts every `interval`, keeping the newest `keep` revisions.
    /// Ends when the store is closed or dropped.
    pub fn spawn_compactor(
        self: &Arc<Self>,
        interval: Duration,
        keep: i64,
    ) -> tokio::task::JoinHandle<()> {
        super::spawn_compactor(self, interval, keep)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        if self.pool.is_closed() {
            return Err(Error::Closed);
        }
        self.pool
            .get()
            .await
            .map_err(|e| pool_err(&self.endpoint, e))
    }

    /// One write in its own transaction. The op is decided against the
    /// key's newest row first; then one statement takes the next revision
    /// (the counter row's lock, which orders every server's writes),
    /// appends the row and notifies, and the commit follows: the lock is
    /// held for two round trips. A row written meanwhile for the same key
    /// takes the same predecessor, which the unique (key, prev_rev) index
    /// refuses: the op then conflicts, as it would have had it come later.
    async fn write(&self, op: WriteOp) -> Result<KeyValue> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(db_err)?;
        let key = op.key().to_owned();
        let newest = tx
            .prepare_cached(
                "SELECT rev, deleted, create_rev, value FROM skiff_kv
                 WHERE key = $1 ORDER BY rev DESC LIMIT 1",
            )
            .await
            .map_err(db_err)?;
        let latest = tx
            .query_opt(&newest, &[&key])
            .await
            .map_err(db_err)?
            .map(|r| Latest {
                rev: r.get(0),
                deleted: r.get(1),
                create_rev: r.get(2),
                value: Bytes::from(r.get::<_, Vec<u8>>(3)),
            });
        let live = latest.as_ref().filter(|l| !l.deleted);
        // Decided before a revision is taken; the same decision, with the
        // revision, after.
        let row = check(&op, live, latest.as_ref(), 0)?;
        let append = tx
            .prepare_cached(
                "WITH next AS (
                     UPDATE skiff_meta SET value = value + 1 WHERE name = 'rev' RETURNING value
                 ), row AS (
                     INSERT INTO skiff_kv (rev, key, created, deleted, create_rev, prev_rev, value)
                     SELECT value, $1, $2, $3, CASE WHEN $2 THEN value ELSE $4 END, $5, $6
                     FROM next RETURNING rev
                 )
                 SELECT rev, pg_notify('skiff_kv', '') FROM row",
            )
            .await
            .map_err(db_err)?;
        let appended = tx
            .query_one(
                &append,
                &[
                    &key,
                    &row.created,
                    &row.deleted,
                    &row.create_rev,
                    &row.prev_rev,
                    &&row.value[..],
                ],
            )
            .await;
        let rev: Revision = match appended {
            Ok(r) => r.get(0),
            // Only the (key, prev_rev) index says another write got there
            // first; a taken revision (a database set back) is an error.
            Err(e)
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    && e.as_db_error().and_then(|d| d.constraint())
                        == Some("skiff_kv_key_prev") =>
            {
                return Err(match op {
                    WriteOp::Create { key, .. } => Error::AlreadyExists { key },
                    _ => Error::Conflict {
                        key,
                        expected: row.prev_rev,
                        actual: -1,
                    },
                });
            }
            Err(e) => return Err(db_err(e)),
        };
        let row = check(&op, live, latest.as_ref(), rev)?;
        tx.commit().await.map_err(db_err)?;
        self.published.saw(rev);
        self.published.wake.notify_one();
        Ok(row.result)
    }

    /// The revision a read runs at: the latest committed one (read in the
    /// read's own snapshot) if none is asked.
    async fn checked_revision(&self, requested: Option<Revision>) -> Result<Option<Revision>> {
        match requested {
            None | Some(0) => Ok(None),
            Some(r) if r <= self.current_revision() => Ok(Some(r)),
            // Another server may have written it: ask the counter.
            Some(r) => {
                let client = self.client().await?;
                let (current, _) = read::meta(&client).await?;
                self.published.saw(current);
                if r > current {
                    return Err(Error::FutureRevision {
                        requested: r,
                        current,
                    });
                }
                Ok(Some(r))
            }
        }
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // The poller holds no reference to the backend: end it here.
        if let Some(p) = self.poller.get_mut().ok().and_then(|p| p.take()) {
            p.abort();
        }
    }
}

fn pool_err(endpoint: &str, e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Closed => Error::Closed,
        deadpool_postgres::PoolError::Backend(e) => match db_err(e) {
            Error::Backend(msg) => Error::Backend(format!("{endpoint}: {msg}")),
            other => other,
        },
        other => Error::Backend(format!("{endpoint}: {other}")),
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn current_revision(&self) -> Revision {
        self.published.current.load(Ordering::Acquire)
    }

    fn compacted_revision(&self) -> Revision {
        self.published.compacted.load(Ordering::Acquire)
    }

    async fn latest_revision(&self) -> Result<Revision> {
        let client = self.client().await?;
        let (rev, _) = read::meta(&client).await?;
        self.published.saw(rev);
        Ok(rev)
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        let rev = self.checked_revision(revision).await?;
        let mut client = self.client().await?;
        let (kv, at) = read::get(&mut client, key, rev).await?;
        self.published.saw(at);
        Ok(kv)
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let rev = self.checked_revision(opts.revision).await?;
        let mut client = self.client().await?;
        let list = read::list(&mut client, &KeyRange::prefix(prefix), &opts, rev).await?;
        self.published.saw(list.revision);
        Ok(list)
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let mut client = self.client().await?;
        read::count(&mut client, &KeyRange::prefix(prefix)).await
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
            // Everything the poller has sent is at or below `current`, so
            // what this watcher misses of the fan-out, its catch-up reads.
            (sender.subscribe(), self.current_revision())
        };
        Ok(watch::Watch {
            pool: self.pool.clone(),
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
        let client = self.client().await?;
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(db_err)?
            .get(0);
        if standby {
            return Err(Error::Backend(format!(
                "{}: the database is a read-only standby",
                self.endpoint
            )));
        }
        Ok(())
    }

    async fn compact(&self, keep: i64) -> Result<Revision> {
        let mut client = self.client().await?;
        // Not past what this server's watchers were sent (the poller
        // reads history above it), nor a revision a read here holds. The
        // poller is given a moment to send what this server knows of.
        let known = self.current_revision();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.published.sent.load(Ordering::Acquire) < known
            && tokio::time::Instant::now() < deadline
        {
            self.published.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sent = self.published.sent.load(Ordering::Acquire);
        let held = self.published.holds.oldest().map_or(sent, |h| h.min(sent));
        let target = read::compact(&mut client, keep, Some(held)).await?;
        self.published.compacted.fetch_max(target, Ordering::AcqRel);
        Ok(target)
    }

    fn hold(&self, revision: Revision) -> RevisionHold {
        self.published.holds.hold(revision)
    }
}
