//! The single writer: one thread owns the write connection and commits
//! whatever is queued as one transaction (group commit), so many concurrent
//! writes share one fsync while each stays individually checked.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::compact;
use super::deferred::{self, Pending};

/// The `meta` row the health probe writes (when it last succeeded).
const META_PROBED: &str = "health_probed_at";
pub(crate) use crate::server::store::log::{check, Latest, WriteOp};
use crate::server::store::{Error, Event, KeyValue, Revision, RevisionHolds};

type Result<T, E = Error> = std::result::Result<T, E>;

/// One committed event as the fan-out carries it: shared by all watchers
/// until the slowest has seen it. Events (not commit groups) are the unit so
/// the fan-out's memory is bounded by a number of objects.
pub(crate) type SharedEvent = Arc<Event>;

pub(crate) enum Request {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<KeyValue>>,
    },
    Compact {
        keep: i64,
        reply: oneshot::Sender<Result<Revision>>,
    },
    /// Try a small write of its own (not a revision) to see whether writes
    /// go through again after one failed.
    Probe { reply: oneshot::Sender<Result<()>> },
    /// Write deferred renewals to the file now.
    Flush { reply: oneshot::Sender<Result<()>> },
}

/// What the writer shares with readers and watchers.
pub(crate) struct Published {
    /// Newest revision whose events have been handed to the fan-out.
    pub current: AtomicI64,
    pub compacted: AtomicI64,
    /// Revisions that reads in progress still need; compaction stops short
    /// of the oldest.
    pub holds: Arc<RevisionHolds>,
    /// Sending a commit group's events and advancing `current` happen under this lock, and a
    /// new watcher subscribes and reads `current` under it too: so every
    /// revision is either at or below the `current` it reads (found by its
    /// catch-up) or arrives on its subscription. None once the writer ends,
    /// which closes every watcher.
    pub fanout: Mutex<Option<broadcast::Sender<SharedEvent>>>,
    /// Why the last commit (or probe) failed; None once one succeeds. Read
    /// by readiness: a store whose writes fail is not ready.
    pub write_failure: Mutex<Option<String>>,
    /// Renewals acknowledged but not yet in the file. Set before `current`
    /// covers them, cleared only after they are committed: a reader that
    /// takes it before its database snapshot finds every revision up to the
    /// `current` it read in one or the other.
    pub deferred: deferred::Shared,
}

impl Published {
    pub(super) fn set_write_failure(&self, failure: Option<String>) {
        if let Ok(mut f) = self.write_failure.lock() {
            *f = failure;
        }
    }

    pub(crate) fn write_failure(&self) -> Option<String> {
        self.write_failure.lock().ok().and_then(|f| f.clone())
    }
}

pub(crate) struct Writer {
    pub(super) conn: Connection,
    /// Newest revision handed out; the next write gets `last + 1`.
    pub(super) last: Revision,
    max_batch: usize,
    pub(super) published: Arc<Published>,
    /// Deferred renewals by key (see `deferred`), how many events they
    /// hold, and since when the oldest waits.
    pub(super) pending: BTreeMap<String, Pending>,
    pub(super) pending_events: usize,
    pub(super) pending_since: Option<Instant>,
    /// Revisions up to this one are durably reserved (`meta.reserved_rev`):
    /// deferred renewals only take revisions below it.
    pub(super) reserved: Revision,
}

/// One op's outcome before commit: the value to return and the event, or the
/// op's own error (which does not fail the batch).
pub(super) type Outcome = Result<(KeyValue, SharedEvent)>;

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        last: Revision,
        reserved: Revision,
        max_batch: usize,
        published: Arc<Published>,
    ) -> Self {
        Writer {
            conn,
            last,
            max_batch: max_batch.max(1),
            published,
            pending: BTreeMap::new(),
            pending_events: 0,
            pending_since: None,
            reserved,
        }
    }

    /// Serves requests until every sender is gone, then closes the fan-out.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut writes = Vec::with_capacity(self.max_batch);
        let mut compactions = Vec::new();
        let mut probes = Vec::new();
        let mut flushes = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(req) = next.take() {
                match req {
                    Request::Write { op, reply } => writes.push((op, reply)),
                    Request::Compact { keep, reply } => compactions.push((keep, reply)),
                    Request::Probe { reply } => probes.push(reply),
                    Request::Flush { reply } => flushes.push(reply),
                }
                if writes.len() < self.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !writes.is_empty() {
                self.commit_group(&mut writes);
            }
            let mut flushed = Ok(());
            if !compactions.is_empty() || !flushes.is_empty() {
                // Compaction comes every few minutes: it bounds how long a
                // renewal waits when nothing else is written.
                flushed = self.flush();
                for reply in flushes.drain(..) {
                    let _ = reply.send(flushed.clone().map_err(Error::Backend));
                }
            }
            for (keep, reply) in compactions.drain(..) {
                // Compaction looks only at rows in the file: with renewals
                // left out, it would keep the row they replace for ever.
                let res = match &flushed {
                    Ok(()) => compact::compact(&mut self.conn, self.last, keep, &self.published),
                    Err(why) => Err(Error::Backend(why.clone())),
                };
                let _ = reply.send(res);
            }
            if !probes.is_empty() {
                let res = self.probe();
                for reply in probes.drain(..) {
                    let _ = reply.send(res.clone().map_err(Error::Backend));
                }
            }
        }
        if let Ok(mut fanout) = self.published.fanout.lock() {
            fanout.take();
        }
        self.shut_down_deferral();
        // Fold the WAL back so the next start reads one file; failure only
        // costs a slower start.
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "store: checkpoint at shutdown failed");
        }
        tracing::debug!(revision = self.last, "store writer stopped");
    }

    fn commit_group(&mut self, writes: &mut Vec<(WriteOp, oneshot::Sender<Result<KeyValue>>)>) {
        if self.can_defer(writes) {
            match self.apply_deferred(writes) {
                Ok(outcomes) => {
                    self.answer(writes, outcomes);
                    return;
                }
                // Only a lookup failed; the durable path reports it.
                Err(e) => tracing::debug!(error = %e, "store: deferring renewals failed"),
            }
        }
        let outcomes = match self.apply(writes) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, ops = writes.len(), "store: group commit failed");
                self.published
                    .set_write_failure(Some(format!("writes to the database fail: {e}")));
                for (_, reply) in writes.drain(..) {
                    let _ = reply.send(Err(Error::Backend(e.to_string())));
                }
                return;
            }
        };

        if self.published.write_failure().is_some() {
            tracing::info!("store: writes go through again");
            self.published.set_write_failure(None);
        }
        // The flushed renewals are in the file now.
        self.clear_pending();
        self.answer(writes, outcomes);
    }

    /// Publishes the events of a group and answers its callers.
    fn answer(
        &self,
        writes: &mut Vec<(WriteOp, oneshot::Sender<Result<KeyValue>>)>,
        outcomes: Vec<Outcome>,
    ) {
        let mut events = Vec::with_capacity(outcomes.len());
        let mut replies = Vec::with_capacity(outcomes.len());
        for ((_, reply), outcome) in writes.drain(..).zip(outcomes) {
            match outcome {
                Ok((kv, event)) => {
                    events.push(event);
                    replies.push((reply, Ok(kv)));
                }
                Err(e) => replies.push((reply, Err(e))),
            }
        }
        if !events.is_empty() {
            self.publish(events);
        }
        // Callers hear back only once `current` covers their write, so a
        // read right after a write sees it.
        for (reply, res) in replies {
            let _ = reply.send(res);
        }
    }

    fn publish(&self, events: Vec<SharedEvent>) {
        let last = self.last;
        match self.published.fanout.lock() {
            Ok(fanout) => {
                // `current` first: a watcher woken by an event and reading
                // at once (a controller's GET) must see that event's write.
                // Subscribers wait on this lock, so they see both steps or
                // neither, in either order.
                self.published.current.store(last, Ordering::Release);
                if let Some(tx) = fanout.as_ref() {
                    for ev in events {
                        // No receivers is not an error here.
                        let _ = tx.send(ev);
                    }
                }
            }
            Err(_) => {
                // A watcher panicked while subscribing; events can no longer
                // be ordered against subscriptions, but reads must go on.
                self.published.current.store(last, Ordering::Release);
            }
        }
    }

    /// One small committed write outside the log, as the health check.
    fn probe(&mut self) -> Result<(), String> {
        let res = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            tx.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
                params![META_PROBED, now],
            )?;
            tx.commit()
        })();
        match res {
            Ok(()) => {
                if self.published.write_failure().is_some() {
                    tracing::info!("store: writes go through again");
                }
                self.published.set_write_failure(None);
                Ok(())
            }
            Err(e) => {
                let why = format!("writes to the database fail: {e}");
                self.published.set_write_failure(Some(why.clone()));
                Err(why)
            }
        }
    }

    /// Runs the batch in one transaction. Err means nothing was committed.
    pub(super) fn apply(
        &mut self,
        writes: &[(WriteOp, oneshot::Sender<Result<KeyValue>>)],
    ) -> Result<Vec<Outcome>, rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut next = self.last + 1;
        // Newest row per key written earlier in this batch. The transaction
        // would see its own inserts anyway; this saves the lookup.
        let mut seen: HashMap<String, Option<Latest>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut wants_reserve = false;
        deferred::insert_pending(&tx, &self.pending, &mut seen)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO kv (rev, key, created, deleted, create_rev, prev_rev, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (op, _) in writes {
                wants_reserve |= op.deferrable();
                let key = op.key();
                let latest = match seen.get(key) {
                    Some(l) => l.clone(),
                    None => newest_row(&tx, key)?,
                };
                let live = latest.as_ref().filter(|l| !l.deleted);
                let row = match check(op, live, latest.as_ref(), next) {
                    Ok(row) => row,
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                };
                match insert.execute(params![
                    next,
                    key,
                    row.created,
                    row.deleted,
                    row.create_rev,
                    row.prev_rev,
                    &row.value[..]
                ]) {
                    Ok(_) => {}
                    // Cannot happen with one writer, but if (key, prev_rev)
                    // is taken, someone else wrote this version first.
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == ErrorCode::ConstraintViolation =>
                    {
                        outcomes.push(Err(Error::Conflict {
                            key: key.to_owned(),
                            expected: row.prev_rev,
                            actual: -1,
                        }));
                        continue;
                    }
                    // Anything else may have ended the transaction; give up
                    // on the whole batch rather than guess.
                    Err(e) => return Err(e),
                }
                seen.insert(
                    key.to_owned(),
                    Some(Latest {
                        rev: next,
                        deleted: row.deleted,
                        create_rev: row.create_rev,
                        value: row.value.clone(),
                    }),
                );
                outcomes.push(Ok((row.result, Arc::new(row.event))));
                next += 1;
            }
        }
        // A renewal that could not wait for want of reserved revisions
        // reserves the next block with this commit.
        let reserve = wants_reserve
            .then(|| deferred::next_reservation(self.reserved, next - 1))
            .flatten();
        if let Some(r) = reserve {
            deferred::write_reserved(&tx, r)?;
        }
        tx.commit()?;
        self.last = next - 1;
        if let Some(r) = reserve {
            self.reserved = r;
        }
        Ok(outcomes)
    }
}

/// The newest row of `key` in the file (a tombstone included).
pub(super) fn newest_row(conn: &Connection, key: &str) -> rusqlite::Result<Option<Latest>> {
    conn.prepare_cached(
        "SELECT rev, deleted, create_rev, value FROM kv
         WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
    )?
    .query_row([key], |r| {
        Ok(Latest {
            rev: r.get(0)?,
            deleted: r.get(1)?,
            create_rev: r.get(2)?,
            value: Bytes::from(r.get::<_, Vec<u8>>(3)?),
        })
    })
    .optional()
}
