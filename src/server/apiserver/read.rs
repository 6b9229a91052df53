//! Reads: get and list (with selectors, pagination and Table output).

use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::negotiate::{json_parts_response, json_response};
use super::path::ResourceRef;
use super::query::{Continue, Query};
use super::registry::ResourceDef;
use super::storage::{decode, store_error};
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
    let store = &state.objects.store;
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

/// A consistent page of matching objects, collected (watch start and
/// deletecollection work on the objects themselves).
pub async fn list_page(
    state: &ApiState,
    def: &ResourceDef,
    namespace: Option<&str>,
    q: &Query,
    filter: &Filter,
) -> Result<Page, ApiError> {
    let mut items = Vec::new();
    let end = scan_page(state, def, namespace, q, filter, |obj| {
        items.push(obj);
        Ok(())
    })
    .await?;
    Ok(Page {
        items,
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
    state: &ApiState,
    def: &ResourceDef,
    namespace: Option<&str>,
    q: &Query,
    filter: &Filter,
    mut sink: impl FnMut(Value) -> Result<(), ApiError>,
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
                wait_fresh(state, n).await?;
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
        let res = state
            .objects
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
                sink(obj)?;
                matched += 1;
            }
            if let Some(l) = limit {
                let unscanned = (n - i - 1) as u64 + res.remaining;
                if matched >= l && unscanned > 0 {
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
/// hands them over: `a,b,c` without the brackets.
struct JsonItems {
    buf: Vec<u8>,
    empty: bool,
}

impl JsonItems {
    fn new() -> Self {
        JsonItems {
            buf: Vec::new(),
            empty: true,
        }
    }

    fn push(&mut self, v: &Value) -> Result<(), ApiError> {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        serde_json::to_writer(&mut self.buf, v)
            .map_err(|e| ApiError::internal(format!("cannot encode list item: {e}")))
    }
}

/// `{"k":v,…,"<array>":[` for the fields of a list or Table before its
/// items; the response ends with `]}`.
fn list_head(fields: Map<String, Value>, array: &str) -> Result<Vec<u8>, ApiError> {
    let mut head = serde_json::to_vec(&Value::Object(fields))
        .map_err(|e| ApiError::internal(format!("cannot encode list: {e}")))?;
    // A non-empty object always ends with its closing brace.
    head.pop();
    head.push(b',');
    serde_json::to_writer(&mut head, array)
        .map_err(|e| ApiError::internal(format!("cannot encode list: {e}")))?;
    head.extend_from_slice(b":[");
    Ok(head)
}

pub async fn list(
    state: &ApiState,
    r: &ResourceRef<'_>,
    q: &Query,
    as_table: bool,
) -> Result<Response, ApiError> {
    let def = r.def;
    q.validate_list_options(false)?;
    let filter = Filter::from_query(def, q)?;
    let include = match as_table {
        true => Some(IncludeObject::from_query(q)?),
        false => None,
    };
    // Each object is written out and dropped as soon as it is read: the
    // response holds the encoded page once, never the decoded list too.
    let mut items = JsonItems::new();
    let end = scan_page(
        state,
        def,
        r.namespace.as_deref(),
        q,
        &filter,
        |obj| match include {
            Some(inc) => items.push(&table_row(def, &obj, inc)),
            None => items.push(&obj),
        },
    )
    .await?;
    let mut list_meta = Map::new();
    list_meta.insert("resourceVersion".into(), json!(end.revision.to_string()));
    if let Some(c) = end.continue_token {
        list_meta.insert("continue".into(), json!(c));
    }
    if let Some(n) = end.remaining {
        list_meta.insert("remainingItemCount".into(), json!(n));
    }
    let mut fields = Map::new();
    let array = match include {
        Some(_) => {
            fields.insert("kind".into(), json!("Table"));
            fields.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
            fields.insert("metadata".into(), Value::Object(list_meta));
            fields.insert(
                "columnDefinitions".into(),
                table::column_definitions_json(&table::columns(def)),
            );
            "rows"
        }
        None => {
            fields.insert("kind".into(), json!(def.list_kind()));
            fields.insert("apiVersion".into(), json!(def.api_version()));
            fields.insert("metadata".into(), Value::Object(list_meta));
            "items"
        }
    };
    let head = list_head(fields, array)?;
    Ok(json_parts_response(
        StatusCode::OK,
        vec![head, items.buf, b"]}".to_vec()],
    ))
}
