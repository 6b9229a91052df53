//! `skiff pid-holder` (hidden): the PID 1 of a pod sandbox's shared PID
//! namespace (a pod's `shareProcessNamespace`), as the pause container is
//! upstream. A PID namespace lives only while its first process does, so
//! the sandbox starts this one: it unshares a new PID namespace, forks its
//! PID 1, prints that process's PID (as the caller sees it) and exits. The
//! PID 1 does nothing but reap what is reparented to it; it goes when the
//! sandbox is removed (SIGKILL, which also ends anything left inside).
//!
//! Dispatched from main() before anything else runs: no threads.

use std::ffi::OsString;
use std::process::ExitCode;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};

pub const ARG: &str = "pid-holder";

pub fn wanted(argv: &[OsString]) -> bool {
    argv.get(1).is_some_and(|a| a == ARG)
}

pub fn main() -> ExitCode {
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("skiff pid-holder: unshare: {e}");
        return ExitCode::FAILURE;
    }
    // SAFETY: this process is single-threaded (dispatched before anything
    // else in main), so the child may run any code after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            println!("{child}");
            ExitCode::SUCCESS
        }
        Ok(ForkResult::Child) => hold(),
        Err(e) => {
            eprintln!("skiff pid-holder: fork: {e}");
            ExitCode::FAILURE
        }
    }
}

/// PID 1 of the new namespace: no stdio of the caller's (it reads our
/// parent's output to its end), every signal blocked and taken with
/// sigwait (PID 1 gets only those), every exited process reaped.
fn hold() -> ! {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this
            // process owns; nothing else uses them.
            unsafe {
                nix::libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
    let _ = nix::unistd::setsid();
    let all = SigSet::all();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
    loop {
        let _ = all.wait();
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
