//! The OCI console socket: for `process.terminal: true`, libcontainer makes
//! the pty inside the container (so the slave is the container's controlling
//! terminal and its shell gets job control) and sends us the master over
//! this socket with SCM_RIGHTS.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use crate::runtime::container::client::with_short_path;

/// A listening console socket; its file is removed on drop.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> io::Result<ConsoleSocket> {
        let _ = std::fs::remove_file(path);
        let listener = with_short_path(path, |p| UnixListener::bind(p))?;
        // libcontainer connects before its build returns, so the connection
        // is already queued when we accept: never wait for one.
        listener.set_nonblocking(true)?;
        Ok(ConsoleSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take the pty master the container's init (or exec'd process) sent.
    pub fn receive(self) -> io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept()?;
        stream.set_nonblocking(false)?;
        // The message was sent before the container reported ready; the
        // bound only guards against a runtime that never sent it.
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut name = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let mut master = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor for
                    // us; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    master.get_or_insert(owned);
                }
            }
        }
        master.ok_or_else(|| io::Error::other("no pty master on the console socket"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Set the terminal size of the pty behind `fd`.
pub fn set_window_size(fd: &impl AsRawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that outlives the call.
    let rc = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The terminal size of `fd`, if it is a terminal with one.
pub fn window_size(fd: &impl AsRawFd) -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass.
    let rc = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}
