//! The single writer: one thread owns the write connection and commits
//! whatever is queued as one transaction (group commit), so many concurrent
//! writes share one fsync while each stays individually checked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::compact;

/// The `meta` row the health probe writes (when it last succeeded).
const META_PROBED: &str = "health_probed_at";
use crate::server::store::{Error, Event, EventKind, KeyValue, Revision, RevisionHolds};

type Result<T, E = Error> = std::result::Result<T, E>;

/// One committed event as the fan-out carries it: shared by all watchers
/// until the slowest has seen it. Events (not commit groups) are the unit so
/// the fan-out's memory is bounded by a number of objects.
pub(crate) type SharedEvent = Arc<Event>;

pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

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
}

impl Published {
    fn set_write_failure(&self, failure: Option<String>) {
        if let Ok(mut f) = self.write_failure.lock() {
            *f = failure;
        }
    }

    pub(crate) fn write_failure(&self) -> Option<String> {
        self.write_failure.lock().ok().and_then(|f| f.clone())
    }
}

/// The newest row of a key, as the writer needs it for checks and events.
#[derive(Clone)]
struct Latest {
    rev: Revision,
    deleted: bool,
    create_rev: Revision,
    value: Bytes,
}

impl Latest {
    fn kv(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: self.value.clone(),
            create_revision: self.create_rev,
            mod_revision: self.rev,
        }
    }
}

pub(crate) struct Writer {
    conn: Connection,
    /// Newest revision in the table (or compacted away); the next write
    /// gets `last + 1`.
    last: Revision,
    max_batch: usize,
    published: Arc<Published>,
}

/// One op's outcome before commit: the value to return and the event, or the
/// op's own error (which does not fail the batch).
type Outcome = Result<(KeyValue, Event)>;

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        last: Revision,
        max_batch: usize,
        published: Arc<Published>,
    ) -> Self {
        Writer {
            conn,
            last,
            max_batch: max_batch.max(1),
            published,
        }
    }

    /// Serves requests until every sender is gone, then closes the fan-out.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut writes = Vec::with_capacity(self.max_batch);
        let mut compactions = Vec::new();
        let mut probes = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(req) = next.take() {
                match req {
                    Request::Write { op, reply } => writes.push((op, reply)),
                    Request::Compact { keep, reply } => compactions.push((keep, reply)),
                    Request::Probe { reply } => probes.push(reply),
                }
                if writes.len() < self.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !writes.is_empty() {
                self.commit_group(&mut writes);
            }
            for (keep, reply) in compactions.drain(..) {
                let res = compact::compact(&mut self.conn, self.last, keep, &self.published);
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

    fn publish(&self, events: Vec<Event>) {
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
                        let _ = tx.send(Arc::new(ev));
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
    fn apply(
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
        {
            let mut find = tx.prepare_cached(
                "SELECT rev, deleted, create_rev, value FROM kv
                 WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO kv (rev, key, created, deleted, create_rev, prev_rev, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (op, _) in writes {
                let key = op.key();
                let latest = match seen.get(key) {
                    Some(l) => l.clone(),
                    None => find
                        .query_row([key], |r| {
                            Ok(Latest {
                                rev: r.get(0)?,
                                deleted: r.get(1)?,
                                create_rev: r.get(2)?,
                                value: Bytes::from(r.get::<_, Vec<u8>>(3)?),
                            })
                        })
                        .optional()?,
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
                outcomes.push(Ok((row.result, row.event)));
                next += 1;
            }
        }
        tx.commit()?;
        self.last = next - 1;
        Ok(outcomes)
    }
}

impl WriteOp {
    fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

struct NewRow {
    created: bool,
    deleted: bool,
    create_rev: Revision,
    prev_rev: Revision,
    value: Bytes,
    result: KeyValue,
    event: Event,
}

/// Decides one op against the key's newest row (`latest`, possibly a
/// tombstone; `live` is it unless it is a tombstone).
fn check(
    op: &WriteOp,
    live: Option<&Latest>,
    latest: Option<&Latest>,
    rev: Revision,
) -> Result<NewRow> {
    match op {
        WriteOp::Create { key, value } => {
            if live.is_some() {
                return Err(Error::AlreadyExists { key: key.clone() });
            }
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: rev,
                mod_revision: rev,
            };
            Ok(NewRow {
                created: true,
                deleted: false,
                create_rev: rev,
                // Chaining to the tombstone keeps (key, prev_rev) unique
                // across delete and re-create.
                prev_rev: latest.map_or(0, |l| l.rev),
                value: value.clone(),
                result: kv.clone(),
                event: Event {
                    kind: EventKind::Create,
                    kv,
                    prev: None,
                },
            })
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let cur = live.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if cur.rev != *expected {
                return Err(Error::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual: cur.rev,
                });
            }
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: cur.create_rev,
                mod_revision: rev,
            };
            Ok(NewRow {
                created: false,
                deleted: false,
                create_rev: cur.create_rev,
                prev_rev: cur.rev,
                value: value.clone(),
                result: kv.clone(),
                event: Event {
                    kind: EventKind::Update,
                    kv,
                    prev: Some(cur.kv(key)),
                },
            })
        }
        WriteOp::Delete { key, expected } => {
            let cur = live.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if let Some(expected) = expected {
                if cur.rev != *expected {
                    return Err(Error::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        actual: cur.rev,
                    });
                }
            }
            let kv = KeyValue {
                mod_revision: rev,
                ..cur.kv(key)
            };
            Ok(NewRow {
                created: false,
                deleted: true,
                create_rev: cur.create_rev,
                prev_rev: cur.rev,
                value: cur.value.clone(),
                result: kv.clone(),
                event: Event {
                    kind: EventKind::Delete,
                    kv,
                    prev: Some(cur.kv(key)),
                },
            })
        }
    }
}
