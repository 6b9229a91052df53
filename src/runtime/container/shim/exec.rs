//! `skiff shim exec`: run one process inside a running container (its
//! namespaces and cgroup, via libcontainer's tenant builder) with this
//! process's own stdio, wait for it and exit with its status. Spawned fresh
//! by `skiff exec` so that libcontainer forks from a single-threaded process.

use std::os::fd::OwnedFd;
use std::process::ExitCode;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};

use super::ShimArgs;
use crate::runtime::container::executor::SkiffExecutor;
use crate::runtime::container::{options, user, Paths};

fn dup_std(fd: i32) -> Result<OwnedFd, String> {
    // SAFETY: fds 0-2 are open for the life of the process; we only dup them.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed
        .try_clone_to_owned()
        .map_err(|e| format!("dup {fd}: {e}"))
}

pub fn main(args: ShimArgs) -> ExitCode {
    match exec(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(msg) => {
            // A command that is not there or cannot run: docker's message
            // and code (127, 126).
            if let Some((code, message)) =
                crate::runtime::container::executor::exec_failure_in(&msg)
            {
                eprintln!("{message}");
                return ExitCode::from(code.clamp(0, 255) as u8);
            }
            eprintln!("skiff: error: {msg}");
            // docker exec's code for a failure of the runtime itself.
            ExitCode::from(126)
        }
    }
}

fn exec(args: &ShimArgs) -> Result<i32, String> {
    let paths = Paths::new(&args.root, &args.run_dir);
    if args.command.is_empty() {
        return Err("no command given".into());
    }
    // The container's own view of its files: its rootfs is mounted only in
    // its namespaces (and its shim's), not in ours.
    let pid = args
        .pid
        .ok_or_else(|| format!("container {} is not running (no --pid)", args.id))?;
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let ident =
        user::resolve(&root, args.user.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
    let mut env = std::collections::HashMap::new();
    for kv in &args.env {
        if let Some((k, v)) = kv.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
    }
    let cwd = args.workdir.as_deref().map(options::clean_path);
    // libcontainer's own failure here is an opaque "failed to unix syscall".
    if let Some(dir) = &cwd {
        let root = crate::runtime::container::copy::Root::at(&root, &args.id)
            .map_err(|e| e.to_string())?;
        if !root.is_dir(dir) {
            return Err(format!(
                "cannot change to the working directory {dir:?}: no such directory in the container"
            ));
        }
    }
    if !paths.runtime_root().join(&args.id).exists() {
        return Err(gone(&args.id));
    }
    crate::runtime::container::seccomp::keyring::join_new_session(&args.id)
        .map_err(|e| format!("joining a new session keyring: {e}"))?;
    if args.tty {
        return super::exec_tty::exec(args, &paths, &ident, cwd);
    }
    let pid = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(paths.runtime_root())
        .map_err(|e| e.to_string())?
        .with_executor(SkiffExecutor::for_bundle(&paths.dir(&args.id))?)
        .with_stdin(dup_std(0)?)
        .with_stdout(dup_std(1)?)
        .with_stderr(dup_std(2)?)
        .as_tenant()
        .with_container_args(args.command.clone())
        .with_env(env)
        .with_cwd(cwd)
        .with_user(Some(ident.uid))
        .with_group(Some(ident.gid))
        .with_additional_gids(ident.additional_gids)
        .with_detach(false)
        .build()
        .map_err(|e| build_error(&paths, &args.id, e))?;
    let pid = nix::unistd::Pid::from_raw(pid.as_raw());
    if let Some(ms) = args.kill_after_ms {
        // libcontainer has forked already: a thread is safe now.
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        });
    }
    wait(pid)
}

/// Wait for the exec'd process; its exit code as a shell reports it.
pub(super) fn wait(pid: nix::unistd::Pid) -> Result<i32, String> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("waiting for the process: {e}")),
        }
    }
}

/// The container ended between its record's read and the exec (a restart
/// policy's next run may be on its way): said as docker says it, rather
/// than as libcontainer's missing state directory.
pub(super) fn gone(id: &str) -> String {
    format!("container {id} is not running")
}

pub(super) fn build_error(paths: &Paths, id: &str, e: impl std::fmt::Display) -> String {
    if paths.runtime_root().join(id).exists() {
        format!("exec in container {id}: {e}")
    } else {
        gone(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_into_a_container_that_just_ended_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(&dir.path().join("root"), &dir.path().join("run"));
        assert_eq!(
            build_error(&paths, "abc", "container state directory does not exist"),
            "container abc is not running"
        );
        std::fs::create_dir_all(paths.runtime_root().join("abc")).unwrap();
        assert_eq!(
            build_error(&paths, "abc", "boom"),
            "exec in container abc: boom"
        );
    }
}
