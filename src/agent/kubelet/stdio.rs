//! What exec and attach hand to a transport (exec_ws.rs, exec_spdy.rs):
//! the process's ends on our side, a way to resize its terminal, and its
//! end. An exec is a process we spawn (here); an attach is the container's
//! own main process, reached through its shim (attach.rs).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

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
        let read = tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?));
        let write = tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?));
        let master = pty.master;
        Ok(Proc {
            stdin: p.stdin.then(|| Box::new(write) as Writer),
            stdout: Some(Box::new(read)),
            stderr: None,
            resize: Some(Box::new(move |w, h| {
                let _ = crate::runtime::container::shim::console::set_window_size(&master, h, w);
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
