//! The container's root filesystem: overlayfs over the image's snapshots
//! (read-only, shared) with a private upper and work directory, mounted at
//! `<root>/containers/<id>/rootfs` while the container exists in the kernel.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the image has no layers")]
    NoLayers,
    #[error("mounting the overlay at {path}: {source}")]
    Mount { path: PathBuf, source: nix::Error },
    #[error("a snapshot path contains a character overlayfs cannot take (':' or ','): {0}")]
    BadPath(PathBuf),
}

/// The overlay of one container.
pub struct Overlay {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
    /// overlayfs' `volatile` option: no sync of the upper filesystem on
    /// syncfs or at unmount. Only for `--rm` containers, whose upper and
    /// work directories are deleted right after the unmount anyway: without
    /// it the unmount syncs the whole host filesystem holding the upper
    /// directory, for data that is thrown away. After a host crash overlayfs
    /// refuses to mount such an upper again, which nothing ever does.
    pub volatile: bool,
}

impl Overlay {
    /// `snapshots` in image order (bottom layer first), as the image store
    /// lists them; `dir` is the container's directory.
    pub fn new(snapshots: Vec<PathBuf>, dir: &Path) -> Overlay {
        let mut lower = snapshots;
        // overlayfs wants the top layer first.
        lower.reverse();
        Overlay {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            target: dir.join("rootfs"),
            volatile: false,
        }
    }

    /// See [`Overlay::volatile`].
    pub fn volatile(mut self, volatile: bool) -> Overlay {
        self.volatile = volatile;
        self
    }

    /// The mount data; the kernel takes at most a page of it, which bounds
    /// the number of layers (about 40 with the default root).
    pub fn data(&self) -> Result<String, RootfsError> {
        if self.lower.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        for p in self.lower.iter().chain([&self.upper, &self.work]) {
            if p.to_string_lossy().contains([':', ',']) {
                return Err(RootfsError::BadPath(p.clone()));
            }
        }
        let lower: Vec<String> = self
            .lower
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        Ok(format!(
            "lowerdir={},upperdir={},workdir={}{}",
            lower.join(":"),
            self.upper.display(),
            self.work.display(),
            if self.volatile { ",volatile" } else { "" }
        ))
    }

    pub fn mount(&self) -> Result<(), RootfsError> {
        let data = self.data()?;
        for d in [&self.upper, &self.work, &self.target] {
            fs::create_dir_all(d).map_err(|source| RootfsError::Io {
                path: d.clone(),
                source,
            })?;
        }
        mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|source| RootfsError::Mount {
            path: self.target.clone(),
            source,
        })
    }
}

/// Whether something is mounted exactly at `path` (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape(mp) == want)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Unmount the container's rootfs if it is mounted. Lazy: a process that
/// still has it open (an exec being torn down) must not make this fail.
pub fn unmount(target: &Path) -> Result<(), RootfsError> {
    while is_mounted(target) {
        umount2(target, MntFlags::MNT_DETACH).map_err(|source| RootfsError::Mount {
            path: target.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_layer_first() {
        let o = Overlay::new(vec!["/s/base".into(), "/s/top".into()], Path::new("/c/x"));
        assert_eq!(
            o.data().unwrap(),
            "lowerdir=/s/top:/s/base,upperdir=/c/x/upper,workdir=/c/x/work"
        );
        assert!(matches!(
            Overlay::new(vec![], Path::new("/c")).data(),
            Err(RootfsError::NoLayers)
        ));
        assert_eq!(
            Overlay::new(vec!["/s/base".into()], Path::new("/c/x"))
                .volatile(true)
                .data()
                .unwrap(),
            "lowerdir=/s/base,upperdir=/c/x/upper,workdir=/c/x/work,volatile"
        );
        assert!(matches!(
            Overlay::new(vec!["/s/a:b".into()], Path::new("/c")).data(),
            Err(RootfsError::BadPath(_))
        ));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
