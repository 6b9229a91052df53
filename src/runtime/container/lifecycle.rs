//! Stop, kill, remove, prune, and reconciling records whose shim is gone
//! (after a host reboot or a killed shim).

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;

use super::client::{self, Waiter};
use super::create::remove_leftovers;
use super::records::{Record, Records, Status};
use super::{ContainerError, Paths};

/// Exit code recorded for a container whose shim vanished without telling.
pub const UNKNOWN_EXIT: i32 = 255;

fn control_err(id: &str) -> impl FnOnce(std::io::Error) -> ContainerError + '_ {
    move |source| ContainerError::Control {
        id: id.to_string(),
        source,
    }
}

/// Whether the shim of `rec` is alive: its socket answers.
fn shim_alive(paths: &Paths, rec: &Record) -> bool {
    client::request(paths, &rec.id, "state").is_ok()
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.windows(4).any(|w| w == b"shim"))
}

/// Held shared by whoever records or starts a container, from before it
/// reads the image or the record until the record names the container's
/// shim, and exclusive by prune. In the meantime such a container looks
/// stopped (Created or Exited, no shim), yet is about to run: prune must
/// leave it and the image it is made from alone. A lock (not a mark on the
/// record) so that a launching process that dies takes it along.
pub struct LaunchLock {
    _flock: crate::lockfile::Guard,
}

impl LaunchLock {
    fn path(paths: &Paths) -> std::path::PathBuf {
        paths.root().join("launch.lock")
    }

    pub fn shared(paths: &Paths) -> Result<LaunchLock, ContainerError> {
        let path = LaunchLock::path(paths);
        let flock = crate::lockfile::shared(&path).map_err(|source| ContainerError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(LaunchLock { _flock: flock })
    }

    /// Waits for the launches under way; new ones wait for this to go.
    pub fn exclusive(paths: &Paths) -> Result<LaunchLock, ContainerError> {
        let path = LaunchLock::path(paths);
        let flock = crate::lockfile::exclusive(&path).map_err(|source| ContainerError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(LaunchLock { _flock: flock })
    }

    /// [`LaunchLock::exclusive`] if no launch is under way right now.
    pub fn try_exclusive(paths: &Paths) -> Result<Option<LaunchLock>, ContainerError> {
        let path = LaunchLock::path(paths);
        let flock = crate::lockfile::try_exclusive(&path).map_err(|source| ContainerError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(flock.map(|f| LaunchLock { _flock: f }))
    }
}

/// Not running and no shim: created and never started, or exited (a shim
/// is up from its launch until it records the exit).
fn stopped(rec: &Record) -> bool {
    rec.status != Status::Running && rec.shim_pid.is_none()
}

/// Remove every stopped container, as `docker container prune` removes
/// every one that is not running (created, exited); the ones removed.
pub fn prune(paths: &Paths, state: &Records) -> Result<Vec<Record>, ContainerError> {
    // A record whose shim died says running: it has exited.
    reconcile(paths, state)?;
    let removed = {
        let _lock = LaunchLock::exclusive(paths)?;
        let mut removed = Vec::new();
        for rec in state.list()? {
            if stopped(&rec) {
                state.remove(&rec.id)?;
                removed.push(rec);
            }
        }
        removed
    };
    // Nothing can start them now (their records are gone), and a
    // directory left by a crash here is reconcile's.
    for rec in &removed {
        remove_leftovers(paths, &rec.id);
    }
    Ok(removed)
}

/// Mark containers whose shim is gone as exited and release what they held;
/// delete the directories of containers that have no record (a `--rm`
/// container's shim drops the record before it reports the exit and the
/// files after, and may be killed in between). A record without a shim yet
/// is being created right now, unless it is old.
pub fn reconcile(paths: &Paths, state: &Records) -> Result<(), ContainerError> {
    // Directories first: a container being created has its record before
    // its directory, so none of these can be one whose record is not read.
    let dirs = container_dirs(paths);
    let records = state.list()?;
    for rec in &records {
        // A `create`d container waits for its `start` without a shim.
        let waiting = rec.status == Status::Created && rec.shim_pid.is_none();
        if rec.status == Status::Exited || waiting {
            continue;
        }
        // Between runs, the shim that will restart it sleeps without a
        // socket: it is its process that must be alive.
        if rec.status == Status::Restarting {
            if !rec.shim_pid.is_some_and(pid_alive) && state.cancel_restart(&rec.id)? {
                tracing::info!(id = %rec.id, "the shim that was to restart the container is gone");
            }
            continue;
        }
        if shim_alive(paths, rec) {
            continue;
        }
        let stale = match rec.shim_pid {
            Some(pid) => !pid_alive(pid),
            None => (Utc::now() - rec.created).num_seconds() > 60,
        };
        // The shim may have recorded the exit and gone since the list was
        // read: set_lost keeps a recorded exit.
        if stale && state.set_lost(&rec.id, UNKNOWN_EXIT, Utc::now())? {
            tracing::info!(id = %rec.id, "the container's shim is gone; marked it exited");
            release(paths, &rec.id);
            restart_lost(paths, state, rec);
        }
    }
    for id in dirs {
        if !records.iter().any(|r| r.id == id) {
            tracing::info!(%id, "removing what is left of a container that has no record");
            remove_leftovers(paths, &id);
        }
    }
    Ok(())
}

/// A container whose shim died went with it (release killed what was
/// left): its restart policy starts it again, as docker's daemon does when
/// a container's shim dies. Without a daemon, the next command that reads
/// the records is what notices.
fn restart_lost(paths: &Paths, state: &Records, rec: &Record) {
    let options = &rec.config.options;
    let count = rec.config.restart_count;
    if options.auto_remove
        || !options
            .restart
            .wants_restart(UNKNOWN_EXIT, count, stopped_by_hand(paths, &rec.id))
    {
        return;
    }
    let count = count.saturating_add(1);
    if let Err(e) = state.set_restart_count(&rec.id, count) {
        tracing::warn!("recording the restart: {e}");
    }
    let launch = super::create::Launch {
        log_max_size: rec
            .config
            .log_max_size
            .unwrap_or(super::DEFAULT_LOG_MAX_SIZE),
        restart_count: count,
        ..Default::default()
    };
    match super::create::launch(paths, state, &rec.id, &launch) {
        Ok(_) => {
            tracing::info!(id = %rec.id, "started the container again under its restart policy")
        }
        Err(e) => tracing::warn!(id = %rec.id, "restarting the container: {e}"),
    }
}

/// The ids of the container directories under `<root>/containers`.
fn container_dirs(paths: &Paths) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(paths.root()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// Release what a container that is not running holds outside its
/// directory: its network, libcontainer's state and cgroup, its run
/// directory. (Its rootfs mount lived in its own namespaces and is gone.)
pub(super) fn release(paths: &Paths, id: &str) {
    if let Err(e) = super::host_bridge(paths, None).detach(id) {
        tracing::warn!("releasing the network of {id}: {e}");
    }
    let runtime_state = paths.runtime_root().join(id);
    if runtime_state.exists() {
        match libcontainer::container::Container::load(runtime_state.clone()) {
            Ok(mut c) => {
                let cgroup = c.spec().ok().map(|s| s.cgroup_path);
                if let Err(e) = c.delete(true) {
                    tracing::debug!("libcontainer delete {id}: {e}");
                }
                // libcontainer removes the leaf only, and fails on cgroups
                // the container made below it: they go depth-first.
                if let Some(cg) = cgroup.as_ref().and_then(|p| p.to_str()) {
                    // A process just killed leaves its cgroup a moment
                    // after the signal (it still has to exit): a busy
                    // cgroup is tried again, for a bounded while.
                    // What is still in it once the container's process has
                    // ended (children it left in a PID namespace it shared)
                    // is killed.
                    let deadline = std::time::Instant::now() + Duration::from_secs(2);
                    loop {
                        match super::cgroups::remove(cg) {
                            Ok(()) => break,
                            Err(super::cgroups::CgroupError::Busy(_))
                                if std::time::Instant::now() < deadline =>
                            {
                                // Again each time: one may have forked.
                                let _ = super::cgroups::kill_all(cg);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            Err(e) => {
                                tracing::warn!("removing the cgroup of {id}: {e}");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("libcontainer load {id}: {e}"),
        }
        let _ = std::fs::remove_dir_all(&runtime_state);
    }
    let _ = crate::net::netns::remove(&super::create::isolated_netns(paths, id));
    let _ = std::fs::remove_dir_all(paths.run_dir(id));
}

/// Under `--init`, PID 1 is our init, which blocks every signal at its
/// first instruction and then forwards them. A signal that arrives before
/// that is dropped by the kernel (PID 1 of a namespace ignores signals it has
/// no handler for), so wait, briefly, until /proc shows the mask in place.
fn wait_for_init(rec: &Record) {
    let uses_init = rec.config.spec.process.init;
    let Some(pid) = rec.pid.filter(|_| uses_init) else {
        return;
    };
    let status = format!("/proc/{pid}/status");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let Ok(text) = std::fs::read_to_string(&status) else {
            return;
        };
        let blocked = text
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        // Bit n-1 is signal n; SIGTERM is 15.
        if blocked & (1 << (Signal::SIGTERM as u64 - 1)) != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `TERM`, `SIGTERM` or `15`.
fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse().ok()
}

/// Send `sig` to the container's init process. A paused container is
/// thawed after the signal that ends it (its stop signal, or SIGKILL), as
/// docker does, so that it is acted on; other signals wait for `unpause`.
pub fn kill(
    paths: &Paths,
    state: &Records,
    rec: &Record,
    sig: Signal,
) -> Result<(), ContainerError> {
    match rec.status {
        Status::Running | Status::Paused | Status::Created => {}
        Status::Restarting => return Err(ContainerError::Restarting(rec.name.clone())),
        Status::Exited => return Err(ContainerError::NotRunning(rec.name.clone())),
    }
    wait_for_init(rec);
    client::signal(paths, &rec.id, sig as i32).map_err(control_err(&rec.id))?;
    if sig == Signal::SIGKILL || sig as i32 == stop_signal(rec) {
        thaw_if_paused(state, rec);
    }
    Ok(())
}

/// The signal `stop` sends first: `--stop-signal` (checked when the
/// container was made), else the image's STOPSIGNAL (as docker and
/// containerd's CRI), else SIGTERM.
fn stop_signal(rec: &Record) -> i32 {
    rec.config
        .options
        .stop_signal
        .as_deref()
        .and_then(signal_number)
        .or_else(|| {
            rec.config
                .image_config
                .get("StopSignal")
                .and_then(serde_json::Value::as_str)
                .and_then(signal_number)
        })
        .unwrap_or(Signal::SIGTERM as i32)
}

/// A signal's number, real-time ones included (`SIGRTMIN+3`, systemd's
/// STOPSIGNAL, which nix's Signal cannot name).
pub fn signal_number(s: &str) -> Option<i32> {
    if let Some(sig) = parse_signal(s) {
        return Some(sig as i32);
    }
    let (min, max) = (nix::libc::SIGRTMIN(), nix::libc::SIGRTMAX());
    if let Ok(n) = s.parse::<i32>() {
        return (min..=max).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let offset = |rest: &str, sign: i32| -> Option<i32> {
        match rest {
            "" => Some(0),
            r => r
                .strip_prefix(if sign > 0 { '+' } else { '-' })?
                .parse::<i32>()
                .ok(),
        }
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        min + offset(rest, 1)?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        max - offset(rest, -1)?
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(n)
}

/// `skiff pause`: freeze every process of a running container.
pub fn pause(state: &Records, rec: &Record) -> Result<(), ContainerError> {
    match rec.status {
        Status::Running => {}
        Status::Paused => return Err(ContainerError::AlreadyPaused(rec.name.clone())),
        Status::Restarting => return Err(ContainerError::Restarting(rec.name.clone())),
        Status::Created | Status::Exited => {
            return Err(ContainerError::NotRunning(rec.name.clone()))
        }
    }
    let cgroup = rec
        .config
        .cgroup()
        .ok_or_else(|| ContainerError::NotRunning(rec.name.clone()))?;
    super::cgroups::Hierarchies::detect()
        .map_err(super::cgroups::freezer::FreezeError::from)?
        .freeze(cgroup, true)?;
    if !state.set_paused(&rec.id, true)? {
        // It exited meanwhile (its cgroup is gone with it).
        return Err(ContainerError::NotRunning(rec.name.clone()));
    }
    Ok(())
}

/// `skiff unpause`: let a paused container run again.
pub fn unpause(state: &Records, rec: &Record) -> Result<(), ContainerError> {
    if rec.status != Status::Paused {
        return Err(ContainerError::NotPaused(rec.name.clone()));
    }
    let cgroup = rec
        .config
        .cgroup()
        .ok_or_else(|| ContainerError::NotPaused(rec.name.clone()))?;
    super::cgroups::Hierarchies::detect()
        .map_err(super::cgroups::freezer::FreezeError::from)?
        .freeze(cgroup, false)?;
    state.set_paused(&rec.id, false)?;
    Ok(())
}

/// A signal meant to end a paused container is pending until it thaws.
fn thaw_if_paused(state: &Records, rec: &Record) {
    if rec.status != Status::Paused {
        return;
    }
    if let Err(e) = unpause(state, rec) {
        tracing::warn!("unpausing {} to end it: {e}", rec.name);
    }
}

/// The mark `stop` leaves for a shim waiting to restart the container
/// (restart.rs): a stop during the back-off cancels the restart.
fn stop_mark(paths: &Paths, id: &str) -> std::path::PathBuf {
    paths.dir(id).join("stopped-by-hand")
}

/// Whether the container was stopped by hand since it was last started.
pub fn stopped_by_hand(paths: &Paths, id: &str) -> bool {
    stop_mark(paths, id).exists()
}

/// Forget a stop by hand (the container is being started).
pub fn clear_stop_mark(paths: &Paths, id: &str) {
    let _ = std::fs::remove_file(stop_mark(paths, id));
}

/// SIGTERM, then SIGKILL after `timeout`; returns the exit code (None if the
/// container was not running).
pub fn stop(
    paths: &Paths,
    state: &Records,
    rec: &Record,
    timeout: Duration,
) -> Result<Option<i32>, ContainerError> {
    if rec.config.options.restart != super::restart::RestartPolicy::No {
        let mark = stop_mark(paths, &rec.id);
        if let Err(e) = std::fs::write(&mark, b"") {
            tracing::warn!("{}: {e}", mark.display());
        }
    }
    // Between two runs: the restart is off, it stays exited.
    if rec.status == Status::Restarting {
        state.cancel_restart(&rec.id)?;
        return Ok(None);
    }
    if rec.status == Status::Exited {
        return Ok(None);
    }
    let mut waiter = match Waiter::open(paths, &rec.id) {
        Ok(w) => w,
        // The shim finished between our read of the record and now.
        Err(_) => return Ok(None),
    };
    wait_for_init(rec);
    let first = stop_signal(rec);
    if client::signal(paths, &rec.id, first).is_ok() {
        thaw_if_paused(state, rec);
        match waiter.wait(Some(timeout.max(Duration::from_millis(1)))) {
            Ok(Some(code)) => return Ok(Some(code)),
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
    }
    let _ = client::signal(paths, &rec.id, Signal::SIGKILL as i32);
    thaw_if_paused(state, rec);
    // SIGKILL cannot be ignored; the bound only covers a wedged shim.
    waiter
        .wait(Some(Duration::from_secs(60)))
        .map_err(control_err(&rec.id))
}

/// Remove a container (`force`: kill it first if it runs).
pub fn remove(
    paths: &Paths,
    state: &Records,
    rec: &Record,
    force: bool,
) -> Result<(), ContainerError> {
    // Created and never started: nothing runs (docker removes these
    // without -f).
    let idle = rec.status == Status::Created && rec.shim_pid.is_none();
    if rec.status != Status::Exited && !idle {
        if !force {
            return Err(ContainerError::Running(rec.name.clone()));
        }
        if rec.status == Status::Restarting {
            // Its shim waits out the back-off and then finds no record.
            state.cancel_restart(&rec.id)?;
        } else if let Ok(mut waiter) = Waiter::open(paths, &rec.id) {
            let _ = client::signal(paths, &rec.id, Signal::SIGKILL as i32);
            // cgroup v1 keeps a frozen task, even a killed one, until thawed.
            thaw_if_paused(state, rec);
            let _ = waiter.wait(Some(Duration::from_secs(60)));
        }
    }
    remove_leftovers(paths, &rec.id);
    state.remove(&rec.id)?;
    Ok(())
}

/// Whether anything of container `id` is still on disk (for tests and
/// diagnostics).
pub fn leftovers(paths: &Paths, id: &str) -> Vec<std::path::PathBuf> {
    [
        paths.dir(id),
        paths.run_dir(id),
        paths.runtime_root().join(id),
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_by_name_number_and_real_time_offset() {
        assert_eq!(signal_number("TERM"), Some(15));
        assert_eq!(signal_number("SIGQUIT"), Some(3));
        assert_eq!(signal_number("9"), Some(9));
        let min = nix::libc::SIGRTMIN();
        let max = nix::libc::SIGRTMAX();
        assert_eq!(signal_number("SIGRTMIN+3"), Some(min + 3));
        assert_eq!(signal_number("rtmin"), Some(min));
        assert_eq!(signal_number("SIGRTMAX-1"), Some(max - 1));
        assert_eq!(signal_number(&(min + 2).to_string()), Some(min + 2));
        assert_eq!(signal_number("SIGRTMIN+99"), None);
        assert_eq!(signal_number("SIGRTMIN-1"), None);
        assert_eq!(signal_number("NOPE"), None);
    }
}
