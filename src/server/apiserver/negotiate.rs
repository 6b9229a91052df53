//! Content negotiation: what the client accepts (Table, discovery formats)
//! and what it sent (JSON, YAML), plus the response helpers every handler
//! shares.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::body::{Frame, SizeHint};
use serde_json::Value;

use crate::api::status::ApiError;

/// Largest request body the API accepts, as the real apiserver (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The JSON nesting depth beyond which a body is refused (serde_json's own
/// recursion limit is 128; this gives a clearer message below it).
pub const MAX_DEPTH: usize = 100;

fn accept(headers: &HeaderMap) -> String {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

/// What a read was asked to return each object as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// The objects themselves.
    Objects,
    /// A Table (`as=Table`, what `kubectl get` asks for).
    Table,
    /// Their metadata only (`as=PartialObjectMetadata[List]`, what
    /// client-go's metadata informers ask for).
    Metadata,
}

/// What a read is of: one object, a collection, or a watch (whose events
/// carry one object each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    One,
    List,
    Watch,
}

/// The first form in the Accept list the server gives: a media type
/// without `as=` means the objects themselves; one with `as=` is taken
/// when it names, in `meta.k8s.io` `v1`/`v1beta1`, a Table or the metadata
/// form that fits the read (`PartialObjectMetadata` for one object,
/// `…List` for a collection), and passed over otherwise. Answers are JSON
/// whatever the media type (a protobuf one with `as=` is followed by its
/// JSON twin in every client's list). 406 when nothing fits.
pub fn asked(headers: &HeaderMap, reading: Reading) -> Result<Asked, ApiError> {
    let all = accept(headers);
    if all.trim().is_empty() {
        return Ok(Asked::Objects);
    }
    for media in all.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let Some(form) = params.iter().find_map(|p| p.strip_prefix("as=")) else {
            return Ok(Asked::Objects);
        };
        let known = params.contains(&"g=meta.k8s.io")
            && (params.contains(&"v=v1") || params.contains(&"v=v1beta1"));
        if !known {
            continue;
        }
        match (form, reading) {
            ("Table", _) => return Ok(Asked::Table),
            ("PartialObjectMetadata", Reading::One | Reading::Watch)
            | ("PartialObjectMetadataList", Reading::List | Reading::Watch) => {
                return Ok(Asked::Metadata)
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(format!(
        "none of the media types in Accept ({}) can be served; this server gives application/json, or with ;as=Table, ;as=PartialObjectMetadata (one object) or ;as=PartialObjectMetadataList (lists) with ;g=meta.k8s.io;v=v1",
        crate::api::status::truncate_echo(&all, 200)
    )))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryFormat {
    V2,
    V2Beta1,
    Legacy,
}

impl DiscoveryFormat {
    pub fn api_version(self) -> &'static str {
        match self {
            DiscoveryFormat::V2 => "apidiscovery.k8s.io/v2",
            DiscoveryFormat::V2Beta1 | DiscoveryFormat::Legacy => "apidiscovery.k8s.io/v2beta1",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            DiscoveryFormat::V2 => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            DiscoveryFormat::V2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
            DiscoveryFormat::Legacy => "application/json",
        }
    }
}

/// Aggregated discovery only when asked for, and only in a version the client
/// named: an older kubectl that knows only v2beta1 breaks on v2.
pub fn discovery_format(headers: &HeaderMap) -> DiscoveryFormat {
    let mut v2 = false;
    let mut v2beta1 = false;
    for media in accept(headers).split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        if !params.contains(&"as=APIGroupDiscoveryList")
            || !params.contains(&"g=apidiscovery.k8s.io")
        {
            continue;
        }
        if params.contains(&"v=v2") {
            v2 = true;
        } else if params.contains(&"v=v2beta1") {
            v2beta1 = true;
        }
    }
    if v2 {
        DiscoveryFormat::V2
    } else if v2beta1 {
        DiscoveryFormat::V2Beta1
    } else {
        DiscoveryFormat::Legacy
    }
}

/// The media type of the request body, without parameters ("" when there
/// is no Content-Type: JSON, as upstream defaults it).
pub fn content_type(headers: &HeaderMap) -> String {
    let Some(v) = headers.get(CONTENT_TYPE) else {
        return String::new();
    };
    match v.to_str() {
        Ok(s) => s
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
        // Not visible ASCII: Go's mime.ParseMediaType refuses it, so upstream
        // answers 415. The raw value matches no known type, so callers do too.
        Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
    }
}

/// Go's name of a JSON value's type, as encoding/json reports it.
fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `apiVersion` and `kind` must be strings (or absent): upstream's decoder
/// reads them first and refuses the body with 400 otherwise.
fn check_type_meta(v: &Value) -> Result<(), ApiError> {
    for key in ["apiVersion", "kind"] {
        match v.get(key) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field .{key} of type string",
                    go_json_type(other)
                )))
            }
        }
    }
    Ok(())
}

fn depth_ok(v: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Array(a) => a.iter().all(|x| depth_ok(x, depth + 1)),
        Value::Object(m) => m.values().all(|x| depth_ok(x, depth + 1)),
        _ => true,
    }
}

/// Decode a JSON document, refusing junk with a 400 a person can act on.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !depth_ok(&v, 0) {
        return Err(ApiError::bad_request(format!(
            "the request body is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(v)
}

/// Decode a YAML document (one document only).
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
    // Aliases repeat anchors: with the parser's default budget a 1 MB body
    // built 64 MiB of strings (an apply patch is YAML). A document without
    // aliases has no more scalar text than the body, so that is the bound.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_total_scalar_bytes: MAX_BODY_BYTES },
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: 100_000 },
    };
    let v: Value = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))?;
    if !depth_ok(&v, 0) {
        return Err(ApiError::bad_request(format!(
            "the request body is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(v)
}

/// A protobuf body through `decode` (an object's or options'), bounded as
/// any body is.
fn decode_protobuf(
    body: &[u8],
    decode: fn(&[u8]) -> Result<Value, crate::api::protobuf::ProtobufError>,
) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    decode(body).map_err(|e| {
        ApiError::bad_request(format!("the protobuf request body cannot be decoded: {e}"))
    })
}

/// Decode the options a DELETE may carry (`DeleteOptions`) by the body's
/// Content-Type; None for an empty body.
pub fn decode_options(headers: &HeaderMap, body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v = match content_type(headers).as_str() {
        crate::api::protobuf::MEDIA_TYPE => {
            decode_protobuf(body, crate::api::protobuf::decode_options)?
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(body)?,
        // JSON, also when the client names no type (curl -d).
        _ => parse_json(body)?,
    };
    Ok(Some(v))
}

/// Decode an object body for create/update by its Content-Type.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let v = match ct.as_str() {
        "application/json" | "" => parse_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(body)?,
        crate::api::protobuf::MEDIA_TYPE => {
            decode_protobuf(body, crate::api::protobuf::decode_body)?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object (a Kubernetes resource)",
        ));
    }
    check_type_meta(&v)?;
    Ok(v)
}

pub fn json_response(code: StatusCode, v: &Value) -> Response {
    json_bytes_response(
        code,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    )
}

pub fn json_bytes_response(code: StatusCode, bytes: Vec<u8>, content_type: &str) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

/// A JSON response written from a few parts in order (a list's head, its
/// items, its tail), without copying them into one buffer first.
pub fn json_parts_response(code: StatusCode, parts: Vec<Vec<u8>>) -> Response {
    json_parts_response_holding(code, parts, ())
}

/// [`json_parts_response`], keeping `held` until the last part is sent.
pub fn json_parts_response_holding<H: Send + 'static>(
    code: StatusCode,
    parts: Vec<Vec<u8>>,
    held: H,
) -> Response {
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut held = Some(held);
    let mut out = VecDeque::new();
    let last = parts.iter().rposition(|p| !p.is_empty());
    for (i, p) in parts.into_iter().enumerate() {
        if Some(i) == last {
            if let Some(h) = held.take() {
                out.push_back(response_part_holding(p, total, h));
            }
        } else if !p.is_empty() {
            let len = p.len();
            out.push_back(response_part(p, len));
        }
    }
    let mut resp = Response::new(Body::new(PartsBody::new(out)));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A streamed JSON response.
pub fn json_stream_response(code: StatusCode, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// One part of a response, the last of `sent` bytes: once a response of
/// [`TRIM_AFTER_BYTES`] or more has been sent (this part is freed after
/// the ones before it), the memory its making freed goes back to the
/// system.
pub fn response_part(part: Vec<u8>, sent: usize) -> Bytes {
    response_part_holding(part, sent, ())
}

/// [`response_part`], keeping `held` (a share of a memory budget) until
/// the connection has sent the part and dropped it.
pub fn response_part_holding<H: Send + 'static>(part: Vec<u8>, sent: usize, held: H) -> Bytes {
    Bytes::from_owner(Part {
        bytes: part,
        trim: sent >= TRIM_AFTER_BYTES,
        _held: held,
    })
}

/// From this size on, a response part gives the memory it and its
/// making freed back to the system once the connection has sent it.
const TRIM_AFTER_BYTES: usize = 1024 * 1024;

struct Part<H> {
    bytes: Vec<u8>,
    trim: bool,
    _held: H,
}

impl<H> AsRef<[u8]> for Part<H> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl<H> Drop for Part<H> {
    fn drop(&mut self) {
        if self.trim {
            self.bytes = Vec::new();
            release_free_memory();
        }
    }
}

/// A body of byte parts with an exact length (so it keeps its
/// Content-Length).
struct PartsBody {
    parts: VecDeque<Bytes>,
    left: u64,
}

impl PartsBody {
    fn new(parts: VecDeque<Bytes>) -> Self {
        let left = parts.iter().map(|p| p.len() as u64).sum();
        PartsBody { parts, left }
    }
}

impl HttpBody for PartsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(p) = &next {
            self.left -= p.len() as u64;
        }
        Poll::Ready(next.map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Hands freed heap pages back to the kernel. glibc keeps what a large
/// response freed in its arenas (one per thread that ever allocated), so
/// without this the server's RSS stays at its peak after a big list.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks and trims the allocator's own free
    // lists; it takes no pointers.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

pub fn text_response(code: StatusCode, text: &str) -> Response {
    let mut resp = Response::new(Body::from(text.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = json_response(code, &self.to_status());
        if self.code == 401 {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kubernetes-master\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_str(accept).unwrap());
        h
    }

    #[test]
    fn table_and_metadata_accept() {
        let one = |a: &str| asked(&headers(a), Reading::One).map_err(|e| e.code);
        let list = |a: &str| asked(&headers(a), Reading::List).map_err(|e| e.code);
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(list(kubectl), Ok(Asked::Table));
        // client-go's metadata client.
        let metadata = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(list(metadata), Ok(Asked::Metadata));
        // The list form on a get: passed over for plain JSON.
        assert_eq!(one(metadata), Ok(Asked::Objects));
        assert_eq!(list("application/json"), Ok(Asked::Objects));
        assert_eq!(list(""), Ok(Asked::Objects));
        // Only unknown forms: nothing to serve.
        assert_eq!(list("application/json;as=Table"), Err(406));
        assert_eq!(
            one("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v9"),
            Err(406)
        );
        assert_eq!(
            list("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
            Err(406)
        );
    }

    #[test]
    fn discovery_negotiation_honours_accept() {
        let both = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(discovery_format(&headers(both)), DiscoveryFormat::V2);
        let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(discovery_format(&headers(beta)), DiscoveryFormat::V2Beta1);
        assert_eq!(
            discovery_format(&headers("application/json")),
            DiscoveryFormat::Legacy
        );
    }

    #[test]
    fn bodies_are_checked() {
        assert_eq!(parse_json(b"{").unwrap_err().code, 400);
        let deep = "[".repeat(120) + &"]".repeat(120);
        assert_eq!(parse_json(deep.as_bytes()).unwrap_err().code, 400);
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse_json(&big).unwrap_err().code, 413);
        assert!(parse_yaml(b"a: [1, 2]\nb: x\n").is_ok());
        assert_eq!(parse_yaml(&[0xff, 0xfe]).unwrap_err().code, 400);
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(decode_object(&h, b"[1]").unwrap_err().code, 400);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        assert_eq!(decode_object(&h, b"{}").unwrap_err().code, 415);
    }

    #[test]
    fn non_ascii_content_types_are_unsupported() {
        let mut h = HeaderMap::new();
        for raw in [
            &b"application/json\xc3\xa9"[..],
            b"application/json; charset=\xff",
            b"\xe2\x98\x83",
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_bytes(raw).unwrap());
            let e = decode_object(&h, b"{}").unwrap_err();
            assert_eq!((e.code, e.reason), (415, "UnsupportedMediaType"), "{raw:?}");
        }
        h.remove(CONTENT_TYPE);
        assert!(decode_object(&h, b"{}").is_ok());
    }

    #[test]
    fn kind_and_api_version_must_be_strings() {
        let h = HeaderMap::new();
        let e = decode_object(&h, br#"{"kind": 5, "metadata": {"name": "x"}}"#).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert_eq!(
            e.message,
            "couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string"
        );
        let e = decode_object(&h, br#"{"apiVersion": ["v1"]}"#).unwrap_err();
        assert!(e
            .message
            .contains("cannot unmarshal array into Go struct field .apiVersion"));
        assert!(decode_object(&h, br#"{"kind": null, "apiVersion": "v1"}"#).is_ok());
    }
}
