//! kubelet's gRPC probe: one `grpc.health.v1.Health/Check` call over
//! HTTP/2 without TLS, SERVING or not. The request and response are one
//! field each, so they are encoded here rather than with a protobuf crate.

use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;

/// A health response larger than this is not one.
const RESPONSE_MAX: usize = 64 * 1024;

/// HealthCheckResponse.ServingStatus names.
fn status_name(n: u64) -> &'static str {
    match n {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// The length-prefixed gRPC message of HealthCheckRequest{service}.
pub fn request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The status field of a length-prefixed HealthCheckResponse (UNKNOWN, 0,
/// when absent, as proto3 omits defaults).
pub fn response_status(body: &[u8]) -> Result<u64, String> {
    let bad = || "malformed health check response".to_string();
    if body.len() < 5 || body[0] != 0 {
        return Err(bad());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let mut msg = body.get(5..5 + len).ok_or_else(bad)?;
    let mut status = 0;
    while !msg.is_empty() {
        let key = varint(&mut msg).ok_or_else(bad)?;
        match key & 7 {
            0 => {
                let v = varint(&mut msg).ok_or_else(bad)?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let n = varint(&mut msg).ok_or_else(bad)? as usize;
                msg = msg.get(n..).ok_or_else(bad)?;
            }
            _ => return Err(bad()),
        }
    }
    Ok(status)
}

/// Check `service` ("" for the server as a whole) at `addr`.
pub async fn check(addr: SocketAddr, service: &str) -> Result<(), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("failed to connect service \"{addr}\": {e}"))?;
    let (client, conn) = h2::client::handshake(tcp)
        .await
        .map_err(|e| format!("failed to connect service \"{addr}\": {e}"))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = call(client, addr, service).await;
    conn.abort();
    result
}

async fn call(
    client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    service: &str,
) -> Result<(), String> {
    let rpc = |e: h2::Error| format!("health rpc failed: {e}");
    let mut client = client.ready().await.map_err(rpc)?;
    let req = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/1.32")
        .body(())
        .map_err(|e| e.to_string())?;
    let (resp, mut send) = client.send_request(req, false).map_err(rpc)?;
    send.send_data(Bytes::from(request(service)), true)
        .map_err(rpc)?;
    let resp = resp.await.map_err(rpc)?;
    let grpc_status = |h: &http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .map(|code| {
                let desc = h
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                (code, desc.to_string())
            })
    };
    // A trailers-only response: the error is in the headers.
    if let Some((code, desc)) = grpc_status(resp.headers()).filter(|(c, _)| *c != 0) {
        return Err(format!("rpc error: code = {code} desc = {desc}"));
    }
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(rpc)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > RESPONSE_MAX {
            return Err("health check response too large".into());
        }
        data.extend_from_slice(chunk.chunk());
    }
    if let Ok(Some(trailers)) = body.trailers().await {
        if let Some((code, desc)) = grpc_status(&trailers).filter(|(c, _)| *c != 0) {
            return Err(format!("rpc error: code = {code} desc = {desc}"));
        }
    }
    match response_status(&data)? {
        1 => Ok(()),
        other => Err(format!(
            "service unhealthy (responded with \"{}\")",
            status_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        assert_eq!(request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(request("a"), vec![0, 0, 0, 0, 3, 0x0a, 1, b'a']);
        // status: SERVING (field 1 = 1), and an unknown field skipped.
        let resp = [0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1];
        assert_eq!(response_status(&resp).unwrap(), 1);
        assert_eq!(response_status(&[0, 0, 0, 0, 0]).unwrap(), 0);
        assert!(response_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(response_status(&[1, 0]).is_err());
    }
}
