//! The audit log (`--audit-log-path`): who did what, as upstream's
//! `audit.k8s.io/v1` Event JSON lines, one per request stage the policy
//! (`--audit-policy-file`, upstream's format; without one, every request at
//! Metadata level once answered) asks for.
//!
//! A request's record is made when it arrives ([`Record`], carried in its
//! extensions), filled in by the dispatcher once it knows who asks (and
//! whom they impersonate), the verb and the object, and the authorizer's
//! decision; written at `RequestReceived`, at `ResponseStarted` for
//! long-running requests (watches, exec, attach, port-forward, logs), and
//! at `ResponseComplete` once answered (for a long-running one, once its
//! body ends).
//! Levels Request and RequestResponse are recorded as Metadata: request and
//! response bodies are not in the events (said at start-up).
//! Requests that fail authentication are not recorded.

pub mod policy;
pub mod sink;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use self::policy::{Attributes, Decision, Level, Policy, ResourceAttrs, Stage};
use self::sink::Sink;
use crate::server::pki::Identity;

/// The client address of a request that came over the network.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub IpAddr);

pub struct Auditor {
    policy: Policy,
    sink: Sink,
}

/// What the log records of one request; shared between the request's
/// dispatcher (which learns who and what) and its response (which ends it).
pub type Shared = Arc<Mutex<Record>>;

#[derive(Debug, Default)]
pub struct Record {
    id: String,
    received: String,
    uri: String,
    user_agent: Option<String>,
    source: Option<IpAddr>,
    /// Set once authenticated: nothing is recorded before.
    user: Option<Identity>,
    impersonated: Option<Identity>,
    verb: String,
    object: Option<Value>,
    long_running: bool,
    decision: Option<Decision>,
    /// The authorizer's answer: allow or forbid.
    allowed: Option<bool>,
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The object a request addresses, as the event's `objectRef` names it.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// What the dispatcher tells the record once it knows it.
pub struct Seen<'a> {
    /// Who authenticated.
    pub user: &'a Identity,
    /// Whom they act as (themselves unless impersonating).
    pub acting: &'a Identity,
    pub verb: &'a str,
    pub path: &'a str,
    pub resource: Option<ObjectRef<'a>>,
}

impl Auditor {
    pub fn new(policy: Policy, sink: Sink) -> Self {
        if policy
            .rules
            .iter()
            .any(|r| matches!(r.level, Level::Request | Level::RequestResponse))
        {
            tracing::warn!(
                "the audit policy asks for Request or RequestResponse levels: skiff records those as Metadata (no request or response bodies)"
            );
        }
        Auditor { policy, sink }
    }

    /// A record for a request arriving now.
    pub fn begin(uri: &http::Uri, headers: &http::HeaderMap, peer: Option<PeerAddr>) -> Shared {
        let user_agent = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Arc::new(Mutex::new(Record {
            id: uuid::Uuid::new_v4().to_string(),
            received: now(),
            uri: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            user_agent,
            source: peer.map(|p| p.0),
            ..Record::default()
        }))
    }

    /// The request is known: decide its level and, unless omitted, write
    /// its RequestReceived event.
    pub async fn seen(&self, record: &Shared, seen: Seen<'_>) {
        let resource = seen.resource.map(|o| ResourceAttrs {
            group: o.group,
            resource: o.resource,
            subresource: o.subresource,
            namespace: o.namespace,
            name: o.name,
        });
        let decision = self.policy.decide(&Attributes {
            user: &seen.user.user,
            groups: &seen.user.groups,
            verb: seen.verb,
            resource,
            path: seen.path,
        });
        let line = {
            let Ok(mut r) = record.lock() else {
                return;
            };
            r.user = Some(seen.user.clone());
            if seen.acting != seen.user {
                r.impersonated = Some(seen.acting.clone());
            }
            r.verb = seen.verb.to_string();
            r.long_running = long_running(seen.verb, seen.resource.and_then(|o| o.subresource));
            r.object = seen.resource.map(|obj| {
                let mut o = Map::new();
                o.insert("resource".into(), json!(obj.resource));
                if let Some(ns) = obj.namespace {
                    o.insert("namespace".into(), json!(ns));
                }
                if let Some(n) = obj.name {
                    o.insert("name".into(), json!(n));
                }
                if !obj.group.is_empty() {
                    o.insert("apiGroup".into(), json!(obj.group));
                }
                o.insert("apiVersion".into(), json!(obj.version));
                if let Some(s) = obj.subresource {
                    o.insert("subresource".into(), json!(s));
                }
                Value::Object(o)
            });
            let wanted = decision.level != Level::None
                && !decision.omit_stages.contains(&Stage::RequestReceived);
            r.decision = Some(decision);
            wanted.then(|| r.event(Stage::RequestReceived, None))
        };
        if let Some(line) = line {
            self.sink.send(line).await;
        }
    }

    /// Write the event of `stage` with the response's `status` (a Status
    /// object for a failure, else just its code), if the policy asks.
    pub async fn stage(&self, record: &Shared, stage: Stage, status: Value) {
        let line = match record.lock() {
            Ok(r) => r.wants(stage).then(|| r.event(stage, Some(status))),
            Err(_) => None,
        };
        if let Some(line) = line {
            self.sink.send(line).await;
        }
    }

    /// [`Auditor::stage`] from a place that cannot wait (a response body
    /// being dropped).
    pub fn stage_later(self: &Arc<Self>, record: &Shared, stage: Stage, status: Value) {
        let line = match record.lock() {
            Ok(r) => r.wants(stage).then(|| r.event(stage, Some(status))),
            Err(_) => None,
        };
        if let Some(line) = line {
            let auditor = self.clone();
            tokio::spawn(async move { auditor.sink.send(line).await });
        }
    }
}

tokio::task_local! {
    /// The record of the request being handled, for what only its handler
    /// learns (a created object's name).
    static CURRENT: Option<Shared>;
}

/// Run a request's handling with its record (if it is audited) at hand.
pub async fn within<F: std::future::Future>(record: Option<Shared>, fut: F) -> F::Output {
    CURRENT.scope(record, fut).await
}

/// The request being handled creates the object `name`: its events name
/// it, as upstream's fill the object reference from the request's object.
pub fn created(name: &str) {
    let _ = CURRENT.try_with(|record| {
        let Some(Ok(mut r)) = record.as_ref().map(|r| r.lock()) else {
            return;
        };
        if let Some(Value::Object(o)) = r.object.as_mut() {
            o.entry("name").or_insert_with(|| json!(name));
        }
    });
}

/// The authorizer's decision, for the event's annotations.
pub fn decided(record: &Shared, allowed: bool) {
    if let Ok(mut r) = record.lock() {
        r.allowed = Some(allowed);
    }
}

/// `responseStatus` of an answer with `code`: the Status's message and
/// reason for a failure.
pub fn response_status(code: u16, failure: Option<&crate::api::status::ApiError>) -> Value {
    let mut s = json!({"metadata": {}, "code": code});
    if let Some(e) = failure {
        s["status"] = json!("Failure");
        s["message"] = json!(e.message);
        s["reason"] = json!(e.reason);
    }
    s
}

impl Record {
    fn wants(&self, stage: Stage) -> bool {
        self.user.is_some()
            && self
                .decision
                .as_ref()
                .is_some_and(|d| d.level != Level::None && !d.omit_stages.contains(&stage))
    }

    fn event(&self, stage: Stage, status: Option<Value>) -> Vec<u8> {
        let user = |who: &Identity| json!({"username": who.user, "groups": who.groups});
        let level = self
            .decision
            .as_ref()
            .map_or(Level::None, |d| d.level)
            // Bodies are not recorded: see the module's note.
            .min(Level::Metadata);
        let mut e = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level.as_str(),
            "auditID": self.id,
            "stage": stage.as_str(),
            "requestURI": self.uri,
            "verb": self.verb,
            "user": self.user.as_ref().map(user),
        });
        if let Some(i) = &self.impersonated {
            e["impersonatedUser"] = user(i);
        }
        if let Some(ip) = self.source {
            e["sourceIPs"] = json!([ip.to_string()]);
        }
        if let Some(ua) = &self.user_agent {
            e["userAgent"] = json!(ua);
        }
        if let Some(o) = &self.object {
            e["objectRef"] = o.clone();
        }
        if let Some(s) = status {
            e["responseStatus"] = s;
        }
        e["requestReceivedTimestamp"] = json!(self.received);
        e["stageTimestamp"] = json!(now());
        if let Some(allowed) = self.allowed {
            e["annotations"] = json!({
                "authorization.k8s.io/decision": if allowed { "allow" } else { "forbid" },
                "authorization.k8s.io/reason": "",
            });
        }
        serde_json::to_vec(&e).unwrap_or_default()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn long_running(&self) -> bool {
        self.long_running
    }
}

/// Writes a request's ResponseComplete event when dropped: held by its
/// response body, which is dropped once sent (or once the client goes).
pub struct Completion {
    auditor: Arc<Auditor>,
    record: Shared,
    status: Value,
}

impl Completion {
    pub fn new(auditor: Arc<Auditor>, record: Shared, status: Value) -> Self {
        Completion {
            auditor,
            record,
            status,
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let status = std::mem::take(&mut self.status);
        self.auditor
            .stage_later(&self.record, Stage::ResponseComplete, status);
    }
}

/// A response with its audit events and the `Audit-Id` header, as
/// upstream's: a request that stays open (a watch, a stream) gets
/// ResponseStarted now and ResponseComplete once its body ends; any other
/// gets ResponseComplete now, waited for, so a stalled audit log holds
/// requests back rather than piling their events up in memory (upstream's
/// blocking log backend). Open requests are bounded by the connections.
pub async fn respond(
    auditor: &Arc<Auditor>,
    record: Shared,
    mut resp: axum::response::Response,
    failure: Option<&crate::api::status::ApiError>,
) -> axum::response::Response {
    let code = resp.status().as_u16();
    let status = response_status(code, failure);
    let (id, long) = match record.lock() {
        Ok(r) => (r.id().to_string(), r.long_running()),
        Err(_) => (String::new(), false),
    };
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("audit-id", v);
    }
    if !long {
        auditor
            .stage(&record, Stage::ResponseComplete, status)
            .await;
        return resp;
    }
    auditor
        .stage(&record, Stage::ResponseStarted, status.clone())
        .await;
    let done = Completion::new(auditor.clone(), record, status);
    resp.map(|b| {
        axum::body::Body::new(b.map_frame(move |frame| {
            let _done = &done;
            frame
        }))
    })
}

/// Whether a request stays open after its answer starts (a watch, a
/// stream): it gets a ResponseStarted event as well. Logs count whether
/// followed or not, as upstream's long-running check has them.
pub fn long_running(verb: &str, subresource: Option<&str>) -> bool {
    verb == "watch"
        || matches!(
            subresource,
            Some("exec" | "attach" | "portforward" | "proxy" | "log")
        )
}
