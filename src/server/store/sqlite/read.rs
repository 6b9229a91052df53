//! Read side: a small pool of connections that read WAL snapshots next to
//! the writer, and the queries behind get, list, count and watch catch-up.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use tokio::sync::Semaphore;

use super::deferred::Overlay;
use super::schema::{db_err, open_reader, read_compacted};
pub(crate) use crate::server::store::log::KeyRange;
use crate::server::store::log::{hi_or_max, history_event};
use crate::server::store::{Error, Event, KeyValue, ListResult, Revision};

type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Caps open read connections (each has its own page cache).
    permits: Semaphore,
    max_idle: usize,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, size: usize) -> Self {
        let size = size.max(1);
        ReadPool {
            path,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
            max_idle: size,
        }
    }

    /// Runs `f` on a pooled connection inside one read transaction, so all
    /// of its statements (including the compaction check) see one snapshot.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Closed)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut conn = match pool.take() {
                Some(c) => c,
                None => open_reader(&pool.path)?,
            };
            let out = (|| {
                let tx = conn.transaction().map_err(db_err)?;
                let out = f(&tx)?;
                // Read-only: commit just ends the snapshot.
                tx.commit().map_err(db_err)?;
                Ok(out)
            })();
            pool.give_back(conn);
            out
        })
        .await
        .map_err(|e| Error::Backend(format!("read task failed: {e}")))?
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }

    /// Closes idle connections (used at shutdown).
    pub(crate) fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// Fails unless `rev` can still be read in this snapshot.
pub(crate) fn check_readable(tx: &Transaction<'_>, rev: Revision) -> Result<()> {
    let compacted = read_compacted(tx)?;
    if rev < compacted {
        return Err(Error::Compacted {
            requested: rev,
            compacted,
        });
    }
    Ok(())
}

pub(crate) const GET_SQL: &str = "SELECT deleted, value, create_rev, rev FROM kv
     WHERE key = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1";

/// The version of `key` at `rev`: the file's, or a newer renewal that
/// waits in memory.
pub(crate) fn get(
    tx: &Transaction<'_>,
    key: &str,
    rev: Revision,
    deferred: &Overlay,
) -> Result<Option<KeyValue>> {
    check_readable(tx, rev)?;
    let row = tx
        .prepare_cached(GET_SQL)
        .map_err(db_err)?
        .query_row(params![key, rev], |r| {
            let deleted: bool = r.get(0)?;
            Ok((deleted, r.get::<_, Vec<u8>>(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(db_err)?;
    if let Some(kv) = deferred.newest(key, rev) {
        // A delete in the file after it (read from an older overlay) wins.
        if row.as_ref().is_none_or(|r| r.3 < kv.mod_revision) {
            return Ok(Some(kv.clone()));
        }
    }
    Ok(match row {
        Some((false, value, create_revision, mod_revision)) => Some(KeyValue {
            key: key.to_owned(),
            value: Bytes::from(value),
            create_revision,
            mod_revision,
        }),
        _ => None,
    })
}

// Rows are read in key order from the (key, rev, deleted) index; a row is
// listed when it is the key's newest at or below the revision (a seek in
// the same index) and not a deletion. The value is read only for the rows
// listed, and the LIMIT ends the scan: a page costs its own rows, not the
// range's (a GROUP BY subquery here was materialised whole and sorted,
// values included, for every page). `{LO}` is `key >= ?1` from the start
// of the range or `key > ?1` after a continue key: both bound the index
// range (an `(? IS NULL OR key > ?)` term would not).
const LIST_TEMPLATE: &str = "
SELECT kv.key, kv.value, kv.create_rev, kv.rev FROM kv
WHERE {LO} AND kv.key < ?2 AND kv.deleted = 0
  AND kv.rev = (SELECT MAX(k2.rev) FROM kv AS k2 WHERE k2.key = kv.key AND k2.rev <= ?3)
ORDER BY kv.key
LIMIT ?4";

// Counting needs no values: the newest row per key from the index alone
// (streamed, not materialised).
const COUNT_TEMPLATE: &str = "
SELECT COUNT(*) FROM (
    SELECT key, MAX(rev) AS rev, deleted FROM kv
    WHERE {LO} AND kv.key < ?2 AND rev <= ?3
    GROUP BY key
) WHERE deleted = 0";

/// The statements of a list, from the start of a range or after a key.
pub(crate) struct RangeSql {
    pub from: String,
    pub after: String,
}

impl RangeSql {
    fn of(template: &str) -> Self {
        RangeSql {
            from: template.replace("{LO}", "kv.key >= ?1"),
            after: template.replace("{LO}", "kv.key > ?1"),
        }
    }

    /// The statement and its lower bound: after `start_after` when it is
    /// within the range, else from the range's start.
    fn pick<'a>(&'a self, range: &'a KeyRange, start_after: Option<&'a str>) -> (&'a str, &'a str) {
        match start_after {
            Some(k) if k >= range.lo.as_str() => (&self.after, k),
            _ => (&self.from, &range.lo),
        }
    }
}

pub(crate) static LIST_SQL: std::sync::LazyLock<RangeSql> =
    std::sync::LazyLock::new(|| RangeSql::of(LIST_TEMPLATE));
static COUNT_SQL: std::sync::LazyLock<RangeSql> =
    std::sync::LazyLock::new(|| RangeSql::of(COUNT_TEMPLATE));

/// How much one list call may return, and whether to count the rest.
pub(crate) struct Bounds {
    pub limit: Option<usize>,
    pub max_bytes: Option<usize>,
    pub count: bool,
}

pub(crate) fn list(
    tx: &Transaction<'_>,
    range: &KeyRange,
    start_after: Option<&str>,
    bounds: Bounds,
    rev: Revision,
) -> Result<ListResult> {
    check_readable(tx, rev)?;
    let hi = hi_or_max(range);
    let limit = bounds.limit.filter(|n| *n > 0);
    // One row more than asked tells whether any follow.
    let lim: i64 = match limit {
        Some(n) => i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1),
        None => -1,
    };
    let max_bytes = bounds.max_bytes.filter(|n| *n > 0).unwrap_or(usize::MAX);
    let (sql, lo) = LIST_SQL.pick(range, start_after);
    let mut stmt = tx.prepare_cached(sql).map_err(db_err)?;
    let mut items = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    {
        let mut rows = stmt.query(params![lo, hi, rev, lim]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            if bytes >= max_bytes || limit.is_some_and(|n| items.len() >= n) {
                more = true;
                break;
            }
            let kv = kv_from_row(r)?;
            bytes = bytes.saturating_add(kv.value.len());
            items.push(kv);
        }
    }
    let remaining = match items.last() {
        _ if !bounds.count => None,
        Some(last) if more => {
            let (sql, lo) = COUNT_SQL.pick(range, Some(&last.key));
            let n = tx
                .prepare_cached(sql)
                .map_err(db_err)?
                .query_row(params![lo, hi, rev], |r| r.get::<_, i64>(0))
                .map_err(db_err)?;
            Some(n as u64)
        }
        _ => Some(0),
    };
    Ok(ListResult {
        items,
        revision: rev,
        more,
        remaining,
    })
}

pub(crate) fn count(tx: &Transaction<'_>, range: &KeyRange, rev: Revision) -> Result<u64> {
    let hi = hi_or_max(range);
    let n: i64 = tx
        .prepare_cached(&COUNT_SQL.from)
        .map_err(db_err)?
        .query_row(params![range.lo, hi, rev], |r| r.get(0))
        .map_err(db_err)?;
    Ok(n as u64)
}

fn kv_from_row(r: &Row<'_>) -> Result<KeyValue> {
    Ok(KeyValue {
        key: r.get(0).map_err(db_err)?,
        value: Bytes::from(r.get::<_, Vec<u8>>(1).map_err(db_err)?),
        create_revision: r.get(2).map_err(db_err)?,
        mod_revision: r.get(3).map_err(db_err)?,
    })
}

/// One page of history for watch catch-up: events for keys in `range` with
/// `after < rev <= upto`, oldest first, at most `limit` of them.
pub(crate) fn history(
    tx: &Transaction<'_>,
    range: &KeyRange,
    after: Revision,
    upto: Revision,
    limit: usize,
) -> Result<Vec<Event>> {
    // History below the compacted revision is incomplete; a watcher that
    // needs it must relist.
    check_readable(tx, after)?;
    let hi = hi_or_max(range);
    let mut stmt = tx
        .prepare_cached(
            "SELECT kv.key, kv.value, kv.create_rev, kv.rev, kv.created, kv.deleted,
                    kv.prev_rev, p.value, p.create_rev
             FROM kv LEFT JOIN kv AS p ON p.rev = kv.prev_rev
             WHERE kv.rev > ?1 AND kv.rev <= ?2 AND kv.key >= ?3 AND kv.key < ?4
             ORDER BY kv.rev LIMIT ?5",
        )
        .map_err(db_err)?;
    let lim = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt
        .query(params![after, upto, range.lo, hi, lim])
        .map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        let kv = kv_from_row(r)?;
        let event = history_event(
            kv,
            r.get(4).map_err(db_err)?,
            r.get(5).map_err(db_err)?,
            r.get(6).map_err(db_err)?,
            r.get(7).map_err(db_err)?,
            r.get(8).map_err(db_err)?,
        );
        out.push(event);
    }
    Ok(out)
}
