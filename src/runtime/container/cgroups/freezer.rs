//! Freezing a container's cgroup (`skiff pause`/`unpause`): cgroup v2's
//! `cgroup.freeze`, or v1's freezer controller.
//!
//! Freezing is asynchronous in the kernel: a task in an uninterruptible
//! sleep stops only when it leaves it. We wait (bounded) until the kernel
//! reports the whole cgroup frozen, so that a `pause` that returns means
//! nothing in the container runs, and thaw again if it never gets there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{io_err, read_opt, validate_path, CgroupError, CgroupMode, Hierarchies};

/// How long a freeze may take before it is given up (and undone).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("the kernel offers no cgroup freezer (no cgroup v2 and no v1 freezer controller)")]
    NoFreezer,
    #[error("the processes of cgroup {0} did not all stop within {FREEZE_TIMEOUT:?} (one may be stuck in the kernel); left it running")]
    Timeout(String),
}

/// Where the freezer of cgroup `path` is, and which interface it speaks.
enum Freezer {
    V2(PathBuf),
    V1(PathBuf),
}

impl Hierarchies {
    fn freezer(&self, path: &str) -> Result<Freezer, FreezeError> {
        validate_path(path)?;
        let found = match self.mode() {
            CgroupMode::Unified => self
                .controller("freezer")
                .map(|h| Freezer::V2(Self::dir(h, path))),
            // v1 hierarchies hold the controllers (hybrid hosts too).
            _ => self
                .controller("freezer")
                .map(|h| Freezer::V1(Self::dir(h, path))),
        };
        let freezer = found.ok_or(FreezeError::NoFreezer)?;
        let dir = match &freezer {
            Freezer::V2(d) | Freezer::V1(d) => d,
        };
        if !dir.is_dir() {
            return Err(CgroupError::NotFound(path.to_string()).into());
        }
        Ok(freezer)
    }

    /// Freeze (`true`) or thaw the cgroup `path` and what is below it;
    /// returns once the kernel reports it done.
    pub fn freeze(&self, path: &str, frozen: bool) -> Result<(), FreezeError> {
        let freezer = self.freezer(path)?;
        set(&freezer, frozen)?;
        if !frozen {
            // Thawing takes effect at once.
            return Ok(());
        }
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut pause = Duration::from_micros(200);
        loop {
            if is_frozen(&freezer)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                // Half-frozen helps nobody: leave it as it was.
                if let Err(e) = set(&freezer, false) {
                    tracing::warn!("thawing {path} after a failed freeze: {e}");
                }
                return Err(FreezeError::Timeout(path.to_string()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Whether the cgroup `path` is frozen, as the kernel says now.
    pub fn is_frozen(&self, path: &str) -> Result<bool, FreezeError> {
        Ok(is_frozen(&self.freezer(path)?)?)
    }
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(file, value).map_err(io_err(file))
}

fn set(freezer: &Freezer, frozen: bool) -> Result<(), CgroupError> {
    match freezer {
        Freezer::V2(dir) => write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
        Freezer::V1(dir) => write(
            &dir.join("freezer.state"),
            if frozen { "FROZEN" } else { "THAWED" },
        ),
    }
}

fn is_frozen(freezer: &Freezer) -> Result<bool, CgroupError> {
    match freezer {
        // `frozen 1` in cgroup.events once every task has stopped.
        Freezer::V2(dir) => {
            let events = dir.join("cgroup.events");
            let text = read_opt(&events)?.unwrap_or_default();
            Ok(text.lines().any(|l| l.trim() == "frozen 1"))
        }
        // FREEZING until every task has stopped; reading it moves the
        // kernel's state machine on.
        Freezer::V1(dir) => {
            let state = dir.join("freezer.state");
            Ok(read_opt(&state)?.unwrap_or_default().trim() == "FROZEN")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v2 interface is written and read as the kernel defines it (a
    /// plain directory stands in for the cgroup; the real one is exercised
    /// by the engine's integration tests).
    #[test]
    fn v2_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = Freezer::V2(dir.path().to_path_buf());
        set(&f, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.freeze")).unwrap(),
            "1"
        );
        std::fs::write(dir.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(!is_frozen(&f).unwrap());
        std::fs::write(dir.path().join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert!(is_frozen(&f).unwrap());
        let v1 = Freezer::V1(dir.path().to_path_buf());
        set(&v1, false).unwrap();
        assert!(!is_frozen(&v1).unwrap());
    }
}
