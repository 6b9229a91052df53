//! The foreground half of `skiff run`: attach to the shim (which starts the
//! container only then, so no output is missed), copy its output to ours,
//! forward stdin (-i), window size (-t) and SIGINT/SIGTERM, and return the
//! container's exit code.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ChildStdout;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};

use crate::runtime::container::client;
use crate::runtime::container::shim::proto;
use crate::runtime::container::Paths;

/// Restores the terminal's mode on drop.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enable() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

fn window_size() -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass.
    let rc = unsafe { nix::libc::ioctl(0, nix::libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Docker's refusal of `-it` without a terminal on stdin: there is no
/// terminal to put in raw mode and give to the container.
pub fn check_tty(interactive: bool, tty: bool) -> anyhow::Result<()> {
    if interactive && tty && !std::io::stdin().is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    Ok(())
}

pub fn attach_and_start(
    paths: &Paths,
    id: &str,
    interactive: bool,
    tty: bool,
    shim_stdout: Option<ChildStdout>,
) -> anyhow::Result<i32> {
    let mut sock = client::connect(paths, id).context("attaching to the container")?;
    let req = if interactive {
        "attach start stdin\n"
    } else {
        "attach start\n"
    };
    sock.write_all(req.as_bytes())
        .context("attaching to the container")?;
    // Held until the end: the shim takes its closing as "the CLI died before
    // attaching" and starts the container without us.
    let _shim_stdout = shim_stdout;

    // Signals go to the container, not to us: block them here (threads
    // spawned below inherit the mask) and wait for them on one thread.
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set.thread_block().context("blocking signals")?;
    let raw = (tty && std::io::stdin().is_terminal()).then(RawMode::enable);
    {
        let paths = paths.clone();
        let id = id.to_string();
        let saved = raw.as_ref().and_then(|r| r.0.clone());
        std::thread::spawn(move || loop {
            let Ok(sig) = set.wait() else { return };
            if sig == Signal::SIGWINCH {
                if let Some((r, c)) = window_size() {
                    let _ = client::request(&paths, &id, &format!("resize {r} {c}"));
                }
            } else if tty {
                // As docker (signals are proxied in non-TTY mode only): a
                // signal ends the CLI, the terminal restored; the container
                // goes on (Ctrl-C reaches it through the terminal).
                drop(RawMode(saved));
                std::process::exit(128 + sig as i32);
            } else if client::signal(&paths, &id, sig as i32).is_err() {
                return;
            }
        });
    }
    let _raw = raw;
    if tty {
        if let Some((r, c)) = window_size() {
            let _ = client::request(paths, id, &format!("resize {r} {c}"));
        }
    }
    if interactive {
        let mut w = sock.try_clone().context("attaching stdin")?;
        std::thread::spawn(move || forward_stdin(&mut w));
    }
    read_output(&mut sock)
}

fn forward_stdin(w: &mut UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&proto::frame(proto::STDIN, &buf[..n])).is_err() {
                    return;
                }
            }
        }
    }
    let _ = w.write_all(&proto::frame(proto::STDIN, &[]));
}

fn read_output(sock: &mut UnixStream) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        let (kind, payload) = match proto::read_frame(sock) {
            Ok(f) => f,
            Err(e) => return Err(e).context("the container's shim went away"),
        };
        match kind {
            proto::STDOUT => {
                let mut o = stdout.lock();
                let _ = o.write_all(&payload);
                let _ = o.flush();
            }
            proto::STDERR => {
                let mut e = stderr.lock();
                let _ = e.write_all(&payload);
                let _ = e.flush();
            }
            proto::EXIT => return proto::exit_code(&payload).context("malformed exit frame"),
            _ => {}
        }
    }
}
