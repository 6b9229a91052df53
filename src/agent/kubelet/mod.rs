//! The kubelet API (:10250): what the API server's pods/log, pods/exec,
//! pods/attach, pods/portforward and nodes/proxy reach. TLS with the node's
//! serving certificate; a caller must present a client certificate from the
//! cluster CA for the API server's kubelet identity, and nobody else is
//! served (upstream delegates that decision to the API server; the API
//! server is the only caller here).
//!
//! ```text
//! GET  /healthz                                   ok
//! GET  /containerLogs/{ns}/{pod}/{container}      logs.rs
//! GET|POST /exec/{ns}/{pod}/{container}?command=  exec.rs (WebSocket or SPDY)
//! GET|POST /attach/{ns}/{pod}/{container}         exec.rs, attach.rs
//! GET|POST /portforward/{ns}/{pod}                portforward.rs (SPDY, raw or
//!                                                 in a WebSocket)
//! GET  /metrics/resource                          resource_metrics.rs
//! GET  /stats/summary                             stats_summary.rs
//! ```
//!
//! The API server's `nodes/<name>/proxy/<path>` reaches these paths.
//!
//! The streaming ones: upgrade.rs negotiates the transport; spdy.rs and
//! spdy_conn.rs are SPDY/3.1; stdio.rs, exec_ws.rs and exec_spdy.rs carry
//! a process's stdio.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::agent::pods::worker::WorkerCtx;
use crate::runtime::pod::PodRuntime;
use crate::server::pki::{
    identity_from_cert, KUBELET_CERT_FILE, KUBELET_CLIENT_CA_FILE, KUBELET_CLIENT_USER,
    KUBELET_KEY_FILE,
};

pub mod attach;
pub mod exec;
pub mod exec_spdy;
pub mod exec_ws;
pub mod logs;
pub mod lookup;
pub mod portforward;
pub mod resource_metrics;
pub mod spdy;
pub mod spdy_conn;
pub mod stats_summary;
pub mod stdio;
pub mod upgrade;

/// The kubelet API's port (upstream's).
pub const DEFAULT_PORT: u16 = 10250;
/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;
/// A TLS handshake not done by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's place among `MAX_CONNECTIONS`. hyper lets go of a
/// connection once it has sent a 101, so the session upgraded from it
/// (exec, attach, port-forward) takes this along (upgrade::upgraded):
/// otherwise sessions could pile up past the cap.
#[derive(Clone)]
pub struct ConnSlot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(full(msg.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("{path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
}

/// The kubelet's TLS: its serving pair from `dir`, client certificates
/// required and verified against the CA there, HTTP/1.1 only (upgrades).
pub fn tls_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, KubeletError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| KubeletError::Read { path, source })
    };
    let tls = |e: &dyn std::fmt::Display| KubeletError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(KUBELET_CLIENT_CA_FILE)?) {
        roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| tls(&e))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(KUBELET_CERT_FILE)?)
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(&read(KUBELET_KEY_FILE)?).map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve the kubelet API on `listener` until `cancel`.
pub async fn serve<R: PodRuntime>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<WorkerCtx<R>>,
    cancel: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("kubelet API: accepting: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, ctx, cancel) = (acceptor.clone(), ctx.clone(), cancel.clone());
        tokio::spawn(async move {
            let slot = ConnSlot(Arc::new(permit));
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, "kubelet API: TLS: {e}"),
                Err(_) => return tracing::debug!(%peer, "kubelet API: TLS handshake timed out"),
            };
            let user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity_from_cert(c))
                .map(|i| i.user);
            let allowed = user.as_deref() == Some(KUBELET_CLIENT_USER);
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let ctx = ctx.clone();
                let user = user.clone();
                req.extensions_mut().insert(slot.clone());
                async move {
                    if !allowed {
                        tracing::info!(%peer, user = ?user, "kubelet API: refused a caller");
                        return Ok::<_, std::convert::Infallible>(text(
                            StatusCode::FORBIDDEN,
                            "Forbidden: only the API server may call the kubelet API",
                        ));
                    }
                    Ok(route(ctx, req).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, "kubelet API connection: {e}");
                },
                _ = cancel.cancelled() => {}
            }
        });
    }
}

async fn route<R: PodRuntime>(ctx: Arc<WorkerCtx<R>>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["metrics", "resource"] => resource_metrics::serve(ctx.clone()).await,
        ["stats", "summary"] => stats_summary::serve(ctx.clone()).await,
        ["containerLogs", ns, pod, container] => {
            logs::serve(ctx.clone(), ns, pod, container, req.uri().query()).await
        }
        ["exec", ns, pod, container] => {
            exec::serve(ctx.clone(), exec::Kind::Exec, ns, pod, container, req).await
        }
        ["attach", ns, pod, container] => {
            exec::serve(ctx.clone(), exec::Kind::Attach, ns, pod, container, req).await
        }
        ["portforward", ns, pod] => portforward::serve(ctx.clone(), ns, pod, req).await,
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}
