//! The command line of an exec shim (`skiff shim exec`, shim/exec.rs): one
//! process run inside a running container. `skiff exec`, the health prober
//! and the node agent's probes, hooks and `kubectl exec` all start one, so
//! that libcontainer forks from a fresh single-threaded process.

use std::path::Path;
use std::process::Command;

use super::records::{Record, Status};
use super::{ContainerError, Paths};

/// What to run and how, beyond what the container's record says.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// The process's whole environment (`spec::exec_env` makes it).
    pub env: Vec<String>,
    /// The container's user when unset.
    pub user: Option<String>,
    /// Absolute; the container's working directory when unset.
    pub workdir: Option<String>,
    pub tty: bool,
    /// The shim kills the process (and exits) after this long.
    pub kill_after: Option<std::time::Duration>,
    pub debug: bool,
}

/// The exec shim's command for `req` in the container of `rec`, which must
/// be running. `shim` is the skiff binary (this one when None).
pub fn command(
    paths: &Paths,
    shim: Option<&Path>,
    rec: &Record,
    req: &ExecRequest,
) -> Result<Command, ContainerError> {
    match rec.status {
        Status::Running => {}
        Status::Paused => return Err(ContainerError::PausedExec(rec.name.clone())),
        Status::Restarting => return Err(ContainerError::Restarting(rec.name.clone())),
        Status::Created | Status::Exited => {
            return Err(ContainerError::NotRunning(rec.name.clone()))
        }
    }
    let pid = rec
        .pid
        .ok_or_else(|| ContainerError::NotRunning(rec.name.clone()))?;
    let mut cmd = Command::new(shim.unwrap_or(Path::new("/proc/self/exe")));
    cmd.args(["shim", "exec", "--root"])
        .arg(paths.node_root())
        .arg("--run-dir")
        .arg(paths.run())
        .args(["--id", &rec.id])
        .args(["--pid", &pid.to_string()]);
    if let Some(after) = req.kill_after {
        cmd.args([
            "--kill-after-ms",
            &after.as_millis().clamp(1, u128::from(u64::MAX)).to_string(),
        ]);
    }
    for e in &req.env {
        cmd.args(["--env", e]);
    }
    if let Some(u) = req.user.as_ref().or(rec.config.spec.process.user.as_ref()) {
        cmd.args(["--user", u]);
    }
    if let Some(w) = &req.workdir {
        cmd.args(["--workdir", w]);
    }
    if req.debug {
        cmd.arg("--debug");
    }
    if req.tty {
        cmd.arg("--tty");
    }
    cmd.arg("--").args(&req.command);
    Ok(cmd)
}
