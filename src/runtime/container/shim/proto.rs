//! The shim's control socket protocol (`<run-dir>/containers/<id>/shim.sock`).
//!
//! A client sends one request line:
//!
//! ```text
//! attach [start] [stdin]   stream output frames until the exit frame;
//!                          `start` starts a container created with
//!                          --wait-start, `stdin` makes the client's stdin
//!                          frames the container's stdin
//! wait                     only the exit frame
//! signal <N>               → "ok" | "error <text>"
//! resize <ROWS> <COLS>     → "ok" | "error <text>"  (-t containers)
//! state                    → "<created|running|exited> <pid>"
//! ```
//!
//! Frames are `[kind: u8][len: u32 BE][payload]`; kinds below. The client's
//! stdin frames use STDIN; an empty one means end of input.

use std::io::{self, Read};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Payload: the exit code as i32 BE. Sent once the shim has recorded it
/// (and, for `--rm`, removed the container).
pub const EXIT: u8 = 3;

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 5);
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Take one complete frame off the front of `buf`.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Some((kind, payload))
}

/// Read one frame (blocking).
pub fn read_frame(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok((head[0], payload))
}

pub fn exit_code(payload: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(payload.get(..4)?.try_into().ok()?))
}

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `keep`: the container's stdin outlives this client (a pod's
    /// container without stdinOnce); otherwise it ends with it.
    Attach {
        start: bool,
        stdin: bool,
        keep: bool,
    },
    Wait,
    Signal(i32),
    Resize {
        rows: u16,
        cols: u16,
    },
    State,
}

impl Request {
    pub fn parse(line: &str) -> Option<Request> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["attach", flags @ ..] => Some(Request::Attach {
                start: flags.contains(&"start"),
                stdin: flags.contains(&"stdin"),
                keep: flags.contains(&"keep"),
            }),
            ["wait"] => Some(Request::Wait),
            ["signal", n] => n.parse().ok().map(Request::Signal),
            ["resize", r, c] => Some(Request::Resize {
                rows: r.parse().ok()?,
                cols: c.parse().ok()?,
            }),
            ["state"] => Some(Request::State),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = frame(STDOUT, b"hi");
        buf.extend(frame(EXIT, &3i32.to_be_bytes()));
        buf.extend(&[STDERR, 0, 0]);
        assert_eq!(take_frame(&mut buf), Some((STDOUT, b"hi".to_vec())));
        let (kind, payload) = take_frame(&mut buf).unwrap();
        assert_eq!((kind, exit_code(&payload)), (EXIT, Some(3)));
        assert_eq!(take_frame(&mut buf), None, "incomplete frame stays");
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn requests() {
        assert_eq!(
            Request::parse("attach start stdin\n"),
            Some(Request::Attach {
                start: true,
                stdin: true,
                keep: false
            })
        );
        assert_eq!(Request::parse("signal 15"), Some(Request::Signal(15)));
        assert_eq!(
            Request::parse("resize 24 80"),
            Some(Request::Resize { rows: 24, cols: 80 })
        );
        assert_eq!(Request::parse("signal x"), None);
        assert_eq!(Request::parse("bogus"), None);
    }
}
