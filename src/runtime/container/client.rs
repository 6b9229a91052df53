//! Talking to a container's shim over its control socket (see shim/proto.rs).

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::shim::proto;
use super::Paths;

/// Unix socket paths are limited to 107 bytes, which a deep `--run-dir`
/// plus a 64-character ID can exceed: then reach the socket through an
/// O_PATH descriptor of its directory (`/proc/self/fd/N/name`), held open
/// while `f` binds or connects.
pub fn with_short_path<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    if path.as_os_str().len() < 100 {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dirfd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
        .open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", dirfd.as_raw_fd())).join(name);
    f(&short)
}

pub fn connect(paths: &Paths, id: &str) -> io::Result<UnixStream> {
    with_short_path(&paths.socket(id), |p| UnixStream::connect(p))
}

/// Send a one-line request and read the one-line answer.
pub fn request(paths: &Paths, id: &str, line: &str) -> io::Result<String> {
    let mut s = connect(paths, id)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply)?;
    let reply = reply.trim().to_string();
    match reply.strip_prefix("error ") {
        Some(e) => Err(io::Error::other(e.to_string())),
        None if reply.is_empty() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the shim closed the connection",
        )),
        None => Ok(reply),
    }
}

pub fn signal(paths: &Paths, id: &str, sig: i32) -> io::Result<()> {
    request(paths, id, &format!("signal {sig}")).map(|_| ())
}

/// A connection that receives only the exit frame.
pub struct Waiter(UnixStream);

impl Waiter {
    pub fn open(paths: &Paths, id: &str) -> io::Result<Waiter> {
        let mut s = connect(paths, id)?;
        s.write_all(b"wait\n")?;
        Ok(Waiter(s))
    }

    /// The exit code, or None when `timeout` passed first. A shim that went
    /// away without an exit frame counts as exited (Err).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Option<i32>> {
        self.0.set_read_timeout(timeout)?;
        loop {
            match proto::read_frame(&mut self.0) {
                Ok((proto::EXIT, payload)) => return Ok(proto::exit_code(&payload)),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }
}
