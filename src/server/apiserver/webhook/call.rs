//! One call of one webhook: where it is reached (its URL, or a ready
//! endpoint of its Service), TLS trusting only its `caBundle` (or the
//! cluster's CA when it names none) with the name upstream checks
//! (`<service>.<namespace>.svc`), one POST of the AdmissionReview on a
//! connection of its own, all of it within the webhook's timeout, and the
//! answer read up to a bound and checked as upstream checks it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use super::config::{Hook, Target};
use crate::server::apiserver::ApiState;

/// The most bytes an answer may have: a patch of the largest object
/// (3 MiB) with room for its JSON-pointer overhead.
const MAX_RESPONSE: usize = 8 << 20;

/// Why a call failed; becomes upstream's `failed calling webhook` error.
#[derive(Debug)]
pub struct CallError(pub String);

/// POST `review` to the webhook and return the `response` of its answer,
/// checked to be an AdmissionReview of the version sent with the same uid.
pub async fn call(
    state: &ApiState,
    hook: &Hook,
    review: &Value,
    uid: &str,
    budget: Duration,
) -> Result<Value, CallError> {
    let (authority, path) = match &hook.target {
        Target::Url { authority, path } => (authority.clone(), path.clone()),
        Target::Service {
            namespace,
            name,
            path,
            port,
        } => (format!("{name}.{namespace}.svc:{port}"), path.clone()),
    };
    // Whole seconds, rounded up, as upstream tells the webhook.
    let timeout_s = budget.as_secs() + u64::from(budget.subsec_nanos() > 0);
    let url = format!("https://{authority}{path}?timeout={timeout_s}s");
    let body = serde_json::to_vec(review)
        .map_err(|e| CallError(format!("could not create admission objects: {e}")))?;
    let tls = tls_config(state, hook)
        .map_err(|e| CallError(format!("could not get REST client: {e}")))?;
    // Name lookups and the connection count against the timeout too.
    let post = async {
        let (addr, server_name) = resolve(state, hook).await?;
        post(addr, server_name, &authority, &path, timeout_s, body, tls).await
    };
    let answer = match tokio::time::timeout(budget, post).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return Err(CallError(format!(
                "failed to call webhook: Post {url:?}: {e}"
            )))
        }
        Err(_) => {
            return Err(CallError(format!(
                "failed to call webhook: Post {url:?}: context deadline exceeded"
            )))
        }
    };
    verify(&answer, hook.review_version, uid)
        .map_err(|e| CallError(format!("received invalid webhook response: {e}")))
}

/// The address to dial and the TLS name to check.
async fn resolve(
    state: &ApiState,
    hook: &Hook,
) -> Result<(SocketAddr, rustls_pki_types::ServerName<'static>), String> {
    match &hook.target {
        Target::Url { authority, .. } => {
            let (host, port) = split_host_port(authority);
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("dial tcp: lookup {host}: no such host"))?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("{host}: {e}"))?;
            Ok((addr, name))
        }
        Target::Service {
            namespace,
            name,
            port,
            ..
        } => {
            let host = format!("{name}.{namespace}.svc");
            let addr = endpoint(state, namespace, name, *port).await?;
            let server_name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("{host}: {e}"))?;
            Ok((addr, server_name))
        }
    }
}

/// `host:port` (port 443 when absent), IPv6 literals in brackets.
fn split_host_port(authority: &str) -> (String, u16) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            let port = p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(443);
            return (h.to_string(), port);
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(443)),
        _ => (authority.to_string(), 443),
    }
}

/// A ready endpoint of the Service's port `port` (as upstream with
/// endpoint routing; the server need not go through the service proxy).
async fn endpoint(state: &ApiState, ns: &str, name: &str, port: u16) -> Result<SocketAddr, String> {
    let missing = || format!("service \"{name}\" not found");
    let svc_def = state
        .registry
        .find("", "v1", "services")
        .ok_or_else(missing)?;
    let ep_def = state
        .registry
        .find("", "v1", "endpoints")
        .ok_or_else(missing)?;
    let svc = state
        .objects
        .get(svc_def, Some(ns), name)
        .await
        .map_err(|e| e.message)?
        .ok_or_else(missing)?;
    let svc_port = svc
        .obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        })
        .ok_or_else(|| format!("service \"{name}\" has no port {port}"))?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    let eps = state
        .objects
        .get(ep_def, Some(ns), name)
        .await
        .map_err(|e| e.message)?;
    let subsets = eps
        .as_ref()
        .and_then(|e| e.obj.get("subsets"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut ready = Vec::new();
    for s in subsets {
        let Some(p) = s.get("ports").and_then(Value::as_array).and_then(|ps| {
            ps.iter()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
        }) else {
            continue;
        };
        let Some(target) = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for a in s
            .get("addresses")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
        {
            if let Some(ip) = a
                .get("ip")
                .and_then(Value::as_str)
                .and_then(|i| i.parse().ok())
            {
                ready.push(SocketAddr::new(ip, target));
            }
        }
    }
    if ready.is_empty() {
        return Err(format!("no endpoints available for service \"{name}\""));
    }
    // Spread calls over the ready endpoints.
    let i = rand::random_range(0..ready.len());
    Ok(ready[i])
}

/// The TLS settings of a webhook, made once they can be (a failure is not
/// kept: the cluster CA may be loaded later).
fn tls_config(state: &ApiState, hook: &Hook) -> Result<Arc<rustls::ClientConfig>, String> {
    if let Some(cfg) = hook.tls.get() {
        return Ok(cfg.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let mut add = |pem: &str| {
        let ders = CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok);
        roots.add_parsable_certificates(ders);
    };
    match &hook.ca {
        Some(ca) => add(ca),
        None => {
            // Upstream trusts the system's roots; a URL webhook may well
            // have a public certificate. Skiff's own CA signs in-cluster ones.
            if matches!(hook.target, Target::Url { .. }) {
                if let Some(pem) = SYSTEM_ROOTS
                    .iter()
                    .find_map(|p| std::fs::read_to_string(p).ok())
                {
                    add(&pem);
                }
            }
            if let Some(ca) = state.webhooks.cluster_ca.get() {
                add(ca);
            }
        }
    }
    if roots.is_empty() {
        return Err(
            "no certificate to trust: the webhook names no caBundle and the cluster CA is not loaded"
                .into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(hook.tls.get_or_init(|| Arc::new(cfg)).clone())
}

/// Where Debian/Ubuntu and Fedora/RHEL keep the system's trusted roots.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// One POST on a connection of its own; the answer's JSON.
async fn post(
    addr: SocketAddr,
    name: rustls_pki_types::ServerName<'static>,
    authority: &str,
    path: &str,
    timeout_s: u64,
    body: Vec<u8>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Value, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    // Ended with the call, also when its timeout drops it half-way.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("admission webhook connection: {e}");
        }
    }));
    let req = http::Request::post(format!("{path}?timeout={timeout_s}s"))
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string());
    let out = match resp {
        Ok(resp) => {
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
                Err(format!(
                    "the server responded with the status code {} and the body {text:?}",
                    status.as_u16()
                ))
            } else {
                serde_json::from_slice(&bytes).map_err(|e| format!("decoding the answer: {e}"))
            }
        }
        Err(e) => Err(e),
    };
    out
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Upstream's VerifyAdmissionResponse: the answer is an AdmissionReview of
/// the version sent, with a response for the same uid.
fn verify(answer: &Value, version: &str, uid: &str) -> Result<Value, String> {
    let want = format!("admission.k8s.io/{version}");
    let api_version = answer
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = answer.get("kind").and_then(Value::as_str).unwrap_or("");
    // v1beta1 answers were often sent without their type.
    if version == "v1" && (api_version != want || kind != "AdmissionReview") {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let Some(response) = answer.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".into());
    };
    let got = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if version == "v1" && got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    Ok(response.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_checked_as_upstream() {
        let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u1", "allowed": true}});
        assert_eq!(verify(&ok, "v1", "u1").unwrap()["allowed"], true);
        assert_eq!(
            verify(&ok, "v1", "u2").unwrap_err(),
            "expected response.uid=\"u2\", got \"u1\""
        );
        let untyped = json!({"response": {"uid": "u1", "allowed": true}});
        assert!(verify(&untyped, "v1", "u1").is_err());
        assert!(verify(&untyped, "v1beta1", "u1").is_ok());
        let empty = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
        assert_eq!(
            verify(&empty, "v1", "u1").unwrap_err(),
            "webhook response was absent"
        );
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            split_host_port("a.example.com"),
            ("a.example.com".into(), 443)
        );
        assert_eq!(
            split_host_port("a.example.com:8443"),
            ("a.example.com".into(), 8443)
        );
        assert_eq!(split_host_port("[::1]:9443"), ("::1".into(), 9443));
        assert_eq!(split_host_port("10.0.0.1"), ("10.0.0.1".into(), 443));
    }
}
