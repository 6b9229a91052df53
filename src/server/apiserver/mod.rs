//! The Kubernetes-compatible HTTP API: TLS termination, authentication,
//! path classification and dispatch to the generic handlers.
//!
//! One way in: [`handle`] serves every caller, kubectl over TLS (`conn`) and
//! skiff's own components in process (`loopback`), with the same
//! authentication, authorization, admission, defaulting, validation and
//! managedFields. Nothing outside this module calls the write, metadata or
//! store internals (`write`, `metadata`, `object_store`) directly.
//!
//! A request is read once into a [`RequestCtx`] (identity, verb, dryRun,
//! fieldManager); a request to a resource reaches its handler as one
//! [`Call`], and a write's steps share one `write::Write` target.

pub mod access_review;
pub mod admission;
pub mod allocate;
pub mod apply;
pub mod audit;
pub mod auth;
pub mod authorize;
pub mod binding;
pub mod builtin;
pub mod conn;
pub mod crd;
pub mod discovery;
pub mod encryption;
pub mod eviction;
pub mod fieldsel;
pub mod health;
pub mod impersonate;
pub mod inflight;
pub mod kinds;
pub mod kubelet_proxy;
pub mod list;
pub mod loopback;
pub mod metadata;
pub mod metrics_api;
pub mod mirror;
pub mod negotiate;
pub mod node_graph;
pub mod object_store;
pub mod openapi;
pub mod patch;
pub mod path;
pub mod query;
pub mod rbac;
pub mod read;
pub mod recover;
pub mod registry;
pub mod renewal;
pub mod scan;
pub mod serviceaccount;
pub mod table;
pub mod tunnel;
pub mod warnings;
pub mod watch;
mod watch_raw;
pub mod webhook;
pub mod write;

use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use serde_json::Value;

use self::auth::{Authenticator, ConnIdentity};
use self::kinds::Review;
use self::negotiate::{decode_object, MAX_BODY_BYTES};
use self::object_store::Objects;
use self::path::{ApiPath, ResourceRef};
use self::query::Query;
use self::registry::Registry;
use crate::api::status::ApiError;
use crate::server::pki::Identity;

pub use self::conn::{serve, ConnLimits};
pub use self::inflight::{Inflight, InflightLimits};

/// Everything a request handler needs; passed explicitly, never global.
pub struct ApiState {
    pub registry: Registry,
    pub objects: Objects,
    pub auth: Authenticator,
    /// Requests and request-body bytes in progress.
    pub inflight: Inflight,
    /// What `/readyz` asks: the store (probed once for concurrent health
    /// checks) and the server's components.
    pub ready: health::Readiness,
    /// Writes changing quota usage in progress (`admission::quota`).
    pub usage_writes: admission::quota::Writes,
    /// Owners marked for orphan or foreground deletion, for the garbage
    /// collector.
    pub gc: crate::server::controllers::garbage::Queue,
    /// What the OpenAPI answers keep between requests (hashes only).
    pub openapi: openapi::Cache,
    /// How pods/log, exec and portforward reach kubelets (None: they
    /// cannot be served).
    pub kubelet: std::sync::OnceLock<kubelet_proxy::KubeletClient>,
    /// The kubelets' latest resource metrics (metrics.k8s.io).
    pub metrics: metrics_api::Samples,
    /// How long new pods tolerate a failed node by default.
    pub tolerations: admission::default_tolerations::Seconds,
    /// The RBAC policy requests are authorized on.
    pub rbac: rbac::Rbac,
    /// The audit log, when `--audit-log-path` asks for one.
    pub audit: Option<Arc<audit::Auditor>>,
    /// The admission webhooks writes are sent to.
    pub webhooks: webhook::Webhooks,
    /// Secrets encryption at rest, when configured (encryption.rs).
    pub encryption: Option<Arc<crate::server::store::encrypt::manage::Manager>>,
    /// Node joins (`server::join`), once the certificates are loaded.
    pub join: std::sync::OnceLock<Arc<crate::server::join::Joiner>>,
    /// Agents' tunnels, through which kubelets are reached.
    pub tunnels: tunnel::Tunnels,
    /// The server's own node, which may carry the control-plane role
    /// labels (auth::node_restriction).
    pub control_plane_node: std::sync::OnceLock<String>,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body every handler reads: hyper's from a connection, kube's from the
/// loopback client, erased once here so the handlers are not generic.
type ReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// Who asks and how, read from the request once: what authorization
/// decided on, and what the write paths, admission and (later) audit see.
pub struct RequestCtx {
    pub who: Identity,
    /// The authorizer's verb (`get`, `list`, `create`, …).
    pub verb: String,
    /// `dryRun=All` on a write to a resource (never read on reads, which
    /// ignore it as upstream does).
    pub dry_run: bool,
    /// The `fieldManager` parameter as given; each write checks it
    /// (`apply::write_manager`, apply's own rule).
    pub field_manager: Option<String>,
}

/// One request to a resource as its handlers see it: who asks and how,
/// what it addresses, its query and its headers (the body goes separately,
/// as it is read once).
pub struct Call<'a> {
    pub state: &'a Arc<ApiState>,
    pub ctx: &'a RequestCtx,
    pub r: &'a ResourceRef<'a>,
    pub q: &'a Query,
    pub headers: &'a http::HeaderMap,
}

/// Serve one request from any caller: `conn` is the identity its transport
/// established (a verified client certificate, or the loopback client's
/// own), else a bearer token in the request is tried.
pub async fn handle<B>(state: Arc<ApiState>, conn: ConnIdentity, req: Request<B>) -> Response
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let mut req = req.map(|b| b.map_err(Into::into).boxed_unsync());
    let method = req.method().clone();
    let uri = req.uri().clone();
    let audit = state.audit.clone().map(|auditor| {
        let peer = req.extensions().get::<audit::PeerAddr>().copied();
        let record = audit::Auditor::begin(&uri, req.headers(), peer);
        req.extensions_mut().insert(record.clone());
        (auditor, record)
    });
    // Boxed: dispatch's state machine holds every handler's and is large;
    // unboxed, each layer around it (containment, in-flight tracking, the
    // transport's service) would copy all of it as it moves the future.
    let handled = recover::contain(&method, uri.path(), Box::pin(dispatch(&state, &conn, req)));
    let record = audit.as_ref().map(|(_, record)| record.clone());
    let tracked = audit::within(record, inflight::track(handled));
    let ((result, held), warnings) = warnings::collect(tracked).await;
    let failure = match (&audit, &result) {
        (Some(_), Err(e)) => Some(e.clone()),
        _ => None,
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => error_response(e),
    };
    let resp = patch::with_warnings(resp, &warnings);
    let resp = match audit {
        Some((auditor, record)) => audit::respond(&auditor, record, resp, failure.as_ref()).await,
        None => resp,
    };
    // The body's bytes are given back now that the response is built; the
    // slot once the response has been sent (a streamed list holds it).
    let inflight::Held { slot, body } = held;
    drop(body);
    let resp = match slot {
        Some(slot) => resp.map(|b| {
            axum::body::Body::new(b.map_frame(move |frame| {
                let _held = &slot;
                frame
            }))
        }),
        None => resp,
    };
    tracing::debug!(
        %method,
        path = uri.path(),
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// An error as a response; a 429 also tells the client when to retry.
fn error_response(e: ApiError) -> Response {
    let retry = (e.code == 429).then_some(e.retry_after_seconds).flatten();
    let mut resp = e.into_response();
    if let Some(secs) = retry {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    resp
}

/// The request's body, counted against the server's budget of body bytes
/// until the response is built.
async fn read_body(state: &ApiState, body: ReqBody) -> Result<Bytes, ApiError> {
    read_body_max(state, body, MAX_BODY_BYTES).await
}

/// [`read_body`] for requests whose bodies are smaller by nature: more is
/// refused (and not held) at once.
async fn read_body_max(state: &ApiState, body: ReqBody, max: usize) -> Result<Bytes, ApiError> {
    let mut body = body;
    let deadline = conn::body_deadline();
    let collect = state.inflight.read_body(&mut body, max);
    // A body trickled in slowly would hold the connection and its memory.
    let collected = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, collect).await {
            Ok(c) => c,
            Err(_) => return Err(ApiError::body_timeout()),
        },
        None => collect.await,
    };
    match collected {
        Ok((bytes, reservation)) => {
            inflight::hold_body(reservation);
            Ok(bytes)
        }
        // Refused for its size or the budget: the rest of the body is read
        // after the answer when it is dropped (`inflight::Lingering`).
        Err(e) => Err(e),
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn dispatch(
    state: &Arc<ApiState>,
    conn: &ConnIdentity,
    req: Request<ReqBody>,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    // Answered without reading its body or not, a request's body is read to
    // its end (see `inflight::Lingering`).
    let body = ReqBody::new(inflight::Lingering::new(
        body,
        MAX_BODY_BYTES,
        conn::body_deadline(),
    ));
    let path_str = parts.uri.path().to_string();
    let record = parts.extensions.remove::<audit::Shared>();
    let who = state
        .auth
        .authenticate(&state.objects, &state.registry, conn, &parts.headers)
        .await;
    if who.is_none() && !auth::is_public(&path_str) {
        return Err(ApiError::unauthorized());
    }
    let q = Query::parse(parts.uri.query())?;
    let method = parts.method.clone();
    // After authentication and before authorization, as upstream's filter.
    let watch = q.flag("watch");
    // The loopback client's requests are exempt (see `loopback`).
    let admitted = match parts.extensions.get::<loopback::InProcess>() {
        Some(_) => Ok(None),
        None => state.inflight.admit(&method, &path_str, watch),
    };
    match admitted {
        Ok(Some(slot)) => inflight::hold_slot(slot),
        Ok(None) => {}
        // The body is read after the answer (see `inflight::Lingering`).
        Err(e) => return Err(e),
    }
    // Joins and tunnels authenticate their own way, never through RBAC;
    // they count against the in-flight limits as any request.
    if auth::is_join(&path_str) {
        return join(state, who.as_ref(), &parts, body).await;
    }
    if path_str == tunnel::PATH && parts.method == Method::GET {
        return tunnel::accept(&state.tunnels, who.as_ref(), &parts.headers, on_upgrade);
    }
    let read_only = |m: &Method| m == Method::GET || m == Method::HEAD;
    let parsed = path::parse(&state.registry, &path_str);
    let ctx = match who {
        Some(who) => {
            let (who, verb) = authorize::request(
                state,
                record.as_ref(),
                who,
                &parsed,
                &path_str,
                &method,
                &q,
                &parts.headers,
            )
            .await?;
            let writes = matches!(parsed, ApiPath::Resource(_)) && !read_only(&method);
            Some(RequestCtx {
                who,
                verb,
                dry_run: writes && q.dry_run()?,
                field_manager: q.get("fieldManager").map(str::to_string),
            })
        }
        None => None,
    };
    match parsed {
        ApiPath::Resource(r) => {
            // Every resource path needs credentials (is_public above).
            let Some(ctx) = ctx else {
                return Err(ApiError::unauthorized());
            };
            let call = Call {
                state,
                ctx: &ctx,
                r: &r,
                q: &q,
                headers: &parts.headers,
            };
            let kubelet_sub = match (r.def.group, r.def.plural, r.subresource.as_deref()) {
                ("", "pods", Some(s @ ("log" | "exec" | "attach" | "portforward"))) => Some(s),
                _ => None,
            };
            if r.def.group == "metrics.k8s.io" {
                return metrics_api::serve(&call, &method).await;
            }
            if (r.def.group, r.def.plural, r.subresource.as_deref()) == ("", "nodes", Some("proxy"))
            {
                let path = r.proxy_path.clone().unwrap_or_else(|| "/".into());
                return kubelet_proxy::node(&call, &method, &path, &parts.uri, on_upgrade).await;
            }
            match kubelet_sub {
                Some(sub) => {
                    let allowed = match sub {
                        "log" => method == Method::GET,
                        _ => method == Method::GET || method == Method::POST,
                    };
                    if !allowed {
                        return Err(ApiError::method_not_supported(
                            &format!("pods/{sub}"),
                            method.as_str(),
                        ));
                    }
                    kubelet_proxy::pod(&call, sub, &method, &parts.uri, on_upgrade).await
                }
                None => resource(&call, &method, body).await,
            }
        }
        // Nothing is served there, whatever the method: 404, as upstream
        // (a 405 told clients the path exists).
        ApiPath::NotFound => Err(not_found()),
        ApiPath::SecretsEncryption(action) => encryption::serve(state, &method, action, &q).await,
        _ if !read_only(&method) => Err(ApiError::method_not_supported(&path_str, method.as_str())),
        ApiPath::Version => Ok(discovery::version()),
        ApiPath::Healthz(which) => Ok(health::check(state, which, &q).await),
        ApiPath::HealthCheck { endpoint, check } => {
            health::check_one(state, endpoint, &check).await
        }
        ApiPath::CoreVersions => Ok(discovery::api(&state.registry, &parts.headers)),
        ApiPath::Groups => Ok(discovery::apis(&state.registry, &parts.headers)),
        ApiPath::Group(g) => discovery::group(&state.registry, &g),
        ApiPath::ResourceList { group, version } => {
            discovery::resource_list(&state.registry, &group, &version)
        }
        ApiPath::OpenApiV2 => openapi::v2(state, &parts.headers).await,
        ApiPath::OpenApiV3Root => openapi::root(state, &parts.headers).await,
        ApiPath::OpenApiV3 { group, version } => {
            openapi::group_version(state, &parts.headers, &group, &version, q.get("hash")).await
        }
    }
}

/// A node join (`server::join`): authenticated there, by its token or
/// the node's own certificate, never by RBAC.
async fn join(
    state: &Arc<ApiState>,
    who: Option<&Identity>,
    parts: &http::request::Parts,
    body: ReqBody,
) -> Result<Response, ApiError> {
    let Some(joiner) = state.join.get() else {
        return Err(ApiError::service_unavailable(
            "the server is starting: try again",
        ));
    };
    match (parts.uri.path(), &parts.method) {
        (crate::server::join::CACERTS_PATH, &Method::GET | &Method::HEAD) => Ok(joiner.cacerts()),
        (crate::server::join::CONFIG_PATH, &Method::GET) => joiner.config(who),
        (crate::server::join::CERTIFICATES_PATH, &Method::POST) => {
            // Unauthenticated until read: refused by its declared size
            // before any of the server's body budget is held for it.
            let max = crate::server::join::MAX_BODY;
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            if declared.is_some_and(|n| n > max) {
                return Err(ApiError::too_large(max));
            }
            let bytes = read_body_max(state, body, max).await?;
            let peer = parts.extensions.get::<audit::PeerAddr>().map(|p| p.0);
            joiner.certificates(who, peer, &parts.headers, &bytes).await
        }
        (path, method) => Err(ApiError::method_not_supported(path, method.as_str())),
    }
}

fn verb_allowed(r: &ResourceRef<'_>, verb: &str) -> Result<(), ApiError> {
    if r.def.verbs.contains(&verb) {
        Ok(())
    } else {
        Err(ApiError::method_not_supported(r.def.plural, verb))
    }
}

/// Decode a create/update body and apply `fieldValidation` to it: a 400 for
/// what the apiserver's decoder rejects, else the `Warning` headers to send.
async fn object_body(call: &Call<'_>, body: ReqBody) -> Result<(Value, Vec<String>), ApiError> {
    use crate::api::fieldcheck;
    let Call {
        state,
        r,
        q,
        headers,
        ..
    } = *call;
    let bytes = read_body(state, body).await?;
    let obj = decode_object(headers, &bytes)?;
    if r.subresource.is_some() {
        return Ok((obj, Vec::new()));
    }
    let mode = fieldcheck::Mode::parse(q.get("fieldValidation")).map_err(ApiError::bad_request)?;
    let raw_json = (negotiate::content_type(headers) == "application/json").then_some(&bytes[..]);
    let warnings = crd::check_fields(r.def, mode, &obj, raw_json).map_err(ApiError::bad_request)?;
    Ok((obj, warnings))
}

/// An optional JSON body (DELETE's DeleteOptions).
/// The options a DELETE may carry in its body, in whatever form the client
/// speaks (kubectl's typed clients send protobuf).
async fn optional_body(
    state: &ApiState,
    headers: &http::HeaderMap,
    body: ReqBody,
) -> Result<Option<Value>, ApiError> {
    let bytes = read_body(state, body).await?;
    negotiate::decode_options(headers, &bytes)
}

async fn resource(call: &Call<'_>, method: &Method, body: ReqBody) -> Result<Response, ApiError> {
    let Call {
        state,
        ctx,
        r,
        q,
        headers,
    } = *call;
    tracing::trace!(user = %ctx.who.user, verb = %ctx.verb, resource = r.def.plural, "authorized");
    let asked = |reading| negotiate::asked(headers, reading);
    if let Some(text) = r.def.custom.and_then(|c| c.get().deprecation.clone()) {
        warnings::add(text);
    }
    if let Some(sub) = &r.subresource {
        if !r.def.has_subresource(sub) {
            return Err(not_found());
        }
    }
    // Namespaced kinds address single objects only within a namespace.
    if r.def.namespaced && r.namespace.is_none() && (r.name.is_some() || method != Method::GET) {
        return Err(ApiError::method_not_supported(
            r.def.plural,
            method.as_str(),
        ));
    }
    let name = r.name.clone();
    let sub = r.subresource.clone();
    match (method.clone(), name.as_deref(), sub.as_deref()) {
        (Method::GET, None, None) => {
            if q.flag("watch") {
                verb_allowed(r, "watch")?;
                let shape = read::Shape::of(asked(negotiate::Reading::Watch)?, q)?;
                watch::watch(state, r, q, shape).await
            } else {
                verb_allowed(r, "list")?;
                let shape = read::Shape::of(asked(negotiate::Reading::List)?, q)?;
                list::list(state, r, q, shape).await
            }
        }
        (Method::GET, Some(n), None | Some("status")) => {
            verb_allowed(r, "get")?;
            // A subresource is always the object itself.
            let shape = match sub {
                None => read::Shape::of(asked(negotiate::Reading::One)?, q)?,
                Some(_) => read::Shape::Object,
            };
            read::get(state, r, n, shape).await
        }
        (Method::GET, Some(n), Some("scale")) => patch::get_scale(state, r, n).await,
        (Method::POST, Some(n), Some("binding")) => {
            let manager = apply::write_manager(ctx, headers, "CreateOptions")?;
            let (obj, _) = object_body(call, body).await?;
            binding::create(call, n, &obj, &manager).await
        }
        (Method::POST, Some(n), Some("eviction")) => {
            authorize::check_node_pod(call, n, "evict").await?;
            let (obj, _) = object_body(call, body).await?;
            eviction::create(call, n, &obj).await
        }
        // serviceaccounts/token, the one subresource created by a POST.
        (Method::POST, Some(n), Some("token")) => {
            let (obj, _) = object_body(call, body).await?;
            serviceaccount::token_request::create(call, n, obj).await
        }
        (Method::POST, None, None) => {
            verb_allowed(r, "create")?;
            // Reviews are answered, not stored.
            if let Some(review) = r.def.strategy.review() {
                let bytes = read_body(state, body).await?;
                let obj = decode_object(headers, &bytes)?;
                return match review {
                    Review::Token | Review::SelfSubject => {
                        serviceaccount::review::create(call, review, obj).await
                    }
                    _ => access_review::create(call, review, obj).await,
                };
            }
            let manager = apply::write_manager(ctx, headers, "CreateOptions")?;
            let (obj, warnings) = object_body(call, body).await?;
            let resp = write::create(call, obj, &manager).await?;
            Ok(patch::with_warnings(resp, &warnings))
        }
        (Method::PUT, Some(n), None | Some("status") | Some("finalize")) => {
            verb_allowed(r, "update")?;
            authorize::check_node_pod(call, n, "update pod status for").await?;
            let manager = apply::write_manager(ctx, headers, "UpdateOptions")?;
            let (obj, warnings) = object_body(call, body).await?;
            let resp = write::update(call, n, obj, &manager).await?;
            Ok(patch::with_warnings(resp, &warnings))
        }
        (Method::PUT, Some(n), Some("scale")) => {
            let manager = apply::write_manager(ctx, headers, "UpdateOptions")?;
            let (obj, _) = object_body(call, body).await?;
            patch::put_scale(call, n, &obj, &manager).await
        }
        (Method::PATCH, Some(n), None | Some("status") | Some("scale")) => {
            verb_allowed(r, "patch")?;
            authorize::check_node_pod(call, n, "update pod status for").await?;
            let bytes = read_body(state, body).await?;
            patch::patch(call, n, &bytes).await
        }
        (Method::DELETE, Some(n), None) => {
            verb_allowed(r, "delete")?;
            authorize::check_node_pod(call, n, "delete").await?;
            let body = optional_body(state, headers, body).await?;
            let opts = write::DeleteOptions::parse(q, ctx.dry_run, body.as_ref())?;
            write::delete(state, r, n, &ctx.who, &opts).await
        }
        (Method::DELETE, None, None) => {
            verb_allowed(r, "deletecollection")?;
            let body = optional_body(state, headers, body).await?;
            let opts = write::DeleteOptions::parse(q, ctx.dry_run, body.as_ref())?;
            write::delete_collection(state, r, q, &ctx.who, opts).await
        }
        (m, _, Some(s)) => Err(ApiError::method_not_supported(
            &format!("{}/{s}", r.def.plural),
            m.as_str(),
        )),
        (m, _, None) => Err(ApiError::method_not_supported(r.def.plural, m.as_str())),
    }
}
