//! Network namespaces, made and entered without forking (the engine may run
//! inside a multi-threaded process): a short-lived thread unshares or joins a
//! namespace, which changes only that thread.
//!
//! A namespace outlives its processes through a handle: its
//! /proc/thread-self/ns/net bind-mounted onto a file (as `ip netns` does),
//! which libcontainer joins by path and which is removed by unmounting it.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("network namespace {path}: {op}: {errno}")]
    Sys {
        path: PathBuf,
        op: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("network namespace thread panicked")]
    Panicked,
}

/// Create a new, empty network namespace pinned at `handle`.
pub fn create(handle: &Path) -> Result<(), NetnsError> {
    if let Some(dir) = handle.parent() {
        fs::create_dir_all(dir).map_err(|source| NetnsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    fs::File::create(handle).map_err(|source| NetnsError::Io {
        path: handle.to_path_buf(),
        source,
    })?;
    let path = handle.to_path_buf();
    let result = std::thread::spawn(move || -> Result<(), NetnsError> {
        let sys = |op, errno| NetnsError::Sys {
            path: path.clone(),
            op,
            errno,
        };
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| sys("unshare", e))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| sys("bind mount", e))
    })
    .join()
    .map_err(|_| NetnsError::Panicked)?;
    if result.is_err() {
        let _ = fs::remove_file(handle);
    }
    result
}

/// Unpin and delete a namespace handle; the namespace goes away with its
/// last process (and takes its veth ends with it). Missing is fine.
pub fn remove(handle: &Path) -> Result<(), NetnsError> {
    match umount2(handle, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(errno) => {
            return Err(NetnsError::Sys {
                path: handle.to_path_buf(),
                op: "unmount",
                errno,
            })
        }
    }
    match fs::remove_file(handle) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Io {
            path: handle.to_path_buf(),
            source,
        }),
    }
}

/// Whether `handle` is a pinned namespace (a mount point, not a plain file).
pub fn is_pinned(handle: &Path) -> bool {
    let (Ok(file), Some(parent)) = (fs::metadata(handle), handle.parent()) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    fs::metadata(parent).is_ok_and(|p| p.dev() != file.dev())
}

/// Run `f` on a thread inside the namespace pinned at `handle`.
pub fn run_in<T, E, F>(handle: &Path, f: F) -> Result<Result<T, E>, NetnsError>
where
    T: Send,
    E: Send,
    F: FnOnce() -> Result<T, E> + Send,
{
    let file = fs::File::open(handle).map_err(|source| NetnsError::Io {
        path: handle.to_path_buf(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| NetnsError::Sys {
                path: handle.to_path_buf(),
                op: "setns",
                errno,
            })?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetnsError::Panicked)?
    })
}
