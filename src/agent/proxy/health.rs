//! Service health checks (upstream's healthCheckNodePort): for each
//! LoadBalancer Service with `externalTrafficPolicy: Local`, an HTTP server
//! on its `spec.healthCheckNodePort` that says how many of its endpoints
//! are on this node — 200 when at least one is, 503 when none — so an
//! external load balancer sends traffic only to nodes that keep it local.
//! The body is kube-proxy's:
//! `{"service":{"namespace":…,"name":…},"localEndpoints":N,"serviceProxyHealthy":true}`.
//! While the proxy's last update failed (its rules may not be in the
//! kernel) every server says 503 with `serviceProxyHealthy: false`, as
//! kube-proxy does, so a load balancer moves away from the node.
//!
//! The servers listen on every address (kube-proxy binds
//! `--nodeport-addresses` one by one; here the NodePort rules narrow where
//! Services answer, the health port answers wherever the node does). A
//! port that cannot be bound (its old server not gone yet, or another
//! program on it) is tried again on the proxy's retry tick. One request per
//! connection, its header within a few seconds, the connection bounded in
//! time and the connections per port in number.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A connection is closed after this long, whatever it is doing.
const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// The request's header must have come by then.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once per port; more are closed at once.
const MAX_CONNS: usize = 256;

/// What one Service's health server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub port: u16,
    pub local_endpoints: usize,
}

struct Server {
    port: u16,
    local: Arc<AtomicUsize>,
    /// None: the port is not bound yet.
    stop: Option<CancellationToken>,
}

/// The health servers of the Services that need one, by Service key.
pub struct HealthServers {
    servers: HashMap<String, Server>,
    /// Where to listen (tests: an address of their own).
    bind: Option<Ipv4Addr>,
    /// Whether the proxy's last update landed.
    healthy: Arc<AtomicBool>,
}

impl HealthServers {
    pub fn new(bind: Option<Ipv4Addr>) -> Self {
        HealthServers {
            servers: HashMap::new(),
            bind,
            healthy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the proxy's rules are in the kernel as last asked.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// These Services (namespace/name) now want these checks: servers are
    /// stopped, moved, updated and started; the ones going first, so that
    /// a port one Service gives up another can take in the same batch.
    pub fn update(
        &mut self,
        changes: Vec<(String, Option<HealthCheck>)>,
        cancel: &CancellationToken,
    ) {
        for (key, want) in &changes {
            let gone = match (self.servers.get(key), want) {
                (Some(s), Some(w)) => s.port != w.port,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if gone {
                if let Some(Server { stop: Some(t), .. }) = self.servers.remove(key) {
                    t.cancel();
                }
            }
        }
        for (key, want) in changes {
            let Some(want) = want else { continue };
            let server = self.servers.entry(key).or_insert_with(|| Server {
                port: want.port,
                local: Arc::new(AtomicUsize::new(0)),
                stop: None,
            });
            server.local.store(want.local_endpoints, Ordering::Relaxed);
        }
        self.start_unbound(cancel);
    }

    /// Whether some server still waits for its port.
    pub fn has_unbound(&self) -> bool {
        self.servers.values().any(|s| s.stop.is_none())
    }

    /// Bind the servers that are not bound yet.
    pub fn start_unbound(&mut self, cancel: &CancellationToken) {
        let bind = self.bind.unwrap_or(Ipv4Addr::UNSPECIFIED);
        for (key, server) in self.servers.iter_mut().filter(|(_, s)| s.stop.is_none()) {
            match listen(SocketAddr::from((bind, server.port))) {
                Ok(listener) => {
                    let token = cancel.child_token();
                    let (ns, name) = key.split_once('/').unwrap_or(("", key));
                    tokio::spawn(serve(
                        listener,
                        Arc::new((ns.to_string(), name.to_string())),
                        server.local.clone(),
                        self.healthy.clone(),
                        token.clone(),
                    ));
                    server.stop = Some(token);
                    tracing::debug!(service = %key, port = server.port, "health check server started");
                }
                Err(e) => tracing::debug!(
                    service = %key,
                    port = server.port,
                    "cannot serve the Service's healthCheckNodePort yet: {e}"
                ),
            }
        }
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

/// The reply for a Service with `local` endpoints on this node, the proxy
/// `healthy` or not.
pub fn reply(namespace: &str, name: &str, local: usize, healthy: bool) -> (StatusCode, String) {
    let body = serde_json::json!({
        "service": {"namespace": namespace, "name": name},
        "localEndpoints": local,
        "serviceProxyHealthy": healthy,
    });
    let code = if local > 0 && healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body.to_string())
}

async fn serve(
    listener: TcpListener,
    names: Arc<(String, String)>,
    local: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
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
        let (names, local, healthy, cancel) = (
            names.clone(),
            local.clone(),
            healthy.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let (code, body) = reply(
                    &names.0,
                    &names.1,
                    local.load(Ordering::Relaxed),
                    healthy.load(Ordering::Relaxed),
                );
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
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(tcp), svc);
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
        let (code, body) = reply("default", "web", 2, true);
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["localEndpoints"], 2);
        assert_eq!(v["service"]["name"], "web");
        assert_eq!(v["serviceProxyHealthy"], true);
        assert_eq!(
            reply("default", "web", 0, true).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (code, body) = reply("default", "web", 2, false);
        assert_eq!(
            code,
            StatusCode::SERVICE_UNAVAILABLE,
            "rules not in the kernel"
        );
        assert!(body.contains(r#""serviceProxyHealthy":false"#), "{body}");
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
        let key = || "default/web".to_string();
        hs.update(vec![(key(), hc(1))], &cancel);
        let (code, body) = get(port).await;
        assert_eq!(code, 503, "unhealthy until the first update lands: {body}");
        hs.set_healthy(true);
        hs.update(vec![(key(), hc(0))], &cancel);
        let (code, body) = get(port).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains(r#""localEndpoints":0"#), "{body}");
        hs.update(vec![(key(), hc(1))], &cancel);
        assert_eq!(get(port).await.0, 200);
        // Moved to another port: the old one closes.
        let other = free_port();
        hs.update(
            vec![(
                key(),
                Some(HealthCheck {
                    port: other,
                    local_endpoints: 1,
                }),
            )],
            &cancel,
        );
        assert_eq!(get(other).await.0, 200);
        assert!(closes(port).await, "the old port is closed");
        hs.update(vec![(key(), None)], &cancel);
        assert!(closes(other).await, "a Service that needs none has none");
        // A port held by another program: served once it is free.
        let holder = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let busy = holder.local_addr().unwrap().port();
        let want = Some(HealthCheck {
            port: busy,
            local_endpoints: 1,
        });
        hs.update(vec![(key(), want)], &cancel);
        assert!(hs.has_unbound());
        drop(holder);
        hs.start_unbound(&cancel);
        assert!(!hs.has_unbound());
        assert_eq!(get(busy).await.0, 200);
        cancel.cancel();
    }
}
