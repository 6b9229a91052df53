//! `skiff exec -t`: the process gets a pty made inside the container (its
//! controlling terminal, so a shell has job control), the master comes back
//! over a console socket, and this single-threaded shim relays it to its own
//! stdio (the user's terminal, put in raw mode) and follows window-size
//! changes (SIGWINCH) with TIOCSWINSZ.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};

use super::console::{set_window_size, window_size, ConsoleSocket};
use super::ShimArgs;
use crate::runtime::container::executor::SkiffExecutor;
use crate::runtime::container::user::Identity;
use crate::runtime::container::Paths;

/// Restores the terminal's mode on drop.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enable() -> RawMode {
        let stdin = io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// Removes a file on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The OCI process for the exec: the container's own (capabilities, rlimits,
/// no_new_privs…) with this command, environment, directory and user, and
/// a terminal. libcontainer takes a whole process or none for tenants.
fn process_json(
    paths: &Paths,
    args: &ShimArgs,
    ident: &Identity,
    cwd: Option<String>,
) -> Result<serde_json::Value, String> {
    let config = paths.dir(&args.id).join("config.json");
    let text =
        std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let spec: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut process = spec["process"].clone();
    if !process.is_object() {
        return Err(format!("{}: no process", config.display()));
    }
    process["terminal"] = true.into();
    process["args"] = args.command.clone().into();
    process["env"] = args.env.clone().into();
    if let Some(cwd) = cwd {
        process["cwd"] = cwd.into();
    }
    process["user"] = serde_json::json!({
        "uid": ident.uid,
        "gid": ident.gid,
        "additionalGids": ident.additional_gids,
    });
    Ok(process)
}

pub(super) fn exec(
    args: &ShimArgs,
    paths: &Paths,
    ident: &Identity,
    cwd: Option<String>,
) -> Result<i32, String> {
    let dir = paths.run_dir(&args.id);
    let me = std::process::id();
    let json = TempFile(dir.join(format!("exec-{me}.json")));
    let process = process_json(paths, args, ident, cwd)?;
    std::fs::write(&json.0, process.to_string())
        .map_err(|e| format!("{}: {e}", json.0.display()))?;
    let console = ConsoleSocket::bind(&dir.join(format!("exec-{me}.sock")))
        .map_err(|e| format!("the console socket: {e}"))?;
    let pid = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(paths.runtime_root())
        .map_err(|e| e.to_string())?
        .with_executor(SkiffExecutor::for_bundle(&paths.dir(&args.id))?)
        .with_console_socket(Some(console.path()))
        .as_tenant()
        .with_process(Some(json.0.as_path()))
        .with_detach(true)
        .build()
        .map_err(|e| super::exec::build_error(paths, &args.id, e))?;
    drop(json);
    let master = console
        .receive()
        .map_err(|e| format!("receiving the terminal: {e}"))?;
    relay(&master)?;
    super::exec::wait(nix::unistd::Pid::from_raw(pid.as_raw()))
}

/// Copy our stdin to the pty and the pty to our stdout until the process's
/// side of the pty is closed.
fn relay(master: &OwnedFd) -> Result<(), String> {
    let stdin_fd = io::stdin();
    if let Some((rows, cols)) = window_size(&stdin_fd) {
        let _ = set_window_size(master, rows, cols);
    }
    let _raw = std::io::IsTerminal::is_terminal(&stdin_fd).then(RawMode::enable);
    // Blocked only now: the process was forked with our default mask.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGWINCH);
    mask.thread_block()
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let winch = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    let mut pty = File::from(
        master
            .try_clone()
            .map_err(|e| format!("dup the terminal: {e}"))?,
    );
    let mut stdin_open = true;
    let mut stdout = io::stdout();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let (pty_ev, in_ev, winch_ev) = {
            let mut fds = vec![
                PollFd::new(pty.as_fd(), PollFlags::POLLIN),
                PollFd::new(winch.as_fd(), PollFlags::POLLIN),
            ];
            if stdin_open {
                fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ev = |i: usize| {
                fds.get(i)
                    .and_then(PollFd::revents)
                    .unwrap_or(PollFlags::empty())
            };
            (ev(0), ev(2), ev(1))
        };
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if winch_ev.intersects(readable) {
            while let Ok(Some(_)) = winch.read_signal() {}
            if let Some((rows, cols)) = window_size(&stdin_fd) {
                let _ = set_window_size(master, rows, cols);
            }
        }
        if in_ev.intersects(readable) {
            match stdin_fd.lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if pty.write_all(&buf[..n]).is_err() {
                        stdin_open = false;
                    }
                }
            }
        }
        if pty_ev.intersects(readable) {
            match pty.read(&mut buf) {
                // EIO: the last holder of the process's side closed it.
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => {
                    let _ = stdout.write_all(&buf[..n]);
                    let _ = stdout.flush();
                }
            }
        }
    }
}
