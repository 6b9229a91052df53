//! Renewals held back from the file: Lease heartbeats (a node's every 10 s,
//! each leader's every 15 s) are most of an idle cluster's writes, and each
//! durable commit of one costs ~24 KiB of flash (a WAL frame per B-tree page
//! it touches, fsynced). A renewal is instead acknowledged once it is in
//! memory and visible to every read and watch; the newest renewal of each
//! key reaches the file with the next durable commit (any other write, a
//! compaction, an explicit flush such as a scheduled snapshot's, shutdown,
//! or when too many wait). Which updates are renewals is the API server's
//! call (`apiserver::renewal`: nodes' and the server's own leaders' Leases,
//! nothing changed but `spec.renewTime`).
//!
//! What it costs:
//! - A crash loses the renewals since the last commit: the Lease reads as
//!   renewed up to a few minutes earlier. Who holds it is always durable.
//! - History keeps only the newest of a run of renewals once they are in
//!   the file: a watch replayed from before them gets that one event, and
//!   a read at a revision in between shows the renewal before the run.
//!
//! Revisions handed to deferred renewals are reserved durably in blocks
//! first (`meta.reserved_rev`), so a revision a client saw is never handed
//! out again after a crash.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rusqlite::{params, Transaction};

use super::read::KeyRange;
use super::schema::META_RESERVED;
use super::writer::{check, newest_row, Latest, Outcome, SharedEvent, WriteOp, Writer};
use crate::server::store::{Event, KeyValue, ListResult, Revision};

/// At most this many renewals wait in memory (all keys together), about a
/// kilobyte each with the version they replaced.
const MAX_PENDING_EVENTS: usize = 512;

/// A renewal waits at most this long for a durable commit to carry it,
/// beside the compactor's flush (every five minutes).
const MAX_PENDING_AGE: Duration = Duration::from_secs(300);

/// Revisions reserved per durable reservation: at an idle node's 14
/// renewals a minute, one extra commit an hour. A crash skips what was left
/// of the block, which no client can tell from other writes; kept well
/// under the history compaction keeps (10,000), so a restart after a crash
/// does not compact away the history before it.
const RESERVE_BLOCK: Revision = 1_000;

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
                        let l = newest_row(&self.conn, key)?;
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
                // Readiness says so, and renewals stop waiting in memory
                // until writes go through again.
                let why = format!("writes to the database fail: {e}");
                self.published.set_write_failure(Some(why.clone()));
                Err(why)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::EventKind;
    use bytes::Bytes;

    fn ev(rev: Revision) -> Event {
        Event {
            kind: EventKind::Update,
            kv: KeyValue {
                key: format!("/k/{rev}"),
                value: Bytes::new(),
                create_revision: 1,
                mod_revision: rev,
            },
            prev: None,
        }
    }

    fn revs(page: &[Event]) -> Vec<Revision> {
        page.iter().map(Event::revision).collect()
    }

    #[test]
    fn history_pages_merge_in_order_once_each() {
        // The file's page is not full: every waiting event belongs, in order,
        // without the one in both (a flush between the two reads).
        let (page, full) = merge_history(vec![ev(2), ev(5)], vec![ev(3), ev(5), ev(7)], 4);
        assert_eq!((revs(&page), full), (vec![2, 3, 5, 7], true));
        let (page, full) = merge_history(vec![ev(2)], vec![ev(3)], 4);
        assert_eq!((revs(&page), full), (vec![2, 3], false));
        // More than a page together: cut at the limit, and the next page
        // starts after the last one sent.
        let (page, full) = merge_history(vec![ev(2), ev(6)], vec![ev(3), ev(4), ev(5)], 3);
        assert_eq!((revs(&page), full), (vec![2, 3, 4], true));
        // A full page from the file covers revisions up to its last row
        // only: later waiting events wait for the next page, or they would
        // skip the file's rows between.
        let (page, full) = merge_history(vec![ev(2), ev(4)], vec![ev(3), ev(9)], 2);
        assert_eq!((revs(&page), full), (vec![2, 3], true));
        let (page, full) = merge_history(vec![ev(4), ev(8)], vec![ev(9)], 2);
        assert_eq!((revs(&page), full), (vec![4, 8], true));
        // Nothing waiting.
        let (page, full) = merge_history(vec![ev(1)], Vec::new(), 2);
        assert_eq!((revs(&page), full), (vec![1], false));
    }

    #[test]
    fn a_reservation_is_written_only_when_it_runs_short() {
        assert_eq!(next_reservation(0, 10), Some(10 + RESERVE_BLOCK));
        assert_eq!(next_reservation(10 + RESERVE_BLOCK, 20), None);
        let late = 10 + RESERVE_BLOCK / 2 + 1;
        assert_eq!(
            next_reservation(10 + RESERVE_BLOCK, late),
            Some(late + RESERVE_BLOCK)
        );
    }
}
