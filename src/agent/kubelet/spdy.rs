//! SPDY/3.1 frames, the server's side, as kubectl (moby/spdystream)
//! speaks them for port-forward and the exec/attach fallback. Pure: bytes
//! in, frames out, and back; the connection is spdy_conn.rs.
//!
//! ```text
//! control  1 | version u15 (3) | type u16 | flags u8 | length u24 | payload
//! data     0 | stream id u31   |            flags u8 | length u24 | data
//!
//! SYN_STREAM (1)  stream u32, associated u32, priority u3 + 5 bits, slot u8, header block
//! SYN_REPLY  (2)  stream u32, header block
//! RST_STREAM (3)  stream u32, status u32
//! SETTINGS   (4)  ignored (spdystream has no flow control, nor do we)
//! PING       (6)  id u32 (the server echoes the client's)
//! GOAWAY     (7)  last stream u32, status u32
//! HEADERS    (8)  stream u32, header block (inflated to keep the context)
//! WINDOW_UPDATE (9) ignored
//! flags: FIN 0x01 (both kinds), UNIDIRECTIONAL 0x02 (SYN_STREAM)
//! ```
//!
//! A header block is zlib with the SPDY/3 dictionary (`spdy_dict.bin`, from
//! moby/spdystream), one context per direction for the whole connection,
//! each block ending in a sync flush; inflated it is `u32 count, (u32 len,
//! name, u32 len, value)*`. The dictionary needs zlib's preset-dictionary
//! support, which flate2 has only with a zlib backend: the pure-Rust
//! `zlib-rs` one (Cargo.toml).

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The SPDY/3 header dictionary (1423 bytes, Adler-32 0xe3c6a7c2).
pub const DICTIONARY: &[u8] = include_bytes!("spdy_dict.bin");

/// The largest frame payload taken (a frame's length field allows 16 MiB;
/// kubectl writes at most 32 KiB of data at once).
pub const MAX_FRAME: usize = 1 << 20;
/// The largest inflated header block, and the most headers in one.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 128;

const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM statuses used here.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;
pub const CANCEL: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("a SPDY frame of {0} bytes is larger than the {MAX_FRAME} this server takes")]
    TooLarge(usize),
    #[error("SPDY version {0} is not spoken here (only 3)")]
    Version(u16),
    #[error("a malformed SPDY {0} frame")]
    Malformed(&'static str),
    #[error("a SPDY header block: {0}")]
    Headers(String),
}

/// Header names (lowercase) and values, in order.
pub type Headers = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_stream_id: u32,
        status: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// SETTINGS, WINDOW_UPDATE, HEADERS and unknown control frames: the
    /// spec says to ignore them.
    Ignored {
        kind: u16,
    },
}

/// Find `name` in `headers`.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Frames from the client's bytes, with the client's inflate context.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Decoder {
    /// Take one whole frame off the front of `buf`; None until one is
    /// there. A frame too large is refused as soon as its header is read.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let flags = buf[4];
        let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
        if len > MAX_FRAME {
            return Err(SpdyError::TooLarge(len));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let payload = buf.split_to(len).freeze();
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some(Frame::Data {
                stream_id,
                fin,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let p = &payload[..];
        let id = |name| {
            u32_at(p, 0)
                .map(|v| v & 0x7fff_ffff)
                .ok_or(SpdyError::Malformed(name))
        };
        Ok(Some(match kind {
            1 => {
                let stream_id = id("SYN_STREAM")?;
                let block = p.get(10..).ok_or(SpdyError::Malformed("SYN_STREAM"))?;
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers: self.headers(block)?,
                }
            }
            2 => {
                let stream_id = id("SYN_REPLY")?;
                let block = p.get(4..).ok_or(SpdyError::Malformed("SYN_REPLY"))?;
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers: self.headers(block)?,
                }
            }
            3 => Frame::RstStream {
                stream_id: id("RST_STREAM")?,
                status: u32_at(p, 4).ok_or(SpdyError::Malformed("RST_STREAM"))?,
            },
            6 => Frame::Ping {
                id: u32_at(p, 0).ok_or(SpdyError::Malformed("PING"))?,
            },
            7 => Frame::GoAway {
                last_stream_id: id("GOAWAY")?,
                status: u32_at(p, 4).unwrap_or(0),
            },
            8 => {
                // Its block is in the compression context: inflate it all
                // the same, or the next block would not decode.
                let block = p.get(4..).ok_or(SpdyError::Malformed("HEADERS"))?;
                self.headers(block)?;
                Frame::Ignored { kind }
            }
            kind => Frame::Ignored { kind },
        }))
    }

    fn headers(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let raw = inflate(&mut self.inflate, block)?;
        parse_headers(&raw)
    }
}

fn inflate(d: &mut Decompress, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
    let err = |e: &dyn std::fmt::Display| SpdyError::Headers(e.to_string());
    let mut out = Vec::with_capacity(1024);
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 512 {
            out.reserve(4096);
        }
        let (in0, out0) = (d.total_in(), d.total_out());
        match d.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync) {
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() => {
                d.set_dictionary(DICTIONARY).map_err(|e| err(&e))?;
            }
            Err(e) => return Err(err(&e)),
        }
        let used = usize::try_from(d.total_in() - in0).map_err(|e| err(&e))?;
        pos += used;
        if out.len() > MAX_HEADER_BLOCK {
            return Err(SpdyError::Headers(format!(
                "more than {MAX_HEADER_BLOCK} bytes inflated"
            )));
        }
        let room = out.capacity() > out.len();
        if pos >= input.len() && room {
            return Ok(out);
        }
        if used == 0 && d.total_out() == out0 && room {
            return Err(SpdyError::Headers("a truncated block".into()));
        }
    }
}

fn parse_headers(raw: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |why: &str| SpdyError::Headers(why.to_string());
    let mut b = raw;
    let take = |b: &mut &[u8]| -> Result<String, SpdyError> {
        if b.remaining() < 4 {
            return Err(bad("truncated"));
        }
        let n = b.get_u32() as usize;
        if b.remaining() < n {
            return Err(bad("truncated"));
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        b.advance(n);
        Ok(s)
    };
    if b.remaining() < 4 {
        return Err(bad("truncated"));
    }
    let count = b.get_u32() as usize;
    if count > MAX_HEADERS {
        return Err(SpdyError::Headers(format!(
            "{count} headers (at most {MAX_HEADERS})"
        )));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take(&mut b)?.to_ascii_lowercase();
        let value = take(&mut b)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Frames to the client's bytes, with the server's deflate context.
pub struct Encoder {
    deflate: Compress,
    primed: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl Encoder {
    /// Append `frame` to `out`. A DATA payload over [`MAX_FRAME`] is the
    /// caller's bug: the pumps read less at once.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]| {
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.push(flags);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(payload);
        };
        let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                p.extend(self.block(headers)?);
                control(out, 1, fin_flag(*fin), &p);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(self.block(headers)?);
                control(out, 2, fin_flag(*fin), &p);
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, 3, 0, &p);
            }
            Frame::Ping { id } => control(out, 6, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_stream_id,
                status,
            } => {
                let mut p = last_stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, 7, 0, &p);
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if data.len() > MAX_FRAME {
                    return Err(SpdyError::TooLarge(data.len()));
                }
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(fin_flag(*fin));
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
            }
            Frame::Ignored { .. } => {}
        }
        Ok(())
    }

    fn block(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let err = |e: &dyn std::fmt::Display| SpdyError::Headers(e.to_string());
        if !self.primed {
            self.deflate
                .set_dictionary(DICTIONARY)
                .map_err(|e| err(&e))?;
            self.primed = true;
        }
        let mut raw = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            for s in [k.as_bytes(), v.as_bytes()] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s);
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(1024);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| err(&e))?;
            pos += usize::try_from(self.deflate.total_in() - before).map_err(|e| err(&e))?;
            // Done when all is in and the flush did not fill the buffer.
            if pos >= raw.len() && out.capacity() > out.len() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
#[path = "spdy_tests.rs"]
mod tests;
