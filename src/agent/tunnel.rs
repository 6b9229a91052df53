//! The agent's end of its tunnel to the server (the protocol is written in
//! `server::apiserver::tunnel`): kept open for as long as the agent runs,
//! opened again when it drops, so that the server reaches this node's
//! kubelet even when it cannot dial the node (NAT, a firewall).
//!
//! Each stream the server opens is spliced to the local kubelet port and
//! nowhere else: the tunnel gives the server no more of the node than the
//! kubelet API it already reaches by address.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use crate::server::apiserver::tunnel::{PATH, PING_EVERY, PING_TIMEOUT, PROTOCOL};

/// Waits between attempts grow to this.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A tunnel that lived this long was a good one: the next wait starts short.
const STABLE: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keep a tunnel open to the server the kubeconfig at `kubeconfig` names,
/// its streams going to the kubelet on `kubelet_port`, until `cancel`.
pub async fn run(kubeconfig: PathBuf, kubelet_port: u16, cancel: CancellationToken) {
    let kubelet = SocketAddr::from((Ipv4Addr::LOCALHOST, kubelet_port));
    let mut wait = Duration::from_secs(1);
    let mut failing = false;
    loop {
        let opened = Instant::now();
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = session(&kubeconfig, kubelet, &mut failing) => r,
        };
        match result {
            Ok(()) => tracing::info!("the tunnel to the server closed; opening it again"),
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(
                    "the tunnel to the server: {e}; trying again (logged once until it opens)"
                );
            }
            Err(e) => tracing::debug!("the tunnel to the server: {e}"),
        }
        if opened.elapsed() > STABLE {
            wait = Duration::from_secs(1);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(MAX_WAIT);
    }
}

/// The server's URL and a TLS client with the node's credentials, read
/// afresh each time (renewed certificates are taken up).
fn credentials(path: &Path) -> Result<(http::Uri, std::sync::Arc<rustls::ClientConfig>), String> {
    let c = super::join::read_credentials(path)?;
    let server: http::Uri = super::client::api_url(&c.server)
        .parse()
        .map_err(|e| format!("the server's URL: {e}"))?;
    let (ca, cert, key) = (c.ca_pem, c.cert_pem, c.key_pem);
    let tls = crate::server::pki::client_tls_config(&ca, Some((&cert, &key)))
        .map_err(|e| e.to_string())?;
    let mut tls = std::sync::Arc::unwrap_or_clone(tls);
    // An upgrade needs HTTP/1.1.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((server, std::sync::Arc::new(tls)))
}

/// One tunnel, from opening to its end.
async fn session(kubeconfig: &Path, kubelet: SocketAddr, failing: &mut bool) -> Result<(), String> {
    let (server, tls) = credentials(kubeconfig)?;
    let host = server
        .host()
        .ok_or("the server's URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = server.port_u16().unwrap_or(443);
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| "connecting timed out".to_string())?
    .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .map_err(|_| "the TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let req = http::Request::get(PATH)
        .header(
            http::header::HOST,
            server.authority().map(|a| a.as_str()).unwrap_or_default(),
        )
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, PROTOCOL)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let mut resp = tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| "the server did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        driver.abort();
        return Err(format!(
            "the server answered {} to the tunnel",
            resp.status()
        ));
    }
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .map_err(|e| e.to_string())?;
    if *failing {
        tracing::info!("the tunnel to the server is open again");
        *failing = false;
    } else {
        tracing::info!("tunnel to the server open");
    }
    let svc = hyper::service::service_fn(
        move |req: http::Request<hyper::body::Incoming>| async move {
            Ok::<_, Infallible>(stream(req, kubelet))
        },
    );
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(PING_TIMEOUT)
        .serve_connection(upgraded, svc)
        .await
        .map_err(|e| e.to_string())
}

/// One stream the server opened: spliced to the kubelet.
fn stream(
    req: http::Request<hyper::body::Incoming>,
    kubelet: SocketAddr,
) -> http::Response<Empty<Bytes>> {
    let mut resp = http::Response::new(Empty::new());
    if req.method() != Method::CONNECT {
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return resp;
    }
    tokio::spawn(async move {
        let up = match hyper::upgrade::on(req).await {
            Ok(up) => up,
            Err(e) => {
                tracing::debug!("tunnel stream: {e}");
                return;
            }
        };
        let mut tcp = match tokio::net::TcpStream::connect(kubelet).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%kubelet, "tunnel stream to the kubelet: {e}");
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(up), &mut tcp).await;
    });
    resp
}
