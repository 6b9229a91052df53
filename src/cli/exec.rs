//! `skiff exec`: run a command in a running container. The work happens in
//! a freshly spawned single-threaded `skiff shim exec` (libcontainer forks,
//! which must not happen in this multi-threaded process) that inherits our
//! stdio; we wait for it and exit with its status.

use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use clap::Args;

use crate::runtime::container::records::Status;
use crate::runtime::container::ContainerError;
use crate::runtime::engine::Engine;

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Keep stdin open (it is always passed through).
    #[arg(short, long)]
    pub interactive: bool,
    /// Use the caller's terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (K=V, or K to copy it from here).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Run as name|uid[:group|gid] instead of the container's user.
    #[arg(short, long)]
    pub user: Option<String>,
    /// The working directory for the command (absolute).
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(required = true)]
    pub command: Vec<String>,
}

pub fn exec(engine: &Engine, debug: bool, args: ExecArgs) -> anyhow::Result<ExitCode> {
    super::attach::check_tty(args.interactive, args.tty)?;
    let state = engine.records()?;
    let rec = state.find(&args.container)?;
    match rec.status {
        Status::Running => {}
        Status::Paused => return Err(ContainerError::PausedExec(rec.name).into()),
        Status::Restarting => return Err(ContainerError::Restarting(rec.name).into()),
        Status::Created | Status::Exited => return Err(ContainerError::NotRunning(rec.name).into()),
    }
    let lookup = |k: &str| std::env::var(k).ok();
    let mut extra = Vec::new();
    for e in &args.env {
        extra.extend(crate::runtime::container::options::parse_env(e, lookup)?);
    }
    let env = crate::runtime::container::spec::exec_env(&rec.config, &extra, args.tty);
    let pid = rec
        .pid
        .ok_or_else(|| ContainerError::NotRunning(rec.name.clone()))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(["shim", "exec", "--root"])
        .arg(engine.root())
        .arg("--run-dir")
        .arg(engine.paths().run())
        .args(["--id", &rec.id])
        .args(["--pid", &pid.to_string()]);
    for e in &env {
        cmd.args(["--env", e]);
    }
    if let Some(u) = args.user.as_ref().or(rec.config.spec.process.user.as_ref()) {
        cmd.args(["--user", u]);
    }
    if let Some(w) = &args.workdir {
        if !w.starts_with('/') {
            bail!("the working directory {w:?} is not absolute");
        }
        cmd.args(["--workdir", w]);
    }
    if debug {
        cmd.arg("--debug");
    }
    if args.tty {
        cmd.arg("--tty");
    }
    cmd.arg("--").args(&args.command);
    let status = cmd.status().context("spawning the exec shim")?;
    let code = status.code().unwrap_or(126);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
