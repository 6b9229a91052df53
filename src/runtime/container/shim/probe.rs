//! The run shim's health prober: runs the container's health check
//! (runtime/container/health.rs) every interval through a fresh exec shim,
//! as `skiff exec` would, inside the poll loop's single thread: the probe's
//! output comes through a non-blocking pipe the loop polls, its exit
//! through the shim's SIGCHLD reaping, its deadline through the loop's
//! timeout. Results go to the record, where ps and inspect read them.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::ShimArgs;
use crate::runtime::container::cgroups::Hierarchies;
use crate::runtime::container::health::{self, HealthConfig, HealthState, ProbeResult};
use crate::runtime::container::records::{Record, Records};

/// After its timeout the exec shim kills the probe; if the exec shim
/// itself hangs (a wedged kernel call), we stop waiting this much later.
const GRACE: Duration = Duration::from_secs(5);

/// How to run a probe: what `skiff exec` would pass.
struct Target {
    root: std::path::PathBuf,
    run_dir: std::path::PathBuf,
    id: String,
    env: Vec<String>,
    user: Option<String>,
    workdir: Option<String>,
}

struct Running {
    pid: Pid,
    start: DateTime<Utc>,
    began: Instant,
    in_start_period: bool,
    output: Option<File>,
    buf: Vec<u8>,
    exit: Option<i32>,
}

pub(super) struct Prober {
    config: HealthConfig,
    command: Vec<String>,
    target: Target,
    cgroup: String,
    started: Option<(Instant, DateTime<Utc>)>,
    next_due: Option<Instant>,
    running: Option<Running>,
    state: HealthState,
}

fn ns(d: i64) -> Duration {
    Duration::from_nanos(u64::try_from(d).unwrap_or(0))
}

impl Prober {
    /// The prober of the container `rec`, if it has a health check.
    pub(super) fn new(rec: &Record, args: &ShimArgs) -> Option<Prober> {
        let config = health::effective(
            rec.config.options.healthcheck.as_ref(),
            &rec.config.image_config,
        )?;
        let command = config.command()?;
        let image =
            crate::runtime::container::spec::ImageProcess::from_config(&rec.config.image_config);
        let process = &rec.config.spec.process;
        let workdir = process
            .cwd
            .clone()
            .or(Some(image.workdir))
            .filter(|w| w.starts_with('/'));
        Some(Prober {
            command,
            target: Target {
                root: args.root.clone(),
                run_dir: args.run_dir.clone(),
                id: rec.id.clone(),
                env: crate::runtime::container::spec::exec_env(&rec.config, &[], false),
                user: process
                    .user
                    .clone()
                    .or(Some(image.user))
                    .filter(|u| !u.is_empty()),
                workdir,
            },
            cgroup: rec.config.cgroups_path.clone(),
            config,
            started: None,
            next_due: None,
            running: None,
            state: HealthState::default(),
        })
    }

    fn in_start_period(&self, at: Instant) -> bool {
        self.started
            .is_some_and(|(t, _)| at.duration_since(t) < ns(self.config.start_period))
    }

    fn interval(&self, at: Instant) -> Duration {
        if self.in_start_period(at) {
            ns(self.config.start_interval_ns())
        } else {
            ns(self.config.interval_ns())
        }
    }

    /// The container has started: status `starting`, first probe after
    /// one interval.
    pub(super) fn on_start(&mut self, records: &Records, id: &str) {
        let now = Instant::now();
        self.started = Some((now, Utc::now()));
        self.state = HealthState::default();
        self.next_due = Some(now + self.interval(now));
        if let Err(e) = records.set_health(id, &self.state) {
            tracing::warn!("recording the health status: {e}");
        }
    }

    /// When the loop must wake for us next.
    pub(super) fn wakeup(&self) -> Option<Instant> {
        match &self.running {
            Some(r) if r.exit.is_none() => Some(r.began + ns(self.config.timeout_ns()) + GRACE),
            Some(_) => Some(Instant::now()),
            None => self.next_due,
        }
    }

    /// The probe's output pipe, for the poll loop.
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.running.as_ref()?.output.as_ref().map(|f| f.as_fd())
    }

    /// Take what the probe wrote (docker keeps the first 4 KiB).
    pub(super) fn read_output(&mut self) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let Some(f) = r.output.as_mut() else { return };
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) => {
                    r.output = None;
                    return;
                }
                Ok(n) => {
                    let room = health::MAX_OUTPUT.saturating_sub(r.buf.len());
                    r.buf.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    r.output = None;
                    return;
                }
            }
        }
    }

    /// A child was reaped: ours?
    pub(super) fn reaped(&mut self, pid: Pid, code: i32) {
        if let Some(r) = self.running.as_mut().filter(|r| r.pid == pid) {
            r.exit = Some(code);
        }
    }

    /// Finish a probe that ended or overran; start one that is due.
    pub(super) fn tick(&mut self, records: &Records, container_pid: Pid) {
        let now = Instant::now();
        let timeout = ns(self.config.timeout_ns());
        if let Some(r) = &self.running {
            let overran = r.exit.is_none() && now >= r.began + timeout + GRACE;
            if overran {
                // Its exec shim is wedged; it is our child, reaped later.
                let _ = nix::sys::signal::kill(r.pid, Signal::SIGKILL);
            }
            if r.exit.is_some() || overran {
                self.read_output();
                self.finish(records, now);
            }
        }
        if self.running.is_none() && self.next_due.is_some_and(|d| now >= d) {
            self.next_due = Some(now + self.interval(now));
            // Docker does not probe a paused container.
            let frozen = Hierarchies::detect()
                .ok()
                .and_then(|h| h.is_frozen(&self.cgroup).ok())
                .unwrap_or(false);
            if !frozen {
                self.spawn(records, container_pid, now);
            }
        }
    }

    fn finish(&mut self, records: &Records, now: Instant) {
        let Some(r) = self.running.take() else { return };
        let timeout_ns = self.config.timeout_ns();
        let timed_out = now.duration_since(r.began) >= ns(timeout_ns);
        let result = if timed_out {
            ProbeResult {
                start: r.start,
                end: Utc::now(),
                exit_code: -1,
                output: format!(
                    "Health check exceeded timeout ({})",
                    health::go_duration_text(timeout_ns)
                ),
            }
        } else {
            ProbeResult {
                start: r.start,
                end: Utc::now(),
                exit_code: i64::from(r.exit.unwrap_or(-1)),
                output: String::from_utf8_lossy(&r.buf).into_owned(),
            }
        };
        self.state
            .record(result, r.in_start_period, self.config.retries());
        if let Err(e) = records.set_health(&self.target.id, &self.state) {
            tracing::warn!("recording the health status: {e}");
        }
    }

    fn spawn(&mut self, records: &Records, container_pid: Pid, now: Instant) {
        let start = Utc::now();
        let in_start_period = self.in_start_period(now);
        match self.command(container_pid) {
            Ok((pid, output)) => {
                self.running = Some(Running {
                    pid,
                    start,
                    began: now,
                    in_start_period,
                    output: Some(output),
                    buf: Vec::new(),
                    exit: None,
                });
            }
            Err(e) => {
                // Counted as a failed probe, as docker counts an exec that
                // cannot start.
                self.state.record(
                    ProbeResult {
                        start,
                        end: Utc::now(),
                        exit_code: -1,
                        output: format!("starting the health check: {e}"),
                    },
                    in_start_period,
                    self.config.retries(),
                );
                if let Err(e) = records.set_health(&self.target.id, &self.state) {
                    tracing::warn!("recording the health status: {e}");
                }
            }
        }
    }

    /// Start the exec shim running the probe; its pid and our end of its
    /// output (stdout and stderr in one pipe, as docker's log shows them).
    fn command(&self, container_pid: Pid) -> io::Result<(Pid, File)> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        nix::fcntl::fcntl(
            &r,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        let w2: OwnedFd = w.try_clone()?;
        let t = &self.target;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.args(["shim", "exec", "--root"])
            .arg(&t.root)
            .arg("--run-dir")
            .arg(&t.run_dir)
            .args(["--id", &t.id])
            .args(["--pid", &container_pid.as_raw().to_string()])
            .args([
                "--kill-after-ms",
                &(self.config.timeout_ns() / 1_000_000).max(1).to_string(),
            ]);
        for e in &t.env {
            cmd.args(["--env", e]);
        }
        if let Some(u) = &t.user {
            cmd.args(["--user", u]);
        }
        if let Some(w) = &t.workdir {
            cmd.args(["--workdir", w]);
        }
        cmd.arg("--").args(&self.command);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2))
            .spawn()?;
        // Reaped by the shim's SIGCHLD loop (reaped() above), not here.
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(-1));
        Ok((pid, File::from(r)))
    }

    /// The container is gone: a probe still running is ended.
    pub(super) fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            if r.exit.is_none() {
                let _ = nix::sys::signal::kill(r.pid, Signal::SIGKILL);
            }
        }
        self.next_due = None;
    }
}
