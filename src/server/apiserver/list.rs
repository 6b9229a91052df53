//! List responses: `{"kind":…List,"metadata":…,"items":[…]}` (or a Table)
//! written as the scan reads, never built as one value.
//!
//! A list without `limit` is sent chunk by chunk while it is read, so its
//! size costs the server a few chunks, not the list (8 clients listing a
//! namespace of 3,000 4 KiB ConfigMaps took it to 338 MB when lists were
//! built whole). A page (`limit`, as kubectl always sends) is encoded as
//! it is read and ends at [`PAGE_BYTES`](super::scan::PAGE_BYTES).
//! deletecollection sends the objects it deleted the same way.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::negotiate::{self, json_parts_response_holding, json_stream_response};
use super::path::ResourceRef;
use super::query::Query;
use super::read::{partial_metadata, table_row, Filter, Shape};
use super::registry::ResourceDef;
use super::scan::{scan_page, Held, ScanSink, PAGE_BYTES};
use super::{table, ApiState};
use crate::api::status::ApiError;

/// How many chunks a streamed list may have in flight to a slow client.
const STREAM_DEPTH: usize = 2;

/// How long a client has to take a whole streamed response: upstream's
/// `--request-timeout` for every request that is not a watch. A client
/// that stops reading would otherwise hold its task, its buffers and the
/// revision its list reads at (against compaction) for ever.
const SEND_DEADLINE: Duration = Duration::from_secs(60);

/// The objects of a list response, serialized one by one as the scan
/// hands them over: `a,b,c` without the brackets (as Table rows when
/// `table` says how).
/// Its buffer holds the items since the last chunk.
pub struct JsonItems {
    buf: Vec<u8>,
    empty: bool,
    def: ResourceDef,
    shape: Shape,
    /// The read budget's share of every chunk in `buf`.
    held: Vec<Held>,
}

impl JsonItems {
    pub fn new(def: &ResourceDef, shape: Shape) -> Self {
        JsonItems {
            buf: Vec::new(),
            empty: true,
            def: def.clone(),
            shape,
            held: Vec::new(),
        }
    }
}

impl ScanSink for JsonItems {
    fn item(&mut self, obj: Value) -> Result<(), ApiError> {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        let res = match self.shape {
            Shape::Table(inc) => {
                serde_json::to_writer(&mut self.buf, &table_row(&self.def, &obj, inc))
            }
            Shape::Metadata => serde_json::to_writer(&mut self.buf, &partial_metadata(&obj)),
            Shape::Object => serde_json::to_writer(&mut self.buf, &obj),
        };
        res.map_err(|e| ApiError::internal(format!("cannot encode list item: {e}")))
    }

    async fn chunk_done(&mut self, _revision: i64, held: Held) -> Result<(), ApiError> {
        self.held.push(held);
        Ok(())
    }

    fn page_full(&self) -> bool {
        self.buf.len() >= PAGE_BYTES
    }
}

/// A list written to the client as it is read: the head once the first
/// chunk has fixed the revision, then each chunk's items. Only lists
/// without `limit` stream (their metadata holds nothing but the revision).
pub struct StreamItems {
    pub items: JsonItems,
    head: Option<Map<String, Value>>,
    tx: mpsc::Sender<Result<Bytes, ApiError>>,
    sent: usize,
    deadline: Instant,
}

impl StreamItems {
    fn new(def: &ResourceDef, shape: Shape, tx: mpsc::Sender<Result<Bytes, ApiError>>) -> Self {
        StreamItems {
            items: JsonItems::new(def, shape),
            head: Some(head_fields(def, shape)),
            tx,
            sent: 0,
            deadline: Instant::now() + SEND_DEADLINE,
        }
    }

    /// The end of the response, or why it ends early.
    pub async fn finish(mut self, res: Result<(), ApiError>, what: &str) {
        let tail = match res {
            Ok(()) => Ok(negotiate::response_part(b"]}".to_vec(), self.sent)),
            Err(e) => {
                if self.sent > 0 {
                    tracing::warn!(resource = self.items.def.plural, error = %e.message, "a streamed {what} ended early");
                }
                Err(e)
            }
        };
        // Nobody listens any more if the client has gone.
        let _ = self.send(tail).await;
    }

    async fn send(&mut self, part: Result<Bytes, ApiError>) -> Result<(), ApiError> {
        match tokio::time::timeout_at(self.deadline, self.tx.send(part)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ApiError::internal("the client went away during a list")),
            Err(_) => Err(ApiError::timeout(format!(
                "the client did not read the response within {} s",
                SEND_DEADLINE.as_secs()
            ))),
        }
    }
}

impl ScanSink for StreamItems {
    fn item(&mut self, obj: Value) -> Result<(), ApiError> {
        self.items.item(obj)
    }

    async fn chunk_done(&mut self, revision: i64, held: Held) -> Result<(), ApiError> {
        let mut out = match self.head.take() {
            Some(fields) => list_head(
                with_meta(fields, list_meta(revision, None, None)),
                self.items.shape,
            )?,
            None => Vec::new(),
        };
        if out.is_empty() {
            out = std::mem::take(&mut self.items.buf);
        } else {
            out.append(&mut self.items.buf);
        }
        if out.is_empty() {
            return Ok(());
        }
        self.sent += out.len();
        let part = negotiate::response_part_holding(out, self.sent, held);
        self.send(Ok(part)).await
    }
}

/// A list's metadata.
fn list_meta(revision: i64, cont: Option<String>, remaining: Option<u64>) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(revision.to_string()));
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    if let Some(n) = remaining {
        meta.insert("remainingItemCount".into(), json!(n));
    }
    meta
}

/// The fields of a list (or Table) before its items, without metadata.
fn head_fields(def: &ResourceDef, shape: Shape) -> Map<String, Value> {
    let mut fields = Map::new();
    match shape {
        Shape::Table(_) => {
            fields.insert("kind".into(), json!("Table"));
            fields.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
            fields.insert("metadata".into(), Value::Null);
            fields.insert(
                "columnDefinitions".into(),
                table::column_definitions_json(&table::columns(def)),
            );
        }
        Shape::Metadata => {
            fields.insert("kind".into(), json!("PartialObjectMetadataList"));
            fields.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
            fields.insert("metadata".into(), Value::Null);
        }
        Shape::Object => {
            fields.insert("kind".into(), json!(def.list_kind()));
            fields.insert("apiVersion".into(), json!(def.api_version()));
            fields.insert("metadata".into(), Value::Null);
        }
    }
    fields
}

fn with_meta(mut fields: Map<String, Value>, meta: Map<String, Value>) -> Map<String, Value> {
    fields.insert("metadata".into(), Value::Object(meta));
    fields
}

/// `{"k":v,…,"items":[` (`"rows":[` for a Table); the response ends with
/// `]}`.
fn list_head(fields: Map<String, Value>, shape: Shape) -> Result<Vec<u8>, ApiError> {
    let mut head = serde_json::to_vec(&Value::Object(fields))
        .map_err(|e| ApiError::internal(format!("cannot encode list: {e}")))?;
    // A non-empty object always ends with its closing brace.
    head.pop();
    head.extend_from_slice(match shape {
        Shape::Table(_) => b",\"rows\":[",
        _ => b",\"items\":[",
    });
    Ok(head)
}

pub async fn list(
    state: &ApiState,
    r: &ResourceRef<'_>,
    q: &Query,
    shape: Shape,
) -> Result<Response, ApiError> {
    let def = r.def;
    q.validate_list_options(false)?;
    let filter = Filter::from_query(def, q)?;
    let limited = q.uint("limit")?.is_some_and(|l| l > 0);
    if !limited {
        return stream_list(state, r, q, filter, shape).await;
    }
    // A page: its metadata (continue, remainingItemCount) is known only at
    // its end, so it is written out first, but each object is still
    // encoded and dropped as soon as it is read.
    let mut items = JsonItems::new(def, shape);
    let end = scan_page(
        &state.objects,
        def,
        r.namespace.as_deref(),
        q,
        &filter,
        &mut items,
    )
    .await?;
    let meta = list_meta(end.revision, end.continue_token, end.remaining);
    let head = list_head(with_meta(head_fields(def, shape), meta), shape)?;
    Ok(json_parts_response_holding(
        StatusCode::OK,
        vec![head, items.buf, b"]}".to_vec()],
        items.held,
    ))
}

/// A whole list, sent chunk by chunk while it is read.
async fn stream_list(
    state: &ApiState,
    r: &ResourceRef<'_>,
    q: &Query,
    filter: Filter,
    shape: Shape,
) -> Result<Response, ApiError> {
    let objects = state.objects.clone();
    let def = r.def.clone();
    let namespace = r.namespace.clone();
    let q = q.clone();
    streamed(r.def, shape, "list", move |mut sink| async move {
        let res = scan_page(&objects, &def, namespace.as_deref(), &q, &filter, &mut sink).await;
        sink.finish(res.map(|_| ()), "list").await;
    })
    .await
}

/// A list response made by `task`, which writes into the [`StreamItems`]
/// it is given and ends with [`StreamItems::finish`]. Errors before the
/// first chunk are ordinary Status responses; one after it (the client
/// left, the store failed, a panic) ends the response early.
pub async fn streamed<F, Fut>(
    def: &ResourceDef,
    shape: Shape,
    what: &'static str,
    task: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(StreamItems) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(STREAM_DEPTH);
    let on_panic = tx.clone();
    // Boxed where it is made: a list's state machine is tens of KiB, and
    // spawning would copy it through each layer (callgrind: ~90 K
    // instructions of memcpy per list).
    let work = Box::pin(task(StreamItems::new(def, shape, tx)));
    let plural = def.plural;
    tokio::spawn(async move {
        if super::recover::contain_task(what, plural, work)
            .await
            .is_none()
        {
            // A 500 if nothing was sent yet; else the body ends early.
            let e = ApiError::internal(super::recover::PANIC_MESSAGE);
            let _ = on_panic.send(Err(e)).await;
        }
    });
    let first = match rx.recv().await {
        Some(first) => first?,
        None => return Err(ApiError::internal("the list ended before it began")),
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await?;
        Some((next.map_err(|e| std::io::Error::other(e.message)), rx))
    });
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    Ok(json_stream_response(
        StatusCode::OK,
        Body::from_stream(body),
    ))
}
