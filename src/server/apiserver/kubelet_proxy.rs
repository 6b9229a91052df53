//! pods/log, pods/exec and pods/portforward: answered by the kubelet API of
//! the pod's node, reached over TLS with the server's kubelet-client
//! certificate. A plain response (a log, followed or not) is streamed
//! back as it comes; an upgrade (exec's WebSocket or SPDY, port-forward's)
//! is passed through: once the kubelet answers 101, the client's upgraded
//! connection and the kubelet's are spliced until either side ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Call;
use crate::api::status::ApiError;

/// A kubelet that does not answer by then is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A kubelet's answer begins (its status and headers) by then; what
/// streams after (a followed log) is not bounded by it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Of a kubelet's error answer, at most this much is read.
const ERROR_BODY_MAX: usize = 64 * 1024;

/// How the server calls kubelets.
#[derive(Clone)]
pub struct KubeletClient {
    pub tls: Arc<rustls::ClientConfig>,
    /// Agents' tunnels: a node with one is reached through it.
    pub tunnels: super::tunnel::Tunnels,
}

fn bad_request(msg: String) -> ApiError {
    ApiError::new(400, "BadRequest", msg)
}

/// The kubelet path for pod subresource `sub` of `ns/pod`.
fn kubelet_path(sub: &str, ns: &str, pod: &str, container: &str) -> Option<String> {
    Some(match sub {
        "log" => format!("/containerLogs/{ns}/{pod}/{container}"),
        "exec" => format!("/exec/{ns}/{pod}/{container}"),
        "attach" => format!("/attach/{ns}/{pod}/{container}"),
        "portforward" => format!("/portforward/{ns}/{pod}"),
        _ => return None,
    })
}

/// The container a request means: the one named, or the pod's only one.
fn container(pod: &Value, asked: Option<&str>, name: &str) -> Result<String, ApiError> {
    let names: Vec<&str> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| {
            pod.pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let main: Vec<&str> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect();
            match main.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    main.join(" ")
                ))),
            }
        }
    }
}

/// Where node `node`'s kubelet listens: its InternalIP (else any address)
/// and its kubelet endpoint's port.
pub(super) fn kubelet_addr(node: &Value) -> Option<SocketAddr> {
    let addrs = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let pick = |t: &str| {
        addrs
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .find_map(|a| a.get("address")?.as_str()?.parse::<IpAddr>().ok())
    };
    let ip = pick("InternalIP").or_else(|| pick("ExternalIP"))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    Some(SocketAddr::new(ip, port))
}

/// The server's client for kubelets, and where node `node_name`'s listens.
async fn kubelet_of(
    call: &Call<'_>,
    node_name: &str,
) -> Result<(KubeletClient, SocketAddr), ApiError> {
    let Some(client) = call.state.kubelet.get().cloned() else {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "this server cannot reach kubelets",
        ));
    };
    let nodes = call
        .state
        .registry
        .find("", "v1", "nodes")
        .ok_or_else(super::not_found)?;
    let node = call
        .state
        .objects
        .must_get(nodes, None, node_name)
        .await?
        .obj;
    let addr = kubelet_addr(&node).ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("node {node_name:?} has no address the server can reach"),
        )
    })?;
    Ok((client, addr))
}

/// Serve pod subresource `sub` through the pod's kubelet.
pub async fn pod(
    call: &Call<'_>,
    sub: &str,
    method: &Method,
    uri: &http::Uri,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    let r = call.r;
    let (Some(ns), Some(name)) = (r.namespace.as_deref(), r.name.as_deref()) else {
        return Err(super::not_found());
    };
    let pods = call
        .state
        .registry
        .find("", "v1", "pods")
        .ok_or_else(super::not_found)?;
    let pod = call.state.objects.must_get(pods, Some(ns), name).await?.obj;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad_request(format!("pod {name} does not have a host assigned")))?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if sub != "log" && matches!(phase, Some("Succeeded" | "Failed")) {
        return Err(bad_request(format!(
            "cannot {sub} into a container in a completed pod; current phase is {}",
            phase.unwrap_or_default()
        )));
    }
    let path = if sub == "portforward" {
        kubelet_path(sub, ns, name, "")
    } else {
        let c = container(&pod, call.q.get("container"), name)?;
        kubelet_path(sub, ns, name, &c)
    }
    .ok_or_else(super::not_found)?;
    // The query goes on as given, but for the container (now in the path).
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    if let Some((kind, mut options)) = super::webhook::connect_options(sub, &query) {
        let req = super::webhook::Request {
            op: super::webhook::Operation::Connect,
            def: pods,
            subresource: Some(sub),
            namespace: Some(ns),
            name,
            who: &call.ctx.who,
            dry_run: false,
            kind: Some(kind),
            deadline: std::time::Instant::now() + super::webhook::REQUEST_BUDGET,
        };
        super::webhook::admit_connect(call.state, &req, &mut options).await?;
    }
    let query: Vec<_> = query
        .into_iter()
        .filter(|(k, _)| k != "container")
        .collect();
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    forward(call, node_name, method, &target, on_upgrade).await
}

/// `nodes/<name>/proxy/<path>`: `path` (and the query) on the node's
/// kubelet, whatever it serves there (stats/summary, metrics/resource,
/// healthz, and the pod paths), streamed or upgraded as for pods.
pub async fn node(
    call: &Call<'_>,
    method: &Method,
    path: &str,
    uri: &http::Uri,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    let Some(node_name) = call.r.name.as_deref() else {
        return Err(super::not_found());
    };
    let target = match uri.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    };
    forward(call, node_name, method, &target, on_upgrade).await
}

/// Send the request on to node `node_name`'s kubelet and hand its answer
/// back: streamed, or spliced once both sides have upgraded.
async fn forward(
    call: &Call<'_>,
    node_name: &str,
    method: &Method,
    target: &str,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    let (client, addr) = kubelet_of(call, node_name).await?;
    let headers = call.headers;
    let upgrade = headers.contains_key(http::header::UPGRADE);
    let resp = send(&client, node_name, addr, method, target, headers)
        .await
        .map_err(|e| {
            ApiError::new(
                502,
                "ServiceUnavailable",
                format!("error talking to the kubelet of node {node_name:?} at {addr}: {e}"),
            )
        })?;
    if upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(on_upgrade) = on_upgrade else {
            return Err(bad_request(
                "this connection cannot be upgraded (HTTP/2?)".into(),
            ));
        };
        return Ok(splice(resp, on_upgrade));
    }
    let (mut head, body) = resp.into_parts();
    if !head.status.is_success() {
        // The kubelet's plain-text reason, as a Status a client shows: a
        // short one (a node is not trusted to bound it).
        let text = http_body_util::Limited::new(body, ERROR_BODY_MAX)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        let code = head.status.as_u16();
        let reason = match code {
            404 => "NotFound",
            400 => "BadRequest",
            403 => "Forbidden",
            _ => "InternalError",
        };
        return Err(ApiError::new(code, reason, text.trim().to_string()));
    }
    head.headers.remove(http::header::CONNECTION);
    head.headers.remove(http::header::TRANSFER_ENCODING);
    let body = body.map_err(|e| -> super::BoxError { Box::new(e) });
    Ok(Response::from_parts(head, axum::body::Body::new(body)))
}

type KubeletResponse = http::Response<hyper::body::Incoming>;

/// A connection to a kubelet: through its node's tunnel, or dialled.
trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Transport for T {}

/// A connection to node `node`'s kubelet at `addr`: through the node's
/// tunnel while it has one, else dialled.
async fn connect(
    client: &KubeletClient,
    node: &str,
    addr: SocketAddr,
) -> Result<Box<dyn Transport>, String> {
    if let Some(stream) = client.tunnels.dial(node).await {
        return stream
            .map(|s| Box::new(s) as Box<dyn Transport>)
            .map_err(|e| format!("through the node's tunnel: {e}"));
    }
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connection timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    Ok(Box::new(tcp))
}

/// One request to node `node`'s kubelet at `addr` on a connection of its
/// own.
pub(super) async fn send(
    client: &KubeletClient,
    node: &str,
    addr: SocketAddr,
    method: &Method,
    target: &str,
    headers: &http::HeaderMap,
) -> Result<KubeletResponse, String> {
    let io = connect(client, node, addr).await?;
    // The kubelet's certificate names its address, whichever way it is
    // reached.
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(client.tls.clone()).connect(name, io),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    // The kubelet CA signs every node's serving certificate: the one met
    // must be this node's, or another node that took over its address (or
    // asked for it at its join) would be handed this node's exec and logs.
    let wanted = crate::server::pki::node_user(node);
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| crate::server::pki::identity_from_cert(der))
        .map(|id| id.user);
    if presented.as_deref() != Some(wanted.as_str()) {
        tracing::warn!(node, %addr, presented = ?presented, "refused a kubelet certificate of another node");
        return Err(format!(
            "the kubelet at {addr} presents a certificate for {}, not for node {node}",
            presented.as_deref().unwrap_or("no one")
        ));
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("kubelet connection: {e}");
        }
    });
    let mut req = http::Request::builder()
        .method(method)
        .uri(target)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    for (k, v) in headers {
        // The client's credentials are for the server, not the kubelet.
        // Nor is whom they impersonate (the server decided on it).
        if k == http::header::AUTHORIZATION
            || k == http::header::HOST
            || k == http::header::CONTENT_LENGTH
            || k == http::header::TRANSFER_ENCODING
            || k.as_str().starts_with("impersonate-")
        {
            continue;
        }
        req.headers_mut().append(k.clone(), v.clone());
    }
    if let Ok(h) = HeaderValue::from_str(&addr.to_string()) {
        req.headers_mut().insert(http::header::HOST, h);
    }
    tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| "the kubelet did not answer in time".to_string())?
        .map_err(|e| e.to_string())
}

/// Answer 101 with the kubelet's upgrade headers, then splice the two
/// upgraded connections.
fn splice(mut resp: KubeletResponse, client: hyper::upgrade::OnUpgrade) -> Response {
    let backend = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(axum::body::Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in resp.headers() {
        out.headers_mut().append(k.clone(), v.clone());
    }
    tokio::spawn(async move {
        let (client, backend) = match tokio::join!(client, backend) {
            (Ok(c), Ok(b)) => (c, b),
            (Err(e), _) | (_, Err(e)) => return tracing::debug!("upgrading a proxied stream: {e}"),
        };
        let mut client = TokioIo::new(client);
        let mut backend = TokioIo::new(backend);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!("proxied stream ended: {e}");
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_and_addresses() {
        let pod = serde_json::json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}]}});
        assert_eq!(container(&pod, Some("i"), "p").unwrap(), "i");
        assert_eq!(
            container(&pod, None, "p").unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert!(container(&pod, Some("x"), "p").is_err());
        let one = serde_json::json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container(&one, None, "p").unwrap(), "a");
        let node = serde_json::json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "10.0.0.2"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        assert_eq!(kubelet_addr(&node).unwrap().to_string(), "10.0.0.2:10251");
    }
}
