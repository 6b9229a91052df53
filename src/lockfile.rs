//! Advisory locks on files (flock) that several skiff processes share: the
//! image store, first-time SQLite set-up, the node network. The lock file is
//! created (0600) if missing and never removed; the lock goes with the
//! returned guard.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// A held lock; released on drop.
pub type Guard = Flock<fs::File>;

/// Wait for an exclusive lock on `path`.
pub fn exclusive(path: &Path) -> io::Result<Guard> {
    lock(path, FlockArg::LockExclusive)
}

/// Wait for a shared lock on `path`.
pub fn shared(path: &Path) -> io::Result<Guard> {
    lock(path, FlockArg::LockShared)
}

/// An exclusive lock on `path` if nobody holds any lock on it right now.
pub fn try_exclusive(path: &Path) -> io::Result<Option<Guard>> {
    match lock(path, FlockArg::LockExclusiveNonblock) {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EWOULDBLOCK as i32) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why [`try_exclusive_with_pid`] did not get its lock.
#[derive(Debug, thiserror::Error)]
pub enum TryLockError {
    /// Another process holds it; `pid` is what that process wrote into the
    /// file (None if it has not written it yet or wrote something else).
    #[error("held by another process{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { pid: Option<u32> },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Take an exclusive lock on `path` without waiting and write this
/// process's PID into the file, so that whoever is refused can name the
/// holder. The PID is only a hint: the lock itself is the flock.
pub fn try_exclusive_with_pid(path: &Path) -> Result<Guard, TryLockError> {
    let file = open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(guard) => {
            guard.set_len(0)?;
            std::os::unix::fs::FileExt::write_all_at(
                &*guard,
                format!("{}\n", std::process::id()).as_bytes(),
                0,
            )?;
            Ok(guard)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            Err(TryLockError::Held { pid })
        }
        Err((_, errno)) => Err(io::Error::from(errno).into()),
    }
}

/// Never through a symlink: a lock file is opened for writing (and the
/// server's is truncated) as root, so a link planted in its place must not
/// redirect that to another file.
fn open(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

fn lock(path: &Path, arg: FlockArg) -> io::Result<Guard> {
    let file = open(path)?;
    Flock::lock(file, arg).map_err(|(_, errno)| io::Error::from(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let a = shared(&path).unwrap();
        let b = shared(&path).unwrap();
        // An exclusive lock cannot be had while shared ones are held.
        let file = fs::File::open(&path).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err());
        assert!(try_exclusive(&path).unwrap().is_none());
        drop((a, b));
        let _x = exclusive(&path).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("lock");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(try_exclusive_with_pid(&path).is_err());
        assert!(exclusive(&path).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn try_exclusive_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = try_exclusive_with_pid(&path).unwrap();
        let me = std::process::id();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{me}\n"));
        // flock locks belong to the open file description, so a second open
        // in this process is refused like another process would be.
        match try_exclusive_with_pid(&path) {
            Err(TryLockError::Held { pid }) => assert_eq!(pid, Some(me)),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        let _again = try_exclusive_with_pid(&path).unwrap();
    }
}
