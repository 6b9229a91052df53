//! `skiff shim run`: create the container with libcontainer, report
//! readiness to whoever spawned us (one line on stdout: `ok <pid>` or
//! `error <text>`), start it (at once, or when a client attaches with
//! `start` under `--wait-start`), then supervise it: copy its output into the
//! CRI log and to attached clients, serve the control socket, reap it, record
//! its exit and clean up. Detached from the spawner (own session), so it
//! outlives a CLI that is killed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::console::ConsoleSocket;
use super::proto;
use super::ShimArgs;
use crate::runtime::container::executor::SkiffExecutor;
use crate::runtime::container::logs::{LineBuffer, LogWriter, Stream};
use crate::runtime::container::records::Records;
use crate::runtime::container::{cgroups, client, rootfs, Paths};

// A child of this module (not a sibling) so it can reach the Shim's fields.
#[path = "clients.rs"]
mod clients;

use clients::{flush, read_client, Client, Mode};

/// The write end of the SIGCHLD self-pipe, for the signal handler.
static SIGCHLD_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_: nix::libc::c_int) {
    let fd = SIGCHLD_FD.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking, so a
    // full pipe (wake-up already pending) just drops the byte.
    unsafe { nix::libc::write(fd, b"x".as_ptr().cast(), 1) };
}

/// Output still being copied after the container's init exited is drained
/// for at most this long (a process outside the PID namespace could hold
/// the pipe open forever).
const DRAIN: Duration = Duration::from_secs(2);
/// An attached client that reads slower than this much output is dropped
/// rather than letting it stall the log.
const CLIENT_BUFFER: usize = 4 << 20;

/// How long the shim waits for quiet after the start before it gives back
/// its start-up pages (again).
const IDLE_TRIM_MS: u16 = 1000;

/// The first give-back comes this long after the start, busy or not: late
/// enough to stay off the path of a container that exits at once (reading
/// smaps and unmapping the pages takes about a millisecond of CPU), early
/// enough that a chatty container's shim is small within a blink.
const FIRST_TRIM: Duration = Duration::from_millis(50);

pub fn main(args: ShimArgs) -> ExitCode {
    // Own session: no signal aimed at the spawner's process group or
    // terminal reaches us, and we outlive it.
    let _ = nix::unistd::setsid();
    // Orphans of the container's setup are reparented to us and reaped.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut ready = Ready(Some(io::stdout()));
    match Shim::create(&args, &mut ready) {
        Ok(mut shim) => {
            let code = shim.supervise(&mut ready);
            let again = shim.restart_wait(&args, code);
            let paths = shim.paths.clone();
            shim.finish(code, again.is_some());
            if let Some(wait) = again {
                relaunch(&paths, &args, wait);
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            tracing::error!("{msg}");
            ready.send(&format!("error {}", msg.replace('\n', " ")));
            ExitCode::FAILURE
        }
    }
}

/// Under the container's restart policy: wait, then launch it again with
/// a new shim (carrying the count and the wait on), unless it was removed,
/// started by someone else or stopped by hand meanwhile.
fn relaunch(paths: &Paths, args: &ShimArgs, wait: Duration) {
    std::thread::sleep(wait);
    let state = match paths.open_records() {
        Ok(s) => s,
        Err(e) => return tracing::error!("restarting: {e}"),
    };
    match state.get(&args.id) {
        Ok(Some(r)) if r.status == crate::runtime::container::records::Status::Restarting => {}
        _ => return,
    }
    if crate::runtime::container::lifecycle::stopped_by_hand(paths, &args.id) {
        let _ = state.cancel_restart(&args.id);
        return;
    }
    let count = args.restart_count.saturating_add(1);
    if let Err(e) = state.set_restart_count(&args.id, count) {
        tracing::warn!("recording the restart: {e}");
    }
    let launch = crate::runtime::container::create::Launch {
        log_max_size: args.log_max_size,
        wait_start: false,
        debug: args.debug,
        shim_binary: None,
        restart_count: count,
        restart_delay: wait,
    };
    if let Err(e) = crate::runtime::container::create::launch(paths, &state, &args.id, &launch) {
        tracing::error!("restarting the container: {e}");
        let _ = state.cancel_restart(&args.id);
    }
}

/// The readiness line to the spawner, written once.
struct Ready(Option<io::Stdout>);

impl Ready {
    fn send(&mut self, line: &str) {
        if let Some(mut out) = self.0.take() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// Stop holding the spawner's pipe: it sees EOF.
    fn close() {
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(null.as_fd());
        }
    }
}

struct Shim {
    id: String,
    paths: Paths,
    state: Records,
    log: LogWriter,
    container: Container,
    pid: Pid,
    cgroups_path: String,
    auto_remove: bool,
    policy: crate::runtime::container::restart::RestartPolicy,
    /// A client sent a signal (stop, kill, rm -f): no restart.
    stopped_by_request: bool,
    /// Since when the container has run (the back-off resets after 10 s).
    ran_since: Option<Instant>,
    /// On the node bridge: the exit gives back its address and veth.
    bridged: bool,
    /// Our private mount namespace, with the container's rootfs in it, until
    /// the container has started.
    mounts: Option<rootfs::MountNamespace>,
    started: bool,
    /// When the first give-back of start-up pages is due (see FIRST_TRIM).
    first_trim: Option<Instant>,
    out: Option<File>,
    err: Option<File>,
    out_lines: LineBuffer,
    err_lines: LineBuffer,
    stdin: Option<File>,
    /// The pty master for `-t` (also `out`, duplicated): for resize.
    pty: Option<OwnedFd>,
    sigchld: File,
    listener: UnixListener,
    clients: Vec<Client>,
    /// The health check, when the container has one.
    health: Option<super::probe::Prober>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn set_signal(sig: Signal, handler: SigHandler) {
    let act = SigAction::new(
        handler,
        SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: the handlers installed here are async-signal-safe.
    let _ = unsafe { sigaction(sig, &act) };
}

impl Shim {
    fn create(args: &ShimArgs, ready: &mut Ready) -> Result<Shim, String> {
        // Absolute: leaving the private mount namespace at the end resets
        // the working directory.
        let absolute = |p: &std::path::Path| {
            std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
        };
        let paths = Paths::new(&absolute(&args.root)?, &absolute(&args.run_dir)?);
        let id = args.id.clone();
        let state = paths.open_records().map_err(|e| e.to_string())?;
        let record = state
            .get(&id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no record for container {id}"))?;
        let spec = &record.config.spec;
        let (tty, interactive) = (spec.process.tty, spec.process.stdin);
        let auto_remove = record.config.options.auto_remove;
        let policy = record.config.options.restart;
        let bridged = spec.bridged();
        let log_path = spec.log_path.clone().unwrap_or_else(|| paths.log(&id));
        let cgroups_path = record.config.cgroups_path.clone();
        let health = super::probe::Prober::new(&record, args);
        let snapshots = record.config.snapshots.clone();
        if snapshots.is_empty() {
            return Err(format!("the record of {id} names no image layers"));
        }
        // The rootfs is mounted in a mount namespace of our own (see
        // rootfs.rs), which the container's is copied from; we leave it once
        // the container runs. --rm: the upper layer dies with the container,
        // so it is never synced.
        let mounts = rootfs::MountNamespace::enter().map_err(|e| e.to_string())?;
        rootfs::Overlay::new(snapshots, &paths.dir(&id))
            .volatile(auto_remove)
            .mount()
            .map_err(|e| e.to_string())?;
        // A missing working directory is created, as docker does (the
        // container's init would fail its chdir with an opaque error).
        let cwd = spec.process.cwd.clone().unwrap_or_else(|| {
            crate::runtime::container::spec::ImageProcess::from_config(&record.config.image_config)
                .workdir
        });
        if cwd.starts_with('/') && cwd != "/" {
            crate::runtime::container::copy::Root::at(&paths.rootfs(&id), &id)
                .and_then(|root| root.make_dir_all(&cwd))
                .map_err(|e| format!("creating the working directory {cwd}: {e}"))?;
        }

        let log = LogWriter::open(&log_path, args.log_max_size)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;

        let (sig_r, sig_w) = pipe()?;
        nix::fcntl::fcntl(
            &sig_w,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| format!("fcntl: {e}"))?;
        SIGCHLD_FD.store(sig_w.as_raw_fd(), Ordering::Relaxed);
        // Leaked on purpose: the handler writes to it for the shim's lifetime.
        std::mem::forget(sig_w);
        set_signal(Signal::SIGCHLD, SigHandler::Handler(on_sigchld));
        // The container inherits our dispositions: it must get SIGPIPE's
        // default (Rust ignores it at start-up) and a clean SIGTERM/SIGINT.
        set_signal(Signal::SIGPIPE, SigHandler::SigDfl);

        let run_dir = paths.run_dir(&id);
        fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let sock = paths.socket(&id);
        let _ = fs::remove_file(&sock);
        let listener = client::with_short_path(&sock, |p| UnixListener::bind(p))
            .map_err(|e| format!("{}: {e}", sock.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;

        // The container inherits it (runc does the same in its init).
        crate::runtime::container::seccomp::keyring::join_new_session(&id)
            .map_err(|e| format!("joining a new session keyring: {e}"))?;
        let mut builder = ContainerBuilder::new(id.clone(), SyscallType::default())
            .with_root_path(paths.runtime_root())
            .map_err(|e| e.to_string())?
            .with_executor(SkiffExecutor::for_bundle(&paths.dir(&id))?);
        // -t: libcontainer makes the pty inside the container and hands us
        // the master; otherwise pipes (and /dev/null for stdin without -i).
        let console = if tty {
            let c = ConsoleSocket::bind(&run_dir.join("console.sock"))
                .map_err(|e| format!("the console socket: {e}"))?;
            builder = builder.with_console_socket(Some(c.path()));
            Some(c)
        } else {
            None
        };
        let mut pipes = None;
        if console.is_none() {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            builder = builder.with_stdout(out_w).with_stderr(err_w);
            let stdin = if interactive {
                let (in_r, in_w) = pipe()?;
                builder = builder.with_stdin(in_r);
                Some(File::from(in_w))
            } else {
                let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
                builder = builder.with_stdin(OwnedFd::from(null));
                None
            };
            pipes = Some((File::from(out_r), File::from(err_r), stdin));
        }
        let container = builder
            .as_init(paths.dir(&id))
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| format!("creating the container: {e}"))?;

        let (out, err, stdin, pty) = match (console, pipes) {
            (Some(c), _) => {
                let master = c
                    .receive()
                    .map_err(|e| format!("receiving the container's terminal: {e}"))?;
                let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
                let out = File::from(dup(&master)?);
                let stdin = interactive
                    .then(|| dup(&master))
                    .transpose()?
                    .map(File::from);
                (Some(out), None, stdin, Some(master))
            }
            (None, Some((out, err, stdin))) => (Some(out), Some(err), stdin, None),
            (None, None) => return Err("no stdio for the container".into()),
        };
        // Our end of the container's stdio is open; now a closed client must
        // not kill us.
        set_signal(Signal::SIGPIPE, SigHandler::SigIgn);
        let pid = container
            .pid()
            .map(|p| Pid::from_raw(p.as_raw()))
            .ok_or("libcontainer reported no init pid")?;

        let mut shim = Shim {
            id,
            paths,
            state,
            log,
            container,
            pid,
            cgroups_path,
            auto_remove,
            policy,
            stopped_by_request: false,
            ran_since: None,
            bridged,
            mounts: Some(mounts),
            started: false,
            first_trim: None,
            out,
            err,
            out_lines: LineBuffer::default(),
            err_lines: LineBuffer::default(),
            stdin,
            pty,
            sigchld: File::from(sig_r),
            listener,
            clients: Vec::new(),
            health,
        };
        ready.send(&format!("ok {pid}"));
        if !args.wait_start {
            Ready::close();
            shim.start()?;
        }
        Ok(shim)
    }

    fn start(&mut self) -> Result<(), String> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        self.container
            .start()
            .map_err(|e| format!("starting the container: {e}"))?;
        if let Err(e) = self
            .state
            .set_running(&self.id, self.pid.as_raw(), Utc::now())
        {
            tracing::warn!("recording the start: {e}");
        }
        self.first_trim = Some(Instant::now() + FIRST_TRIM);
        self.ran_since = Some(Instant::now());
        if let Some(p) = self.health.as_mut() {
            p.on_start(&self.state, &self.id);
        }
        // The container has its own copy of the rootfs mount now. Back in the
        // host's namespace, the private one goes away with its copies of the
        // host's mounts (which, where the host's mounts are private, would
        // otherwise pin what the host unmounts later, such as other
        // containers' network namespace handles).
        if let Some(m) = self.mounts.take() {
            if let Err(e) = m.leave() {
                tracing::warn!("{e}");
            }
        }
        // Back in the host's mount namespace, where the pin of a `--network
        // none` namespace was made: the container's init holds the
        // namespace now, and the pin would keep it alive after the exit.
        let isolated = crate::runtime::container::create::isolated_netns(&self.paths, &self.id);
        if let Err(e) = crate::net::netns::remove(&isolated) {
            tracing::warn!("unpinning {}: {e}", isolated.display());
        }
        Ok(())
    }

    /// The poll loop; returns the container's exit code.
    fn supervise(&mut self, ready: &mut Ready) -> i32 {
        let mut exit: Option<i32> = None;
        let mut drain_until: Option<Instant> = None;
        // Once the container runs and things go quiet, the start-up code
        // pages are given back (see trim.rs); until then poll with a timeout.
        let mut idle_trimmed = false;
        // Under --wait-start, the spawner's stdout pipe tells us if it died
        // before attaching: then start anyway (docker keeps such containers).
        let mut spawner = if self.started {
            None
        } else {
            Some(io::stdout())
        };
        loop {
            if let Some(until) = drain_until {
                if (self.out.is_none() && self.err.is_none()) || Instant::now() >= until {
                    break;
                }
            }
            // Rounded up: a timeout truncated to whole milliseconds would
            // wake early and spin until the deadline.
            let until = |t: Instant| {
                let left = t.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX)
            };
            let probe_due = self
                .health
                .as_ref()
                .filter(|_| exit.is_none())
                .and_then(|p| p.wakeup());
            let deadline = [drain_until, self.first_trim, probe_due]
                .into_iter()
                .flatten()
                .min();
            let timeout = match deadline {
                Some(d) => until(d),
                None if self.started && !idle_trimmed => PollTimeout::from(IDLE_TRIM_MS),
                None => PollTimeout::NONE,
            };
            let mut woke = true;
            let revents = {
                let mut fds = vec![
                    PollFd::new(self.sigchld.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                ];
                let out_fd = self.out.as_ref().map(|f| f.as_fd());
                let err_fd = self.err.as_ref().map(|f| f.as_fd());
                let spawner_fd = spawner.as_ref().map(|s| s.as_fd());
                let probe_fd = self.health.as_ref().and_then(|p| p.fd());
                for fd in [out_fd, err_fd, spawner_fd, probe_fd] {
                    // A closed slot polls nothing (fd -1 is ignored by poll).
                    fds.push(match fd {
                        Some(fd) => PollFd::new(fd, PollFlags::POLLIN),
                        None => PollFd::new(self.sigchld.as_fd(), PollFlags::empty()),
                    });
                }
                for c in &self.clients {
                    let mut flags = PollFlags::POLLIN;
                    if !c.out.is_empty() {
                        flags |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(c.stream.as_fd(), flags));
                }
                match poll(&mut fds, timeout) {
                    Ok(0) => woke = false,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        tracing::error!("poll: {e}");
                        break;
                    }
                }
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                    .collect::<Vec<_>>()
            };
            // Clients (an attach, the agent's requests) are what fault in
            // much of the code again; a container's output is not.
            let served = revents
                .iter()
                .enumerate()
                .any(|(i, r)| (i == 1 || i >= 6) && !r.is_empty());
            if self.first_trim.is_some_and(|f| Instant::now() >= f) {
                self.first_trim = None;
                super::trim::release_startup_pages();
            } else if !woke && self.started && self.first_trim.is_none() && !idle_trimmed {
                idle_trimmed = true;
                super::trim::release_startup_pages();
            } else if served {
                // Serving a client faults in as much code as the start
                // did, then the shim may sit idle for days: give it back
                // again after the next idle second.
                idle_trimmed = false;
            }
            let ready_in = |f: PollFlags| {
                f.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            };
            if ready_in(revents[0]) {
                let mut buf = [0u8; 64];
                let _ = self.sigchld.read(&mut buf);
                if let Some(code) = self.reap() {
                    exit.get_or_insert(code);
                    drain_until.get_or_insert(Instant::now() + DRAIN);
                }
            }
            if ready_in(revents[2]) {
                self.copy_output(Stream::Stdout);
            }
            if ready_in(revents[3]) {
                self.copy_output(Stream::Stderr);
            }
            if spawner.is_some() && revents[4].intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                spawner = None;
                if let Err(e) = self.start() {
                    tracing::error!("{e}");
                }
            }
            for (i, c) in self.clients.iter_mut().enumerate() {
                let ev = revents.get(6 + i).copied().unwrap_or(PollFlags::empty());
                if ev.contains(PollFlags::POLLOUT) {
                    flush(c);
                }
                if ready_in(ev) {
                    read_client(c);
                }
            }
            self.serve_clients();
            if let Some(p) = self.health.as_mut() {
                if ready_in(revents[5]) {
                    p.read_output();
                }
                if exit.is_none() && self.started {
                    p.tick(&self.state, self.pid);
                } else if exit.is_some() {
                    p.stop();
                }
            }
            if ready_in(revents[1]) {
                self.accept();
            }
            if self.started && spawner.is_some() {
                spawner = None;
                ready.0 = None;
                Ready::close();
            }
        }
        exit.unwrap_or(255)
    }

    /// How long to wait before the container is started again, when its
    /// restart policy wants that after exit `code`.
    fn restart_wait(&self, args: &ShimArgs, code: i32) -> Option<Duration> {
        if self.auto_remove
            || !self
                .policy
                .wants_restart(code, args.restart_count, self.stopped_by_request)
        {
            return None;
        }
        let ran = self.ran_since.map_or(Duration::ZERO, |t| t.elapsed());
        Some(crate::runtime::container::restart::next_delay(
            Duration::from_millis(args.restart_delay_ms),
            ran,
        ))
    }

    /// Reap children; the container's init gives its exit code.
    fn reap(&mut self) -> Option<i32> {
        let mut code = None;
        loop {
            let (pid, c) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, c)) => (pid, c),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => return code,
                Ok(_) => continue,
            };
            if pid == self.pid {
                code = Some(c);
            } else if let Some(p) = self.health.as_mut() {
                p.reaped(pid, c);
            }
        }
    }

    fn copy_output(&mut self, stream: Stream) {
        let (file, lines) = match stream {
            Stream::Stdout => (&mut self.out, &mut self.out_lines),
            Stream::Stderr => (&mut self.err, &mut self.err_lines),
        };
        let Some(f) = file.as_mut() else { return };
        let mut buf = [0u8; 32 * 1024];
        let (data, eof) = match f.read(&mut buf) {
            Ok(0) => (Vec::new(), true),
            Ok(n) => (buf[..n].to_vec(), false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            // EIO: the pty's last slave closed.
            Err(_) => (Vec::new(), true),
        };
        let mut out = lines.push(&data);
        if eof {
            *file = None;
            out.extend(lines.finish());
        }
        for (partial, text) in out {
            if let Err(e) = self.log.write_line(stream, partial, &text) {
                tracing::warn!("writing the log: {e}");
            }
        }
        if !data.is_empty() {
            let kind = match stream {
                Stream::Stdout => proto::STDOUT,
                Stream::Stderr => proto::STDERR,
            };
            let frame = proto::frame(kind, &data);
            for c in self.clients.iter_mut().filter(|c| c.mode == Mode::Attached) {
                c.out.extend_from_slice(&frame);
                if c.out.len() > CLIENT_BUFFER {
                    c.dead = true;
                }
                flush(c);
            }
        }
    }

    /// Record the exit, release everything, tell the clients, and go
    /// (`restarting`: we start it again after the back-off).
    fn finish(mut self, code: i32, restarting: bool) {
        // One read of mountinfo for both steps below.
        let hierarchies = cgroups::Hierarchies::detect();
        // Read before libcontainer removes the cgroup; unreadable counts as no.
        let oom = hierarchies
            .as_ref()
            .is_ok_and(|h| h.oom_killed(&self.cgroups_path).unwrap_or(false));
        // The container has exited: what is left of it is an empty cgroup
        // per hierarchy and libcontainer's state directory. Removing them
        // directly saves libcontainer's delete, which builds a cgroup manager
        // from /proc (through pathrs) and loads its state again on every
        // exit. If a process is still inside (a straggler the
        // kernel has not reaped yet), libcontainer's delete kills and waits.
        let removed = match &hierarchies {
            Ok(h) => h.remove(&self.cgroups_path).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match removed {
            Ok(()) => {
                let state = self.paths.runtime_root().join(&self.id);
                if let Err(e) = fs::remove_dir_all(&state) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!("{}: {e}", state.display());
                    }
                }
            }
            Err(e) => {
                tracing::debug!("removing the cgroup directly: {e}; asking libcontainer");
                if let Err(e) = self.container.delete(true) {
                    tracing::warn!("deleting the container from libcontainer: {e}");
                }
            }
        }
        // The namespace has no process left: give back its address and
        // published ports now (a container is not restarted in place), and
        // delete its veth once the exit is reported (see HostBridge::release).
        let net = crate::runtime::container::host_bridge(&self.paths, None);
        let veth = match self.bridged.then(|| net.release(&self.id)) {
            None => None,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                tracing::warn!("releasing the network: {e}");
                None
            }
        };
        let recorded = if self.auto_remove {
            self.state.remove(&self.id)
        } else if restarting {
            self.state.set_restarting(&self.id, code, Utc::now(), oom)
        } else {
            self.state.set_exited(&self.id, code, Utc::now(), oom)
        };
        if let Err(e) = recorded {
            tracing::error!("recording the exit: {e}");
        }
        let _ = fs::remove_dir_all(self.paths.run_dir(&self.id));
        let frame = proto::frame(proto::EXIT, &code.to_be_bytes());
        for c in &mut self.clients {
            if matches!(c.mode, Mode::Attached | Mode::Waiter) {
                c.out.extend_from_slice(&frame);
            }
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = c.stream.write_all(&c.out);
        }
        // Reported; the rest is nobody's wait. Should we die before the
        // files are gone, the next reconcile deletes the directory of a
        // container that has no record.
        if self.auto_remove {
            let dir = self.paths.dir(&self.id);
            match fs::remove_dir_all(&dir) {
                // A reconcile may have been quicker.
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!("{}: {e}", dir.display())
                }
                _ => {}
            }
        }
        if let Some(veth) = veth {
            net.remove_veth(&veth);
        }
    }
}
