//! File-descriptor based operations beneath the layer root.
//!
//! Every path handed to this module is already normalised (see
//! [`normalize`]): a list of plain names, none of them empty, `.` or `..`.
//! Directories are reached either with one `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` or, when that fails (a
//! missing directory, a symlink, an old kernel), by a walk that opens one
//! component at a time with `O_NOFOLLOW | O_DIRECTORY` relative to the fd of
//! the previous one. No symlink is ever followed, so nothing outside the root
//! can be reached.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Splits a tar path into plain components. Absolute paths become relative
/// (`/etc/x` → `etc/x`), `.` and empty components are dropped, `..` removes
/// the previous component. `Err(())` when `..` would climb above the root.
pub(super) fn normalize(raw: &[u8]) -> Result<Vec<&OsStr>, ()> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(());
                }
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Why a directory walk stopped.
#[derive(Debug)]
pub(super) enum WalkError {
    /// This prefix of the path does not exist (only when not creating).
    Missing(PathBuf),
    /// This prefix of the path is a symlink.
    Symlink(PathBuf),
    /// This prefix of the path exists and is not a directory.
    NotDir(PathBuf),
    /// Any other failure of a system call.
    Io(&'static str, io::Error),
}

const DIR_PATH: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The layer root and a one-entry cache of the last parent directory used
/// (tar streams list the files of one directory together).
pub(super) struct Tree {
    root: Rc<OwnedFd>,
    cache: Option<(PathBuf, Rc<OwnedFd>)>,
    /// False once openat2 turned out to be missing (ENOSYS).
    openat2: bool,
}

impl Tree {
    pub(super) fn open(dest: &Path) -> io::Result<Tree> {
        let root = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Tree {
            root: Rc::new(root),
            cache: None,
            openat2: true,
        })
    }

    /// Forgets cached directory fds; called whenever something is removed.
    pub(super) fn invalidate(&mut self) {
        self.cache = None;
    }

    /// Opens (`O_PATH`) the directory at `comps` beneath the root, creating
    /// missing directories (mode 0755) when `create` is set.
    pub(super) fn dir(&mut self, comps: &[&OsStr], create: bool) -> Result<Rc<OwnedFd>, WalkError> {
        if comps.is_empty() {
            return Ok(self.root.clone());
        }
        let key: PathBuf = comps.iter().collect();
        if let Some((k, fd)) = &self.cache {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        if self.openat2 {
            match rustix::fs::openat2(
                self.root.as_fd(),
                &key,
                DIR_PATH,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => {
                    let fd = Rc::new(fd);
                    self.cache = Some((key, fd.clone()));
                    return Ok(fd);
                }
                Err(Errno::NOSYS) => self.openat2 = false,
                // Missing directories, symlinks, non-directories: the slow
                // walk below creates or reports them precisely.
                Err(_) => {}
            }
        }
        let fd = self.walk(comps, create)?;
        self.cache = Some((key, fd.clone()));
        Ok(fd)
    }

    fn walk(&self, comps: &[&OsStr], create: bool) -> Result<Rc<OwnedFd>, WalkError> {
        let mut cur = self.root.clone();
        let mut prefix = PathBuf::new();
        for c in comps {
            prefix.push(c);
            let mut created = false;
            let fd = loop {
                match rustix::fs::openat(cur.as_fd(), *c, DIR_PATH, Mode::empty()) {
                    Ok(fd) => break fd,
                    Err(Errno::NOENT) if create && !created => {
                        match rustix::fs::mkdirat(cur.as_fd(), *c, Mode::from_raw_mode(0o755)) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => return Err(WalkError::Io("mkdir", e.into())),
                        }
                        // mkdir's mode went through the umask; we just
                        // created a directory here, so chmod follows nothing.
                        rustix::fs::chmodat(
                            cur.as_fd(),
                            *c,
                            Mode::from_raw_mode(0o755),
                            AtFlags::empty(),
                        )
                        .map_err(|e| WalkError::Io("chmod", e.into()))?;
                        created = true;
                    }
                    Err(Errno::NOENT) => return Err(WalkError::Missing(prefix)),
                    Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                        return match file_type(&cur, c) {
                            Ok(Some(FileType::Symlink)) => Err(WalkError::Symlink(prefix)),
                            Ok(_) => Err(WalkError::NotDir(prefix)),
                            Err(e) => Err(WalkError::Io("stat", e)),
                        };
                    }
                    Err(e) => return Err(WalkError::Io("open", e.into())),
                }
            };
            cur = Rc::new(fd);
        }
        Ok(cur)
    }
}

/// The type of `name` in `dir` without following a symlink; `None` if absent.
pub(super) fn file_type(dir: &OwnedFd, name: &OsStr) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` from `dir`, whatever it is; a directory is removed with
/// everything beneath it (walked by fd, never following symlinks).
/// Returns true if a directory was removed.
pub(super) fn remove_any(dir: &OwnedFd, name: &OsStr) -> io::Result<bool> {
    match file_type(dir, name)? {
        None => Ok(false),
        Some(FileType::Directory) => {
            remove_tree(dir, name)?;
            Ok(true)
        }
        Some(_) => {
            rustix::fs::unlinkat(dir.as_fd(), name, AtFlags::empty())?;
            Ok(false)
        }
    }
}

fn remove_tree(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(
        parent.as_fd(),
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children: Vec<(OsString, FileType)> = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        children.push((OsStr::from_bytes(n).to_owned(), e.file_type()));
    }
    for (child, ty) in children {
        let ty = match ty {
            FileType::Unknown => file_type(&fd, &child)?.unwrap_or(FileType::Unknown),
            t => t,
        };
        if ty == FileType::Directory {
            remove_tree(&fd, &child)?;
        } else {
            match rustix::fs::unlinkat(fd.as_fd(), &child, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    rustix::fs::unlinkat(parent.as_fd(), name, AtFlags::REMOVEDIR)?;
    Ok(())
}
