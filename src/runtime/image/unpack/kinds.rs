//! Writing each kind of tar entry: directories, regular files, symlinks,
//! hardlinks, device nodes and fifos, and the overlayfs forms of whiteouts
//! and opaque directories.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::attrs::Meta;
use super::tree;
use super::{fs_err, lossy, DirMeta, UnpackError, Unpacker, WalkError};

impl Unpacker<'_> {
    pub(super) fn directory(
        &mut self,
        comps: &[&OsStr],
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        let mut retried = false;
        loop {
            match rustix::fs::mkdirat(&*parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => break,
                Err(Errno::EXIST) => {
                    let ty = tree::file_type(&parent, name).map_err(|e| UnpackError::Fs {
                        path: path.to_string(),
                        op: "stat",
                        source: e,
                    })?;
                    if ty == Some(FileType::Directory) {
                        break; // keep it, update its metadata
                    }
                    if retried {
                        return Err(fs_err(path, "mkdir")(Errno::EXIST));
                    }
                    self.clear(&parent, comps, path)?;
                    retried = true;
                }
                Err(e) => return Err(fs_err(path, "mkdir")(e)),
            }
        }
        let fd = self
            .tree
            .dir(comps, false)
            .map_err(|e| self.walk_err(path, e))?;
        self.dir_attrs(&fd, meta, path)?;
        self.dirs.insert(
            comps.iter().collect(),
            DirMeta {
                mode: Some(meta.mode),
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    pub(super) fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        comps: &[&OsStr],
        meta: &Meta,
        path: &str,
        sparse: bool,
    ) -> Result<(), UnpackError> {
        // For a sparse entry, `size` is the apparent size; the data stored
        // in the archive is what takes space.
        let size = entry.size();
        let stored = if sparse {
            self.check_sparse(path, size)?;
            entry
                .header()
                .entry_size()
                .map_err(|e| UnpackError::Header {
                    path: path.to_string(),
                    source: e,
                })?
        } else {
            size
        };
        self.check_limit(path, stored)?;
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&*parent, name, flags, Mode::from_raw_mode(0o600)) {
            Err(Errno::EXIST) => {
                self.clear(&parent, comps, path)?;
                rustix::fs::openat(&*parent, name, flags, Mode::from_raw_mode(0o600))
            }
            r => r,
        }
        .map_err(fs_err(path, "create"))?;
        let mut file = File::from(fd);
        // Bytes of the file so far (holes included), and where the file's
        // offset is: holes of sparse entries are skipped, not written, so a
        // few headers describing gigabytes allocate nothing. (The tar reader
        // returns a hole as reads of zeros, never mixed with data.)
        let mut written: u64 = 0;
        let mut at: u64 = 0;
        let mut data: u64 = 0;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(UnpackError::EntryData {
                        path: path.to_string(),
                        source: e,
                    })
                }
            };
            let start = written;
            written += n as u64;
            if written > size {
                return Err(UnpackError::EntryData {
                    path: path.to_string(),
                    source: io::Error::other("more data than the header's size"),
                });
            }
            if sparse && self.buf[..n].iter().all(|&b| b == 0) {
                continue;
            }
            data += n as u64;
            let io = |op| {
                move |e| UnpackError::Fs {
                    path: path.to_string(),
                    op,
                    source: e,
                }
            };
            if at != start {
                file.seek(SeekFrom::Start(start)).map_err(io("seek"))?;
            }
            file.write_all(&self.buf[..n]).map_err(io("write"))?;
            at = written;
        }
        if sparse && at != written {
            // A trailing hole: the size without the blocks.
            file.set_len(written).map_err(|e| UnpackError::Fs {
                path: path.to_string(),
                op: "set length",
                source: e,
            })?;
        }
        if written < size && !sparse {
            return Err(UnpackError::Truncated {
                path: path.to_string(),
                got: written,
                expected: size,
            });
        }
        self.stats.bytes += data;
        let fd = OwnedFd::from(file);
        // Content first (a write clears security.capability), then owner
        // (chown clears setuid/setgid), then mode, xattrs and times.
        if self.opts.preserve_ownership {
            let (u, g) = self.chown_ids(meta);
            rustix::fs::fchown(&fd, u, g).map_err(fs_err(path, "chown"))?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode)).map_err(fs_err(path, "chmod"))?;
        self.fd_xattrs(&fd, meta, path)?;
        rustix::fs::futimens(&fd, &meta.times()).map_err(fs_err(path, "set times"))?;
        Ok(())
    }

    pub(super) fn symlink(
        &mut self,
        comps: &[&OsStr],
        target: &[u8],
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        if target.is_empty() || target.contains(&0) {
            return Err(UnpackError::Invalid {
                path: path.to_string(),
                reason: "symlink with an empty or invalid target",
            });
        }
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        // The target is stored verbatim: it is resolved inside the container
        // root later, and never followed here.
        match rustix::fs::symlinkat(target, &*parent, name) {
            Err(Errno::EXIST) => {
                self.clear(&parent, comps, path)?;
                rustix::fs::symlinkat(target, &*parent, name)
            }
            r => r,
        }
        .map_err(fs_err(path, "symlink"))?;
        self.special_attrs(&parent, name, meta, path, false)
    }

    /// Owner, mode, xattrs and times of a symlink or node, by name.
    pub(super) fn special_attrs(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        path: &str,
        chmod: bool,
    ) -> Result<(), UnpackError> {
        if self.opts.preserve_ownership {
            let (u, g) = self.chown_ids(meta);
            rustix::fs::chownat(parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(fs_err(path, "chown"))?;
        }
        if chmod {
            // A node we have just created (not a symlink): chmod follows
            // nothing. Needed because mknod's mode went through the umask.
            rustix::fs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(fs_err(path, "chmod"))?;
        }
        self.link_xattrs(parent, name, meta, path)?;
        rustix::fs::utimensat(parent, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(fs_err(path, "set times"))
    }

    pub(super) fn hardlink(
        &mut self,
        comps: &[&OsStr],
        target: &[u8],
        path: &str,
    ) -> Result<(), UnpackError> {
        let tpath = lossy(target);
        let terr = |reason: &str| UnpackError::HardlinkTarget {
            path: path.to_string(),
            target: tpath.clone(),
            reason: reason.to_string(),
        };
        let tcomps = tree::normalize(target).map_err(|()| UnpackError::HardlinkOutside {
            path: path.to_string(),
            target: tpath.clone(),
        })?;
        let Some(tname) = tcomps.last().copied() else {
            return Err(terr("is the layer root, not a regular file"));
        };
        let tparent = match self.tree.dir(&tcomps[..tcomps.len() - 1], false) {
            Ok(fd) => fd,
            Err(WalkError::Missing(_)) => return Err(terr("does not exist in this layer")),
            Err(WalkError::Symlink(c)) => {
                return Err(terr(&format!("goes through the symlink {}", c.display())))
            }
            Err(WalkError::NotDir(c)) => {
                return Err(terr(&format!(
                    "goes through the non-directory {}",
                    c.display()
                )))
            }
            Err(WalkError::Io(op, e)) => {
                return Err(UnpackError::Fs {
                    path: path.to_string(),
                    op,
                    source: e,
                })
            }
        };
        let st = match rustix::fs::statat(&*tparent, tname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(terr("does not exist in this layer")),
            Err(e) => return Err(fs_err(path, "stat hardlink target")(e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(terr("is a symlink")),
            _ => return Err(terr("is not a regular file")),
        }
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        // Flags 0: linkat does not follow a symlink at the target name.
        match rustix::fs::linkat(&*tparent, tname, &*parent, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                if let Ok(cur) = rustix::fs::statat(&*parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    if cur.st_dev == st.st_dev && cur.st_ino == st.st_ino {
                        return Ok(()); // already that file
                    }
                }
                self.clear(&parent, comps, path)?;
                rustix::fs::linkat(&*tparent, tname, &*parent, name, AtFlags::empty())
                    .map_err(fs_err(path, "link"))
            }
            Err(e) => Err(fs_err(path, "link")(e)),
        }
    }

    pub(super) fn node(
        &mut self,
        comps: &[&OsStr],
        ty: FileType,
        dev: rustix::fs::Dev,
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        let mode = Mode::from_raw_mode(meta.mode);
        let made = match rustix::fs::mknodat(&*parent, name, ty, mode, dev) {
            Err(Errno::EXIST) => {
                self.clear(&parent, comps, path)?;
                rustix::fs::mknodat(&*parent, name, ty, mode, dev)
            }
            r => r,
        };
        match made {
            Ok(()) => {}
            Err(Errno::PERM) if !self.opts.preserve_ownership && ty != FileType::Fifo => {
                tracing::warn!(entry = %path, "cannot create a device node without privilege; skipped");
                return Ok(());
            }
            Err(e) => return Err(fs_err(path, "mknod")(e)),
        }
        self.special_attrs(&parent, name, meta, path, true)
    }

    /// `.wh.NAME` → a 0:0 character device NAME, as overlayfs expects.
    pub(super) fn whiteout(&mut self, comps: &[&OsStr], path: &str) -> Result<(), UnpackError> {
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        let mk = || {
            rustix::fs::mknodat(
                &*parent,
                name,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
        };
        match mk() {
            Err(Errno::EXIST) => {
                self.clear(&parent, comps, path)?;
                mk()
            }
            r => r,
        }
        .map_err(fs_err(path, "create whiteout"))
    }

    /// `.wh..wh..opq` in a directory → trusted.overlay.opaque=y on it.
    pub(super) fn opaque(&mut self, dir: &[&OsStr], path: &str) -> Result<(), UnpackError> {
        let fd = self
            .tree
            .dir(dir, true)
            .map_err(|e| self.walk_err(path, e))?;
        let fd = rustix::fs::openat(
            &*fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fs_err(path, "open directory"))?;
        rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
            .map_err(fs_err(path, "set trusted.overlay.opaque"))
    }
}
