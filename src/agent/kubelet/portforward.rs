//! port-forward (`/portforward/{ns}/{pod}`), protocol `portforward.k8s.io`
//! over SPDY/3.1: raw (`Upgrade: SPDY/3.1`), or tunnelled in a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`), which kubectl 1.32 tries first.
//!
//! For each connection it accepts, the client opens two streams with the
//! same `requestid` and `port` headers: `streamtype: error` (which it
//! half-closes at once) and `streamtype: data`. We answer each, and once a
//! pair is whole connect to 127.0.0.1 on that port inside the pod's network
//! namespace, as kubelet's runtimes do (a server listening on the pod's
//! loopback only is reached too). Bytes
//! are copied both ways, each direction's end a FIN. A port that cannot be
//! reached gets a message on the error stream (kubectl prints it) and the
//! pair is closed; the session goes on. The session ends on the client's
//! disconnect; its GOAWAY only stops new streams.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::spdy::{self, header, Headers};
use super::spdy_conn::{Conn, Event, Out};
use super::{text, upgrade, Body};
use crate::agent::pods::spec::{LABEL_ATTEMPT, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::agent::pods::worker::WorkerCtx;
use crate::runtime::pod::PodRuntime;

pub const PROTOCOL: &str = "portforward.k8s.io";
pub const WS_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Pairs (forwarded connections) open at once in one session; a stream
/// past that is refused.
const MAX_PAIRS: usize = 64;
/// A port that does not accept by then is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Client DATA chunks queued for one connection before the session waits.
const QUEUE: usize = 4;
/// Bytes read from the pod at once.
const CHUNK: usize = 32 * 1024;

/// Where a pod's port-forwards go: its sandbox's network namespace, and
/// its UID.
async fn pod_netns<R: PodRuntime>(
    runtime: &R,
    ns: &str,
    pod: &str,
) -> Result<(PathBuf, String), String> {
    let labels = [(LABEL_POD_NAME, pod), (LABEL_POD_NAMESPACE, ns)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut all = runtime
        .list_containers(labels)
        .await
        .map_err(|e| e.to_string())?;
    // The newest instance names the pod's current sandbox.
    all.sort_by_key(|c| {
        std::cmp::Reverse((
            c.started_at,
            c.labels
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse::<u32>().ok()),
        ))
    });
    let not_here = || format!("pod {pod:?} (namespace {ns:?}) is not on this node");
    let newest = all.first().ok_or_else(not_here)?;
    let sandbox = newest.sandbox.clone().ok_or_else(not_here)?;
    let uid = newest
        .labels
        .get(LABEL_POD_UID)
        .cloned()
        .unwrap_or_default();
    let sb = runtime
        .sandbox_status(&sandbox)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(not_here)?;
    Ok((sb.net, uid))
}

pub async fn serve<R: PodRuntime>(
    ctx: Arc<WorkerCtx<R>>,
    ns: &str,
    pod: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let (netns, uid) = match pod_netns(&ctx.runtime, ns, pod).await {
        Ok(x) => x,
        Err(e) => return text(StatusCode::NOT_FOUND, e),
    };
    let transport = match upgrade::negotiate(req.headers(), &[WS_PROTOCOL], &[PROTOCOL]) {
        Ok(t) => t,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let response = upgrade::switching(&transport);
    tracing::debug!(%ns, %pod, ?transport, "port-forward session");
    let target = Target {
        netns,
        pod: pod.to_string(),
        uid,
    };
    tokio::spawn(async move {
        let Some((io, _slot)) = upgrade::upgraded(req).await else {
            return;
        };
        let conn = match transport {
            upgrade::Transport::WebSocket { .. } => {
                Conn::start(upgrade::tunnel(upgrade::websocket(io).await))
            }
            upgrade::Transport::Spdy { .. } => Conn::start(io),
        };
        session(conn, Arc::new(target)).await;
    });
    response
}

struct Target {
    /// The pod's network namespace (a path that opens to it).
    netns: PathBuf,
    pod: String,
    uid: String,
}

/// One forwarded connection, as its two streams arrive.
#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
    /// Client bytes for the pod; dropped at the client's FIN.
    to_pod: Option<mpsc::Sender<Bytes>>,
    /// Their other end, until the connection to the pod starts.
    from_client: Option<mpsc::Receiver<Bytes>>,
    task: Option<JoinHandle<()>>,
}

/// What a stream's headers ask for: (is it the error stream, port,
/// request ID).
fn parse(headers: &Headers) -> Result<(bool, u16, String), String> {
    let error = match header(headers, "streamtype") {
        Some("error") => true,
        Some("data") => false,
        other => return Err(format!("invalid stream type {other:?}")),
    };
    let port = header(headers, "port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {:?}", header(headers, "port")))?;
    let request = header(headers, "requestid").unwrap_or("").to_string();
    Ok((error, port, request))
}

async fn session(mut conn: Conn, target: Arc<Target>) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Which pair a stream belongs to.
    let mut owner: HashMap<u32, String> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::channel::<String>(MAX_PAIRS);
    let mut going_away = false;
    loop {
        let event = tokio::select! {
            e = conn.events.recv() => e,
            Some(req) = done_rx.recv() => {
                if let Some(p) = pairs.remove(&req) {
                    owner.retain(|_, r| *r != req);
                    drop(p);
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        match event {
            Event::Open { id, headers, .. } => {
                let parsed = parse(&headers);
                let (error, port, req) = match parsed {
                    Ok(x) if !going_away && owner.len() < 2 * MAX_PAIRS => x,
                    Ok(_) => {
                        let _ = conn.out.reset(id, spdy::REFUSED_STREAM).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!("port-forward: refusing a stream: {e}");
                        let _ = conn.out.reset(id, spdy::PROTOCOL_ERROR).await;
                        continue;
                    }
                };
                let pair = pairs.entry(req.clone()).or_default();
                let slot = if error {
                    &mut pair.error
                } else {
                    &mut pair.data
                };
                if slot.is_some() || (pair.port != 0 && pair.port != port) {
                    let _ = conn.out.reset(id, spdy::PROTOCOL_ERROR).await;
                    continue;
                }
                *slot = Some(id);
                pair.port = port;
                if !error {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    pair.to_pod = Some(tx);
                    pair.from_client = Some(rx);
                }
                owner.insert(id, req.clone());
                if conn.out.reply(id).await.is_err() {
                    break;
                }
                if let (Some(e), Some(d), Some(rx)) =
                    (pair.error, pair.data, pair.from_client.take())
                {
                    let (out, target, done) = (conn.out.clone(), target.clone(), done_tx.clone());
                    pair.task = Some(tokio::spawn(async move {
                        forward(&target, port, e, d, rx, out).await;
                        let _ = done.send(req).await;
                    }));
                }
            }
            Event::Data { id, data, fin } => {
                let Some(pair) = owner.get(&id).and_then(|r| pairs.get_mut(r)) else {
                    continue;
                };
                // The error stream's DATA is only its FIN.
                if pair.data != Some(id) {
                    continue;
                }
                if let Some(tx) = &pair.to_pod {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        pair.to_pod = None;
                    }
                }
                if fin {
                    pair.to_pod = None;
                }
            }
            Event::Reset { id } => {
                // The client gave up on this connection: end it.
                if let Some(req) = owner.get(&id).cloned() {
                    if let Some(p) = pairs.remove(&req) {
                        if let Some(t) = p.task {
                            t.abort();
                        }
                    }
                    owner.retain(|_, r| *r != req);
                }
            }
            Event::GoAway => going_away = true,
        }
    }
    for (_, p) in pairs {
        if let Some(t) = p.task {
            t.abort();
        }
    }
}

/// A TCP connection to `addr` from inside the network namespace at
/// `netns`. A socket belongs to the namespace it is made in: a thread of
/// its own (entering a namespace changes only the thread that does, and
/// must not be one the runtime reuses) enters it and makes the socket,
/// which is then connected from here.
async fn connect_in(netns: &Path, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let netns = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portforward-netns".into())
        .spawn(move || {
            let made = (|| -> std::io::Result<std::net::TcpStream> {
                let ns = std::fs::File::open(&netns)?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                let fd = nix::sys::socket::socket(
                    nix::sys::socket::AddressFamily::Inet,
                    nix::sys::socket::SockType::Stream,
                    nix::sys::socket::SockFlag::SOCK_CLOEXEC
                        | nix::sys::socket::SockFlag::SOCK_NONBLOCK,
                    None,
                )
                .map_err(std::io::Error::from)?;
                Ok(std::net::TcpStream::from(fd))
            })();
            let _ = tx.send(made);
        })?;
    let socket = rx.await.map_err(std::io::Error::other)??;
    tokio::net::TcpSocket::from_std_stream(socket)
        .connect(addr)
        .await
}

/// Connect to the pod's port and copy both ways until both directions end.
async fn forward(
    target: &Target,
    port: u16,
    error_id: u32,
    data_id: u32,
    mut from_client: mpsc::Receiver<Bytes>,
    out: Out,
) {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, connect_in(&target.netns, addr)).await {
        Ok(Ok(t)) => t,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "connection timed out".to_string(),
            };
            // Upstream's words, which kubectl prints after "an error
            // occurred forwarding".
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: failed to connect to {addr} inside the pod's network namespace: {why}",
                target.pod, target.uid
            );
            tracing::debug!("port-forward: {msg}");
            let _ = out.data(error_id, Bytes::from(msg), true).await;
            let _ = out.data(data_id, Bytes::new(), true).await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    let to_pod = async move {
        while let Some(chunk) = from_client.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The client's FIN is the pod's end of input.
        let _ = wr.shutdown().await;
    };
    let out2 = out.clone();
    let to_client = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out2
                        .data(data_id, Bytes::copy_from_slice(&buf[..n]), false)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = out2.data(data_id, Bytes::new(), true).await;
    };
    tokio::join!(to_pod, to_client);
    let _ = out.data(error_id, Bytes::new(), true).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stream_headers() {
        let ok = h(&[("streamtype", "data"), ("port", "80"), ("requestid", "3")]);
        assert_eq!(parse(&ok), Ok((false, 80, "3".into())));
        let e = h(&[
            ("streamtype", "error"),
            ("port", "8080"),
            ("requestid", "0"),
        ]);
        assert_eq!(parse(&e), Ok((true, 8080, "0".into())));
        assert!(parse(&h(&[("streamtype", "data"), ("port", "0")])).is_err());
        assert!(parse(&h(&[("streamtype", "data"), ("port", "x")])).is_err());
        assert!(parse(&h(&[("streamtype", "stdin"), ("port", "80")])).is_err());
    }
}

#[cfg(test)]
#[path = "portforward_tests.rs"]
mod session_tests;
