//! What a probe or a lifecycle hook does, as kubelet's prober and hook
//! runner do it: exec in the container, an HTTP GET (scheme HTTP or HTTPS,
//! certificates not verified, as kubelet), a TCP connect, a gRPC health
//! check, or a sleep. Results carry kubelet's messages (they go into
//! Unhealthy and FailedPostStartHook events).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::pod::PodRuntime;

/// kubelet's User-Agent on probes (its version).
const USER_AGENT: &str = "kube-probe/1.32";
/// A status line longer than this is not HTTP.
const STATUS_LINE_MAX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Why, as kubelet words it.
    Failure(String),
}

/// One action, from a probe or a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Exec(Vec<String>),
    Http {
        https: bool,
        addr: SocketAddr,
        host: String,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp(SocketAddr),
    Grpc {
        addr: SocketAddr,
        service: String,
    },
    Sleep(Duration),
}

/// Where a probe's target lives: the pod's address (the node's for a
/// host-network pod) and the container's named ports.
pub struct Target<'a> {
    pub pod_ip: IpAddr,
    pub container: &'a Container,
}

/// A port number, or the number of one of the container's named ports.
fn port(t: &Target, p: &IntOrString) -> Result<u16, String> {
    let n = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => t
                .container
                .ports
                .iter()
                .flatten()
                .find(|cp: &&ContainerPort| cp.name.as_deref() == Some(name))
                .map(|cp| cp.container_port)
                .ok_or_else(|| format!("couldn't find port: {name} in {}", t.container.name))?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}

fn host(t: &Target, h: Option<&String>) -> Result<IpAddr, String> {
    match h.filter(|h| !h.is_empty()) {
        None => Ok(t.pod_ip),
        // kubelet resolves names; an address is what a pod's probe gives
        // in practice, and a name would need the pod's DNS.
        Some(h) => h
            .parse()
            .map_err(|_| format!("probe host {h:?} is not an IP address")),
    }
}

fn http(t: &Target, g: &HTTPGetAction) -> Result<Action, String> {
    let ip = host(t, g.host.as_ref())?;
    let port = port(t, &g.port)?;
    let https = match g.scheme.as_deref() {
        None | Some("HTTP") | Some("") => false,
        Some("HTTPS") => true,
        Some(other) => return Err(format!("unsupported scheme: {other}")),
    };
    let mut path = g.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let headers: Vec<(String, String)> = g
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| SocketAddr::new(ip, port).to_string());
    Ok(Action::Http {
        https,
        addr: SocketAddr::new(ip, port),
        host,
        path,
        headers,
    })
}

fn tcp(t: &Target, s: &TCPSocketAction) -> Result<Action, String> {
    Ok(Action::Tcp(SocketAddr::new(
        host(t, s.host.as_ref())?,
        port(t, &s.port)?,
    )))
}

fn grpc(t: &Target, g: &GRPCAction) -> Result<Action, String> {
    let port = u16::try_from(g.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {}", g.port))?;
    Ok(Action::Grpc {
        addr: SocketAddr::new(t.pod_ip, port),
        service: g.service.clone().unwrap_or_default(),
    })
}

/// A probe's action.
pub fn of_probe(t: &Target, p: &Probe) -> Result<Action, String> {
    if let Some(e) = &p.exec {
        return Ok(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(g) = &p.http_get {
        return http(t, g);
    }
    if let Some(s) = &p.tcp_socket {
        return tcp(t, s);
    }
    if let Some(g) = &p.grpc {
        return grpc(t, g);
    }
    Err("missing probe handler".into())
}

/// A hook's action.
pub fn of_hook(t: &Target, h: &LifecycleHandler) -> Result<Action, String> {
    if let Some(e) = &h.exec {
        return Ok(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(g) = &h.http_get {
        return http(t, g);
    }
    if let Some(s) = &h.tcp_socket {
        return tcp(t, s);
    }
    if let Some(s) = &h.sleep {
        return Ok(Action::Sleep(Duration::from_secs(s.seconds.max(0) as u64)));
    }
    Err("missing lifecycle handler".into())
}

/// Run `action` against container `id`, giving up after `timeout`.
pub async fn run<R: PodRuntime>(
    runtime: &R,
    id: &str,
    action: &Action,
    timeout: Duration,
) -> Outcome {
    match action {
        Action::Exec(cmd) => match runtime.exec_sync(id, cmd.clone(), timeout).await {
            Ok(out) => match out.exit_code {
                Some(0) => Outcome::Success,
                Some(code) => {
                    let text = String::from_utf8_lossy(&out.output);
                    let text = text.trim_end();
                    // kubelet's message is the command's output.
                    Outcome::Failure(if text.is_empty() {
                        format!("command {cmd:?} exited with {code}")
                    } else {
                        text.to_string()
                    })
                }
                None => Outcome::Failure(format!(
                    "command timed out: \"{}\" timed out after {}s",
                    cmd.join(" "),
                    timeout.as_secs()
                )),
            },
            Err(e) => Outcome::Failure(e.to_string()),
        },
        Action::Http {
            https,
            addr,
            host,
            path,
            headers,
        } => {
            let scheme = if *https { "https" } else { "http" };
            let url = format!("{scheme}://{addr}{path}");
            match tokio::time::timeout(timeout, get(*https, *addr, host, path, headers)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
                Ok(Ok(code)) => {
                    Outcome::Failure(format!("HTTP probe failed with statuscode: {code}"))
                }
                Ok(Err(e)) => Outcome::Failure(format!("Get \"{url}\": {e}")),
                Err(_) => Outcome::Failure(format!(
                    "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                )),
            }
        }
        Action::Tcp(addr) => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        },
        Action::Grpc { addr, service } => {
            match tokio::time::timeout(timeout, super::grpc_health::check(*addr, service)).await {
                Ok(Ok(())) => Outcome::Success,
                Ok(Err(e)) => Outcome::Failure(e),
                Err(_) => Outcome::Failure(format!(
                    "timeout: health rpc did not complete within {}s",
                    timeout.as_secs()
                )),
            }
        }
        Action::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Outcome::Success
        }
    }
}

/// One GET; the response's status code.
async fn get(
    https: bool,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let tcp = TcpStream::connect(addr).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        req.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        // A header with a line break would smuggle another.
        if k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    if https {
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify))
        .with_no_client_auth();
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await?;
        exchange(tls, &req).await
    } else {
        exchange(tcp, &req).await
    }
}

async fn exchange(mut io: impl AsyncRead + AsyncWrite + Unpin, req: &str) -> std::io::Result<u16> {
    io.write_all(req.as_bytes()).await?;
    let mut line = Vec::new();
    let mut byte = [0u8; 512];
    while !line.windows(2).any(|w| w == b"\r\n") {
        let n = io.read(&mut byte).await?;
        if n == 0 || line.len() > STATUS_LINE_MAX {
            break;
        }
        line.extend_from_slice(&byte[..n]);
    }
    let text = String::from_utf8_lossy(&line);
    let status = text.lines().next().unwrap_or_default();
    let mut parts = status.split(' ');
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "malformed HTTP response",
        )),
    }
}

/// kubelet does not verify a probe's certificate (InsecureSkipVerify).
#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
