//! subPath mounts, made the way kubelet makes them safe.
//!
//! A subPath names a path inside a volume that containers may write, so a
//! container can plant symlinks there, and swap a checked directory for one
//! between the agent's check and the engine's bind: a bind by path would
//! then follow the symlink and put the host's files (`/etc`, `/`) into a
//! container. So the path is never bound by name:
//!
//! 1. it is resolved (symlinks inside the volume are allowed, as kubelet)
//!    and refused if it leads out of the volume; missing directories are
//!    made with `mkdirat` under a directory opened without following links;
//! 2. the resolved path is opened one component at a time with
//!    `O_PATH | O_NOFOLLOW` from the volume's root, and refused if any
//!    component is now a symlink (a race lost by the container is an error,
//!    never an escape);
//! 3. that file descriptor, which names the very inode checked, is bound
//!    through `/proc/self/fd/N` onto a target under the pod's own directory
//!    (`volume-subpaths/<volume>/<container>/<index>`), which no container
//!    can reach;
//! 4. the engine binds the target.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{io_at, VolumeError};

/// Bind `base`/`sub` onto `target` (made as a file or a directory, after
/// what `sub` is) and return `target`. A bind left there by an earlier
/// start of the same container is replaced.
pub fn bind(base: &Path, sub: &str, target: &Path) -> Result<PathBuf, VolumeError> {
    let bad = |why: &str| VolumeError::SubPath(format!("subPath {sub:?}: {why}"));
    let rel = Path::new(sub);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(bad("must be a relative path without '..'"));
    }
    let base = fs::canonicalize(base).map_err(io_at(base))?;
    let resolved = resolve(&base, rel).map_err(|e| match e {
        Resolve::Out => bad("leads out of the volume"),
        Resolve::Moved => bad("changed while it was being mounted"),
        Resolve::Io(e) => e,
    })?;
    let fd = open_beneath(&base, &resolved).map_err(|e| match e {
        Resolve::Out | Resolve::Moved => bad("changed while it was being mounted"),
        Resolve::Io(e) => e,
    })?;
    let is_dir = rustix::fs::fstat(&fd)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        .map_err(|e| io_at(&resolved)(e.into()))?;
    // Compared with mountinfo's paths, which are canonical.
    let target = &canonical_target(target)?;
    unbind(target)?;
    make_target(target, is_dir)?;
    let source = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    nix::mount::mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| io_at(target)(e.into()))?;
    Ok(target.to_path_buf())
}

pub(super) enum Resolve {
    /// The path leads out of the volume.
    Out,
    /// A component became a symlink (or stopped being a directory) while
    /// it was being walked.
    Moved,
    Io(VolumeError),
}

impl From<VolumeError> for Resolve {
    fn from(e: VolumeError) -> Self {
        Resolve::Io(e)
    }
}

/// `base`/`rel` with every symlink resolved, each missing directory made on
/// the way (as kubelet makes a missing subPath). `base` is canonical.
fn resolve(base: &Path, rel: &Path) -> Result<PathBuf, Resolve> {
    let mut cur = base.to_path_buf();
    for part in rel.components() {
        let next = cur.join(part);
        if fs::symlink_metadata(&next).is_err() {
            // `cur` is canonical and beneath `base`; the directory is made
            // in the one opened here, whatever `cur` has become since.
            let parent = open_beneath(base, &cur)?;
            match rustix::fs::mkdirat(&parent, part.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io_at(&next)(e.into()).into()),
            }
        }
        let real = fs::canonicalize(&next).map_err(io_at(&next))?;
        if !real.starts_with(base) {
            return Err(Resolve::Out);
        }
        cur = real;
    }
    Ok(cur)
}

/// `path` (beneath `base`) opened as `O_PATH` one component at a time from
/// `base` without following any symlink.
pub(super) fn open_beneath(base: &Path, path: &Path) -> Result<OwnedFd, Resolve> {
    let rel = path.strip_prefix(base).map_err(|_| Resolve::Out)?;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(base, flags | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| io_at(base)(e.into()))?;
    let mut at = base.to_path_buf();
    for part in rel.components() {
        let Component::Normal(name) = part else {
            return Err(Resolve::Out);
        };
        at.push(name);
        fd = match rustix::fs::openat(&fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            // Gone, or what was a directory is now a file.
            Err(Errno::NOENT | Errno::NOTDIR) => return Err(Resolve::Moved),
            Err(e) => return Err(io_at(&at)(e.into()).into()),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| io_at(&at)(e.into()))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Err(Resolve::Moved);
        }
    }
    Ok(fd)
}

/// `target` with its parent made and resolved (the file itself may not be
/// there yet).
fn canonical_target(target: &Path) -> Result<PathBuf, VolumeError> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(VolumeError::SubPath(format!(
            "bad target {}",
            target.display()
        )));
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(parent)
        .map_err(io_at(parent))?;
    Ok(fs::canonicalize(parent).map_err(io_at(parent))?.join(name))
}

/// Remove what an earlier bind left on `target`, however many times it was
/// bound.
fn unbind(target: &Path) -> Result<(), VolumeError> {
    for _ in 0..16 {
        if !super::mounts_under(target).iter().any(|m| m == target) {
            return Ok(());
        }
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| io_at(target)(io::Error::from(e)))?;
    }
    Err(VolumeError::SubPath(format!(
        "{} stays mounted",
        target.display()
    )))
}

/// An empty directory or file to bind onto.
fn make_target(target: &Path, is_dir: bool) -> Result<(), VolumeError> {
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(io_at(parent))?;
    }
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir(target).map_err(io_at(target))?,
        Ok(_) => fs::remove_file(target).map_err(io_at(target))?,
        Err(_) => {}
    }
    if is_dir {
        fs::DirBuilder::new()
            .mode(0o750)
            .create(target)
            .map_err(io_at(target))
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map(drop)
            .map_err(io_at(target))
    }
}
