//! Entry metadata: owner, mode, times and extended attributes, read from the
//! tar headers (PAX records included) and applied to what was written.

use super::*;

/// Owner, mode, times and xattrs of one entry.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) mtime: Timespec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    pub(super) fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

/// Errors that only warrant a warning when setting an image xattr.
pub(super) fn xattr_ignorable(e: Errno) -> bool {
    e == Errno::PERM || e == Errno::NOTSUP || e == Errno::OPNOTSUPP
}

/// Parses a PAX time (`1234567890.123456789`, possibly negative).
pub(super) fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    let (mut sec, mut nsec) = (secs, nanos);
    if neg {
        sec = -sec;
        if nsec > 0 {
            sec -= 1;
            nsec = 1_000_000_000 - nsec;
        }
    }
    Some(Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    })
}

impl Unpacker<'_> {
    pub(super) fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        path: &str,
    ) -> Result<Meta, UnpackError> {
        let hdr = |e| UnpackError::Header {
            path: path.to_string(),
            source: e,
        };
        let h = entry.header();
        let mode = h.mode().map_err(hdr)? & 0o7777;
        let (uid, gid) = (h.uid().map_err(hdr)?, h.gid().map_err(hdr)?);
        let mut mtime = Timespec {
            tv_sec: h.mtime().map_err(hdr)?.min(i64::MAX as u64) as i64,
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Tar)? {
            for ext in exts {
                let ext = ext.map_err(UnpackError::Tar)?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                        tracing::warn!(
                            entry = %path,
                            xattr = %lossy(name),
                            "dropping overlayfs xattr from the image"
                        );
                        continue;
                    }
                    if name.is_empty() || name.contains(&0) {
                        continue;
                    }
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    pub(super) fn chown_ids(
        &self,
        meta: &Meta,
    ) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
        // Ids beyond u32 cannot exist on Linux; leave such entries as ours.
        let uid = u32::try_from(meta.uid).ok().map(rustix::fs::Uid::from_raw);
        let gid = u32::try_from(meta.gid).ok().map(rustix::fs::Gid::from_raw);
        (uid, gid)
    }

    /// Sets the image's xattrs on an open fd (regular files, directories).
    pub(super) fn fd_xattrs(
        &self,
        fd: &OwnedFd,
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        for (name, value) in &meta.xattrs {
            match rustix::fs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if xattr_ignorable(e) => {
                    tracing::warn!(entry = %path, xattr = %lossy(name), error = %e, "cannot set xattr; skipped")
                }
                Err(e) => return Err(fs_err(path, "setxattr")(e)),
            }
        }
        Ok(())
    }

    /// Sets the image's xattrs on `name` in `dir` without opening or
    /// following it (symlinks, device nodes): lsetxattr through the
    /// directory's fd in /proc.
    pub(super) fn link_xattrs(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        p.push(name);
        for (xname, value) in &meta.xattrs {
            match rustix::fs::lsetxattr(&p, xname.as_slice(), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if xattr_ignorable(e) => {
                    tracing::warn!(entry = %path, xattr = %lossy(xname), error = %e, "cannot set xattr; skipped")
                }
                Err(e) => return Err(fs_err(path, "lsetxattr")(e)),
            }
        }
        Ok(())
    }

    /// Owner and xattrs of a directory (mode and mtime come last).
    pub(super) fn dir_attrs(
        &self,
        fd: &OwnedFd,
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let fd = rustix::fs::openat(
            fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fs_err(path, "open directory"))?;
        if self.opts.preserve_ownership {
            let (u, g) = self.chown_ids(meta);
            rustix::fs::fchown(&fd, u, g).map_err(fs_err(path, "chown"))?;
        }
        self.fd_xattrs(&fd, meta, path)
    }
}
