//! `skiff pid-holder` (hidden): the PID 1 of a pod sandbox's shared PID
//! namespace (a pod's `shareProcessNamespace`), as the pause container is
//! upstream. A PID namespace lives only while its first process does, so
//! the sandbox starts this one: it unshares a new PID namespace, forks its
//! PID 1, prints that process's PID (as the caller sees it) and exits. The
//! PID 1 does nothing but reap what is reparented to it; it goes when the
//! sandbox is removed (SIGKILL, which also ends anything left inside).
//!
//! It is confined as a container would be, since the pod's containers see
//! it as their PID 1 (`/proc/1/root`, `/proc/1/net`, `/proc/1/mountinfo`):
//! it joins the sandbox's network, IPC and UTS namespaces, lives in a mount
//! namespace of its own whose root is an empty read-only tmpfs, and runs
//! as nobody (65534) with no capabilities and no_new_privs.
//!
//! `skiff pid-holder`, with the sandbox's pinned namespaces and an empty
//! directory for the tmpfs root in the environment ([`ENV`]): not in argv,
//! which the pod's containers can read (`/proc/1/cmdline`).
//!
//! Dispatched from main() before anything else runs: no threads.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};

pub const ARG: &str = "pid-holder";
/// NET, IPC, UTS, ROOT: the variables the paths are passed in.
pub const ENV: [&str; 4] = [
    "SKIFF_HOLDER_NET",
    "SKIFF_HOLDER_IPC",
    "SKIFF_HOLDER_UTS",
    "SKIFF_HOLDER_ROOT",
];

pub fn wanted(argv: &[OsString]) -> bool {
    argv.get(1).is_some_and(|a| a == ARG)
}

pub fn main() -> ExitCode {
    let Some([net, ipc, uts, root]) = ENV
        .map(|k| std::env::var_os(k).map(std::path::PathBuf::from))
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .and_then(|v| <[std::path::PathBuf; 4]>::try_from(v).ok())
    else {
        eprintln!("skiff pid-holder: {} are not all set", ENV.join(", "));
        return ExitCode::FAILURE;
    };
    // Opened first: its new root has no /dev.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ok();
    if let Err(e) = confine(&net, &ipc, &uts, &root) {
        eprintln!("skiff pid-holder: {e}");
        return ExitCode::FAILURE;
    }
    // SAFETY: this process is single-threaded (dispatched before anything
    // else in main), so the child may run any code after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            println!("{child}");
            ExitCode::SUCCESS
        }
        Ok(ForkResult::Child) => hold(null),
        Err(e) => {
            eprintln!("skiff pid-holder: fork: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Into the sandbox's namespaces and new PID and mount ones, onto an empty
/// read-only root, without privileges. The PID namespace is the children's.
fn confine(net: &Path, ipc: &Path, uts: &Path, root: &Path) -> Result<(), String> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    for (path, kind) in [
        (net, CloneFlags::CLONE_NEWNET),
        (ipc, CloneFlags::CLONE_NEWIPC),
        (uts, CloneFlags::CLONE_NEWUTS),
    ] {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        nix::sched::setns(&f, kind).map_err(|e| format!("setns {}: {e}", path.display()))?;
    }
    unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare: {e}"))?;
    let err = |what: &str| {
        let what = what.to_string();
        move |e: nix::errno::Errno| format!("{what}: {e}")
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("making the mounts private"))?;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=16k,mode=0755"),
    )
    .map_err(err("mounting its root"))?;
    let old = root.join("old");
    std::fs::create_dir(&old).map_err(|e| format!("{}: {e}", old.display()))?;
    nix::unistd::pivot_root(root, &old).map_err(err("pivot_root"))?;
    nix::unistd::chdir("/").map_err(err("chdir"))?;
    umount2("/old", MntFlags::MNT_DETACH).map_err(err("unmounting the old root"))?;
    let _ = std::fs::remove_dir("/old");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(err("making its root read-only"))?;
    // No capability can come back: the bounding set goes (while we may
    // still drop it), then the IDs (which clear the rest), then no_new_privs.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { nix::libc::prctl(nix::libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            break;
        }
    }
    nix::unistd::setgroups(&[]).map_err(err("setgroups"))?;
    let nobody = 65534;
    nix::unistd::setresgid(nobody.into(), nobody.into(), nobody.into()).map_err(err("setgid"))?;
    nix::unistd::setresuid(nobody.into(), nobody.into(), nobody.into()).map_err(err("setuid"))?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err("setting no_new_privs".into());
    }
    Ok(())
}

/// PID 1 of the new namespace: no stdio of the caller's (it reads our
/// parent's output to its end), every signal blocked and taken with
/// sigwait (PID 1 gets only those), every exited process reaped.
fn hold(null: Option<std::fs::File>) -> ! {
    if let Some(null) = null {
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
