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

use super::object_store::{decode_as, stamp, store_error, Objects};
use super::path::ResourceRef;
use super::query::Query;
use super::read::{partial_metadata, table_row, Filter, Shape};
use super::registry::ResourceDef;
use super::scan::{scan_page, wait_fresh, Held, ScanSink};
use super::{table, ApiState};
use crate::api::status::ApiError;
use crate::server::store::{self, EventKind};

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// Encodes events as plain objects or as one-row Tables.
struct Encoder {
    def: ResourceDef,
    shape: Shape,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.shape {
            Shape::Table(include) if kind != "ERROR" && kind != "BOOKMARK" => {
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
            Shape::Metadata if kind != "ERROR" => partial_metadata(obj),
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
    shape: Shape,
) -> Result<Response, ApiError> {
    let def = r.def.clone();
    q.validate_list_options(true)?;
    let filter = Filter::from_query(&def, q)?;
    let bookmarks = q.flag("allowWatchBookmarks");
    // Without a timeout the apiserver ends watches after 30–60 minutes so
    // that clients spread their re-watches; do the same.
    let timeout = match q.uint("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t),
        _ => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let from = match q.resource_version()? {
        Some(rv) if rv > 0 => {
            // From a version the store has not reached: wait a little, then
            // 504 as upstream, rather than a stream that never says why.
            wait_fresh(&state.objects, rv).await?;
            Some(rv)
        }
        // No RV (or "0"): start with the current state as ADDED events.
        _ => None,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let w = Watch {
        objects: state.objects.clone(),
        tx,
        enc: Encoder {
            def: def.clone(),
            shape,
            sent_columns: false,
        },
        namespace: r.namespace.clone(),
        // A watch scoped to one name is a field selector in disguise.
        name: r.name.clone(),
        def,
        filter,
        bookmarks,
        timeout,
    };
    let plural = w.def.plural;
    // A panic ends this watch alone; the client sees it end and watches
    // again, as after any other end of a watch. Boxed where it is made: the
    // watch's state machine is large, and spawning moves it through several
    // layers.
    let run = Box::pin(w.run(from));
    tokio::spawn(super::recover::contain_task("watch", plural, run));
    Ok(stream_response(rx))
}

/// One watch, from its first event to its end.
struct Watch {
    objects: Objects,
    tx: mpsc::Sender<Bytes>,
    enc: Encoder,
    def: ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
    filter: Filter,
    bookmarks: bool,
    timeout: Duration,
}

/// The initial ADDED events, sent a chunk at a time as the scan reads
/// them, so a watch of a large collection never holds it all.
struct Initial<'a> {
    enc: &'a mut Encoder,
    tx: &'a mpsc::Sender<Bytes>,
    name: Option<&'a str>,
    pending: Vec<Bytes>,
}

impl ScanSink for Initial<'_> {
    fn item(&mut self, obj: Value) -> Result<(), ApiError> {
        if name_matches(&obj, self.name) {
            self.pending.push(self.enc.event("ADDED", &obj));
        }
        Ok(())
    }

    async fn chunk_done(&mut self, _revision: i64, _held: Held) -> Result<(), ApiError> {
        for event in self.pending.drain(..) {
            if self.tx.send(event).await.is_err() {
                return Err(ApiError::internal("the client went away during a watch"));
            }
        }
        Ok(())
    }
}

impl Watch {
    async fn run(mut self, from: Option<i64>) {
        let after = match from {
            Some(rv) => rv,
            None => {
                let mut sink = Initial {
                    enc: &mut self.enc,
                    tx: &self.tx,
                    name: self.name.as_deref(),
                    pending: Vec::new(),
                };
                let res = scan_page(
                    &self.objects,
                    &self.def,
                    self.namespace.as_deref(),
                    &Query::default(),
                    &self.filter,
                    &mut sink,
                )
                .await;
                match res {
                    Ok(end) => end.revision,
                    Err(e) => return self.fail(&e).await,
                }
            }
        };
        let prefix = self.def.namespace_prefix(self.namespace.as_deref());
        let events = match self.objects.store.watch(&prefix, after).await {
            Ok(events) => events,
            Err(store::Error::Compacted {
                requested,
                compacted,
            }) => {
                let e = ApiError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                ));
                return self.fail(&e).await;
            }
            Err(e) => return self.fail(&store_error(&self.def, "", e)).await,
        };
        self.follow(events, after).await
    }

    /// Ends the watch with an ERROR event saying why.
    async fn fail(&mut self, e: &ApiError) {
        let event = self.enc.error(e);
        let _ = self.tx.send(event).await;
    }

    async fn follow(mut self, mut events: crate::server::store::WatchReceiver, mut last_rev: i64) {
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = ticker.tick(), if self.bookmarks => {
                    let b = self.enc.bookmark(last_rev);
                    if self.tx.send(b).await.is_err() {
                        return;
                    }
                }
                ev = events.recv() => {
                    let ev = match ev {
                        Some(Ok(ev)) => ev,
                        Some(Err(store::Error::Compacted { requested, compacted })) => {
                            let e = ApiError::expired(format!("too old resource version: {requested} ({compacted})"));
                            return self.fail(&e).await;
                        }
                        // Lagged or closed: end the stream; clients re-watch
                        // from the last resourceVersion they saw.
                        Some(Err(_)) | None => return,
                    };
                    last_rev = ev.revision();
                    if let Some(c) = self.event_for(&ev, last_rev) {
                        if self.tx.send(c).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// What the client sees of one store event, if anything.
    fn event_for(&mut self, ev: &crate::server::store::Event, rev: i64) -> Option<Bytes> {
        // Nothing to select and objects as stored: no need to decode.
        let raw = matches!(self.enc.shape, Shape::Object)
            && !self.def.converts()
            && self.filter.is_empty()
            && self.name.is_none();
        if raw {
            let kind = match ev.kind {
                EventKind::Create => "ADDED",
                EventKind::Update => "MODIFIED",
                EventKind::Delete => "DELETED",
            };
            if let Some(line) = super::watch_raw::event_line(kind, &ev.kv.value, ev.kv.mod_revision)
            {
                return Some(line);
            }
        }
        let new = decode_as(&self.def, &ev.kv).ok()?;
        let (filter, def, name) = (&self.filter, &self.def, self.name.as_deref());
        let matches = |obj: &Value| filter.matches(def, obj) && name_matches(obj, name);
        let enc = &mut self.enc;
        match ev.kind {
            EventKind::Create => matches(&new).then(|| enc.event("ADDED", &new)),
            EventKind::Delete => matches(&new).then(|| enc.event("DELETED", &new)),
            // Nothing selected: the object was in before, as it is now
            // (decoding the old one for nothing was a good part of a
            // watch's cost when pods are bound by the thousand).
            EventKind::Update if filter.is_empty() && name.is_none() => {
                Some(enc.event("MODIFIED", &new))
            }
            EventKind::Update => {
                let old_m = ev
                    .prev
                    .as_ref()
                    .and_then(|p| decode_as(def, p).ok())
                    .is_some_and(|o| matches(&o));
                match (old_m, matches(&new)) {
                    (true, true) => Some(enc.event("MODIFIED", &new)),
                    (false, true) => Some(enc.event("ADDED", &new)),
                    // Left the selection: the client sees it go.
                    (true, false) => Some(enc.event("DELETED", &stamp(new, rev))),
                    (false, false) => None,
                }
            }
        }
    }
}

fn name_matches(obj: &Value, name: Option<&str>) -> bool {
    match name {
        None => true,
        Some(n) => super::metadata::name_of(obj) == Some(n),
    }
}
