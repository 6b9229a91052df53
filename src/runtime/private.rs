//! Keeping the node's `--root` private to root.
//!
//! Everything under `<root>` is either trusted by every container (image
//! snapshots become their root filesystems; a file planted there runs as
//! root in the next container), a copy of an image's device nodes, or a
//! secret (container configs and records hold `-e PASSWORD=…`, logs hold
//! their output). Host users have no business there, so `<root>` is 0700 and
//! owned by root: nothing below it can be reached by path. Nothing needs to
//! traverse it as another user: overlay and bind mounts are made by root, and
//! containers see their root filesystem through the mount, not the path.
//!
//! Files holding secrets are created 0600 as well (so that a loosened
//! `<root>` does not expose them), with the mode given at `open`, never
//! tightened after their content is written.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of `<root>` and the stores directly below it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of records, configs, logs.
pub const FILE_MODE: u32 = 0o600;

/// Create `dir` (and missing parents) 0700, or tighten an existing one
/// that other users can reach. One another user owns is refused, not taken
/// over: whatever they planted in it would stay and be trusted.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    // By descriptor, without following a symlink put in its place.
    let fd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(dir)?;
    let meta = fd.metadata()?;
    let euid = nix::unistd::geteuid();
    if meta.uid() != euid.as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is owned by uid {}, not by uid {}: its content cannot be trusted; \
                 chown it to root (after checking what is in it) or choose another --root",
                dir.display(),
                meta.uid(),
                euid
            ),
        ));
    }
    let egid = nix::unistd::getegid();
    if meta.gid() != egid.as_raw() {
        nix::unistd::fchown(&fd, None, Some(egid)).map_err(io::Error::from)?;
    }
    if meta.mode() & 0o7777 != DIR_MODE {
        if meta.mode() & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", meta.mode() & 0o7777),
                "other users could reach this directory; making it 0700");
        }
        fd.set_permissions(fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW).bits()
}

/// Open `path` for writing (created 0600 if missing, truncated), made 0600
/// before anything is written to it.
pub fn create_file(path: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    tighten(&f)?;
    Ok(f)
}

/// Open `path` for appending (created 0600 if missing), made 0600 before
/// anything more is written to it.
pub fn append_file(path: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    tighten(&f)?;
    Ok(f)
}

/// Write `data` to `path`, 0600 (see [`create_file`]).
pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    create_file(path)?.write_all(data)
}

/// An existing file kept an older, looser mode: fix it through its fd.
fn tighten(f: &fs::File) -> io::Result<()> {
    if f.metadata()?.mode() & 0o077 != 0 {
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

/// Make an existing file 0600 if it is looser (no-op if missing or not a
/// regular file). Through a descriptor opened without following a symlink,
/// so a symlink swapped in after the check cannot redirect the chmod.
pub fn tighten_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.mode() & 0o077 != 0 => {}
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // Replaced by a symlink since the check: not ours to change.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Ok(()),
        Err(e) => return Err(e),
    };
    if f.metadata()?.is_file() {
        tighten(&f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_and_loose_dirs_become_0700_and_files_0600() {
        let t = tempfile::tempdir().unwrap();
        let fresh = t.path().join("a/b");
        ensure_dir(&fresh).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);

        let loose = t.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o4777)).unwrap();
        ensure_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);

        let f = t.path().join("f");
        fs::write(&f, "old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        write_file(&f, b"secret").unwrap();
        assert_eq!(mode(&f), 0o600);
        let g = t.path().join("g");
        append_file(&g).unwrap();
        assert_eq!(mode(&g), 0o600);
    }

    #[test]
    fn a_dir_another_user_owns_is_refused_not_taken_over() {
        let t = tempfile::tempdir().unwrap();
        let theirs = t.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_dir(&theirs).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let msg = err.to_string();
        assert!(msg.contains(&theirs.display().to_string()), "{msg}");
        assert!(msg.contains("uid 65534") && msg.contains("--root"), "{msg}");
        let m = fs::metadata(&theirs).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (65534, 0o755), "left alone");
    }

    #[test]
    fn tighten_path_does_not_follow_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        fs::write(&target, "x").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        tighten_path(&link).unwrap();
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o644);
        tighten_path(&target).unwrap();
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o600);
    }
}
