//! Compaction: drop history nobody can read any more.
//!
//! After compacting at revision C, the state at C and every later one is
//! intact; reads below C fail with `Compacted`. Removed are the rows that a
//! row at or below C replaced (never a key's newest row at C), and
//! tombstones at or below C (the key is simply absent at C). Rows replaced
//! after C stay: they are the `prev` of events a watcher from C replays.

use std::sync::atomic::Ordering;

use rusqlite::{params, Connection, TransactionBehavior};

use super::schema::{db_err, META_COMPACTED};
use super::writer::Published;
use crate::server::store::{Error, Revision};

/// Runs on the writer thread (SQLite has one writer anyway), between
/// commit groups. `last` is the newest revision.
pub(crate) fn compact(
    conn: &mut Connection,
    last: Revision,
    keep: i64,
    published: &Published,
) -> Result<Revision, Error> {
    let old = published.compacted.load(Ordering::Acquire);
    let mut target = last.saturating_sub(keep.max(0));
    // A list being sent in chunks still reads at its revision.
    if let Some(held) = published.holds.oldest() {
        target = target.min(held);
    }
    if target <= old {
        return Ok(old);
    }
    let started = std::time::Instant::now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    // Everything at or below `old` was handled by earlier runs, so only the
    // revisions in (old, target] need looking at. Superseded rows go first:
    // tombstones' prev_rev links are needed to find them.
    let superseded = tx
        .execute(
            "DELETE FROM kv WHERE rev IN (
                 SELECT prev_rev FROM kv WHERE rev > ?1 AND rev <= ?2 AND prev_rev > 0
             )",
            params![old, target],
        )
        .map_err(db_err)?;
    let tombstones = tx
        .execute(
            "DELETE FROM kv WHERE rev > ?1 AND rev <= ?2 AND deleted = 1",
            params![old, target],
        )
        .map_err(db_err)?;
    tx.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![META_COMPACTED, target],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    published.compacted.store(target, Ordering::Release);
    tracing::debug!(
        revision = target,
        superseded,
        tombstones,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store compacted"
    );
    Ok(target)
}
