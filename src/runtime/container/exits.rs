//! Waiting for containers to exit without a thread per container: an agent
//! watches every container of every pod at once. Each wait is one `wait`
//! request on the container's shim socket (shim/proto.rs), read on a tokio
//! Unix socket, so a thousand waits are a thousand idle sockets on one
//! thread. The shim sends the exit frame only after it has recorded the exit
//! (records.rs), so when a wait ends the record already says how.

use std::io;

use futures::stream::{FuturesUnordered, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::shim::proto;
use super::Paths;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The shim reported the container's exit code.
    Code(i32),
    /// No shim answers (the container had already exited, or its shim was
    /// killed): the record, once reconciled, says what happened.
    NoShim,
}

/// Wait for container `id` to exit.
pub async fn wait(paths: &Paths, id: &str) -> io::Result<Exit> {
    // A connect to a local socket does not wait on the peer, so the blocking
    // one is fine; tokio takes the stream once it is non-blocking.
    let connected = super::client::connect(paths, id).and_then(|s| {
        s.set_nonblocking(true)?;
        Ok(s)
    });
    let std_stream = match connected {
        Ok(s) => s,
        Err(e) if gone(&e) => return Ok(Exit::NoShim),
        Err(e) => return Err(e),
    };
    let mut s = UnixStream::from_std(std_stream)?;
    s.write_all(b"wait\n").await?;
    loop {
        let mut head = [0u8; 5];
        match s.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof || gone(&e) => {
                return Ok(Exit::NoShim)
            }
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        // Only the exit frame comes on a `wait` connection, and it is 4
        // bytes; anything else is skipped without trusting its length.
        let mut payload = vec![0u8; len.min(64)];
        s.read_exact(&mut payload).await?;
        if head[0] == proto::EXIT {
            return match proto::exit_code(&payload) {
                Some(code) => Ok(Exit::Code(code)),
                None => Ok(Exit::NoShim),
            };
        }
        if len > payload.len() {
            return Ok(Exit::NoShim);
        }
    }
}

fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

/// The exits of `ids` as they happen, in the order they happen.
pub fn wait_all<'a>(
    paths: &'a Paths,
    ids: impl IntoIterator<Item = String>,
) -> impl Stream<Item = (String, io::Result<Exit>)> + 'a {
    ids.into_iter()
        .map(|id| async move {
            let exit = wait(paths, &id).await;
            (id, exit)
        })
        .collect::<FuturesUnordered<_>>()
}

/// `wait_all` owning its paths, for a stream that outlives the caller (the
/// agent's PodRuntime::exits).
pub fn wait_all_owned(
    paths: Paths,
    ids: impl IntoIterator<Item = String>,
) -> impl Stream<Item = (String, io::Result<Exit>)> + Send + 'static {
    let paths = std::sync::Arc::new(paths);
    ids.into_iter()
        .map(|id| {
            let paths = paths.clone();
            async move {
                let exit = wait(&paths, &id).await;
                (id, exit)
            }
        })
        .collect::<FuturesUnordered<_>>()
}
