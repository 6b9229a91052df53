//! Reads: get and list (with selectors, pagination and Table output).

use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::negotiate::json_response;
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

pub async fn list_page(
    state: &ApiState,
    def: &ResourceDef,
    namespace: Option<&str>,
    q: &Query,
    filter: &Filter,
) -> Result<Page, ApiError> {
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
    let mut items = Vec::new();
    loop {
        let want = limit.map(|l| (l - items.len()).max(if filter.is_empty() { 0 } else { 64 }));
        let res = state
            .objects
            .list_raw(
                &prefix,
                ListOptions {
                    revision,
                    start_after: start_after.clone(),
                    limit: want,
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if q.get("continue").is_some() => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => store_error(def, "", other),
            })?;
        revision = Some(res.revision);
        let n = res.items.len();
        for (i, kv) in res.items.iter().enumerate() {
            start_after = Some(kv.key.clone());
            let obj = decode(kv)?;
            if filter.matches(def, &obj) {
                items.push(obj);
            }
            if let Some(l) = limit {
                let unscanned = (n - i - 1) as u64 + res.remaining;
                if items.len() >= l && unscanned > 0 {
                    let token = Continue {
                        rev: res.revision,
                        start_after: kv.key.clone(),
                    }
                    .encode();
                    return Ok(Page {
                        items,
                        revision: res.revision,
                        continue_token: Some(token),
                        remaining: filter.is_empty().then_some(unscanned),
                    });
                }
            }
        }
        if res.remaining == 0 || n == 0 {
            return Ok(Page {
                items,
                revision: res.revision,
                continue_token: None,
                remaining: None,
            });
        }
    }
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
    let page = list_page(state, def, r.namespace.as_deref(), q, &filter).await?;
    let mut list_meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        list_meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        list_meta["remainingItemCount"] = json!(n);
    }
    if as_table {
        let include = IncludeObject::from_query(q)?;
        let t = table(def, &page.items, list_meta, include, true);
        return Ok(json_response(StatusCode::OK, &t));
    }
    let body = json!({
        "kind": def.list_kind(),
        "apiVersion": def.api_version(),
        "metadata": list_meta,
        "items": page.items,
    });
    Ok(json_response(StatusCode::OK, &body))
}
