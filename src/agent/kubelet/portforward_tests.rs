//! A port-forward session driven by a SPDY client in memory, against
//! ports on 127.0.0.1: an unreachable port's error leaves the session
//! serving, bytes go both ways with their FINs, pings are echoed, bad
//! streams refused, and the client's leaving ends it.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use super::*;
use crate::agent::kubelet::spdy::{Decoder, Encoder, Frame};

struct Client {
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
    rd: ReadHalf<DuplexStream>,
    wr: WriteHalf<DuplexStream>,
    seen: Vec<Frame>,
}

impl Client {
    async fn send(&mut self, f: Frame) {
        let mut out = Vec::new();
        self.enc.encode(&f, &mut out).unwrap();
        self.wr.write_all(&out).await.unwrap();
    }

    async fn open(&mut self, id: u32, kind: &str, port: u16, req: &str) {
        let headers = [
            ("streamtype", kind),
            ("port", &port.to_string()),
            ("requestid", req),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.send(Frame::SynStream {
            stream_id: id,
            fin: false,
            headers,
        })
        .await;
    }

    async fn data(&mut self, id: u32, data: &'static [u8], fin: bool) {
        let data = Bytes::from_static(data);
        self.send(Frame::Data {
            stream_id: id,
            fin,
            data,
        })
        .await;
    }

    /// Read frames until `pred` holds of all seen so far.
    async fn until(&mut self, what: &str, pred: impl Fn(&[Frame]) -> bool) {
        let read = async {
            while !pred(&self.seen) {
                match self.dec.decode(&mut self.buf).unwrap() {
                    Some(f) => self.seen.push(f),
                    None => {
                        if self.rd.read_buf(&mut self.buf).await.unwrap() == 0 {
                            panic!("the session ended before {what}: {:?}", self.seen);
                        }
                    }
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .is_err()
        {
            panic!("never saw {what}: {:?}", self.seen);
        }
    }
}

/// What stream `id` carried, and whether it ended (FIN).
fn stream(frames: &[Frame], id: u32) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut fin = false;
    for f in frames {
        if let Frame::Data {
            stream_id,
            fin: f_fin,
            data: d,
        } = f
        {
            if *stream_id == id {
                data.extend_from_slice(d);
                fin |= *f_fin;
            }
        }
    }
    (data, fin)
}

fn replied(frames: &[Frame], id: u32) -> bool {
    frames
        .iter()
        .any(|f| matches!(f, Frame::SynReply { stream_id, .. } if *stream_id == id))
}

#[tokio::test]
async fn a_session_forwards_reports_errors_and_goes_on() {
    // An upper-casing echo server, and a port nobody listens on.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all).await;
                let _ = s.write_all(&all.to_ascii_uppercase()).await;
            });
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };

    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let target = Target {
        // The test's own namespace, where its listeners are.
        netns: "/proc/self/ns/net".into(),
        pod: "web".into(),
        uid: "u1".into(),
    };
    let served = tokio::spawn(session(Conn::start(theirs), Arc::new(target)));
    let (rd, wr) = tokio::io::split(ours);
    let mut c = Client {
        enc: Encoder::default(),
        dec: Decoder::default(),
        buf: BytesMut::new(),
        rd,
        wr,
        seen: Vec::new(),
    };

    // The unreachable port: its message on the error stream, both closed.
    c.open(1, "error", closed, "0").await;
    c.data(1, b"", true).await;
    c.open(3, "data", closed, "0").await;
    c.until("the error", |f| stream(f, 1).1 && stream(f, 3).1)
        .await;
    assert!(replied(&c.seen, 1) && replied(&c.seen, 3));
    let msg = String::from_utf8(stream(&c.seen, 1).0).unwrap();
    assert!(
        msg.starts_with(&format!(
            "error forwarding port {closed} to pod web, uid u1: "
        )),
        "{msg}"
    );

    // The same session serves the next connection, and pings.
    c.open(5, "error", echo_port, "1").await;
    c.data(5, b"", true).await;
    c.open(7, "data", echo_port, "1").await;
    c.data(7, b"hello ", false).await;
    c.data(7, b"pod", true).await;
    c.send(Frame::Ping { id: 9 }).await;
    c.until("the echo", |f| stream(f, 7).1 && stream(f, 5).1)
        .await;
    assert_eq!(stream(&c.seen, 7).0, b"HELLO POD");
    assert!(stream(&c.seen, 5).0.is_empty(), "no error");
    c.until("the pong", |f| f.contains(&Frame::Ping { id: 9 }))
        .await;

    // Streams it cannot take are refused, the session unharmed.
    c.open(11, "bogus", echo_port, "2").await;
    c.open(13, "data", 0, "2").await;
    c.until("the refusals", |f| {
        [11, 13].iter().all(|id| {
            f.iter()
                .any(|x| matches!(x, Frame::RstStream { stream_id, .. } if stream_id == id))
        })
    })
    .await;

    // The client's leaving ends the session.
    drop(c);
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the session ends with its connection")
        .unwrap();
}
