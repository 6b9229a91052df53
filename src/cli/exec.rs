//! `skiff exec`: run a command in a running container. The work happens in
//! a freshly spawned single-threaded `skiff shim exec` (libcontainer forks,
//! which must not happen in this multi-threaded process) that inherits our
//! stdio; we wait for it and exit with its status.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use clap::Args;

use crate::runtime::container::state::Status;
use crate::runtime::container::ContainerError;

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Keep stdin open (it is always passed through).
    #[arg(short, long)]
    pub interactive: bool,
    /// Use the caller's terminal.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(required = true)]
    pub command: Vec<String>,
}

pub fn exec(root: &Path, run_dir: &Path, debug: bool, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let (_paths, state) = super::containers::open(root, run_dir)?;
    let rec = state.find(&args.container)?;
    if rec.status != Status::Running {
        return Err(ContainerError::NotRunning(rec.name).into());
    }
    // docker exec: the container's environment, then -e.
    let mut env: Vec<String> = rec.config["options"]["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let base =
        crate::runtime::container::spec::ImageProcess::from_config(&rec.config["image_config"]);
    env = crate::runtime::container::spec::merge_env(&base.env, &env);
    let lookup = |k: &str| std::env::var(k).ok();
    let mut extra = Vec::new();
    for e in &args.env {
        extra.extend(crate::runtime::container::options::parse_env(e, lookup)?);
    }
    let mut env = crate::runtime::container::spec::merge_env(
        &[format!(
            "PATH={}",
            crate::runtime::container::defaults::DEFAULT_PATH
        )],
        &crate::runtime::container::spec::merge_env(&env, &extra),
    );
    if args.tty {
        env.push("TERM=xterm".into());
    }
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(["shim", "exec", "--root"])
        .arg(root)
        .arg("--run-dir")
        .arg(run_dir)
        .args(["--id", &rec.id]);
    for e in &env {
        cmd.args(["--env", e]);
    }
    if let Some(u) = args.user.as_ref().or(rec.config["options"]["user"]
        .as_str()
        .map(String::from)
        .as_ref())
    {
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
