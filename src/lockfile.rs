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

fn lock(path: &Path, arg: FlockArg) -> io::Result<Guard> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
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
}
