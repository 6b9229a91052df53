//! The two ways kubectl 1.32 upgrades a streaming request, and how we
//! answer: a WebSocket (`Upgrade: websocket`, the protocol chosen from
//! `Sec-WebSocket-Protocol`), tried first, or raw SPDY/3.1 (`Upgrade:
//! SPDY/3.1`, the protocol chosen from `X-Stream-Protocol-Version`), its
//! fallback when the WebSocket is refused. Port-forward's WebSocket
//! (`SPDY/3.1+portforward.k8s.io`) carries SPDY too: [`tunnel`] turns its
//! binary messages back into the byte stream they cut up.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{text, Body, ConnSlot};

/// The largest WebSocket message (and frame) taken.
const WS_MESSAGE_MAX: usize = 2 << 20;
/// The tunnel's buffer between WebSocket messages and the SPDY reader.
const TUNNEL_BUFFER: usize = 64 * 1024;

/// What a request asked for, and the protocol we chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    WebSocket {
        key: Vec<u8>,
        protocol: &'static str,
    },
    Spdy {
        protocol: &'static str,
    },
}

fn offered(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Choose the transport and protocol: ours in our order of preference,
/// among those the client offers. The error is the 400's text.
pub fn negotiate(
    headers: &HeaderMap,
    ws: &[&'static str],
    spdy: &[&'static str],
) -> Result<Transport, String> {
    let upgrade = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if upgrade.eq_ignore_ascii_case("websocket") {
        let key = headers
            .get("sec-websocket-key")
            .map(|k| k.as_bytes().to_vec())
            .ok_or("missing Sec-WebSocket-Key")?;
        let asked = offered(headers, "sec-websocket-protocol");
        let protocol = ws
            .iter()
            .find(|p| asked.iter().any(|a| a == *p))
            .ok_or_else(|| {
                format!(
                    "none of the offered subprotocols {asked:?} is supported (want one of {ws:?})"
                )
            })?;
        return Ok(Transport::WebSocket { key, protocol });
    }
    if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        let asked = offered(headers, "x-stream-protocol-version");
        let protocol = spdy
            .iter()
            .find(|p| asked.iter().any(|a| a == *p))
            .ok_or_else(|| {
                format!("none of the offered stream protocols {asked:?} is supported (want one of {spdy:?})")
            })?;
        return Ok(Transport::Spdy { protocol });
    }
    Err(format!(
        "this request must be upgraded to a WebSocket ({ws:?}) or to SPDY/3.1 ({spdy:?})"
    ))
}

/// The 101 that completes the handshake of `t`.
pub fn switching(t: &Transport) -> Response<Body> {
    let mut r = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.remove(http::header::CONTENT_TYPE);
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    match t {
        Transport::WebSocket { key, protocol } => {
            h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
            if let Ok(v) = HeaderValue::from_str(&accept) {
                h.insert("sec-websocket-accept", v);
            }
            h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
        }
        Transport::Spdy { protocol } => {
            h.insert(http::header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            h.insert(
                "x-stream-protocol-version",
                HeaderValue::from_static(protocol),
            );
        }
    }
    r
}

pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// A streaming session silent this long on the client's side is dropped
/// (upstream kubelet's default streaming idle timeout). kubectl pings every
/// few seconds, so only a peer that is gone without a word ever reaches it.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

/// The connection once the 101 is out, and its place among the kubelet
/// API's connections, to be held as long as the session runs.
pub async fn upgraded(mut req: Request<Incoming>) -> Option<(Upgraded, Option<ConnSlot>)> {
    let slot = req.extensions_mut().remove::<ConnSlot>();
    match hyper::upgrade::on(req).await {
        Ok(u) => Some((TokioIo::new(u), slot)),
        Err(e) => {
            tracing::debug!("upgrade: {e}");
            None
        }
    }
}

/// The server's side of a WebSocket on an upgraded connection, with its
/// messages bounded.
pub async fn websocket(io: Upgraded) -> WebSocketStream<Upgraded> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(WS_MESSAGE_MAX))
        .max_frame_size(Some(WS_MESSAGE_MAX));
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}

/// The byte stream a WebSocket's binary messages carry: what the client
/// sends, in order, whatever the messages' sizes (empty ones included, and
/// they are not the end); what is written goes out as binary messages.
/// Ends (EOF) when the client closes; a close sent when our side shuts.
pub fn tunnel(ws: WebSocketStream<Upgraded>) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(TUNNEL_BUFFER);
    tokio::spawn(async move {
        let (mut sink, mut source) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(theirs);
        let (pong_tx, mut pong_rx) = mpsc::channel::<Bytes>(4);
        let inbound = async move {
            while let Ok(Some(Ok(m))) = tokio::time::timeout(IDLE_TIMEOUT, source.next()).await {
                match m {
                    Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                    Message::Ping(d) => {
                        let _ = pong_tx.send(d).await;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = wr.shutdown().await;
        };
        let outbound = async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                tokio::select! {
                    n = rd.read(&mut buf) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let m = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                            if sink.send(m).await.is_err() {
                                return;
                            }
                        }
                    },
                    Some(p) = pong_rx.recv() => {
                        if sink.send(Message::Pong(p)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let close = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            let _ = sink.send(Message::Close(Some(close))).await;
            let _ = sink.close().await;
        };
        tokio::join!(inbound, outbound);
    });
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn transports_and_protocols_are_chosen_in_our_order() {
        const WS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
        let h = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            (
                "x-stream-protocol-version",
                "v5.channel.k8s.io, channel.k8s.io",
            ),
        ]);
        assert_eq!(
            negotiate(&h, WS, WS),
            Ok(Transport::Spdy {
                protocol: "v5.channel.k8s.io"
            })
        );
        let h = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
            ("sec-websocket-protocol", "v4.channel.k8s.io"),
        ]);
        assert_eq!(
            negotiate(&h, WS, &[]),
            Ok(Transport::WebSocket {
                key: b"k".to_vec(),
                protocol: "v4.channel.k8s.io"
            })
        );
        let h = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "channel.k8s.io"),
        ]);
        assert!(negotiate(&h, WS, WS).is_err());
        assert!(negotiate(&HeaderMap::new(), WS, WS).is_err());
        let r = switching(&Transport::Spdy {
            protocol: "portforward.k8s.io",
        });
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            r.headers()["x-stream-protocol-version"],
            "portforward.k8s.io"
        );
        assert_eq!(r.headers()["upgrade"], "SPDY/3.1");
    }
}
