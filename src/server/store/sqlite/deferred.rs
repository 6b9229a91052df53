//! Renewals held back from the file: Lease heartbeats (a node's every 10 s,
//! each leader's every 15 s) are most of an idle cluster's writes, and each
//! durable commit of one costs ~24 KiB of flash (a WAL frame per B-tree page
//! it touches, fsynced). A renewal is instead acknowledged once it is in
//! memory and visible to every read and watch; the newest renewal of each
//! key reaches the file with the next durable commit (any other write, a
//! compaction, shutdown, or when too many wait). Runs of renewals between
//! two commits leave only their newest version in the log.
//!
//! What a crash costs: renewals since the last commit, so a Lease reads as
//! renewed a few minutes earlier than it was. Holder changes are never
//! deferred (the API server defers only an update that changes nothing but
//! `spec.renewTime`), so who holds a Lease is always durable, and a
//! client-go style elector measures expiry by its own clock from the moment
//! it sees a change, which a rollback is. Revisions handed to deferred
//! renewals are reserved durably in blocks first (`meta.reserved_rev`), so
//! a revision a client saw is never handed out again after a crash.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::{params, OptionalExtension, Transaction};

use super::read::KeyRange;
use super::schema::META_RESERVED;
use super::writer::{check, Latest, Outcome, SharedEvent, WriteOp, Writer};
use crate::server::store::{Event, KeyValue, ListResult, Revision};

/// At most this many renewals wait in memory (all keys together), about a
/// kilobyte each with the version they replaced.
const MAX_PENDING_EVENTS: usize = 512;

/// A renewal waits at most this long for a durable commit to carry it,
/// beside the compactor's flush (every five minutes).
const MAX_PENDING_AGE: Duration = Duration::from_secs(300);

/// Revisions reserved per durable reservation: at an idle node's 14
/// renewals a minute, one extra commit every twelve hours. A crash skips
/// what was left of the block, which no client can tell from other writes.
const RESERVE_BLOCK: Revision = 10_000;

/// A key's renewals that wait in memory.
pub(crate) struct Pending {
    /// The key's newest revision in the file: the flushed row's `prev_rev`,
    /// so the log stays one chain per key without the rows in between.
    persisted_prev: Revision,
    newest: Latest,
    events: Vec<SharedEvent>,
}

/// The deferred events per key, oldest first: an immutable snapshot that
/// readers take before they open their database snapshot.
#[derive(Default)]
pub(crate) struct Overlay {
    by_key: BTreeMap<String, Vec<SharedEvent>>,
}

impl Overlay {
    pub(crate) fn new(by_key: BTreeMap<String, Vec<SharedEvent>>) -> Self {
        Overlay { by_key }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The newest deferred version of `key` at or below `rev`.
    pub(crate) fn newest(&self, key: &str, rev: Revision) -> Option<&KeyValue> {
        self.by_key
            .get(key)?
            .iter()
            .rev()
            .find(|ev| ev.revision() <= rev)
            .map(|ev| &ev.kv)
    }

    /// Gives a listed key its newer deferred version. Only updates of live
    /// keys are deferred, so a list's set of keys is the file's; only the
    /// values can be newer.
    pub(crate) fn refresh(&self, list: &mut ListResult) {
        if self.is_empty() {
            return;
        }
        for item in &mut list.items {
            if let Some(kv) = self.newest(&item.key, list.revision) {
                if kv.mod_revision > item.mod_revision {
                    *item = kv.clone();
                }
            }
        }
    }

    /// Deferred events in `range` with `after < rev <= upto`, oldest first.
    pub(crate) fn events(&self, range: &KeyRange, after: Revision, upto: Revision) -> Vec<Event> {
        let keys = match &range.hi {
            Some(hi) => self.by_key.range::<str, _>((
                std::ops::Bound::Included(range.lo.as_str()),
                std::ops::Bound::Excluded(hi.as_str()),
            )),
            None => self.by_key.range::<str, _>((
                std::ops::Bound::Included(range.lo.as_str()),
                std::ops::Bound::Unbounded,
            )),
        };
        let mut out: Vec<Event> = keys
            .flat_map(|(_, evs)| evs.iter())
            .filter(|ev| ev.revision() > after && ev.revision() <= upto)
            .map(|ev| Event::clone(ev))
            .collect();
        out.sort_by_key(Event::revision);
        out
    }
}

/// Merges one page of history from the file with deferred events: oldest
/// first, each revision once (a renewal being flushed can be in both), at
/// most `limit`. Returns whether the page is full (more may follow).
pub(crate) fn merge_history(
    file: Vec<Event>,
    deferred: Vec<Event>,
    limit: usize,
) -> (Vec<Event>, bool) {
    if deferred.is_empty() {
        let full = file.len() >= limit;
        return (file, full);
    }
    let file_full = file.len() >= limit;
    // A full page from the file covers revisions up to its last one only.
    let bound = if file_full {
        file.last().map_or(Revision::MAX, Event::revision)
    } else {
        Revision::MAX
    };
    let mut merged: Vec<Event> = file;
    merged.extend(deferred.into_iter().filter(|ev| ev.revision() <= bound));
    merged.sort_by_key(Event::revision);
    merged.dedup_by_key(|ev| ev.revision());
    let full = file_full || merged.len() >= limit;
    merged.truncate(limit);
    (merged, full)
}

/// The published overlay: swapped whole by the writer, cloned by readers.
#[derive(Default)]
pub(crate) struct Shared(RwLock<Arc<Overlay>>);

impl Shared {
    pub(crate) fn snapshot(&self) -> Arc<Overlay> {
        match self.0.read() {
            Ok(o) => Arc::clone(&o),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub(crate) fn set(&self, overlay: Overlay) {
        let overlay = Arc::new(overlay);
        match self.0.write() {
            Ok(mut o) => *o = overlay,
            Err(p) => *p.into_inner() = overlay,
        }
    }
}

impl Writer {
    /// Whether this group can wait in memory: renewals only, room left,
    /// revisions reserved, nothing waiting too long, writes going through.
    pub(super) fn can_defer(&self, writes: &[(WriteOp, impl Sized)]) -> bool {
        let n = writes.len();
        writes.iter().all(|(op, _)| op.deferrable())
            && self.pending_events + n <= MAX_PENDING_EVENTS
            && self.last.saturating_add(n as Revision) <= self.reserved
            && self
                .pending_since
                .is_none_or(|t| t.elapsed() < MAX_PENDING_AGE)
            && self.published.write_failure().is_none()
    }

    /// Checks a group of renewals against the newest versions and keeps
    /// them in memory; the overlay shows them before `current` does. Err
    /// (a failed lookup) leaves everything as it was.
    pub(super) fn apply_deferred(
        &mut self,
        writes: &[(WriteOp, impl Sized)],
    ) -> Result<Vec<Outcome>, rusqlite::Error> {
        let mut next = self.last + 1;
        let mut staged: Vec<(String, Revision, Latest, SharedEvent)> = Vec::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        for (op, _) in writes {
            let key = op.key();
            let (latest, persisted_prev) = match staged.iter().rev().find(|s| s.0 == key) {
                Some(s) => (Some(s.2.clone()), s.1),
                None => match self.pending.get(key) {
                    Some(p) => (Some(p.newest.clone()), p.persisted_prev),
                    None => {
                        let l = newest_in_file(&self.conn, key)?;
                        let prev = l.as_ref().map_or(0, |l| l.rev);
                        (l, prev)
                    }
                },
            };
            let live = latest.as_ref().filter(|l| !l.deleted);
            let row = match check(op, live, latest.as_ref(), next) {
                Ok(row) => row,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            let newest = Latest {
                rev: next,
                deleted: false,
                create_rev: row.create_rev,
                value: row.value.clone(),
            };
            let event = Arc::new(row.event);
            staged.push((key.to_owned(), persisted_prev, newest, Arc::clone(&event)));
            outcomes.push(Ok((row.result, event)));
            next += 1;
        }
        for (key, persisted_prev, newest, event) in staged {
            let p = self.pending.entry(key).or_insert_with(|| Pending {
                persisted_prev,
                newest: newest.clone(),
                events: Vec::new(),
            });
            p.newest = newest;
            p.events.push(event);
            self.pending_events += 1;
            self.pending_since.get_or_insert_with(Instant::now);
        }
        self.last = next - 1;
        self.show_pending();
        Ok(outcomes)
    }

    /// Publishes the overlay readers merge (before `current` moves).
    fn show_pending(&self) {
        let by_key = self
            .pending
            .iter()
            .map(|(k, p)| (k.clone(), p.events.clone()))
            .collect();
        self.published.deferred.set(Overlay::new(by_key));
    }

    /// After a commit that carried the renewals.
    pub(super) fn clear_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.pending.clear();
        self.pending_events = 0;
        self.pending_since = None;
        self.published.deferred.set(Overlay::default());
    }

    /// Commits the waiting renewals on their own.
    pub(super) fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.apply(&[]) {
            Ok(_) => {
                self.clear_pending();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, renewals = self.pending_events, "store: writing deferred renewals failed");
                Err(format!("writing deferred renewals: {e}"))
            }
        }
    }

    /// At shutdown: the renewals go to the file, and the reservation
    /// shrinks to what was handed out, so the next start goes on from
    /// there (nothing above it was seen).
    pub(super) fn shut_down_deferral(&mut self) {
        if self.flush().is_err() || self.reserved <= self.last {
            return;
        }
        let res = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            write_reserved(&tx, self.last)?;
            tx.commit()
        })();
        match res {
            Ok(()) => self.reserved = self.last,
            Err(e) => {
                tracing::debug!(error = %e, "store: trimming the revision reservation failed")
            }
        }
    }
}

fn newest_in_file(conn: &rusqlite::Connection, key: &str) -> rusqlite::Result<Option<Latest>> {
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

/// Inserts the newest renewal of each waiting key (the ones before it are
/// dropped) and records them as the keys' newest rows for the rest of the
/// group.
pub(super) fn insert_pending(
    tx: &Transaction<'_>,
    pending: &BTreeMap<String, Pending>,
    seen: &mut HashMap<String, Option<Latest>>,
) -> rusqlite::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO kv (rev, key, created, deleted, create_rev, prev_rev, value)
         VALUES (?1, ?2, 0, 0, ?3, ?4, ?5)",
    )?;
    for (key, p) in pending {
        insert.execute(params![
            p.newest.rev,
            key,
            p.newest.create_rev,
            p.persisted_prev,
            &p.newest.value[..]
        ])?;
        seen.insert(key.clone(), Some(p.newest.clone()));
    }
    Ok(())
}

/// The reservation a durable commit that carried renewals up to `last`
/// should write, if the current one runs short.
pub(super) fn next_reservation(reserved: Revision, last: Revision) -> Option<Revision> {
    (reserved < last.saturating_add(RESERVE_BLOCK / 2)).then(|| last.saturating_add(RESERVE_BLOCK))
}

pub(super) fn write_reserved(tx: &Transaction<'_>, rev: Revision) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![META_RESERVED, rev],
    )?;
    Ok(())
}
