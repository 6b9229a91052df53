//! `skiff exec`: run a command in a running container. The work happens in
//! a freshly spawned single-threaded `skiff shim exec` (libcontainer forks,
//! which must not happen in this multi-threaded process) that inherits our
//! stdio; we wait for it and exit with its status.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::runtime::container::exec::{self, ExecRequest};
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
    let lookup = |k: &str| std::env::var(k).ok();
    let mut extra = Vec::new();
    for e in &args.env {
        extra.extend(crate::runtime::container::options::parse_env(e, lookup)?);
    }
    if let Some(w) = &args.workdir {
        if !w.starts_with('/') {
            bail!("the working directory {w:?} is not absolute");
        }
    }
    let req = ExecRequest {
        env: crate::runtime::container::spec::exec_env(&rec.config, &extra, args.tty),
        command: args.command,
        user: args.user,
        workdir: args.workdir,
        tty: args.tty,
        kill_after: None,
        debug,
    };
    let mut cmd = exec::command(engine.paths(), None, &rec, &req)?;
    let status = cmd.status().context("spawning the exec shim")?;
    let code = status.code().unwrap_or(126);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
