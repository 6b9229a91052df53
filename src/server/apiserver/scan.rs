//! Reading a list out of the store a bounded chunk at a time, at one
//! revision, for every reader of many objects: list responses (whole or
//! paged), the initial events of a watch, and deletecollection.
//!
//! Memory is the point: however many or large the objects, a scan holds
//! one chunk of stored rows ([`CHUNK_ROWS`] rows, [`CHUNK_BYTES`] bytes at
//! most) and one decoded object at a time, and a page it builds for a
//! client stops at [`PAGE_BYTES`] (with a continue token, as the API
//! allows: a page may hold fewer items than its limit). However many
//! reads run at once, their chunks in memory (read, encoded, or waiting
//! for a slow client) share one [`ReadBudget`]: a chunk is read only once
//! the budget has room for it, and its share is given back when the
//! connection has sent it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::object_store::{decode_as, store_error, Objects};
use super::query::{Continue, Query};
use super::read::Filter;
use super::registry::ResourceDef;
use crate::api::status::{ApiError, Cause};
use crate::server::store::{self, ListOptions};

/// How long a read from a resourceVersion the store has not reached waits
/// for it, as upstream's watch cache does, before answering 504.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);
/// How often that wait looks at the store's revision.
const FRESHNESS_POLL: Duration = Duration::from_millis(20);

/// Rows read from the store at a time (a few thousand objects decoded
/// together took the server from 34 MB to 163 MB).
const CHUNK_ROWS: usize = 256;
/// Bytes of stored rows read at a time: 256 objects near the 1.5 MiB
/// object limit would otherwise be 384 MiB in one chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// What a page built for a client (a list with `limit`) may grow to
/// before it ends early with a continue token.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;
/// The read budget: chunks of every read of many objects in memory at
/// once, in bytes of stored rows. A chunk costs about three times its
/// rows while it is read and encoded (rows, the decoded object, the
/// encoded items), then its encoded size until sent: 40 lists at once of
/// a namespace of 1 MB objects took the server past 512 MiB without it.
const READ_BUDGET_BYTES: usize = 48 * 1024 * 1024;
/// How long a read waits for room in the budget before it is told to
/// come back (429, as when the server is full).
const READ_BUDGET_WAIT: Duration = Duration::from_secs(10);

/// See [`READ_BUDGET_BYTES`]. Cloning shares the budget.
#[derive(Clone)]
pub struct ReadBudget(Arc<Semaphore>);

impl Default for ReadBudget {
    fn default() -> Self {
        ReadBudget::new(READ_BUDGET_BYTES)
    }
}

impl ReadBudget {
    pub fn new(bytes: usize) -> Self {
        ReadBudget(Arc::new(Semaphore::new(
            bytes.clamp(CHUNK_BYTES, Semaphore::MAX_PERMITS),
        )))
    }

    /// Room for one chunk, waited for (a bounded time).
    async fn chunk(&self) -> Result<Held, ApiError> {
        let permits = CHUNK_BYTES as u32;
        match tokio::time::timeout(
            READ_BUDGET_WAIT,
            Arc::clone(&self.0).acquire_many_owned(permits),
        )
        .await
        {
            Ok(Ok(p)) => Ok(Held { _permit: Some(p) }),
            // The semaphore is never closed; a closed one means no budget.
            Ok(Err(_)) => Ok(Held::none()),
            Err(_) => Err(super::inflight::too_many_requests()),
        }
    }

    /// Room left, for tests.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

/// A chunk's share of the [`ReadBudget`], given back when dropped: kept
/// with the chunk's bytes until the connection has sent them.
#[derive(Debug)]
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Outside the budget (for writers of their own chunks, which the
    /// write limits bound instead).
    pub fn none() -> Held {
        Held { _permit: None }
    }
}

/// Upstream's `NewTooLargeResourceVersionError`.
pub fn too_large_resource_version(requested: i64, current: i64) -> ApiError {
    let mut e = ApiError::timeout(format!(
        "Timeout: Too large resource version: {requested}, current: {current}"
    ));
    e.retry_after_seconds = Some(1);
    e.with_cause(Cause {
        reason: "ResourceVersionTooLarge".into(),
        message: "Too large resource version".into(),
        field: String::new(),
    })
}

/// Waits (a few seconds at most) until the store has reached revision
/// `rv`: a list or watch "not older than" a version the store has not
/// written yet is answered once it has, or with 504 Too large resource
/// version (the client retries) instead of hanging or answering stale.
pub async fn wait_fresh(objects: &Objects, rv: i64) -> Result<(), ApiError> {
    let store = &objects.store;
    let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
    loop {
        let current = store.current_revision();
        if current >= rv {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(too_large_resource_version(rv, current));
        }
        tokio::time::sleep(FRESHNESS_POLL).await;
    }
}

/// How a scan ended: the revision it read at and where a next page starts.
pub struct PageEnd {
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// What a scan hands its objects to.
pub trait ScanSink: Send {
    /// One matching object, in key order.
    fn item(&mut self, obj: Value) -> Result<(), ApiError>;

    /// After every chunk of rows, all read at `revision`: a sink that
    /// streams sends what it has (and waits while the client is slow).
    /// `held` is the chunk's share of the read budget: a sink keeps it
    /// with what it keeps of the chunk, or drops it.
    fn chunk_done(
        &mut self,
        revision: i64,
        held: Held,
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send;

    /// Whether a page (a scan with `limit`) should end here even if it
    /// has fewer items than its limit.
    fn page_full(&self) -> bool {
        false
    }
}

/// Reads one page (the whole list without `limit`) at one revision, in
/// bounded chunks, and hands every matching object to `sink` as soon as
/// it is decoded, so callers that write the objects out never hold them
/// all. The revision is held against compaction while the scan runs, so a
/// list that a slow client reads for a while still ends complete.
pub async fn scan_page(
    objects: &Objects,
    def: &ResourceDef,
    namespace: Option<&str>,
    q: &Query,
    filter: &Filter,
    sink: &mut impl ScanSink,
) -> Result<PageEnd, ApiError> {
    let limit = q.uint("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let prefix = def.namespace_prefix(namespace);
    let cont = match q.get("continue") {
        None | Some("") => None,
        Some(t) => {
            let c = Continue::decode(t)?;
            if !c.start_after.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid: it was issued for another list",
                ));
            }
            Some(c)
        }
    };
    let rv = q.resource_version()?;
    let revision = match &cont {
        Some(c) => {
            if rv.is_some_and(|n| n > 0) {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            c.rev
        }
        None => {
            if let Some(n) = rv.filter(|n| *n > 0) {
                wait_fresh(objects, n).await?;
            }
            match (q.get("resourceVersionMatch"), rv) {
                (Some("Exact"), Some(rv)) => rv,
                (Some("Exact"), None) => {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch=Exact needs a resourceVersion",
                    ))
                }
                _ => objects
                    .store
                    .latest_revision()
                    .await
                    .map_err(|e| store_error(def, "", e))?,
            }
        }
    };
    // Held before the first read: from here on compaction stops short of
    // it (an older revision may already be gone; the read says so).
    let _hold = objects.store.hold(revision);
    let mut start_after = cont.map(|c| c.start_after);
    let mut matched = 0usize;
    loop {
        let want = match limit {
            // With a filter, read ahead: most rows may not match.
            Some(l) => (l - matched).max(if filter.is_empty() { 1 } else { 64 }),
            None => CHUNK_ROWS,
        }
        .min(CHUNK_ROWS);
        let held = objects.read_budget.chunk().await?;
        let res = objects
            .list_raw(
                &prefix,
                ListOptions {
                    revision: Some(revision),
                    start_after: start_after.take(),
                    limit: Some(want),
                    max_bytes: Some(CHUNK_BYTES),
                    // The page may end in this chunk: its remainingItemCount
                    // is then known (a count reads the rest of the range, so
                    // chunks that cannot end a page do not ask).
                    count_remaining: filter.is_empty()
                        && limit.is_some_and(|l| matched + want >= l),
                },
            )
            .await
            .map_err(|e| match e {
                store::Error::Compacted { .. } if q.get("continue").is_some() => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => store_error(def, "", other),
            })?;
        let n = res.items.len();
        for (i, kv) in res.items.into_iter().enumerate() {
            let obj = decode_as(def, &kv)?;
            if filter.matches(def, &obj) {
                sink.item(obj)?;
                matched += 1;
            }
            if let Some(l) = limit {
                let after = (n - i - 1) as u64;
                if (matched >= l || sink.page_full()) && (after > 0 || res.more) {
                    sink.chunk_done(res.revision, held).await?;
                    // What is left (without a selector: with one, unknown
                    // as upstream), counted once for the page; this chunk
                    // counted it unless the page ended early on its bytes.
                    let remaining = match res.remaining {
                        _ if !filter.is_empty() => None,
                        Some(r) => Some(after + r),
                        None => Some(count_after(objects, &prefix, res.revision, &kv.key).await?),
                    };
                    let token = Continue {
                        rev: res.revision,
                        start_after: kv.key,
                    }
                    .encode();
                    return Ok(PageEnd {
                        revision: res.revision,
                        continue_token: Some(token),
                        remaining,
                    });
                }
            }
            start_after = Some(kv.key);
        }
        sink.chunk_done(res.revision, held).await?;
        if !res.more || n == 0 {
            return Ok(PageEnd {
                revision: res.revision,
                continue_token: None,
                remaining: None,
            });
        }
    }
}

/// The live keys under `prefix` after `key`, as of `revision`.
async fn count_after(
    objects: &Objects,
    prefix: &str,
    revision: i64,
    key: &str,
) -> Result<u64, ApiError> {
    let res = objects
        .list_raw(
            prefix,
            ListOptions {
                revision: Some(revision),
                start_after: Some(key.to_string()),
                limit: Some(1),
                count_remaining: true,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ApiError::internal(format!("counting what is left of a list: {e}")))?;
    Ok(res.items.len() as u64 + res.remaining.unwrap_or(0))
}
