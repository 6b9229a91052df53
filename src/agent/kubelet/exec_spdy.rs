//! exec and attach over SPDY/3.1, kubectl's fallback when the WebSocket is
//! refused (or `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`). The client opens
//! one stream per channel, named by its `streamtype` header — `error`, then
//! `stdin`, `stdout`, `stderr` (without a terminal), `resize` (with one) —
//! and we start the process once all it asked for are open. Output goes
//! out as DATA, each stream half-closed (FIN) at its end; the Status is
//! written on the error stream, which is then closed, and the connection
//! after it. Resizes are JSON objects one after another on their stream.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exec::Params;
use super::spdy::{self, header};
use super::spdy_conn::{Conn, Event, Out};
use super::stdio::{self, Proc, Reader, CHUNK, DRAIN};

/// The client has this long to open the streams it asked for (upstream's
/// stream creation timeout).
const STREAMS_TIMEOUT: Duration = Duration::from_secs(30);
/// Resize JSON buffered before the stream counts as garbage.
const RESIZE_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

fn kind(name: &str) -> Option<Kind> {
    Some(match name {
        "error" => Kind::Error,
        "stdin" => Kind::Stdin,
        "stdout" => Kind::Stdout,
        "stderr" => Kind::Stderr,
        "resize" => Kind::Resize,
        _ => return None,
    })
}

/// The streams `p` makes the client open.
fn expected(p: &Params) -> Vec<Kind> {
    let mut k = vec![Kind::Error];
    for (on, kind) in [
        (p.stdin, Kind::Stdin),
        (p.stdout, Kind::Stdout),
        (p.stderr && !p.tty, Kind::Stderr),
        (p.tty, Kind::Resize),
    ] {
        if on {
            k.push(kind);
        }
    }
    k
}

/// Wait for the streams `p` asks for; their IDs by kind. None when the
/// client left or took too long.
async fn streams(conn: &mut Conn, p: &Params) -> Option<BTreeMap<Kind, u32>> {
    let want = expected(p);
    let mut got = BTreeMap::new();
    let wait = async {
        while want.iter().any(|k| !got.contains_key(k)) {
            match conn.events.recv().await? {
                Event::Open { id, headers, .. } => {
                    let k = header(&headers, "streamtype").and_then(kind);
                    match k {
                        Some(k) if want.contains(&k) && !got.contains_key(&k) => {
                            conn.out.reply(id).await.ok()?;
                            got.insert(k, id);
                        }
                        _ => conn.out.reset(id, spdy::REFUSED_STREAM).await.ok()?,
                    }
                }
                Event::GoAway => return None,
                _ => {}
            }
        }
        Some(())
    };
    match tokio::time::timeout(STREAMS_TIMEOUT, wait).await {
        Ok(Some(())) => Some(got),
        _ => None,
    }
}

/// Serve one session: the streams, then `open`'s process until it ends
/// (or the client leaves: then it is killed, or the attachment let go).
pub async fn session<F>(mut conn: Conn, p: Params, open: F) -> Result<(), String>
where
    F: Future<Output = Result<Proc, String>>,
{
    let Some(ids) = streams(&mut conn, &p).await else {
        return Err("the client did not open its streams".into());
    };
    let id = |k| ids.get(&k).copied();
    let error_id = id(Kind::Error).ok_or("no error stream")?;
    let proc = match open.await {
        Ok(p) => p,
        Err(e) => {
            let st = stdio::status(None, Some(&e)).to_string();
            let _ = conn.out.data(error_id, Bytes::from(st), true).await;
            conn.finish().await;
            return Err(e);
        }
    };
    let Proc {
        mut stdin,
        stdout,
        stderr,
        resize,
        mut done,
    } = proc;
    let pumps: Vec<_> = [stdout.zip(id(Kind::Stdout)), stderr.zip(id(Kind::Stderr))]
        .into_iter()
        .flatten()
        .map(|(r, sid)| pump(r, sid, conn.out.clone()))
        .collect();
    let (stdin_id, resize_id) = (id(Kind::Stdin), id(Kind::Resize));
    let mut sizes = Vec::new();
    let code = loop {
        let event = tokio::select! {
            c = &mut done => break c,
            e = conn.events.recv() => e,
        };
        match event {
            None => {
                for p in pumps {
                    p.abort();
                }
                return Ok(());
            }
            Some(Event::Data { id, data, fin }) if Some(id) == stdin_id => {
                if let Some(w) = stdin.as_mut() {
                    if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                        stdin = None;
                    }
                }
                if fin {
                    // Half-close: the process sees the end of its input.
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
            }
            Some(Event::Data { id, data, .. }) if Some(id) == resize_id => {
                sizes.extend_from_slice(&data);
                match stdio::resizes(&mut sizes, RESIZE_MAX) {
                    Some(all) => {
                        if let Some(f) = &resize {
                            for (w, h) in all {
                                f(w, h);
                            }
                        }
                    }
                    None => sizes.clear(),
                }
            }
            Some(Event::Open { id, .. }) => {
                let _ = conn.out.reset(id, spdy::REFUSED_STREAM).await;
            }
            Some(_) => {}
        }
    };
    // What the process wrote before it ended goes out first.
    for p in pumps {
        let abort = p.abort_handle();
        if tokio::time::timeout(DRAIN, p).await.is_err() {
            abort.abort();
        }
    }
    let st = stdio::status(code, None).to_string();
    let _ = conn.out.data(error_id, Bytes::from(st), true).await;
    conn.finish().await;
    Ok(())
}

/// Copy a stream of the process into DATA on stream `id`, FIN at its end.
fn pump(mut r: Reader, id: u32, out: Out) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if out
                .data(id, Bytes::copy_from_slice(&buf[..n]), false)
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = out.data(id, Bytes::new(), true).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streams_follow_the_options() {
        let p = Params::parse(Some("command=ls&stdout=true&stderr=true")).unwrap();
        assert_eq!(expected(&p), [Kind::Error, Kind::Stdout, Kind::Stderr]);
        let p = Params::parse(Some(
            "command=sh&stdin=true&stdout=true&stderr=true&tty=true",
        ))
        .unwrap();
        assert_eq!(
            expected(&p),
            [Kind::Error, Kind::Stdin, Kind::Stdout, Kind::Resize]
        );
        assert_eq!(kind("stdin"), Some(Kind::Stdin));
        assert_eq!(kind("data"), None);
    }
}
