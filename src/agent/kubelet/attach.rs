//! attach: the container's own main process, reached through its shim as
//! `skiff attach` reaches it (runtime/container/shim/proto.rs), given to
//! a transport as a [`Proc`]. The shim's frames (`[kind][len u32][payload]`:
//! stdout, stderr, then the exit) are split onto two pipes and the exit
//! code; the client's stdin goes back as stdin frames, an empty one at its
//! end when the container has `stdinOnce`. Leaving (the session dropping the Proc) closes our socket, and the
//! container runs on.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::exec::Params;
use super::stdio::{Proc, Reader, Writer, CHUNK};
use crate::runtime::container::shim::proto;
use crate::runtime::pod::PodRuntime;

/// The largest shim frame taken (the shim sends what one read of the
/// container's output gave).
const FRAME_MAX: usize = 1 << 20;
/// Each pipe's buffer between the shim's frames and the transport.
const PIPE: usize = 64 * 1024;

/// Ends the tasks behind an attachment when dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Attach to container `id`; with `stdin_once` (the container's
/// `stdinOnce`) the end of the client's input is the end of the
/// container's, otherwise its stdin stays open for the next attach.
pub async fn open<R: PodRuntime>(
    runtime: &R,
    id: &str,
    p: &Params,
    stdin_once: bool,
) -> Result<Proc, String> {
    let a = runtime
        .attach(id, p.stdin, stdin_once)
        .await
        .map_err(|e| e.to_string())?;
    a.stream
        .set_nonblocking(true)
        .map_err(|e| format!("attaching: {e}"))?;
    let sock = tokio::net::UnixStream::from_std(a.stream).map_err(|e| format!("attaching: {e}"))?;
    let (rd, mut wr) = sock.into_split();
    let pipe = |on: bool| on.then(|| tokio::io::duplex(PIPE));
    let out = pipe(p.stdout);
    // With a terminal everything comes as stdout.
    let err = pipe(p.stderr && !a.tty);
    let (exit_tx, exit_rx) = oneshot::channel();
    let (out_w, out_r) = out.map_or((None, None), |(w, r)| (Some(w), Some(r)));
    let (err_w, err_r) = err.map_or((None, None), |(w, r)| (Some(w), Some(r)));
    let mut tasks = vec![tokio::spawn(demux(rd, out_w, err_w, exit_tx))];
    let stdin = if a.stdin {
        let (w, mut r) = tokio::io::duplex(PIPE);
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if wr
                            .write_all(&proto::frame(proto::STDIN, &buf[..n]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            if stdin_once {
                let _ = wr.write_all(&proto::frame(proto::STDIN, &[])).await;
            }
            // Keep our half open: closing it would read as having left.
            std::future::pending::<()>().await;
        }));
        Some(Box::new(w) as Writer)
    } else {
        // Held until the end: a closed socket is a client that left.
        tasks.push(tokio::spawn(async move {
            let _wr = wr;
            std::future::pending::<()>().await;
        }));
        None
    };
    let terminal = a.terminal;
    let resize = a.tty.then(|| {
        // One resize at a time, in order, the latest winning: kubectl
        // sends a size one larger and then the real one (to make the
        // program redraw), and two resizes done at once could land the
        // wrong way round.
        let (tx, mut rx) = tokio::sync::watch::channel(None::<(u16, u16)>);
        tasks.push(tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some((w, h)) = *rx.borrow_and_update() else {
                    continue;
                };
                let t = terminal.clone();
                match tokio::task::spawn_blocking(move || t.resize(h, w)).await {
                    Ok(Err(e)) => tracing::debug!("attach: resizing: {e}"),
                    Err(e) => tracing::debug!("attach: resizing: {e}"),
                    Ok(Ok(())) => {}
                }
            }
        }));
        Box::new(move |w: u16, h: u16| {
            let _ = tx.send(Some((w, h)));
        }) as super::stdio::Resize
    });
    let tasks = Tasks(tasks);
    Ok(Proc {
        stdin,
        stdout: out_r.map(|r| Box::new(r) as Reader),
        stderr: err_r.map(|r| Box::new(r) as Reader),
        resize,
        done: Box::pin(async move {
            let _tasks = tasks;
            exit_rx.await.ok()
        }),
    })
}

/// Split the shim's frames: output onto the pipes (dropped, so the
/// transport sees their ends, at the exit), the exit code to `exit`.
async fn demux(
    mut rd: tokio::net::unix::OwnedReadHalf,
    mut out: Option<DuplexStream>,
    mut err: Option<DuplexStream>,
    exit: oneshot::Sender<i32>,
) {
    let mut head = [0u8; 5];
    loop {
        if rd.read_exact(&mut head).await.is_err() {
            // The shim went away without an exit: the session ends
            // without a code.
            return;
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > FRAME_MAX {
            tracing::warn!("attach: a shim frame of {len} bytes; leaving");
            return;
        }
        let mut payload = vec![0u8; len];
        if rd.read_exact(&mut payload).await.is_err() {
            return;
        }
        let pipe = match head[0] {
            proto::STDOUT => &mut out,
            proto::STDERR => &mut err,
            proto::EXIT => {
                if let Some(code) = proto::exit_code(&payload) {
                    drop((out, err));
                    let _ = exit.send(code);
                }
                return;
            }
            _ => continue,
        };
        // A client gone from one pipe must not stop the other's output.
        if let Some(w) = pipe {
            if w.write_all(&payload).await.is_err() {
                *pipe = None;
            }
        }
    }
}
