//! What exec and attach hand to a transport (exec_ws.rs, exec_spdy.rs):
//! the process's ends on our side, a way to resize its terminal, and its
//! end. An exec is a process we spawn (here); an attach is the container's
//! own main process, reached through its shim (attach.rs).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::exec::Params;

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;
/// Set the terminal's size: (width, height).
pub type Resize = Box<dyn Fn(u16, u16) + Send + Sync>;

/// After the process ends, how long its output may still take to drain (a
/// child it left behind may hold the pipe open for ever).
pub const DRAIN: Duration = Duration::from_secs(5);
/// Bytes read from the process at once.
pub const CHUNK: usize = 32 * 1024;

pub struct Proc {
    pub stdin: Option<Writer>,
    pub stdout: Option<Reader>,
    pub stderr: Option<Reader>,
    pub resize: Option<Resize>,
    /// Resolves when it ends, to its exit code (None: unknown, or killed).
    /// Dropped before that, an exec is killed and an attach let go.
    pub done: Pin<Box<dyn Future<Output = Option<i32>> + Send>>,
}

/// Spawn an exec's process (the runtime's exec shim) with its stdio as
/// `p` asks: a pty we hold the master of when `p.tty` (the process is the
/// terminal's session leader, so a resize reaches it as SIGWINCH), pipes
/// otherwise.
pub fn spawn(mut cmd: std::process::Command, p: &Params) -> std::io::Result<Proc> {
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
        let mut child = cmd.spawn()?;
        // The slave ends went to the child; ours close with `cmd`.
        drop(cmd);
        let master = Pty::new(pty.master)?;
        let resized = master.clone();
        Ok(Proc {
            stdin: p.stdin.then(|| Box::new(master.clone()) as Writer),
            stdout: Some(Box::new(master)),
            stderr: None,
            resize: Some(Box::new(move |w, h| {
                let fd = resized.0.get_ref();
                let _ = crate::runtime::container::shim::console::set_window_size(fd, h, w);
            })),
            done: Box::pin(async move { child.wait().await.ok().and_then(|s| s.code()) }),
        })
    } else {
        cmd.stdin(if p.stdin { S::piped() } else { S::null() })
            .stdout(if p.stdout { S::piped() } else { S::null() })
            .stderr(if p.stderr { S::piped() } else { S::null() });
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn()?;
        Ok(Proc {
            stdin: child.stdin.take().map(|s| Box::new(s) as Writer),
            stdout: child.stdout.take().map(|s| Box::new(s) as Reader),
            stderr: child.stderr.take().map(|s| Box::new(s) as Reader),
            resize: None,
            done: Box::pin(async move { child.wait().await.ok().and_then(|s| s.code()) }),
        })
    }
}

/// The Status sent on the error channel at the end.
/// A pty's master end, read and written on the reactor: tokio's `File`
/// would park a blocking thread on every read of a silent terminal, and a
/// few hundred idle `exec -it` sessions would take the whole pool.
#[derive(Clone)]
struct Pty(Arc<AsyncFd<OwnedFd>>);

impl Pty {
    fn new(fd: OwnedFd) -> std::io::Result<Pty> {
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
        // SAFETY: the OwnedFd is valid and only closed when the AsyncFd
        // that owns it is dropped.
        let fd = unsafe { AsyncFd::register(fd)? };
        Ok(Pty(Arc::new(fd)))
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut ready = std::task::ready!(self.0.poll_read_ready(cx))?;
            let read = ready.try_io(|fd| {
                let unfilled = buf.initialize_unfilled();
                match nix::unistd::read(fd.get_ref(), unfilled) {
                    Ok(n) => Ok(n),
                    // Every slave end closed: the terminal's end of file.
                    Err(nix::errno::Errno::EIO) => Ok(0),
                    Err(e) => Err(e.into()),
                }
            });
            match read {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut ready = std::task::ready!(self.0.poll_write_ready(cx))?;
            match ready.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(Into::into)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A terminal has no half-close: the end of input is the client's ^D.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

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

/// `{"Width":80,"Height":24}` → (width, height).
pub fn resize_of(payload: &[u8]) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    size_of(&v)
}

fn size_of(v: &serde_json::Value) -> Option<(u16, u16)> {
    let w = u16::try_from(v.get("Width")?.as_u64()?).ok()?;
    let h = u16::try_from(v.get("Height")?.as_u64()?).ok()?;
    Some((w, h))
}

/// Resizes from a stream of JSON objects cut anywhere (SPDY's resize
/// stream): the sizes complete in `buf`, which keeps the rest. None when
/// what is buffered cannot be JSON, or is past `max` bytes.
pub fn resizes(buf: &mut Vec<u8>, max: usize) -> Option<Vec<(u16, u16)>> {
    let mut sizes = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    loop {
        match it.next() {
            Some(Ok(v)) => {
                used = it.byte_offset();
                sizes.extend(size_of(&v));
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(_)) => return None,
            None => break,
        }
    }
    buf.drain(..used);
    (buf.len() <= max).then_some(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_the_exit_code() {
        assert_eq!(status(Some(0), None)["status"], "Success");
        let s = status(Some(3), None);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(status(None, Some("boom"))["message"], "boom");
    }

    #[test]
    fn resizes_come_whole_from_a_cut_stream() {
        assert_eq!(resize_of(b"{\"Width\":80,\"Height\":24}\n"), Some((80, 24)));
        let mut buf = b"{\"Width\":80,\"Height\":24}\n{\"Width\":1".to_vec();
        assert_eq!(resizes(&mut buf, 64), Some(vec![(80, 24)]));
        buf.extend_from_slice(b"00,\"Height\":30}");
        assert_eq!(resizes(&mut buf, 64), Some(vec![(100, 30)]));
        assert!(buf.iter().all(u8::is_ascii_whitespace));
        let mut junk = b"]]".to_vec();
        assert_eq!(resizes(&mut junk, 64), None);
        let mut long = vec![b' '; 10];
        long.push(b'{');
        assert_eq!(resizes(&mut long, 4), None, "bounded");
    }
}
