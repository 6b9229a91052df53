//! A SPDY/3.1 connection, the server's side, over any byte stream (the
//! upgraded TCP connection, or a WebSocket tunnel's bytes, upgrade.rs).
//!
//! One task reads frames and hands stream events to the caller (PINGs are
//! echoed there and then); one task writes the frames the caller sends,
//! compressing header blocks in the connection's one outgoing context. The
//! events queue is bounded, so a caller that does not keep up slows the
//! reader down (there is no flow control in spdystream, TCP's is the one).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::spdy::{Decoder, Encoder, Frame, Headers};
use super::upgrade::IDLE_TIMEOUT;

/// Stream events queued for the caller before the reader waits.
const EVENTS: usize = 16;
/// Frames queued for the writer before senders wait.
const OUTGOING: usize = 64;
/// Bytes read from the socket at once.
const READ_CHUNK: usize = 32 * 1024;

/// What the client did.
#[derive(Debug)]
pub enum Event {
    /// A SYN_STREAM: the caller answers with [`Out::reply`] or
    /// [`Out::reset`].
    Open {
        id: u32,
        headers: Headers,
        fin: bool,
    },
    Data {
        id: u32,
        data: Bytes,
        fin: bool,
    },
    Reset {
        id: u32,
    },
    /// The client opens no more streams.
    GoAway,
}

enum Cmd {
    Frame(Frame),
    /// Flush, end our half of the byte stream and stop writing.
    Close,
}

/// The sending side of a connection; cheap to clone.
#[derive(Clone)]
pub struct Out(mpsc::Sender<Cmd>);

/// The connection is gone.
#[derive(Debug, thiserror::Error)]
#[error("the SPDY connection is closed")]
pub struct Closed;

impl Out {
    async fn send(&self, f: Frame) -> Result<(), Closed> {
        self.0.send(Cmd::Frame(f)).await.map_err(|_| Closed)
    }

    /// Accept stream `id` (an empty header block is all kubectl needs).
    pub async fn reply(&self, id: u32) -> Result<(), Closed> {
        self.send(Frame::SynReply {
            stream_id: id,
            fin: false,
            headers: Vec::new(),
        })
        .await
    }

    pub async fn data(&self, id: u32, data: Bytes, fin: bool) -> Result<(), Closed> {
        self.send(Frame::Data {
            stream_id: id,
            fin,
            data,
        })
        .await
    }

    pub async fn reset(&self, id: u32, status: u32) -> Result<(), Closed> {
        self.send(Frame::RstStream {
            stream_id: id,
            status,
        })
        .await
    }

    /// Flush what is queued and end the connection.
    pub async fn close(&self) {
        let _ = self.0.send(Cmd::Close).await;
    }
}

/// A running connection: its events, its sender, its tasks (ended when
/// this is dropped).
pub struct Conn {
    pub events: mpsc::Receiver<Event>,
    pub out: Out,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl Conn {
    pub fn start<S>(io: S) -> Conn
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(OUTGOING);
        let (ev_tx, events) = mpsc::channel(EVENTS);
        let out = Out(out_tx);
        let reader = tokio::spawn(read_loop(r, ev_tx, out.clone()));
        let writer = Some(tokio::spawn(write_loop(w, out_rx)));
        Conn {
            events,
            out,
            reader,
            writer,
        }
    }

    /// Close the connection once what is queued is written.
    pub async fn finish(mut self) {
        self.out.close().await;
        if let Some(w) = self.writer.take() {
            let _ = w.await;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut r: R, events: mpsc::Sender<Event>, out: Out) {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => {
                // The decoder refuses a frame over the bound from its head,
                // so `buf` never holds more than one bounded frame.
                buf.reserve(READ_CHUNK);
                match tokio::time::timeout(IDLE_TIMEOUT, r.read_buf(&mut buf)).await {
                    Ok(Ok(0)) => return,
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return tracing::debug!("SPDY read: {e}"),
                    Err(_) => return tracing::info!("SPDY connection idle: dropped"),
                }
            }
            Err(e) => {
                tracing::info!("SPDY connection dropped: {e}");
                // GOAWAY with PROTOCOL_ERROR, then the end.
                let _ = out
                    .send(Frame::GoAway {
                        last_stream_id: 0,
                        status: 1,
                    })
                    .await;
                out.close().await;
                return;
            }
        };
        let event = match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
            } => Event::Open {
                id: stream_id,
                headers,
                fin,
            },
            Frame::Data {
                stream_id,
                fin,
                data,
            } => Event::Data {
                id: stream_id,
                data,
                fin,
            },
            Frame::RstStream { stream_id, .. } => Event::Reset { id: stream_id },
            Frame::GoAway { .. } => Event::GoAway,
            Frame::Ping { id } => {
                // kubectl pings every few seconds and drops a connection
                // whose pings go unanswered.
                if out.send(Frame::Ping { id }).await.is_err() {
                    return;
                }
                continue;
            }
            Frame::SynReply { .. } | Frame::Ignored { .. } => continue,
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Cmd>) {
    let mut encoder = Encoder::default();
    let mut buf = Vec::with_capacity(READ_CHUNK + 64);
    while let Some(cmd) = rx.recv().await {
        let frame = match cmd {
            Cmd::Frame(f) => f,
            Cmd::Close => break,
        };
        buf.clear();
        if let Err(e) = encoder.encode(&frame, &mut buf) {
            tracing::warn!("SPDY: not sending a frame: {e}");
            continue;
        }
        if w.write_all(&buf).await.is_err() {
            return;
        }
        // Flush when nothing else is waiting: one write for a burst.
        if rx.is_empty() && w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}
