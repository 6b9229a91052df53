//! exec and attach over a WebSocket, the channel protocol kubectl 1.32
//! speaks first (v5.channel.k8s.io, and v4): every binary message is one
//! byte of channel and its payload — 0 stdin, 1 stdout, 2 stderr, 3 the
//! final Status (JSON), 4 terminal resizes, 255 (v5) the close of a
//! channel. The client pings; we answer.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::stdio::{self, Proc, Reader, CHUNK, DRAIN};
use super::upgrade::{Upgraded, IDLE_TIMEOUT};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long after the handshake the first message waits. kubectl 1.32's
/// WebSocket client (client-go's `readDemuxLoop`) reads before it has made
/// its streams and drops what arrives for one not made yet ("Unknown stream
/// id"): a command that answers at once, `echo`, would lose its output and
/// its exit status. A real kubelet is slower to start a process than that
/// window; skiff's is not, so it holds the first frames until then. Output
/// that comes later is not delayed.
const FIRST_FRAME_HOLD: std::time::Duration = std::time::Duration::from_millis(150);

/// Serve one session until the process ends (its Status goes out, then a
/// normal close) or the client leaves (the process is then killed, or the
/// attachment let go).
pub async fn session(
    ws: WebSocketStream<Upgraded>,
    v5: bool,
    proc: Result<Proc, String>,
) -> Result<(), String> {
    let (mut sink, mut source) = ws.split();
    let proc = match proc {
        Ok(p) => p,
        Err(e) => {
            tokio::time::sleep(FIRST_FRAME_HOLD).await;
            let msg = stdio::status(None, Some(&e));
            let mut frame = vec![ERROR];
            frame.extend_from_slice(msg.to_string().as_bytes());
            let _ = sink.send(Message::Binary(Bytes::from(frame))).await;
            let _ = sink.close().await;
            return Err(e);
        }
    };
    let Proc {
        stdin,
        stdout,
        stderr,
        resize,
        mut done,
    } = proc;
    // Everything the client hears goes through one queue to the sink.
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let pumps: Vec<_> = [
        stdout.map(|r| pump(r, STDOUT, out_tx.clone())),
        stderr.map(|r| pump(r, STDERR, out_tx.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let opened = tokio::time::Instant::now();
    let writer = tokio::spawn(async move {
        let mut held = true;
        while let Some(m) = out_rx.recv().await {
            if held {
                tokio::time::sleep_until(opened + FIRST_FRAME_HOLD).await;
                held = false;
            }
            let closing = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut stdin = stdin;
    let pong = out_tx.clone();
    let reader = async {
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(IDLE_TIMEOUT, source.next()).await {
            match msg {
                Message::Binary(b) if !b.is_empty() => match b[0] {
                    STDIN => {
                        if let Some(w) = stdin.as_mut() {
                            if w.write_all(&b[1..]).await.is_err() || w.flush().await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    RESIZE => {
                        if let (Some(f), Some((w, h))) = (&resize, stdio::resize_of(&b[1..])) {
                            f(w, h);
                        }
                    }
                    CLOSE if v5 && b.get(1) == Some(&STDIN) => {
                        // Half-close: the process sees the end of its input.
                        if let Some(mut w) = stdin.take() {
                            let _ = w.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Message::Ping(data) => {
                    let _ = pong.send(Message::Pong(data)).await;
                }
                Message::Close(_) | Message::Text(_) => break,
                _ => {}
            }
        }
    };
    let code = tokio::select! {
        c = &mut done => c,
        _ = reader => {
            for p in pumps {
                p.abort();
            }
            writer.abort();
            return Ok(());
        }
    };
    // What the process wrote before it ended goes out first.
    for p in pumps {
        let abort = p.abort_handle();
        if tokio::time::timeout(DRAIN, p).await.is_err() {
            abort.abort();
        }
    }
    let mut frame = vec![ERROR];
    frame.extend_from_slice(stdio::status(code, None).to_string().as_bytes());
    let _ = out_tx.send(Message::Binary(Bytes::from(frame))).await;
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = out_tx.send(Message::Close(Some(close))).await;
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

/// Copy a stream of the process into messages on `channel`.
fn pump(mut r: Reader, channel: u8, tx: mpsc::Sender<Message>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK + 1];
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
