//! Service health checks (upstream's healthCheckNodePort): for each
//! LoadBalancer Service with `externalTrafficPolicy: Local`, an HTTP server
//! on its `spec.healthCheckNodePort` that says how many of its endpoints
//! are on this node — 200 when at least one is, 503 when none — so an
//! external load balancer sends traffic only to nodes that keep it local.
//! The body is kube-proxy's:
//! `{"service":{"namespace":…,"name":…},"localEndpoints":N,"serviceProxyHealthy":true}`.
//!
//! The servers listen on every address (kube-proxy binds
//! `--nodeport-addresses` one by one; here the NodePort rules narrow where
//! Services answer, the health port answers wherever the node does). Each
//! connection is bounded in time and the connections per port in number.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A connection is closed after this long, whatever it is doing.
const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once per port; more are closed at once.
const MAX_CONNS: usize = 32;

/// What one Service's health server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub port: u16,
    pub local_endpoints: usize,
}

struct Server {
    port: u16,
    local: Arc<AtomicUsize>,
    /// None: the port could not be bound yet; tried again on the next
    /// change of the Service.
    stop: Option<CancellationToken>,
}

/// The health servers of the Services that need one, by Service key.
#[derive(Default)]
pub struct HealthServers {
    servers: HashMap<String, Server>,
    /// Where to listen (tests: an address of their own).
    bind: Option<Ipv4Addr>,
}

impl HealthServers {
    pub fn new(bind: Option<Ipv4Addr>) -> Self {
        HealthServers {
            servers: HashMap::new(),
            bind,
        }
    }

    /// `key` (namespace/name) now wants `want`: a server is started,
    /// updated, moved to another port or stopped.
    pub fn update(&mut self, key: &str, want: Option<HealthCheck>, cancel: &CancellationToken) {
        let Some(want) = want else {
            if let Some(s) = self.servers.remove(key) {
                stop(&s);
            }
            return;
        };
        if let Some(s) = self.servers.get(key).filter(|s| s.port != want.port) {
            stop(s);
            self.servers.remove(key);
        }
        let bind = self.bind.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let server = self
            .servers
            .entry(key.to_string())
            .or_insert_with(|| Server {
                port: want.port,
                local: Arc::new(AtomicUsize::new(0)),
                stop: None,
            });
        server.local.store(want.local_endpoints, Ordering::Relaxed);
        if server.stop.is_none() {
            match listen(SocketAddr::from((bind, want.port))) {
                Ok(listener) => {
                    let token = cancel.child_token();
                    let (ns, name) = key.split_once('/').unwrap_or(("", key));
                    tokio::spawn(serve(
                        listener,
                        ns.to_string(),
                        name.to_string(),
                        server.local.clone(),
                        token.clone(),
                    ));
                    server.stop = Some(token);
                    tracing::debug!(service = %key, port = want.port, "health check server started");
                }
                Err(e) => tracing::warn!(
                    service = %key,
                    port = want.port,
                    "cannot serve the Service's healthCheckNodePort: {e}"
                ),
            }
        }
    }
}

fn stop(s: &Server) {
    if let Some(t) = &s.stop {
        t.cancel();
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

/// The reply for a Service with `local` endpoints on this node.
pub fn reply(namespace: &str, name: &str, local: usize) -> (StatusCode, String) {
    let body = serde_json::json!({
        "service": {"namespace": namespace, "name": name},
        "localEndpoints": local,
        "serviceProxyHealthy": true,
    });
    let code = if local > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body.to_string())
}

async fn serve(
    listener: TcpListener,
    namespace: String,
    name: String,
    local: Arc<AtomicUsize>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
    let names = Arc::new((namespace, name));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _peer)) = accepted else {
            // Out of descriptors and the like: a moment before the next.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed
        };
        let (names, local, cancel) = (names.clone(), local.clone(), cancel.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let (code, body) = reply(&names.0, &names.1, local.load(Ordering::Relaxed));
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                *resp.status_mut() = code;
                let h = resp.headers_mut();
                h.insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                h.insert(
                    "X-Content-Type-Options",
                    hyper::header::HeaderValue::from_static("nosniff"),
                );
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                _ = tokio::time::sleep(CONN_TIMEOUT) => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_with_a_local_endpoint() {
        let (code, body) = reply("default", "web", 2);
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["localEndpoints"], 2);
        assert_eq!(v["service"]["name"], "web");
        assert_eq!(v["serviceProxyHealthy"], true);
        assert_eq!(
            reply("default", "web", 0).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    async fn get(port: u16) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let code = out[9..12].parse().unwrap();
        (code, out)
    }

    /// Whether `port` stops taking connections (the server's task ends
    /// soon after it is told to).
    async fn closes(port: u16) -> bool {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn servers_follow_their_service() {
        let cancel = CancellationToken::new();
        let mut hs = HealthServers::new(Some(Ipv4Addr::LOCALHOST));
        let port = free_port();
        let hc = |local| {
            Some(HealthCheck {
                port,
                local_endpoints: local,
            })
        };
        hs.update("default/web", hc(0), &cancel);
        let (code, body) = get(port).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains(r#""localEndpoints":0"#), "{body}");
        hs.update("default/web", hc(1), &cancel);
        assert_eq!(get(port).await.0, 200);
        // Moved to another port: the old one closes.
        let other = free_port();
        hs.update(
            "default/web",
            Some(HealthCheck {
                port: other,
                local_endpoints: 1,
            }),
            &cancel,
        );
        assert_eq!(get(other).await.0, 200);
        assert!(closes(port).await, "the old port is closed");
        hs.update("default/web", None, &cancel);
        assert!(closes(other).await, "a Service that needs none has none");
        cancel.cancel();
    }
}
