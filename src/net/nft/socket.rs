//! The kernel edge: one blocking NETLINK_NETFILTER socket per transaction,
//! behind the `Netfilter` trait so that what is sent when (diffs, the full
//! statement after a refusal) is tested against `FakeNetfilter` (fake.rs).
//!
//! The socket lives in the network namespace of the thread that opens it, so
//! callers pick the namespace by picking the thread.

use std::io;
use std::os::fd::AsFd;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::MsgFlags;

use super::batch::{encode, Op};
use super::error::NftError;
use super::reply::{parse, Reply, Tally};

/// nfnetlink handles a batch inside sendmsg(), so every reply is queued by
/// the time send returns; the wait only guards against a kernel that never
/// answers.
const REPLY_TIMEOUT_MS: u16 = 5000;
/// Acks are ~36 bytes each with NETLINK_CAP_ACK; leave room for big batches
/// (the kernel caps this at net.core.rmem_max).
const RCVBUF: i32 = 1 << 20;

/// Sends batches to nf_tables.
pub(crate) trait Netfilter {
    /// Send `ops` as one batch (one transaction) and check that the kernel
    /// took every one; if not, nothing of it was applied.
    fn transact(&mut self, ops: &[Op]) -> Result<(), NftError>;
}

/// The real kernel, in the calling thread's network namespace.
pub(crate) struct NetfilterSocket;

impl Netfilter for NetfilterSocket {
    fn transact(&mut self, ops: &[Op]) -> Result<(), NftError> {
        transact(ops)
    }
}

fn io_err(op: &'static str) -> impl Fn(io::Error) -> NftError {
    move |source| NftError::Io { op, source }
}

fn open() -> Result<Socket, NftError> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io_err("socket"))?;
    sock.bind_auto().map_err(io_err("bind"))?;
    // Best effort: without them the replies are only larger and plainer.
    let _ = sock.set_cap_ack(true);
    let _ = sock.set_ext_ack(true);
    let _ = sock.set_rx_buf_sz(RCVBUF);
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(io_err("connect"))?;
    Ok(sock)
}

/// Whether table `ip table` exists (a read: no transaction, nothing for
/// the kernel to undo or free).
pub(crate) fn table_exists(table: &str) -> Result<bool, NftError> {
    const SEQ: u32 = 1;
    let sock = open()?;
    let req = super::batch::get_table(table, SEQ);
    sock.send(&req, 0).map_err(io_err("send"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        if !readable(&sock, PollTimeout::from(REPLY_TIMEOUT_MS))? {
            return Err(NftError::Protocol("no answer to GETTABLE".into()));
        }
        buf.clear();
        let n = loop {
            match sock.recv(&mut buf, MsgFlags::MSG_TRUNC.bits()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("recv")(e)),
            }
        };
        buf.truncate(n.min(buf.len()));
        for reply in parse(&buf).map_err(NftError::Protocol)? {
            match reply {
                Reply::Ack { seq } if seq == SEQ => return Ok(true),
                Reply::Error { seq, errno, .. } if seq == SEQ => {
                    return match errno {
                        nix::errno::Errno::ENOENT => Ok(false),
                        other => Err(NftError::BatchRefused {
                            errno: other,
                            detail: Some(format!("GETTABLE ip {table}")),
                        }),
                    }
                }
                _ => {}
            }
        }
    }
}

/// Send `ops` as one batch and check that the kernel took every one.
pub(crate) fn transact(ops: &[Op]) -> Result<(), NftError> {
    let enc = encode(ops, 1);
    let sock = open()?;
    if enc.bytes.len() > SMALL_BATCH {
        make_room(&sock, enc.bytes.len())?;
    }
    if ops.len() > ACKS_IN_DEFAULT_BUFFER {
        room_for_acks(&sock, ops.len());
    }

    let sent = sock.send(&enc.bytes, 0).map_err(io_err("send"))?;
    if sent != enc.bytes.len() {
        return Err(NftError::Protocol(format!(
            "sent {sent} of {} bytes of the batch",
            enc.bytes.len()
        )));
    }

    let mut tally = Tally::new(&enc);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while !tally.complete() {
        if !readable(&sock, PollTimeout::from(REPLY_TIMEOUT_MS))? {
            break;
        }
        read_into(&sock, &mut buf, &mut tally)?;
    }
    // A commit failure is reported on the batch-begin marker; take whatever
    // is still queued so that it is not missed.
    while readable(&sock, PollTimeout::ZERO)? {
        read_into(&sock, &mut buf, &mut tally)?;
    }
    tally.verdict(ops)
}

/// A netlink datagram must fit the socket's send buffer
/// (net.core.wmem_default, 208 KiB by default): a table with thousands of
/// map elements does not, and one transaction cannot be split. Batches
/// below this need no syscall more.
const SMALL_BATCH: usize = 64 * 1024;

/// Grow the send buffer for a batch of `len` bytes: past net.core.wmem_max
/// with CAP_NET_ADMIN (which programming nftables needs anyway), up to it
/// without.
/// Every message of a batch is acked, each ack its own socket buffer of
/// about a kilobyte of kernel accounting (truesize), all queued before the
/// first is read: past a few hundred messages they overflow the receive
/// buffer net.core.rmem_max allows (ENOBUFS, and the verdict is lost).
const ACKS_IN_DEFAULT_BUFFER: usize = 256;
const ACK_TRUESIZE: usize = 1280;

/// Grow the receive buffer for `n` acks, past net.core.rmem_max with
/// CAP_NET_ADMIN; best effort (without it the plain limit stays).
fn room_for_acks(sock: &Socket, n: usize) {
    use nix::sys::socket::{setsockopt, sockopt};
    let want = n.saturating_mul(ACK_TRUESIZE).saturating_add(64 * 1024);
    if setsockopt(sock, sockopt::RcvBufForce, &want).is_err() {
        let _ = setsockopt(sock, sockopt::RcvBuf, &want);
    }
}

fn make_room(sock: &Socket, len: usize) -> Result<(), NftError> {
    use nix::sys::socket::{setsockopt, sockopt};
    // The kernel doubles the value for its own overhead.
    let want = len.saturating_add(4096);
    if setsockopt(sock, sockopt::SndBufForce, &want).is_err() {
        setsockopt(sock, sockopt::SndBuf, &want)
            .map_err(|e| io_err("setsockopt SO_SNDBUF")(e.into()))?;
    }
    Ok(())
}

fn readable(sock: &Socket, timeout: PollTimeout) -> Result<bool, NftError> {
    loop {
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_err("poll")(e.into())),
        }
    }
}

fn read_into(sock: &Socket, buf: &mut Vec<u8>, tally: &mut Tally) -> Result<(), NftError> {
    buf.clear();
    // MSG_TRUNC makes recv report a datagram's real length, so truncation shows.
    let n = loop {
        match sock.recv(buf, MsgFlags::MSG_TRUNC.bits()) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("recv")(e)),
        }
    };
    if n > buf.len() {
        return Err(NftError::Protocol(format!(
            "reply of {n} bytes did not fit a {} byte buffer",
            buf.len()
        )));
    }
    for reply in parse(buf).map_err(NftError::Protocol)? {
        tally.feed(reply);
    }
    Ok(())
}
