//! The queries behind get, list, count, watch catch-up and compaction.
//! Every read runs in one read-only REPEATABLE READ transaction: the
//! counter, the compacted revision and the rows come from one snapshot.

use bytes::Bytes;
use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::{IsolationLevel, Row};

use super::schema::db_err;
use crate::server::store::log::{hi_or_max, history_event, KeyRange};
use crate::server::store::{Error, Event, KeyValue, ListOptions, ListResult, Revision};

type Result<T, E = Error> = std::result::Result<T, E>;

/// Rows fetched per round trip of a list, so a page bounded by bytes
/// stops without the server sending the rest of the range.
const FETCH: i32 = 64;

/// The committed revision counter and the compacted revision.
pub(super) async fn meta(client: &impl GenericClient) -> Result<(Revision, Revision)> {
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT value FROM skiff_meta WHERE name = 'rev'),
                    (SELECT value FROM skiff_meta WHERE name = 'compacted_rev')",
        )
        .await
        .map_err(db_err)?;
    let row = client.query_one(&stmt, &[]).await.map_err(db_err)?;
    Ok((
        row.get::<_, Option<i64>>(0).unwrap_or(0),
        row.get::<_, Option<i64>>(1).unwrap_or(0),
    ))
}

/// A read-only transaction on one snapshot.
async fn read_only(client: &mut Object) -> Result<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db_err)
}

/// Starts the read's snapshot and settles its revision: the asked one,
/// which must not be compacted, or the latest committed.
async fn snapshot<'a>(
    client: &'a mut Object,
    rev: Option<Revision>,
) -> Result<(deadpool_postgres::Transaction<'a>, Revision)> {
    let tx = read_only(client).await?;
    let (current, compacted) = meta(&tx).await?;
    let rev = rev.unwrap_or(current);
    if rev < compacted {
        return Err(Error::Compacted {
            requested: rev,
            compacted,
        });
    }
    if rev > current {
        return Err(Error::FutureRevision {
            requested: rev,
            current,
        });
    }
    Ok((tx, rev))
}

/// The live version of `key` at `rev` (the latest if None), and the
/// revision read at.
pub(super) async fn get(
    client: &mut Object,
    key: &str,
    rev: Option<Revision>,
) -> Result<(Option<KeyValue>, Revision)> {
    let (tx, rev) = snapshot(client, rev).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT deleted, value, create_rev, rev FROM skiff_kv
             WHERE key = $1 AND rev <= $2 ORDER BY rev DESC LIMIT 1",
        )
        .await
        .map_err(db_err)?;
    let row = tx.query_opt(&stmt, &[&key, &rev]).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    let kv = row.filter(|r| !r.get::<_, bool>(0)).map(|r| KeyValue {
        key: key.to_owned(),
        value: Bytes::from(r.get::<_, Vec<u8>>(1)),
        create_revision: r.get(2),
        mod_revision: r.get(3),
    });
    Ok((kv, rev))
}

// The newest row per key at or below the revision, in key order, without
// the deleted ones: rows in key order from the (key, rev) index, each
// kept when no newer row of its key is at or below the revision (a seek
// in the same index), so a page costs its own rows, not a sort of the
// range. `{LO}` bounds the index range from the start of the range or
// after a continue key.
const LIST_TEMPLATE: &str = "
SELECT kv.key, kv.value, kv.create_rev, kv.rev FROM skiff_kv kv
WHERE {LO} AND kv.key < $2 AND kv.rev <= $3 AND NOT kv.deleted
  AND NOT EXISTS (SELECT 1 FROM skiff_kv k2
                  WHERE k2.key = kv.key AND k2.rev > kv.rev AND k2.rev <= $3)
ORDER BY kv.key";

const COUNT_TEMPLATE: &str = "
SELECT COUNT(*) FROM skiff_kv kv
WHERE {LO} AND kv.key < $2 AND kv.rev <= $3 AND NOT kv.deleted
  AND NOT EXISTS (SELECT 1 FROM skiff_kv k2
                  WHERE k2.key = kv.key AND k2.rev > kv.rev AND k2.rev <= $3)";

fn range_sql<'a>(
    template: &str,
    range: &'a KeyRange,
    start_after: Option<&'a str>,
) -> (String, &'a str) {
    match start_after {
        Some(k) if k >= range.lo.as_str() => (template.replace("{LO}", "kv.key > $1"), k),
        _ => (template.replace("{LO}", "kv.key >= $1"), range.lo.as_str()),
    }
}

pub(super) async fn list(
    client: &mut Object,
    range: &KeyRange,
    opts: &ListOptions,
    rev: Option<Revision>,
) -> Result<ListResult> {
    let (tx, rev) = snapshot(client, rev).await?;
    let hi = hi_or_max(range);
    let limit = opts.limit.filter(|n| *n > 0);
    let max_bytes = opts.max_bytes.filter(|n| *n > 0).unwrap_or(usize::MAX);
    let (sql, lo) = range_sql(LIST_TEMPLATE, range, opts.start_after.as_deref());
    let stmt = tx.prepare_cached(&sql).await.map_err(db_err)?;
    let portal = tx.bind(&stmt, &[&lo, &hi, &rev]).await.map_err(db_err)?;
    let mut items = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    'fetch: loop {
        let rows = tx.query_portal(&portal, FETCH).await.map_err(db_err)?;
        let done = rows.len() < FETCH as usize;
        for r in rows {
            if bytes >= max_bytes || limit.is_some_and(|n| items.len() >= n) {
                more = true;
                break 'fetch;
            }
            let kv = kv_from_row(&r);
            bytes = bytes.saturating_add(kv.value.len());
            items.push(kv);
        }
        if done {
            break;
        }
    }
    let remaining = match items.last() {
        _ if !opts.count_remaining => None,
        Some(last) if more => {
            let (sql, lo) = range_sql(COUNT_TEMPLATE, range, Some(&last.key));
            let stmt = tx.prepare_cached(&sql).await.map_err(db_err)?;
            let n: i64 = tx
                .query_one(&stmt, &[&lo, &hi, &rev])
                .await
                .map_err(db_err)?
                .get(0);
            Some(n as u64)
        }
        _ => Some(0),
    };
    tx.commit().await.map_err(db_err)?;
    Ok(ListResult {
        items,
        revision: rev,
        more,
        remaining,
    })
}

pub(super) async fn count(client: &mut Object, range: &KeyRange) -> Result<u64> {
    let (tx, rev) = snapshot(client, None).await?;
    let hi = hi_or_max(range);
    let (sql, lo) = range_sql(COUNT_TEMPLATE, range, None);
    let stmt = tx.prepare_cached(&sql).await.map_err(db_err)?;
    let n: i64 = tx
        .query_one(&stmt, &[&lo, &hi, &rev])
        .await
        .map_err(db_err)?
        .get(0);
    tx.commit().await.map_err(db_err)?;
    Ok(n as u64)
}

fn kv_from_row(r: &Row) -> KeyValue {
    KeyValue {
        key: r.get(0),
        value: Bytes::from(r.get::<_, Vec<u8>>(1)),
        create_revision: r.get(2),
        mod_revision: r.get(3),
    }
}

/// Events with `after < rev <= upto` for keys in `range` (all keys when
/// None), oldest first, at most `limit`; `Compacted` when history after
/// `after` is gone.
pub(super) async fn history(
    client: &mut Object,
    range: Option<&KeyRange>,
    after: Revision,
    upto: Revision,
    limit: usize,
) -> Result<Vec<Event>> {
    let tx = read_only(client).await?;
    let (_, compacted) = meta(&tx).await?;
    if after < compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted,
        });
    }
    let (lo, hi) = match range {
        Some(r) => (r.lo.clone(), hi_or_max(r)),
        None => (String::new(), hi_or_max(&KeyRange::prefix(""))),
    };
    let stmt = tx
        .prepare_cached(
            "SELECT kv.key, kv.value, kv.create_rev, kv.rev, kv.created, kv.deleted,
                    kv.prev_rev, p.value, p.create_rev
             FROM skiff_kv kv LEFT JOIN skiff_kv p ON p.rev = kv.prev_rev
             WHERE kv.rev > $1 AND kv.rev <= $2 AND kv.key >= $3 AND kv.key < $4
             ORDER BY kv.rev LIMIT $5",
        )
        .await
        .map_err(db_err)?;
    let lim = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = tx
        .query(&stmt, &[&after, &upto, &lo, &hi, &lim])
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(rows
        .iter()
        .map(|r| {
            history_event(
                kv_from_row(r),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get::<_, Option<Vec<u8>>>(7),
                r.get(8),
            )
        })
        .collect())
}

/// Drops history older than the newest `keep` revisions (not past `held`,
/// a revision a read here still needs), as SQLite's compaction does; one
/// server at a time. Returns the compacted revision.
pub(super) async fn compact(
    client: &mut Object,
    keep: i64,
    held: Option<Revision>,
) -> Result<Revision> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(db_err)?;
    let old: i64 = tx
        .query_one(
            "SELECT value FROM skiff_meta WHERE name = 'compacted_rev' FOR UPDATE",
            &[],
        )
        .await
        .map_err(db_err)?
        .get(0);
    let (current, _) = meta(&tx).await?;
    let mut target = current.saturating_sub(keep.max(0));
    if let Some(held) = held {
        target = target.min(held);
    }
    if target <= old {
        return Ok(old);
    }
    let superseded = tx
        .execute(
            "DELETE FROM skiff_kv WHERE rev IN (
                 SELECT prev_rev FROM skiff_kv WHERE rev > $1 AND rev <= $2 AND prev_rev > 0
             )",
            &[&old, &target],
        )
        .await
        .map_err(db_err)?;
    let tombstones = tx
        .execute(
            "DELETE FROM skiff_kv WHERE rev > $1 AND rev <= $2 AND deleted",
            &[&old, &target],
        )
        .await
        .map_err(db_err)?;
    tx.execute(
        "UPDATE skiff_meta SET value = $1 WHERE name = 'compacted_rev'",
        &[&target],
    )
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    tracing::debug!(revision = target, superseded, tombstones, "store compacted");
    Ok(target)
}
