//! The container's root filesystem: overlayfs over the image's snapshots
//! (read-only, shared) with a private upper and work directory, mounted at
//! `<root>/containers/<id>/rootfs` while the container exists in the kernel.
//!
//! The shim mounts it in a mount namespace of its own ([`MountNamespace`]),
//! from which the container's namespace is copied, and leaves that namespace
//! once the container runs: the host never sees the mount, nothing can leak
//! onto the host's mount table (the mount dies with the container's
//! namespace), and a container's exit needs no unmount before it is
//! reported.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

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
    #[error("{what}: {source}")]
    Namespace {
        what: &'static str,
        source: nix::Error,
    },
}

/// A private mount namespace the calling process moved into, and the way
/// back to the one it came from (the host's).
pub struct MountNamespace {
    host: OwnedFd,
}

impl MountNamespace {
    /// Move into a copy of the current mount namespace in which mounts made
    /// from now on stay private, while the host's later mounts and unmounts
    /// still show (a slave copy, so a disk the host unmounts is not kept
    /// busy here). The process must be single-threaded.
    pub fn enter() -> Result<MountNamespace, RootfsError> {
        let host: OwnedFd = fs::File::open("/proc/self/ns/mnt")
            .map_err(|source| RootfsError::Io {
                path: "/proc/self/ns/mnt".into(),
                source,
            })?
            .into();
        let ns_err = |what| move |source| RootfsError::Namespace { what, source };
        unshare(CloneFlags::CLONE_NEWNS).map_err(ns_err("unshare(CLONE_NEWNS)"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(ns_err("making the mount namespace a slave of the host's"))?;
        Ok(MountNamespace { host })
    }

    /// Return to the host's mount namespace. The private one is torn down
    /// when its last process leaves it (the container's copy of the overlay
    /// stays).
    pub fn leave(self) -> Result<(), RootfsError> {
        setns(&self.host, CloneFlags::CLONE_NEWNS).map_err(|source| RootfsError::Namespace {
            what: "returning to the host's mount namespace",
            source,
        })
    }
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
        let overlay = |data: &str| {
            mount(
                Some("overlay"),
                &self.target,
                Some("overlay"),
                MsFlags::empty(),
                Some(data),
            )
        };
        let mut result = overlay(&data);
        // `volatile` came with Linux 5.10; older kernels refuse the mount.
        if self.volatile && result == Err(nix::Error::EINVAL) {
            result = overlay(data.trim_end_matches(",volatile"));
        }
        result.map_err(|source| RootfsError::Mount {
            path: self.target.clone(),
            source,
        })
    }
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
}
