//! The foreground half of `skiff run` and `start -a`, and `skiff attach`:
//! attach to the shim (which, for run and start, starts the container only
//! then, so no output is missed), copy its output to ours, forward stdin
//! (-i), window size (-t) and SIGINT/SIGTERM, and return the container's
//! exit code, unless the user detaches with the detach keys (-it).

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::{ChildStdout, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use nix::sys::signal::{SigSet, Signal};

use super::detach_keys::{DetachKeys, Escape};
use crate::runtime::container::client;
use crate::runtime::container::records::Status;
use crate::runtime::container::shim::proto;
use crate::runtime::container::Paths;
use crate::runtime::engine::Engine;

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container (default
    /// ctrl-p,ctrl-q).
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (`--sig-proxy=false` to
    /// not).
    #[arg(long = "sig-proxy", value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    pub container: String,
}

/// How the CLI is attached.
pub struct Attach<'a> {
    pub paths: &'a Paths,
    pub id: &'a str,
    /// Our stdin becomes the container's.
    pub stdin: bool,
    pub tty: bool,
    /// Start it (run, start -a): the shim waits for this attach.
    pub start: bool,
    /// Signals to the CLI go to the container (non-TTY only, as docker).
    pub sig_proxy: bool,
    pub detach_keys: DetachKeys,
}

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

/// `skiff attach`.
pub fn attach(engine: &Engine, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let detach_keys = DetachKeys::parse(args.detach_keys.as_deref())?;
    let rec = engine.records()?.find(&args.container)?;
    match rec.status {
        Status::Running => {}
        Status::Paused => {
            anyhow::bail!("You cannot attach to a paused container, unpause it first")
        }
        Status::Restarting => {
            anyhow::bail!("You cannot attach to a restarting container, wait until it is running")
        }
        Status::Created | Status::Exited => {
            anyhow::bail!("You cannot attach to a stopped container, start it first")
        }
    }
    let tty = rec.config.options.tty;
    // Only a container made with -i has a stdin to give.
    let stdin = !args.no_stdin && rec.config.options.interactive;
    check_tty(stdin, tty)?;
    let code = attach_to(
        &Attach {
            paths: engine.paths(),
            id: &rec.id,
            stdin,
            tty,
            start: false,
            sig_proxy: args.sig_proxy,
            detach_keys,
        },
        None,
    )?;
    Ok(code.exit_code())
}

/// How an attachment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    /// The user typed the detach keys; the container goes on.
    Detached,
}

impl Ended {
    /// The CLI's: the container's code, or success on a detach.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Ended::Exited(code) => ExitCode::from((*code).clamp(0, 255) as u8),
            Ended::Detached => ExitCode::SUCCESS,
        }
    }
}

pub fn attach_to(a: &Attach, shim_stdout: Option<ChildStdout>) -> anyhow::Result<Ended> {
    let (paths, id, tty) = (a.paths, a.id, a.tty);
    let mut sock = match client::connect(paths, id) {
        Ok(s) => s,
        // Its shim is gone: it stopped between our read and now.
        Err(_) if !a.start => {
            anyhow::bail!("You cannot attach to a stopped container, start it first")
        }
        Err(e) => return Err(e).context("attaching to the container"),
    };
    let req = match (a.start, a.stdin) {
        (true, true) => "attach start stdin\n",
        (true, false) => "attach start\n",
        (false, true) => "attach stdin\n",
        (false, false) => "attach\n",
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
        let sig_proxy = a.sig_proxy;
        std::thread::spawn(move || loop {
            let Ok(sig) = set.wait() else { return };
            if sig == Signal::SIGWINCH {
                if let Some((r, c)) = window_size() {
                    let _ = client::request(&paths, &id, &format!("resize {r} {c}"));
                }
            } else if tty || !sig_proxy {
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
    let detached = Arc::new(AtomicBool::new(false));
    if a.stdin {
        let mut w = sock.try_clone().context("attaching stdin")?;
        // The detach keys are read from a terminal only (as docker's).
        let escape = tty.then(|| Escape::new(a.detach_keys.clone()));
        let detached = detached.clone();
        std::thread::spawn(move || forward_stdin(&mut w, escape, &detached));
    }
    read_output(&mut sock, &detached)
}

fn forward_stdin(w: &mut UnixStream, mut escape: Option<Escape>, detached: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let (data, detach) = match escape.as_mut() {
                    Some(e) => e.feed(&buf[..n]),
                    None => (buf[..n].to_vec(), false),
                };
                if !data.is_empty() && w.write_all(&proto::frame(proto::STDIN, &data)).is_err() {
                    return;
                }
                if detach {
                    // Leave without a word to the shim: the container keeps
                    // its terminal and runs on. Shutting the socket ends
                    // the output loop.
                    detached.store(true, Ordering::SeqCst);
                    let _ = w.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
    let _ = w.write_all(&proto::frame(proto::STDIN, &[]));
}

fn read_output(sock: &mut UnixStream, detached: &AtomicBool) -> anyhow::Result<Ended> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        let (kind, payload) = match proto::read_frame(sock) {
            Ok(f) => f,
            Err(_) if detached.load(Ordering::SeqCst) => return Ok(Ended::Detached),
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
            proto::EXIT => {
                return proto::exit_code(&payload)
                    .map(Ended::Exited)
                    .context("malformed exit frame")
            }
            _ => {}
        }
    }
}
