//! exec (and attach) over WebSocket with the channel protocol kubectl 1.32
//! speaks (v5.channel.k8s.io, and v4): every binary message is one byte of
//! channel and its payload — 0 stdin, 1 stdout, 2 stderr, 3 the final
//! Status (JSON), 4 terminal resizes, 255 (v5) the close of a channel.
//!
//! The process is the runtime's exec shim. With a TTY its stdio is the
//! slave of a pty we hold the master of, and it is that terminal's session
//! leader, so a resize here reaches it as SIGWINCH and it passes the size
//! on to the container's own terminal.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{lookup, text, Body};
use crate::agent::pods::worker::WorkerCtx;
use crate::runtime::pod::{ContainerState, PodRuntime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
}

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The largest stdin message taken at once; bigger ones end the session.
const MESSAGE_MAX: usize = 1 << 20;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Params, String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| e.to_string())?;
        let mut p = Params::default();
        for (k, v) in pairs {
            let on = v == "true" || v == "1";
            match k.as_str() {
                "command" => p.command.push(v),
                "input" | "stdin" => p.stdin = on,
                "output" | "stdout" => p.stdout = on,
                "error" | "stderr" => p.stderr = on,
                "tty" => p.tty = on,
                _ => {}
            }
        }
        // A terminal merges stderr into stdout.
        if p.tty {
            p.stderr = false;
        }
        if !(p.stdin || p.stdout || p.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(p)
    }
}

/// The protocol both sides speak, from what the client offers.
fn choose(offered: &str) -> Option<&'static str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    [V5, V4].into_iter().find(|p| offered.contains(p))
}

pub async fn serve<R: PodRuntime>(
    ctx: Arc<WorkerCtx<R>>,
    kind: Kind,
    ns: &str,
    pod: &str,
    container: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let params = match Params::parse(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    if kind == Kind::Exec && params.command.is_empty() {
        return text(StatusCode::BAD_REQUEST, "you must specify a command");
    }
    if kind == Kind::Attach {
        return text(
            StatusCode::BAD_REQUEST,
            "attach is not supported by this node yet; use exec",
        );
    }
    let found = match lookup::find(&ctx.runtime, ns, pod, container).await {
        Ok(f) => f,
        Err(e) => return text(StatusCode::NOT_FOUND, e),
    };
    let current = &found.instances[0];
    if current.state != ContainerState::Running {
        return text(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is not running"),
        );
    }
    let headers = req.headers();
    let is_ws = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_ws {
        return text(
            StatusCode::BAD_REQUEST,
            "this node serves exec over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) only",
        );
    }
    let Some(key) = headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
    else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let offered = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let Some(protocol) = choose(&offered) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "none of the offered subprotocols {offered:?} is supported (want {V5} or {V4})"
            ),
        );
    };
    let command = match ctx
        .runtime
        .exec_process(&current.id, params.command.clone(), params.tty)
        .await
    {
        Ok(c) => c,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let id = current.id.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => return tracing::debug!("exec upgrade: {e}"),
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        if let Err(e) = session(ws, protocol == V5, command, &params).await {
            tracing::debug!(container = %id, "exec session: {e}");
        }
    });
    let mut r = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.remove(http::header::CONTENT_TYPE);
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    h.insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static(protocol),
    );
    r
}

/// The process's ends on our side.
struct Stdio {
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The pty's master, for resizes.
    master: Option<OwnedFd>,
}

fn spawn(
    mut cmd: std::process::Command,
    p: &Params,
) -> std::io::Result<(tokio::process::Child, Stdio)> {
    use std::process::Stdio as S;
    if p.tty {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        let slave = pty.slave;
        cmd.stdin(S::from(slave.try_clone()?))
            .stdout(S::from(slave.try_clone()?))
            .stderr(S::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let child = cmd.spawn()?;
        let read = tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?));
        let write = tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?));
        Ok((
            child,
            Stdio {
                stdin: p.stdin.then(|| Box::new(write) as _),
                stdout: Some(Box::new(read)),
                stderr: None,
                master: Some(pty.master),
            },
        ))
    } else {
        cmd.stdin(if p.stdin { S::piped() } else { S::null() })
            .stdout(if p.stdout { S::piped() } else { S::null() })
            .stderr(if p.stderr { S::piped() } else { S::null() });
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let io = Stdio {
            stdin: child.stdin.take().map(|s| Box::new(s) as _),
            stdout: child.stdout.take().map(|s| Box::new(s) as _),
            stderr: child.stderr.take().map(|s| Box::new(s) as _),
            master: None,
        };
        Ok((child, io))
    }
}

/// The Status sent on the error channel at the end.
pub fn status(code: Option<i32>, failure: Option<&str>) -> serde_json::Value {
    match (code, failure) {
        (_, Some(msg)) => serde_json::json!({
            "metadata": {}, "status": "Failure", "message": msg,
            "reason": "InternalError", "code": 500
        }),
        (Some(0), None) => serde_json::json!({"metadata": {}, "status": "Success"}),
        (code, None) => {
            let code = code.unwrap_or(137);
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command [...], exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
            })
        }
    }
}

async fn session<S>(
    ws: WebSocketStream<S>,
    v5: bool,
    cmd: std::process::Command,
    p: &Params,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (mut child, io) = match spawn(cmd, p) {
        Ok(x) => x,
        Err(e) => {
            let msg = status(None, Some(&format!("starting the exec: {e}")));
            let _ = send(&mut sink, ERROR, msg.to_string().as_bytes()).await;
            let _ = sink.close().await;
            return Err(e.to_string());
        }
    };
    // Everything the client hears goes through one queue to the sink.
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let pumps = [
        io.stdout.map(|r| pump(r, STDOUT, out_tx.clone())),
        io.stderr.map(|r| pump(r, STDERR, out_tx.clone())),
    ];
    let pumps: Vec<_> = pumps.into_iter().flatten().collect();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let closing = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut stdin = io.stdin;
    let master = io.master;
    let pong = out_tx.clone();
    let reader = async {
        while let Some(msg) = source.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(_) => break,
            };
            match msg {
                Message::Binary(b) if !b.is_empty() && b.len() <= MESSAGE_MAX + 1 => {
                    match b[0] {
                        STDIN => {
                            if let Some(w) = stdin.as_mut() {
                                if w.write_all(&b[1..]).await.is_err() || w.flush().await.is_err() {
                                    stdin = None;
                                }
                            }
                        }
                        RESIZE => {
                            if let (Some(m), Some((w, h))) = (&master, resize(&b[1..])) {
                                let _ = crate::runtime::container::shim::console::set_window_size(
                                    m, h, w,
                                );
                            }
                        }
                        CLOSE if v5 && b.get(1) == Some(&STDIN) => {
                            // Half-close: the process sees the end of its input.
                            stdin = None;
                        }
                        _ => {}
                    }
                }
                Message::Ping(data) => {
                    let _ = pong.send(Message::Pong(data)).await;
                }
                Message::Close(_) => break,
                Message::Text(_) => break,
                _ => {}
            }
        }
    };
    // The session ends when the process does; a client that leaves ends
    // the process (kill_on_drop).
    let exited = tokio::select! {
        s = child.wait() => Some(s),
        _ = reader => None,
    };
    let status_code = match exited {
        Some(s) => s.ok().and_then(|s| s.code()),
        None => {
            let _ = child.kill().await;
            return Ok(());
        }
    };
    // What the process wrote before it ended goes out first.
    for p in pumps {
        let _ = p.await;
    }
    let st = status(status_code, None);
    let mut frame = vec![ERROR];
    frame.extend_from_slice(st.to_string().as_bytes());
    let _ = out_tx.send(Message::Binary(Bytes::from(frame))).await;
    let _ = out_tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

/// Copy a stream of the process into messages on `channel`.
fn pump(
    mut r: Box<dyn AsyncRead + Send + Unpin>,
    channel: u8,
    tx: mpsc::Sender<Message>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match r.read(&mut buf[1..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf[0] = channel;
            if tx
                .send(Message::Binary(Bytes::copy_from_slice(&buf[..=n])))
                .await
                .is_err()
            {
                break;
            }
        }
    })
}

async fn send<S>(
    sink: &mut futures::stream::SplitSink<WebSocketStream<S>, Message>,
    channel: u8,
    data: &[u8],
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut frame = vec![channel];
    frame.extend_from_slice(data);
    sink.send(Message::Binary(Bytes::from(frame))).await
}

/// `{"Width":80,"Height":24}` → (width, height).
fn resize(payload: &[u8]) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let w = u16::try_from(v.get("Width")?.as_u64()?).ok()?;
    let h = u16::try_from(v.get("Height")?.as_u64()?).ok()?;
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_protocols() {
        let p = Params::parse(Some(
            "command=sh&command=-c&command=echo+hi&stdin=true&stdout=true&tty=true&stderr=true",
        ))
        .unwrap();
        assert_eq!(p.command, ["sh", "-c", "echo hi"]);
        assert!(p.stdin && p.stdout && p.tty && !p.stderr);
        assert!(Params::parse(Some("command=ls")).is_err());
        assert_eq!(choose("v5.channel.k8s.io"), Some(V5));
        assert_eq!(choose("v4.channel.k8s.io, channel.k8s.io"), Some(V4));
        assert_eq!(choose("channel.k8s.io"), None);
        assert_eq!(resize(b"{\"Width\":80,\"Height\":24}\n"), Some((80, 24)));
    }

    #[test]
    fn statuses_carry_the_exit_code() {
        assert_eq!(status(Some(0), None)["status"], "Success");
        let s = status(Some(3), None);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
    }
}
