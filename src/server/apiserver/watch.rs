//! Watch streams: newline-separated JSON events over a held-open chunked
//! response, in the apiserver's semantics (initial ADDED events for RV 0 or
//! none, selector transitions as ADDED/DELETED, bookmarks, 410 Expired).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::path::ResourceRef;
use super::query::Query;
use super::read::{list_page, table_row, wait_fresh, Filter, IncludeObject};
use super::registry::ResourceDef;
use super::storage::{decode, stamp, store_error};
use super::{table, ApiState};
use crate::api::status::ApiError;
use crate::server::store::{EventKind, StoreError};

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// Encodes events as plain objects or as one-row Tables.
struct Encoder {
    def: ResourceDef,
    table: Option<IncludeObject>,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.table {
            Some(include) if kind != "ERROR" && kind != "BOOKMARK" => {
                let columns = if self.sent_columns {
                    Value::Null
                } else {
                    self.sent_columns = true;
                    table::column_definitions_json(&table::columns(&self.def))
                };
                let rv = obj
                    .get("metadata")
                    .and_then(|m| m.get("resourceVersion"))
                    .cloned()
                    .unwrap_or(Value::Null);
                json!({
                    "kind": "Table",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"resourceVersion": rv},
                    "columnDefinitions": columns,
                    "rows": [table_row(&self.def, obj, include)],
                })
            }
            _ => obj.clone(),
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&mut self, rev: i64) -> Bytes {
        let obj = json!({
            "kind": self.def.kind,
            "apiVersion": self.def.api_version(),
            "metadata": {"resourceVersion": rev.to_string()},
        });
        self.event("BOOKMARK", &obj)
    }

    fn error(&mut self, e: &ApiError) -> Bytes {
        self.event("ERROR", &e.to_status())
    }
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = ReceiverStream::new(rx);
    let body = Body::from_stream(futures::StreamExt::map(stream, Ok::<Bytes, std::io::Error>));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub async fn watch(
    state: &Arc<ApiState>,
    r: &ResourceRef<'_>,
    q: &Query,
    as_table: bool,
) -> Result<Response, ApiError> {
    let def = r.def.clone();
    q.validate_list_options(true)?;
    let filter = Filter::from_query(&def, q)?;
    let bookmarks = q.flag("allowWatchBookmarks")?;
    let include = if as_table {
        Some(IncludeObject::from_query(q)?)
    } else {
        None
    };
    // Without a timeout the apiserver ends watches after 30–60 minutes so
    // that clients spread their re-watches; do the same.
    let timeout = match q.uint("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t),
        _ => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let namespace = r.namespace.clone();
    // A watch scoped to one name is a field selector in disguise.
    let name_filter = r.name.clone();
    let prefix = def.namespace_prefix(namespace.as_deref());
    let mut enc = Encoder {
        def: def.clone(),
        table: include,
        sent_columns: false,
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut initial: Vec<Bytes> = Vec::new();
    let after = match q.resource_version()? {
        Some(rv) if rv > 0 => {
            // From a version the store has not reached: wait a little, then
            // 504 as upstream, rather than a stream that never says why.
            wait_fresh(state, rv).await?;
            rv
        }
        _ => {
            // No RV (or "0"): start with the current state as ADDED events.
            let page = list_page(
                state,
                &def,
                namespace.as_deref(),
                &Query::default(),
                &filter,
            )
            .await?;
            for obj in &page.items {
                if name_matches(obj, name_filter.as_deref()) {
                    initial.push(enc.event("ADDED", obj));
                }
            }
            page.revision
        }
    };

    let events = match state.objects.store.watch(&prefix, after).await {
        Ok(rx) => rx,
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            let e = ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            ));
            let _ = tx.try_send(enc.error(&e));
            drop(tx);
            return Ok(stream_response(rx));
        }
        Err(e) => return Err(store_error(&def, "", e)),
    };

    let plural = def.plural;
    // A panic ends this watch alone; the client sees it end and watches
    // again, as after any other end of a watch.
    tokio::spawn(super::recover::contain_task(
        "watch",
        plural,
        run_watch(
            tx,
            events,
            enc,
            initial,
            def,
            filter,
            name_filter,
            bookmarks,
            timeout,
            after,
        ),
    ));
    Ok(stream_response(rx))
}

fn name_matches(obj: &Value, name: Option<&str>) -> bool {
    match name {
        None => true,
        Some(n) => super::objects::name_of(obj) == Some(n),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    tx: mpsc::Sender<Bytes>,
    mut events: crate::server::store::WatchReceiver,
    mut enc: Encoder,
    initial: Vec<Bytes>,
    def: ResourceDef,
    filter: Filter,
    name: Option<String>,
    bookmarks: bool,
    timeout: Duration,
    mut last_rev: i64,
) {
    for chunk in initial {
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    let matches = |obj: &Value| filter.matches(&def, obj) && name_matches(obj, name.as_deref());
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if bookmarks => {
                if tx.send(enc.bookmark(last_rev)).await.is_err() {
                    return;
                }
            }
            ev = events.recv() => {
                let ev = match ev {
                    Some(Ok(ev)) => ev,
                    Some(Err(StoreError::Compacted { requested, compacted })) => {
                        let e = ApiError::expired(format!("too old resource version: {requested} ({compacted})"));
                        let _ = tx.send(enc.error(&e)).await;
                        return;
                    }
                    // Lagged or closed: end the stream; clients re-watch from
                    // the last resourceVersion they saw.
                    Some(Err(_)) | None => return,
                };
                last_rev = ev.revision();
                let new = match decode(&ev.kv) {
                    Ok(o) => o,
                    Err(_) => continue,
                };
                let chunk = match ev.kind {
                    EventKind::Create => matches(&new).then(|| enc.event("ADDED", &new)),
                    EventKind::Delete => matches(&new).then(|| enc.event("DELETED", &new)),
                    EventKind::Update => {
                        let old_m = ev
                            .prev
                            .as_ref()
                            .and_then(|p| decode(p).ok())
                            .is_some_and(|o| matches(&o));
                        match (old_m, matches(&new)) {
                            (true, true) => Some(enc.event("MODIFIED", &new)),
                            (false, true) => Some(enc.event("ADDED", &new)),
                            // Left the selection: the client sees it go.
                            (true, false) => Some(enc.event("DELETED", &stamp(new, last_rev))),
                            (false, false) => None,
                        }
                    }
                };
                if let Some(c) = chunk {
                    if tx.send(c).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
