//! Tunnels from agents: how the server reaches a kubelet it cannot dial (a
//! node behind NAT, a firewall that lets the node out but nothing in), as
//! k3s's agents keep a websocket tunnel to their server.
//!
//! ```text
//! agent → server   GET /v1-skiff/tunnel, Upgrade: skiff-tunnel, over TLS
//!                  with the node's own client certificate
//! server → agent   101; the connection then carries HTTP/2 the other way
//!                  round: the server is the client, the agent the server
//! server → agent   CONNECT kubelet (one HTTP/2 stream per kubelet call);
//!                  the agent answers 200 and splices the stream to its own
//!                  kubelet port, nothing else
//! ```
//!
//! HTTP/2 gives the many calls of one node (logs, exec, port-forward,
//! metrics) one connection with flow control each; its PINGs find a dead
//! tunnel. TLS to the kubelet still runs end to end inside the stream, so
//! the tunnel is only a way through, never trusted with what passes.
//! While a node has a tunnel, kubelet calls go through it (k3s's default
//! egress mode); without one the server dials the node's address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::api::status::ApiError;
use crate::server::pki::{self, Identity};

pub const PATH: &str = "/v1-skiff/tunnel";
pub const PROTOCOL: &str = "skiff-tunnel";
/// How often each side checks the other is still there.
pub const PING_EVERY: Duration = Duration::from_secs(15);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream the agent does not open within this has failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

type Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// The open tunnels, by node name.
#[derive(Clone, Default)]
pub struct Tunnels(Arc<Mutex<HashMap<String, (u64, Sender)>>>);

/// A stream through a tunnel, to a node's kubelet.
pub type Stream = TokioIo<hyper::upgrade::Upgraded>;

impl Tunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Sender)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether node `node` has a tunnel open.
    pub fn has(&self, node: &str) -> bool {
        self.lock().get(node).is_some_and(|(_, s)| !s.is_closed())
    }

    /// A stream to node `node`'s kubelet, if it has a tunnel.
    pub async fn dial(&self, node: &str) -> Option<Result<Stream, String>> {
        let mut sender = {
            let map = self.lock();
            let (_, s) = map.get(node)?;
            if s.is_closed() {
                return None;
            }
            s.clone()
        };
        let open = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let req = http::Request::builder()
                .method(Method::CONNECT)
                .uri("kubelet:10250")
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let mut resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            if resp.status() != StatusCode::OK {
                return Err(format!("the agent answered {}", resp.status()));
            }
            let up = hyper::upgrade::on(&mut resp)
                .await
                .map_err(|e| e.to_string())?;
            Ok(TokioIo::new(up))
        };
        Some(
            tokio::time::timeout(OPEN_TIMEOUT, open)
                .await
                .unwrap_or_else(|_| Err("the tunnel did not open a stream in time".into())),
        )
    }

    fn insert(&self, node: &str, sender: Sender) -> u64 {
        let generation: u64 = rand::random();
        self.lock().insert(node.to_string(), (generation, sender));
        generation
    }

    /// Forget node `node`'s tunnel if it is still the one `generation` opened.
    fn remove(&self, node: &str, generation: u64) {
        let mut map = self.lock();
        if map.get(node).is_some_and(|(g, _)| *g == generation) {
            map.remove(node);
        }
    }
}

/// The node a client certificate is for.
fn node_of(who: Option<&Identity>) -> Option<&str> {
    let who = who?;
    let node = who.user.strip_prefix("system:node:")?;
    (who.groups.iter().any(|g| g == pki::NODES_GROUP) && !node.is_empty()).then_some(node)
}

/// `GET /v1-skiff/tunnel` from an agent: 101, then HTTP/2 to it.
pub fn accept(
    tunnels: &Tunnels,
    who: Option<&Identity>,
    headers: &http::HeaderMap,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    let Some(node) = node_of(who).map(str::to_string) else {
        return Err(ApiError::forbidden(
            "only a node, with its own client certificate, may open a tunnel",
        ));
    };
    let wants = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(PROTOCOL));
    let Some(on_upgrade) = on_upgrade.filter(|_| wants) else {
        return Err(ApiError::bad_request(format!(
            "a tunnel is an HTTP/1.1 upgrade to {PROTOCOL}"
        )));
    };
    let tunnels = tunnels.clone();
    tokio::spawn(async move {
        let io = match on_upgrade.await {
            // hyper's own IO already: HTTP/2 runs on it as it is.
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(%node, "tunnel upgrade failed: {e}");
                return;
            }
        };
        let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(PING_EVERY)
            .keep_alive_timeout(PING_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake::<_, Empty<Bytes>>(io)
            .await;
        let (sender, conn) = match handshake {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(%node, "tunnel handshake failed: {e}");
                return;
            }
        };
        let generation = tunnels.insert(&node, sender);
        tracing::info!(%node, "node tunnel open");
        if let Err(e) = conn.await {
            tracing::debug!(%node, "tunnel ended: {e}");
        }
        tunnels.remove(&node, generation);
        tracing::info!(%node, "node tunnel closed");
    });
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(http::header::UPGRADE, HeaderValue::from_static(PROTOCOL));
    resp.headers_mut().insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nodes_open_tunnels() {
        let node = Identity {
            user: "system:node:a1".into(),
            groups: vec![pki::NODES_GROUP.into()],
        };
        assert_eq!(node_of(Some(&node)), Some("a1"));
        let not_in_group = Identity {
            user: "system:node:a1".into(),
            groups: vec![],
        };
        assert_eq!(node_of(Some(&not_in_group)), None);
        let admin = Identity {
            user: "system:admin".into(),
            groups: vec!["system:masters".into()],
        };
        assert_eq!(node_of(Some(&admin)), None);
        assert_eq!(node_of(None), None);
    }
}
