//! Reads: get and list (with selectors, pagination and Table output).

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::negotiate::{self, json_parts_response, json_response, json_stream_response};
use super::path::ResourceRef;
use super::query::{Continue, Query};
use super::registry::ResourceDef;
use super::storage::{decode, store_error, Objects};
use super::{table, ApiState};
use crate::api::fields::FieldSelector;
use crate::api::selector::LabelSelector;
use crate::api::status::{ApiError, Cause};
use crate::server::store::{ListOptions, StoreError};

/// Label and field selectors of a list or watch.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_query(def: &ResourceDef, q: &Query) -> Result<Filter, ApiError> {
        let labels =
            match q.get("labelSelector") {
                None | Some("") => None,
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
            };
        let fields = match q.get("fieldSelector") {
            None | Some("") => None,
            Some(s) => {
                let sel = FieldSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("invalid field selector {s:?}: {e}"))
                })?;
                super::fieldsel::validate_fields(def, &sel)?;
                Some(sel)
            }
        };
        Ok(Filter { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, def: &ResourceDef, obj: &Value) -> bool {
        if let Some(sel) = &self.labels {
            let empty = Map::new();
            let labels = obj
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if !sel.matches(labels) {
                return false;
            }
        }
        if let Some(sel) = &self.fields {
            let get = |field: &str| super::fieldsel::field_value(def, obj, field).ok().flatten();
            if !sel.matches(get) {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        match q.get("includeObject") {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid includeObject {other:?}: must be None, Metadata or Object"
            ))),
        }
    }
}

/// One Table row for `obj`.
pub fn table_row(def: &ResourceDef, obj: &Value, include: IncludeObject) -> Value {
    let now = chrono::Utc::now();
    let mut row = json!({ "cells": table::cells(def, obj, now) });
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        IncludeObject::Object => {
            row["object"] = obj.clone();
        }
    }
    row
}

pub fn table(
    def: &ResourceDef,
    objs: &[Value],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let rows: Vec<Value> = objs.iter().map(|o| table_row(def, o, include)).collect();
    let columns = if with_columns {
        table::column_definitions_json(&table::columns(def))
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

pub async fn get(
    state: &ApiState,
    r: &ResourceRef<'_>,
    name: &str,
    q: &Query,
    as_table: bool,
) -> Result<Response, ApiError> {
    let def = r.def;
    let stored = state
        .objects
        .must_get(def, r.namespace.as_deref(), name)
        .await?;
    if as_table {
        let include = IncludeObject::from_query(q)?;
        let rv = stored.rev.to_string();
        let t = table(
            def,
            std::slice::from_ref(&stored.obj),
            json!({"resourceVersion": rv}),
            include,
            true,
        );
        return Ok(json_response(StatusCode::OK, &t));
    }
    Ok(json_response(StatusCode::OK, &stored.obj))
}

/// How long a read from a resourceVersion the store has not reached waits
/// for it, as upstream's watch cache does, before answering 504.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);
/// How often that wait looks at the store's revision.
const FRESHNESS_POLL: Duration = Duration::from_millis(20);

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
pub async fn wait_fresh(state: &ApiState, rv: i64) -> Result<(), ApiError> {
    wait_fresh_in(&state.objects, rv).await
}

async fn wait_fresh_in(objects: &Objects, rv: i64) -> Result<(), ApiError> {
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

/// A consistent page of matching objects.
pub struct Page {
    pub items: Vec<Value>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// How a scan ended: the revision it read at and where a next page starts.
pub struct PageEnd {
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Rows read from the store at a time. A list of any length holds at most
/// this many stored rows and one decoded object at once (a few thousand
/// objects decoded together took the server from 34 MB to 163 MB).
const SCAN_CHUNK: usize = 256;

/// What a scan hands its objects to.
pub trait ScanSink: Send {
    /// One matching object, in key order.
    fn item(&mut self, obj: Value) -> Result<(), ApiError>;

    /// After every chunk of rows, all read at `revision`: a sink that
    /// streams sends what it has (and waits while the client is slow).
    fn chunk_done(
        &mut self,
        revision: i64,
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send;
}

struct Collect(Vec<Value>);

impl ScanSink for Collect {
    fn item(&mut self, obj: Value) -> Result<(), ApiError> {
        self.0.push(obj);
        Ok(())
    }

    async fn chunk_done(&mut self, _revision: i64) -> Result<(), ApiError> {
        Ok(())
    }
}

/// A consistent page of matching objects, collected (watch start and
/// deletecollection work on the objects themselves).
pub async fn list_page(
    state: &ApiState,
    def: &ResourceDef,
    namespace: Option<&str>,
    q: &Query,
    filter: &Filter,
) -> Result<Page, ApiError> {
    let mut items = Collect(Vec::new());
    let end = scan_page(&state.objects, def, namespace, q, filter, &mut items).await?;
    Ok(Page {
        items: items.0,
        revision: end.revision,
        continue_token: end.continue_token,
        remaining: end.remaining,
    })
}

/// Reads one page (the whole list without `limit`) at one revision, in
/// chunks of [`SCAN_CHUNK`] rows, and hands every matching object to
/// `sink` as soon as it is decoded, so callers that write the objects out
/// never hold them all.
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
    let mut revision = match &cont {
        Some(c) => {
            if rv.is_some_and(|n| n > 0) {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            Some(c.rev)
        }
        None => {
            if let Some(n) = rv.filter(|n| *n > 0) {
                wait_fresh_in(objects, n).await?;
            }
            match (q.get("resourceVersionMatch"), rv) {
                (Some("Exact"), Some(rv)) => Some(rv),
                (Some("Exact"), None) => {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch=Exact needs a resourceVersion",
                    ))
                }
                _ => None,
            }
        }
    };
    let mut start_after = cont.map(|c| c.start_after);
    let mut matched = 0usize;
    loop {
        let want = match limit {
            // With a filter, read ahead: most rows may not match.
            Some(l) => (l - matched).max(if filter.is_empty() { 1 } else { 64 }),
            None => SCAN_CHUNK,
        }
        .min(SCAN_CHUNK);
        let res = objects
            .list_raw(
                &prefix,
                ListOptions {
                    revision,
                    start_after: start_after.take(),
                    limit: Some(want),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if q.get("continue").is_some() => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => store_error(def, "", other),
            })?;
        // Every later chunk reads the snapshot the first one saw.
        revision = Some(res.revision);
        let n = res.items.len();
        for (i, kv) in res.items.into_iter().enumerate() {
            let obj = decode(&kv)?;
            if filter.matches(def, &obj) {
                sink.item(obj)?;
                matched += 1;
            }
            if let Some(l) = limit {
                let unscanned = (n - i - 1) as u64 + res.remaining;
                if matched >= l && unscanned > 0 {
                    sink.chunk_done(res.revision).await?;
                    let token = Continue {
                        rev: res.revision,
                        start_after: kv.key,
                    }
                    .encode();
                    return Ok(PageEnd {
                        revision: res.revision,
                        continue_token: Some(token),
                        remaining: filter.is_empty().then_some(unscanned),
                    });
                }
            }
            start_after = Some(kv.key);
        }
        sink.chunk_done(res.revision).await?;
        if res.remaining == 0 || n == 0 {
            return Ok(PageEnd {
                revision: res.revision,
                continue_token: None,
                remaining: None,
            });
        }
    }
}

/// The objects of a list response, serialized one by one as the scan
/// hands them over: `a,b,c` without the brackets (as Table rows when
/// `table` says how).
struct JsonItems {
    buf: Vec<u8>,
    empty: bool,
    def: ResourceDef,
    table: Option<IncludeObject>,
}

impl JsonItems {
    fn new(def: &ResourceDef, table: Option<IncludeObject>) -> Self {
        JsonItems {
            buf: Vec::new(),
            empty: true,
            def: def.clone(),
            table,
        }
    }
}

impl ScanSink for JsonItems {
    fn item(&mut self, obj: Value) -> Result<(), ApiError> {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        let res = match self.table {
            Some(inc) => serde_json::to_writer(&mut self.buf, &table_row(&self.def, &obj, inc)),
            None => serde_json::to_writer(&mut self.buf, &obj),
        };
        res.map_err(|e| ApiError::internal(format!("cannot encode list item: {e}")))
    }

    async fn chunk_done(&mut self, _revision: i64) -> Result<(), ApiError> {
        Ok(())
    }
}

/// A list written to the client as it is read: the head once the first
/// chunk has fixed the revision, then each chunk's items. Only lists
/// without `limit` stream (their metadata holds nothing but the revision).
struct StreamItems {
    items: JsonItems,
    head: Option<Map<String, Value>>,
    tx: mpsc::Sender<Result<Bytes, ApiError>>,
    sent: usize,
}

impl ScanSink for StreamItems {
    fn item(&mut self, obj: Value) -> Result<(), ApiError> {
        self.items.item(obj)
    }

    async fn chunk_done(&mut self, revision: i64) -> Result<(), ApiError> {
        let mut out = match self.head.take() {
            Some(fields) => list_head(
                with_meta(fields, list_meta(revision, None, None)),
                self.items.table,
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
        self.tx
            .send(Ok(Bytes::from(out)))
            .await
            .map_err(|_| ApiError::internal("the client went away during a list"))
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
fn head_fields(def: &ResourceDef, table: Option<IncludeObject>) -> Map<String, Value> {
    let mut fields = Map::new();
    match table {
        Some(_) => {
            fields.insert("kind".into(), json!("Table"));
            fields.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
            fields.insert("metadata".into(), Value::Null);
            fields.insert(
                "columnDefinitions".into(),
                table::column_definitions_json(&table::columns(def)),
            );
        }
        None => {
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
fn list_head(
    fields: Map<String, Value>,
    table: Option<IncludeObject>,
) -> Result<Vec<u8>, ApiError> {
    let mut head = serde_json::to_vec(&Value::Object(fields))
        .map_err(|e| ApiError::internal(format!("cannot encode list: {e}")))?;
    // A non-empty object always ends with its closing brace.
    head.pop();
    head.extend_from_slice(match table {
        Some(_) => b",\"rows\":[",
        None => b",\"items\":[",
    });
    Ok(head)
}

/// How many chunks a streamed list may have in flight to a slow client.
const STREAM_DEPTH: usize = 2;

pub async fn list(
    state: &ApiState,
    r: &ResourceRef<'_>,
    q: &Query,
    as_table: bool,
) -> Result<Response, ApiError> {
    let def = r.def;
    q.validate_list_options(false)?;
    let filter = Filter::from_query(def, q)?;
    let table = match as_table {
        true => Some(IncludeObject::from_query(q)?),
        false => None,
    };
    let limited = q.uint("limit")?.is_some_and(|l| l > 0);
    if !limited {
        return stream_list(state, r, q, filter, table).await;
    }
    // A page: its metadata (continue, remainingItemCount) is known only at
    // its end, so it is written out first, but each object is still
    // encoded and dropped as soon as it is read.
    let mut items = JsonItems::new(def, table);
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
    let head = list_head(with_meta(head_fields(def, table), meta), table)?;
    Ok(json_parts_response(
        StatusCode::OK,
        vec![head, items.buf, b"]}".to_vec()],
    ))
}

/// A whole list, sent chunk by chunk while it is read, so its size costs
/// the server a few chunks, not the list (8 clients listing a namespace of
/// 3,000 4 KiB ConfigMaps took it to 338 MB when lists were built whole).
/// Errors before the first chunk are ordinary Status responses; one after
/// it (the client left, the store failed) ends the response early.
async fn stream_list(
    state: &ApiState,
    r: &ResourceRef<'_>,
    q: &Query,
    filter: Filter,
    table: Option<IncludeObject>,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = mpsc::channel(STREAM_DEPTH);
    let objects = state.objects.clone();
    let def = r.def.clone();
    let namespace = r.namespace.clone();
    let q = q.clone();
    let on_panic = tx.clone();
    let task = async move {
        let mut sink = StreamItems {
            items: JsonItems::new(&def, table),
            head: Some(head_fields(&def, table)),
            tx: tx.clone(),
            sent: 0,
        };
        let res = scan_page(&objects, &def, namespace.as_deref(), &q, &filter, &mut sink).await;
        let tail = match res {
            Ok(_) => Ok(negotiate::response_part(b"]}".to_vec(), sink.sent)),
            Err(e) => {
                if sink.sent > 0 {
                    tracing::warn!(resource = def.plural, error = %e.message, "a streamed list ended early");
                }
                Err(e)
            }
        };
        // Nobody listens any more if the client has gone.
        let _ = tx.send(tail).await;
    };
    let plural = r.def.plural;
    tokio::spawn(async move {
        if super::recover::contain_task("list", plural, task)
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
