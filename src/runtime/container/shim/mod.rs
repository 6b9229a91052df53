//! `skiff shim` (hidden): one small single-threaded process per container,
//! started by `skiff run` (or the agent) as a fresh exec of the skiff binary
//! and dispatched from main() before anything can start a thread — libcontainer
//! forks, which is only safe in a single-threaded process. No tokio here:
//! blocking I/O driven by poll(2).
//!
//! `-t` uses the OCI console socket (console.rs); `exec -t` relays the pty
//! itself (exec_tty.rs).
//!
//! `skiff shim run ...` creates, starts and supervises one container
//! (run.rs); `skiff shim exec ...` runs one process inside a running
//! container and exits with its status (exec.rs).
//!
//! The run shim opens the container records itself: it is their writer for
//! its container (running, exited, removed under --rm) and outlives its
//! parent, so reading its config there costs nothing more. The exec shim
//! needs only the container's PID, which its parent passes (`--pid`).

pub mod console;
pub mod exec;
mod exec_tty;
mod probe;
pub mod proto;
pub mod run;
mod trim;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options common to both shim roles.
#[derive(Debug, Default)]
pub struct ShimArgs {
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub id: String,
    pub log_max_size: u64,
    pub wait_start: bool,
    /// exec: give the process a terminal (`-t`).
    pub tty: bool,
    pub debug: bool,
    /// exec: the container's init, as its parent read it from the record
    /// (the exec shim opens no records of its own).
    pub pid: Option<i32>,
    /// exec: `-e`, `-u`, `-w`, the command.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub command: Vec<String>,
    /// exec: kill the process after this long (health checks' timeout).
    pub kill_after_ms: Option<u64>,
    /// run: restarts so far under the container's restart policy, and the
    /// last back-off wait in milliseconds (restart.rs).
    pub restart_count: u32,
    pub restart_delay_ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("skiff shim: {0}")]
pub struct UsageError(String);

/// Parse `--flag value` pairs by hand: the shim stays free of the CLI's
/// parser and its start-up work.
pub fn parse(args: &[OsString]) -> Result<(String, ShimArgs), UsageError> {
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    let role = it
        .next()
        .ok_or_else(|| UsageError("missing role (run|exec)".into()))?;
    let mut a = ShimArgs {
        log_max_size: super::DEFAULT_LOG_MAX_SIZE,
        ..Default::default()
    };
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| UsageError(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--root" => a.root = PathBuf::from(value()?),
            "--run-dir" => a.run_dir = PathBuf::from(value()?),
            "--id" => a.id = value()?,
            "--log-max-size" => {
                a.log_max_size = value()?
                    .parse()
                    .map_err(|_| UsageError("bad --log-max-size".into()))?
            }
            "--pid" => {
                a.pid = Some(
                    value()?
                        .parse()
                        .map_err(|_| UsageError("bad --pid".into()))?,
                )
            }
            "--env" => a.env.push(value()?),
            "--kill-after-ms" => {
                a.kill_after_ms = Some(
                    value()?
                        .parse()
                        .map_err(|_| UsageError("bad --kill-after-ms".into()))?,
                )
            }
            "--user" => a.user = Some(value()?),
            "--workdir" => a.workdir = Some(value()?),
            "--restart-count" => {
                a.restart_count = value()?
                    .parse()
                    .map_err(|_| UsageError("bad --restart-count".into()))?
            }
            "--restart-delay-ms" => {
                a.restart_delay_ms = value()?
                    .parse()
                    .map_err(|_| UsageError("bad --restart-delay-ms".into()))?
            }
            "--wait-start" => a.wait_start = true,
            "--tty" => a.tty = true,
            "--debug" => a.debug = true,
            "--" => {
                a.command = it.by_ref().collect();
            }
            other => return Err(UsageError(format!("unknown flag {other}"))),
        }
    }
    if a.id.is_empty() || a.root.as_os_str().is_empty() || a.run_dir.as_os_str().is_empty() {
        return Err(UsageError("--root, --run-dir and --id are required".into()));
    }
    Ok((role, a))
}

fn init_logging(debug: bool, exec: bool) {
    use tracing_subscriber::EnvFilter;
    // libcontainer logs from inside the container's processes too, where
    // stderr is the container's own: keep it to errors unless debugging.
    // An exec's stderr is the user's terminal (`kubectl exec`, `skiff
    // exec`), and the exec says why it failed in its own words
    // (`exec: "x": executable file not found in $PATH`): none of
    // libcontainer's there.
    let default = match (debug, exec) {
        (true, _) => "debug",
        (false, true) => "warn,libcontainer=off,libcgroups=error",
        (false, false) => "warn,libcontainer=error,libcgroups=error",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(default))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Entry point for `skiff shim ...` (everything after `shim`).
pub fn main(args: &[OsString]) -> ExitCode {
    // Started through /proc/self/exe, the shim would show as `exe` in ps.
    let _ = nix::sys::prctl::set_name(c"skiff-shim");
    let (role, args) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    init_logging(args.debug, role == "exec");
    match role.as_str() {
        "run" => run::main(args),
        "exec" => exec::main(args),
        other => {
            eprintln!("skiff shim: unknown role {other}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_flags() {
        let (role, a) = parse(&os(&[
            "exec",
            "--root",
            "/r",
            "--run-dir",
            "/run",
            "--id",
            "x",
            "--env",
            "A=1",
            "--",
            "sh",
            "-c",
            "--id",
        ]))
        .unwrap();
        assert_eq!(role, "exec");
        assert_eq!(a.env, ["A=1"]);
        assert_eq!(a.command, ["sh", "-c", "--id"]);
        assert!(parse(&os(&["run", "--root", "/r"])).is_err());
        assert!(parse(&os(&["run", "--bogus"])).is_err());
    }
}
