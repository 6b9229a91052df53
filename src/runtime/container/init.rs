//! `skiff init -- CMD...` (hidden; `/dev/init -- CMD...` inside a `--init`
//! container): a tiny PID 1 in the manner of tini. It starts CMD as its
//! child, forwards every signal it gets to it, reaps every process that is
//! reparented to it (no zombies pile up), and exits with the child's status.
//!
//! Dispatched from main() before anything else runs: no threads, no tokio.
//! PID 1 only receives signals it handles or blocks (the kernel drops the
//! rest), so all signals are blocked and taken with sigwait.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// Whether argv asks for init mode: `skiff init ...` or `/dev/init ...`.
pub fn wanted(argv: &[OsString]) -> bool {
    argv.get(1).is_some_and(|a| a == "init")
        || argv
            .first()
            .is_some_and(|a| a.as_bytes() == super::spec::INIT_PATH.as_bytes())
}

/// The command after `--` (or after the program and `init`).
fn command(argv: &[OsString]) -> Vec<OsString> {
    let rest = match argv.iter().position(|a| a == "--") {
        Some(i) => &argv[i + 1..],
        None if argv.get(1).is_some_and(|a| a == "init") => &argv[2..],
        None => argv.get(1..).unwrap_or_default(),
    };
    rest.to_vec()
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

pub fn main(argv: &[OsString]) -> ExitCode {
    let cmd = command(argv);
    let Some(cargs) = cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).ok())
        .collect::<Option<Vec<CString>>>()
        .filter(|c| !c.is_empty())
    else {
        eprintln!("skiff init: usage: skiff init -- COMMAND [ARG...]");
        return ExitCode::from(2);
    };
    let all = SigSet::all();
    let mut old = SigSet::empty();
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
    {
        eprintln!("skiff init: sigprocmask: {e}");
        return ExitCode::from(1);
    }
    // SAFETY: single-threaded (dispatched before anything starts a thread);
    // the child only restores its mask and execs.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let Err(e) = nix::unistd::execvp(&cargs[0], &cargs);
            let (code, msg) = super::executor::exec_failure(&cmd[0].to_string_lossy(), e);
            eprintln!("skiff init: {msg}");
            // SAFETY: leave the forked child without running the parent's
            // exit handlers.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("skiff init: fork: {e}");
            return ExitCode::from(1);
        }
    };
    supervise(child, &all)
}

fn supervise(child: Pid, set: &SigSet) -> ExitCode {
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            // A child that is gone already is no error here.
            let _ = nix::sys::signal::kill(child, sig);
            continue;
        }
        // Reap everything that has exited: our child and any orphans.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) if status.pid() == Some(child) => {
                    if let Some(code) = exit_code(status) {
                        return ExitCode::from(code.clamp(0, 255) as u8);
                    }
                }
                Ok(_) => {}
            }
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
    fn argv_forms() {
        assert!(wanted(&os(&["skiff", "init", "--", "sh"])));
        assert!(wanted(&os(&["/dev/init", "--", "sh"])));
        assert!(!wanted(&os(&["skiff", "run", "init"])));
        assert_eq!(
            command(&os(&["/dev/init", "--", "sh", "--x"])),
            os(&["sh", "--x"])
        );
        assert_eq!(
            command(&os(&["skiff", "init", "sleep", "1"])),
            os(&["sleep", "1"])
        );
        assert!(command(&os(&["skiff", "init", "--"])).is_empty());
    }
}
