//! Content negotiation: what the client accepts (Table, discovery formats)
//! and what it sent (JSON, YAML), plus the response helpers every handler
//! shares.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
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

/// True when the client asked for `as=Table` (what `kubectl get` does).
pub fn wants_table(headers: &HeaderMap) -> bool {
    accept(headers).split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    })
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

/// The media type of the request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
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

/// Decode an object body for create/update by its Content-Type.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let v = match ct.as_str() {
        "application/json" | "" => parse_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(body)?,
        crate::api::protobuf::MEDIA_TYPE => {
            if body.len() > MAX_BODY_BYTES {
                return Err(ApiError::too_large(MAX_BODY_BYTES));
            }
            crate::api::protobuf::decode_body(body).map_err(|e| {
                ApiError::bad_request(format!("the protobuf request body cannot be decoded: {e}"))
            })?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object (a Kubernetes resource)",
        ));
    }
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
    fn table_accept() {
        assert!(wants_table(&headers(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_table(&headers("application/json")));
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
}
