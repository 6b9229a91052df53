//! OpenAPI: `/openapi/v3` (one document per group/version) and
//! `/openapi/v2`, from kube-apiserver's own published documents
//! ([`artifact`]) narrowed to what the registry serves ([`select`]), so a
//! kind added to the registry is described with no change here.
//!
//! What kubectl 1.32 reads: `apply`/`create -f`/`replace` read the v3
//! document of the object's group/version to learn that its PATCH takes
//! `fieldValidation` (then the server validates); a `kind: List` is not in
//! any v3 document, so it is validated on the client against the v2
//! definitions (protobuf), as is anything v3 does not describe; client-side
//! `apply` computes its strategic merge patch from the v3 schema when the
//! PATCH operation accepts `application/strategic-merge-patch+json` (from v2
//! otherwise); `explain` renders the v3 schemas.
//!
//! Memory: nothing is decoded at start-up. An answer decompresses what it
//! needs, builds its document on a blocking thread and drops both; the
//! pages go back to the system. What stays is [`Cache`]: the documents'
//! hashes and v2's tags, a few KiB, because kubectl asks for /openapi/v3 on
//! every `apply` and it lists every document's hash.

mod artifact;
mod custom;
mod proto;
mod select;

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, EXPIRES, IF_NONE_MATCH, LOCATION, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Map};
use sha2::{Digest, Sha512};

use self::artifact::{Artifact, ArtifactError};
use super::discovery::KUBE_GIT_VERSION;
use super::negotiate::{release_free_memory, response_part};
use super::ApiState;
use crate::api::status::ApiError;

/// What kubectl asks for; the answer is labelled with the form that parses
/// as a media type (`@` is not allowed in one), as upstream does.
const PROTOBUF_V2_ASKED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const PROTOBUF_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `(api/v1 | apis/<g>/<v>, hash)` of documents.
type Hashes = Vec<(String, String)>;

/// What is kept between answers (see the module's notes on memory).
pub struct Cache {
    /// At most this many documents are built at once: each build holds a
    /// few MiB (the schemas frame, a group's paths, the document), and a
    /// burst of first-time clients must not multiply that.
    builds: Semaphore,
    /// `(api/v1 | apis/<g>/<v>, hash)` of every built-in group/version;
    /// made once (they never change while running), by the first request,
    /// others waiting for it. Custom resources' documents are made when
    /// asked for, as their CRDs come and go.
    v3_hashes: OnceLock<Result<Vec<(String, String)>, ApiError>>,
    /// The shared schemas custom resources' documents refer to, as JSON
    /// members (a few KiB).
    common: OnceLock<Result<String, ApiError>>,
    /// The custom resources' document hashes, with the CRD generation
    /// (`crd::Installed::changed`) they were made at.
    custom_hashes: std::sync::Mutex<Option<(u64, Hashes)>>,
    /// The tag of /openapi/v2 (its JSON's hash, for both forms, as
    /// upstream), once sent, so that a client's revalidation is answered
    /// without building it again.
    v2_etag: OnceLock<String>,
}

/// Documents built at once (see [`Cache::builds`]).
const CONCURRENT_BUILDS: usize = 2;

impl Default for Cache {
    fn default() -> Self {
        Cache {
            builds: Semaphore::new(CONCURRENT_BUILDS),
            v3_hashes: OnceLock::new(),
            common: OnceLock::new(),
            custom_hashes: Default::default(),
            v2_etag: OnceLock::new(),
        }
    }
}

fn internal(e: ArtifactError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Upstream's hash and tag of a document: SHA-512 in upper-case hex.
fn etag(bytes: &[u8]) -> String {
    hex::encode_upper(Sha512::digest(bytes))
}

/// Run a document's making on a blocking thread (it decompresses and
/// scans megabytes), and give the memory it freed back afterwards.
async fn blocking<T: Send + 'static>(
    state: &Arc<ApiState>,
    f: impl FnOnce(&ApiState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = state
        .openapi
        .builds
        .acquire()
        .await
        .map_err(|e| ApiError::internal(format!("building the OpenAPI document: {e}")))?;
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let out = f(&state);
        release_free_memory();
        out
    })
    .await
    .map_err(|e| ApiError::internal(format!("building the OpenAPI document: {e}")))?
}

/// Group/versions with built-in kinds.
fn builtin_gvs(state: &ApiState) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in state.registry.builtins() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The document of a group/version of custom resources only.
fn custom_document(
    state: &ApiState,
    group: &str,
    version: &str,
) -> Result<Option<String>, ApiError> {
    let live = state.registry.custom.live();
    let defs: Vec<&super::registry::ResourceDef> = live
        .iter()
        .copied()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        return Ok(None);
    }
    let common = state
        .openapi
        .common
        .get_or_init(|| {
            let artifact = Artifact::builtin().map_err(internal)?;
            let schemas = select::Schemas::load(&artifact).map_err(internal)?;
            Ok(select::common_members(&schemas, custom::COMMON_ROOTS))
        })
        .clone()?;
    Ok(Some(custom::document(
        &defs,
        &common,
        &select::document_info(),
    )))
}

fn v3_document(state: &ApiState, group: &str, version: &str) -> Result<Option<String>, ApiError> {
    if !builtin_gvs(state).contains(&(group, version)) {
        return custom_document(state, group, version);
    }
    let artifact = Artifact::builtin().map_err(internal)?;
    let schemas = select::Schemas::load(&artifact).map_err(internal)?;
    select::v3_document(&state.registry, &artifact, &schemas, group, version).map_err(internal)
}

fn v3_hashes(state: &ApiState) -> Result<Vec<(String, String)>, ApiError> {
    let made = state.openapi.v3_hashes.get_or_init(|| {
        let artifact = Artifact::builtin().map_err(internal)?;
        // Decompressed once for all the documents, each dropped once hashed.
        let schemas = select::Schemas::load(&artifact).map_err(internal)?;
        let mut out = Vec::new();
        for (g, v) in builtin_gvs(state) {
            let doc = select::v3_document(&state.registry, &artifact, &schemas, g, v)
                .map_err(internal)?;
            if let Some(doc) = doc {
                out.push((select::gv_path(g, v), etag(doc.as_bytes())));
            }
        }
        Ok(out)
    });
    let mut out = made.clone()?;
    out.extend(custom_hashes(state)?);
    Ok(out)
}

/// The custom resources' documents' hashes, made again only when a CRD
/// changed since they were last made.
fn custom_hashes(state: &ApiState) -> Result<Vec<(String, String)>, ApiError> {
    let generation = *state.registry.custom.changed.borrow();
    let cache = &state.openapi.custom_hashes;
    if let Ok(g) = cache.lock() {
        if let Some((made_at, hashes)) = g.as_ref() {
            if *made_at == generation {
                return Ok(hashes.clone());
            }
        }
    }
    let builtin = builtin_gvs(state);
    let mut out = Vec::new();
    for (g, v) in state.registry.group_versions() {
        if builtin.contains(&(g, v)) {
            continue;
        }
        if let Some(doc) = custom_document(state, g, v)? {
            out.push((select::gv_path(g, v), etag(doc.as_bytes())));
        }
    }
    if let Ok(mut g) = cache.lock() {
        *g = Some((generation, out.clone()));
    }
    Ok(out)
}

fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").trim_matches('"') == tag
        })
}

fn respond(headers: &HeaderMap, body: Vec<u8>, content_type: &str, tag: &str) -> Response {
    let status = if not_modified(headers, tag) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut resp = if status == StatusCode::OK {
        // Whatever its size, once sent the memory its making freed goes
        // back to the system: the decompressed frames it came from were
        // several times larger than the answer.
        Response::new(Body::from(response_part(body, usize::MAX)))
    } else {
        Response::new(Body::empty())
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{tag}\"")) {
        h.insert(ETAG, v);
    }
    resp
}

/// `GET /openapi/v3`: each served group/version's document, by hash.
pub async fn root(state: &Arc<ApiState>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let hashes = blocking(state, v3_hashes).await?;
    let mut paths = Map::new();
    for (gv, hash) in hashes {
        let url = format!("/openapi/v3/{gv}?hash={hash}");
        paths.insert(gv, json!({ "serverRelativeURL": url }));
    }
    let body = serde_json::to_vec(&json!({ "paths": paths })).unwrap_or_default();
    let tag = etag(&body);
    Ok(respond(headers, body, "application/json", &tag))
}

/// Does `Accept` take JSON (nothing said is `*/*`)?
fn accepts(headers: &HeaderMap, wanted: &str) -> bool {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return wanted == "application/json";
    };
    accept.split(',').any(|clause| {
        let media = clause.split(';').next().unwrap_or_default().trim();
        media == wanted
            || (wanted == "application/json" && matches!(media, "*/*" | "application/*" | ""))
    })
}

fn not_acceptable() -> ApiError {
    ApiError::not_acceptable("only application/json is served here")
}

/// `GET /openapi/v3/<api/v1 | apis/g/v>[?hash=H]`: the group/version's
/// document. With the hash it was listed under it never changes, and says
/// so; with another hash, the client is sent to the current one (301), as
/// upstream does.
pub async fn group_version(
    state: &Arc<ApiState>,
    headers: &HeaderMap,
    group: &str,
    version: &str,
    hash: Option<&str>,
) -> Result<Response, ApiError> {
    if !accepts(headers, "application/json") {
        return Err(not_acceptable());
    }
    let (g, v) = (group.to_string(), version.to_string());
    let doc = blocking(state, move |s| v3_document(s, &g, &v))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
    let tag = etag(doc.as_bytes());
    let gv = select::gv_path(group, version);
    if hash.is_some_and(|h| !h.is_empty() && h != tag) {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
        if let Ok(v) = HeaderValue::from_str(&format!("/openapi/v3/{gv}?hash={tag}")) {
            resp.headers_mut().insert(LOCATION, v);
        }
        return Ok(resp);
    }
    let mut resp = respond(headers, doc.into_bytes(), "application/json", &tag);
    let h = resp.headers_mut();
    h.insert(VARY, HeaderValue::from_static("Accept"));
    if hash.is_some_and(|h| !h.is_empty()) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
        // A year from now, as upstream: the document at this hash never changes.
        let expires = chrono::Utc::now()
            .checked_add_months(chrono::Months::new(12))
            .map(|t| t.format("%a, %d %b %Y %H:%M:%S UTC").to_string());
        if let Some(v) = expires.and_then(|e| HeaderValue::from_str(&e).ok()) {
            h.insert(EXPIRES, v);
        }
    }
    Ok(resp)
}

/// `GET /openapi/v2`, as JSON or as gnostic's protobuf, per `Accept`.
pub async fn v2(state: &Arc<ApiState>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let protobuf = if accepts(headers, "application/json") {
        false
    } else if accepts(headers, PROTOBUF_V2_ASKED) || accepts(headers, PROTOBUF_V2) {
        true
    } else {
        return Err(not_acceptable());
    };
    let content_type = if protobuf {
        PROTOBUF_V2
    } else {
        "application/json"
    };
    let cached = &state.openapi.v2_etag;
    if let Some(tag) = cached.get().filter(|t| not_modified(headers, t)) {
        return Ok(respond(headers, Vec::new(), content_type, tag));
    }
    let (body, tag) = blocking(state, move |s| {
        let artifact = Artifact::builtin().map_err(internal)?;
        let v2 = select::v2(&s.registry, &artifact).map_err(internal)?;
        let json = v2.json().into_bytes();
        let tag = etag(&json);
        if !protobuf {
            return Ok((json, tag));
        }
        drop(json);
        let pb = proto::document(&v2, KUBE_GIT_VERSION)
            .map_err(|e| ApiError::internal(format!("OpenAPI v2 definition: {e}")))?;
        Ok((pb, tag))
    })
    .await?;
    let _ = cached.set(tag.clone());
    let mut resp = respond(headers, body, content_type, &tag);
    resp.headers_mut()
        .insert(VARY, HeaderValue::from_static("Accept"));
    Ok(resp)
}
