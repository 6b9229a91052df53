//! The shim's control-socket clients (see proto.rs): accepting them,
//! reading their request lines and stdin frames, answering, and flushing
//! what is queued for them without ever blocking the poll loop.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use nix::sys::signal::Signal;

use super::super::console::set_window_size;
use super::super::proto::{self, Request};
use super::Shim;

#[derive(PartialEq)]
pub(super) enum Mode {
    New,
    Attached,
    Waiter,
}

pub(super) struct Client {
    pub(super) stream: UnixStream,
    pub(super) inbuf: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) mode: Mode,
    pub(super) stdin: bool,
    /// The container's stdin stays open when this client goes.
    pub(super) keep_stdin: bool,
    /// Close once `out` is flushed.
    pub(super) closing: bool,
    pub(super) dead: bool,
}

impl Shim {
    pub(super) fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(Client {
                    stream,
                    inbuf: Vec::new(),
                    out: Vec::new(),
                    mode: Mode::New,
                    stdin: false,
                    keep_stdin: false,
                    closing: false,
                    dead: false,
                });
            }
        }
    }

    /// Act on what clients sent: request lines, stdin frames.
    pub(super) fn serve_clients(&mut self) {
        let mut start = false;
        for i in 0..self.clients.len() {
            if self.clients[i].mode == Mode::New {
                let Some(nl) = self.clients[i].inbuf.iter().position(|&b| b == b'\n') else {
                    continue;
                };
                let line: Vec<u8> = self.clients[i].inbuf.drain(..=nl).collect();
                let req = Request::parse(&String::from_utf8_lossy(&line));
                let reply = self.handle(i, req, &mut start);
                let c = &mut self.clients[i];
                if let Some(reply) = reply {
                    c.out.extend_from_slice(reply.as_bytes());
                    c.out.push(b'\n');
                    c.closing = true;
                }
                flush(c);
            }
            if self.clients[i].stdin {
                self.feed_stdin(i);
            }
        }
        if start {
            if let Err(e) = self.start() {
                tracing::error!("{e}");
            }
        }
        self.clients
            .retain(|c| !(c.dead || c.closing && c.out.is_empty()));
    }

    fn handle(&mut self, i: usize, req: Option<Request>, start: &mut bool) -> Option<String> {
        match req {
            Some(Request::Attach {
                start: s,
                stdin,
                keep,
            }) => {
                // One stdin owner at a time.
                let owns = c_stdin(stdin, &self.stdin, &self.clients, i);
                let c = &mut self.clients[i];
                c.mode = Mode::Attached;
                c.stdin = owns;
                c.keep_stdin = keep;
                *start |= s;
                None
            }
            Some(Request::Wait) => {
                self.clients[i].mode = Mode::Waiter;
                None
            }
            Some(Request::Signal(n)) => {
                // Stopped or killed by hand: its restart policy rests.
                self.stopped_by_request = true;
                Some(match Signal::try_from(n) {
                    Ok(sig) => match nix::sys::signal::kill(self.pid, sig) {
                        Ok(()) => "ok".into(),
                        Err(e) => format!("error {e}"),
                    },
                    Err(_) => format!("error invalid signal {n}"),
                })
            }
            Some(Request::Resize { rows, cols }) => Some(match &self.pty {
                Some(master) => match set_window_size(master, rows, cols) {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error {e}"),
                },
                None => "error the container has no terminal".into(),
            }),
            Some(Request::State) => {
                let status = if self.started { "running" } else { "created" };
                Some(format!("{status} {}", self.pid))
            }
            None => Some("error bad request".into()),
        }
    }

    fn feed_stdin(&mut self, i: usize) {
        while let Some((kind, payload)) = proto::take_frame(&mut self.clients[i].inbuf) {
            if kind != proto::STDIN {
                continue;
            }
            let close = payload.is_empty()
                || self
                    .stdin
                    .as_mut()
                    .is_some_and(|w| w.write_all(&payload).is_err());
            if close {
                // End of input (a pty keeps its master: only the pipe closes).
                if self.pty.is_none() {
                    self.stdin = None;
                }
                self.clients[i].stdin = false;
            }
        }
        let c = &mut self.clients[i];
        if c.dead && c.stdin && !c.keep_stdin && self.pty.is_none() {
            // The client holding stdin went away: the container sees EOF.
            self.stdin = None;
        }
    }
}

fn c_stdin(want: bool, stdin: &Option<File>, clients: &[Client], me: usize) -> bool {
    want && stdin.is_some() && !clients.iter().enumerate().any(|(j, o)| j != me && o.stdin)
}

pub(super) fn flush(c: &mut Client) {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
}

pub(super) fn read_client(c: &mut Client) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
}
