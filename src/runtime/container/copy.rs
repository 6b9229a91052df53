//! Copying files into and out of a container as tar streams (`skiff cp`).
//!
//! Every path inside the container is resolved with openat2's
//! RESOLVE_IN_ROOT against a descriptor of the container's root, and
//! directories are walked through descriptors with O_NOFOLLOW, so a symlink
//! the container planted (`/etc/x -> /host/secret`) resolves inside the
//! container, never on the host (docker cp's classic escape).
//!
//! A running container's root is `/proc/<pid>/root`, which shows its
//! mounts too. A stopped one has no mounts: a dedicated thread unshares a
//! mount namespace of its own, mounts the container's overlay there with its
//! /etc files, binds and volumes on top, and the copy runs on that thread;
//! the namespace dies with the thread, so nothing is left on the host.
//!
//! The host side of a copy uses the same code with `/` as the root.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::containerspec::MountSource;
use super::records::Record;
use super::rootfs::{MountNamespace, Overlay};
use super::Paths;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("Could not find the file {0} in container {1}")]
    NotFound(String, String),
    #[error("{0}: {1}")]
    Io(String, io::Error),
    #[error("cannot copy a directory to a file: {0}")]
    DirToFile(String),
    #[error("the destination directory must exist: {0}")]
    NoParent(String),
    #[error("refusing the archive entry {0:?}: it leaves the destination")]
    BadEntry(String),
    #[error("reading the archive: {0}")]
    Archive(io::Error),
    #[error("mounting the stopped container's filesystem: {0}")]
    Mount(String),
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> CopyError {
    let what = what.to_string();
    move |e| CopyError::Io(what, e)
}

fn rx(what: impl std::fmt::Display) -> impl FnOnce(rustix::io::Errno) -> CopyError {
    let what = what.to_string();
    move |e| CopyError::Io(what, e.into())
}

/// A filesystem tree to copy from or into: a root directory descriptor and
/// how to name it in errors.
pub struct Root {
    fd: OwnedFd,
    /// The container's name (empty: the host).
    name: String,
}

impl Root {
    /// The host's own filesystem.
    pub fn host() -> Result<Root, CopyError> {
        let fd = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(rx("/"))?;
        Ok(Root {
            fd,
            name: String::new(),
        })
    }

    /// The tree under `dir` (a container's `/proc/PID/root`, its mounted
    /// rootfs), named `name` in errors.
    pub fn at(dir: &Path, name: &str) -> Result<Root, CopyError> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(rx(dir.display()))?;
        Ok(Root {
            fd,
            name: name.to_string(),
        })
    }

    /// Create directory `path` and its missing parents (0755, owned by the
    /// caller), as docker creates a missing working directory.
    pub fn make_dir_all(&self, path: &str) -> Result<(), CopyError> {
        let parts = entry_path(Path::new(path.trim_start_matches('/')), None)?;
        make_dirs(self, "/", &parts).map(drop)
    }

    /// Whether `path` is a directory (following symlinks inside the root).
    pub fn is_dir(&self, path: &str) -> bool {
        self.open(path, OFlags::PATH | OFlags::DIRECTORY).is_ok()
    }

    /// Resolve `path` inside this root (symlinks included, staying inside).
    fn open(&self, path: &str, flags: OFlags) -> Result<OwnedFd, CopyError> {
        rustix::fs::openat2(
            &self.fd,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| self.not_found(path, e))
    }

    fn not_found(&self, path: &str, e: rustix::io::Errno) -> CopyError {
        if e == rustix::io::Errno::NOENT && !self.name.is_empty() {
            CopyError::NotFound(path.to_string(), self.name.clone())
        } else {
            CopyError::Io(path.to_string(), e.into())
        }
    }

    /// What `path` is (not following a final symlink), or None when it
    /// does not exist.
    pub fn kind(&self, path: &str) -> Result<Option<FileType>, CopyError> {
        match self.open(path, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd).map_err(rx(path))?;
                Ok(Some(FileType::from_raw_mode(st.st_mode)))
            }
            Err(CopyError::NotFound(..)) => Ok(None),
            Err(CopyError::Io(_, e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Run `f` with the root of container `rec`: its live root while it runs,
/// else its filesystem mounted privately on a thread of its own.
pub fn with_container<T: Send>(
    paths: &Paths,
    rec: &Record,
    f: impl FnOnce(&Root) -> Result<T, CopyError> + Send,
) -> Result<T, CopyError> {
    if let (true, Some(pid)) = (rec.status.is_running(), rec.pid) {
        if let Some(fd) = live_root(pid, &rec.id) {
            return f(&Root {
                fd,
                name: rec.name.clone(),
            });
        }
        // Exited meanwhile: its filesystem is mounted below.
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let root = mount_stopped(paths, rec)?;
            f(&root)
        })
        .join()
        .unwrap_or_else(|_| Err(CopyError::Mount("the copy thread panicked".into())))
    })
}

/// The root of process `pid` if it is container `id`'s: the process is
/// pinned by a descriptor of its /proc directory, checked to be in the
/// container's cgroup (a record's pid may have been reused by another
/// process since), and its root opened through that same descriptor.
fn live_root(pid: i32, id: &str) -> Option<OwnedFd> {
    let dir = rustix::fs::open(
        format!("/proc/{pid}").as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let cgroup = rustix::fs::openat(
        &dir,
        "cgroup",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut text = String::new();
    File::from(cgroup).read_to_string(&mut text).ok()?;
    let leaf = format!("/{id}");
    let inside = text.lines().any(|l| {
        let path = l.splitn(3, ':').nth(2).unwrap_or("");
        path.ends_with(&leaf) || path.contains(&format!("{leaf}/"))
    });
    if !inside {
        return None;
    }
    rustix::fs::openat(
        &dir,
        "root",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// On the calling (dedicated) thread: a private mount namespace with the
/// container's overlay and its mounts. Unsharing CLONE_NEWNS (with it
/// CLONE_FS) is allowed in a multi-threaded process and affects this
/// thread only; no fork happens.
fn mount_stopped(paths: &Paths, rec: &Record) -> Result<Root, CopyError> {
    let mount_err = |e: super::rootfs::RootfsError| CopyError::Mount(e.to_string());
    // Kept in this thread's namespace: it goes when the thread ends.
    let ns = MountNamespace::enter().map_err(mount_err)?;
    std::mem::forget(ns);
    let dir = paths.dir(&rec.id);
    let overlay = Overlay::new(rec.config.snapshots.clone(), &dir);
    overlay.mount().map_err(mount_err)?;
    let fd = rustix::fs::open(
        &overlay.target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rx(overlay.target.display()))?;
    let root = Root {
        fd,
        name: rec.name.clone(),
    };
    let mut binds: Vec<(PathBuf, String)> = ["hostname", "hosts", "resolv.conf"]
        .into_iter()
        .map(|f| (dir.join(f), format!("/etc/{f}")))
        .filter(|(p, _)| p.exists())
        .collect();
    let volumes = crate::runtime::volume::Volumes::new(paths.node_root());
    for m in &rec.config.spec.mounts {
        match &m.source {
            MountSource::Host(p) => binds.push((p.clone(), m.destination.clone())),
            MountSource::Volume(v) => {
                if let Ok(vol) = volumes.get(v) {
                    binds.push((vol.mountpoint, m.destination.clone()))
                }
            }
            // A tmpfs' content went with the container.
            MountSource::Tmpfs => {}
        }
    }
    for (source, dest) in binds {
        // A mount point the container no longer has is skipped, as the
        // container would fail to start without it anyway.
        let Ok(target) = root.open(&dest, OFlags::PATH) else {
            continue;
        };
        let target = format!("/proc/self/fd/{}", target.as_raw_fd());
        nix::mount::mount(
            Some(&source),
            target.as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| CopyError::Mount(format!("{} on {dest}: {e}", source.display())))?;
    }
    // The fd was opened before the binds: open the root again so that
    // walks see them.
    let fd = rustix::fs::open(
        &overlay.target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rx(overlay.target.display()))?;
    Ok(Root {
        fd,
        name: rec.name.clone(),
    })
}

/// The name an archive of `path` gives its top entry (docker: the last
/// component).
pub fn base_name(path: &str) -> String {
    Path::new(path.trim_end_matches('/'))
        .file_name()
        .map_or_else(|| ".".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Write `path` of `root` (not following a final symlink) to `out` as a tar
/// stream whose top entry is `base_name(path)`.
pub fn archive<W: Write>(root: &Root, path: &str, out: W) -> Result<(), CopyError> {
    let fd = root.open(path, OFlags::PATH | OFlags::NOFOLLOW)?;
    let mut builder = tar::Builder::new(out);
    append(&mut builder, &fd, &base_name(path))?;
    builder.finish().map_err(io_err("writing the archive"))?;
    Ok(())
}

fn append<W: Write>(b: &mut tar::Builder<W>, fd: &OwnedFd, name: &str) -> Result<(), CopyError> {
    let st = rustix::fs::fstat(fd).map_err(rx(name))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    let reopen = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match kind {
        FileType::RegularFile => {
            let file = File::open(&reopen).map_err(io_err(name))?;
            let size = u64::try_from(st.st_size).unwrap_or(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            // Exactly the size in the header, whatever the file does while
            // it is read (a container may grow it, and /proc files say 0
            // and have content): the builder copies all it can read, and
            // any surplus would be taken for the next headers.
            b.append_data(&mut h, name, Exactly::new(file, size))
                .map_err(io_err(name))?;
        }
        FileType::Directory => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{name}/"), io::empty())
                .map_err(io_err(name))?;
            // A running container's proc, sys and the like are the
            // kernel's, not its files: the directory, not what is in it.
            if pseudo_fs(fd) {
                return Ok(());
            }
            let mut children: Vec<String> = std::fs::read_dir(&reopen)
                .map_err(io_err(name))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            children.sort();
            for child in children {
                let cfd = rustix::fs::openat(
                    fd,
                    child.as_str(),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(rx(format!("{name}/{child}")))?;
                append(b, &cfd, &format!("{name}/{child}"))?;
            }
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(fd, "", Vec::new()).map_err(rx(name))?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, name, target.to_string_lossy().as_ref())
                .map_err(io_err(name))?;
        }
        FileType::Fifo => {
            h.set_entry_type(tar::EntryType::Fifo);
            b.append_data(&mut h, name, io::empty())
                .map_err(io_err(name))?;
        }
        FileType::CharacterDevice | FileType::BlockDevice => {
            h.set_entry_type(if kind == FileType::CharacterDevice {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
            let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
            b.append_data(&mut h, name, io::empty())
                .map_err(io_err(name))?;
        }
        // Sockets have no tar form (docker skips them too).
        _ => {}
    }
    Ok(())
}

/// `size` bytes of `inner`: cut short when it has more, padded with zeros
/// when it has fewer (as tar does for a file that shrank while read).
struct Exactly<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> Exactly<R> {
    fn new(inner: R, size: u64) -> Self {
        Exactly {
            inner: inner.take(size),
            left: size,
        }
    }
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = match self.inner.read(buf)? {
            0 => {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                buf[..n].fill(0);
                n
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Whether directory `fd` is a kernel pseudo file system (proc, sysfs,
/// cgroups, devpts, mqueue, debugfs, tracefs, securityfs, bpf).
fn pseudo_fs(fd: &OwnedFd) -> bool {
    const PSEUDO: &[i64] = &[
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x1cd1,      // devpts
        0x1980_0202, // mqueue
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x7363_6673, // securityfs
        0xcafe_4a11, // bpf
    ];
    // f_type's width differs by architecture.
    #[allow(clippy::unnecessary_cast)]
    let pseudo = |t| PSEUDO.contains(&(t as i64));
    rustix::fs::fstatfs(fd).is_ok_and(|s| pseudo(s.f_type))
}

/// The entry's path below the destination: only plain components (`.`
/// dropped), the first one replaced by `rename` when given.
fn entry_path(path: &Path, rename: Option<&str>) -> Result<Vec<String>, CopyError> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return Err(CopyError::BadEntry(path.display().to_string())),
        }
    }
    if let (Some(first), Some(new)) = (parts.first_mut(), rename) {
        *first = new.to_string();
    }
    Ok(parts)
}

/// Unpack the tar stream `input` into directory `dest` of `root`; with
/// `rename`, the archive's top entry takes that name (copying `a` to a new
/// path `b`). Files are created as the caller (root), with the archive's
/// modes and times.
pub fn extract<R: Read>(
    root: &Root,
    dest: &str,
    input: R,
    rename: Option<&str>,
) -> Result<(), CopyError> {
    // Everything below is resolved inside the destination itself: an
    // entry (a symlink, then a file "under" it; a hard link) can never
    // reach outside it, whichever side wrote the archive.
    let inner = Root {
        fd: root.open(dest, OFlags::PATH | OFlags::DIRECTORY)?,
        name: root.name.clone(),
    };
    extract_inside(&inner, dest, input, rename)
}

/// [`extract`] into `root`'s own top directory (`shown` in messages).
fn extract_inside<R: Read>(
    root: &Root,
    shown: &str,
    input: R,
    rename: Option<&str>,
) -> Result<(), CopyError> {
    let dest = "/";
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(CopyError::Archive)? {
        let mut entry = entry.map_err(CopyError::Archive)?;
        let raw = entry.path().map_err(CopyError::Archive)?.into_owned();
        let parts = entry_path(&raw, rename)?;
        let Some((name, dirs)) = parts.split_last() else {
            continue; // `./` itself: the destination.
        };
        let parent_path = format!("{}/{}", shown.trim_end_matches('/'), dirs.join("/"));
        let parent = make_dirs(root, dest, dirs)?;
        let full = format!("{parent_path}/{name}");
        let mode = Mode::from_raw_mode(entry.header().mode().unwrap_or(0o644) & 0o7777);
        let mtime = entry.header().mtime().unwrap_or(0);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, name.as_str(), mode) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(rx(&full)(e)),
                }
                let inside = format!("/{}", parts.join("/"));
                let d = root.open(&inside, OFlags::PATH | OFlags::DIRECTORY)?;
                let d = File::open(format!("/proc/self/fd/{}", d.as_raw_fd()))
                    .map_err(io_err(&full))?;
                rustix::fs::fchmod(&d, mode).map_err(rx(&full))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::TRUNC
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(rx(&full))?;
                let mut file = File::from(fd);
                io::copy(&mut entry, &mut file).map_err(io_err(&full))?;
                rustix::fs::fchmod(&file, mode).map_err(rx(&full))?;
                set_mtime(file.as_fd(), mtime);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(CopyError::Archive)?
                    .ok_or_else(|| CopyError::BadEntry(raw.display().to_string()))?
                    .into_owned();
                let _ = rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::empty());
                rustix::fs::symlinkat(target.as_path(), &parent, name.as_str())
                    .map_err(rx(&full))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(CopyError::Archive)?
                    .ok_or_else(|| CopyError::BadEntry(raw.display().to_string()))?
                    .into_owned();
                let target = entry_path(&target, rename)?;
                let src = root.open(
                    &format!("{}/{}", dest.trim_end_matches('/'), target.join("/")),
                    OFlags::PATH | OFlags::NOFOLLOW,
                )?;
                let _ = rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::empty());
                rustix::fs::linkat(&src, "", &parent, name.as_str(), AtFlags::EMPTY_PATH)
                    .map_err(rx(&full))?;
            }
            other => {
                // Devices and FIFOs are not created by a copy.
                tracing::warn!("skipping {full}: a {other:?} entry");
            }
        }
    }
    Ok(())
}

/// Create the directories `dirs` below `dest` as needed; the last one's
/// descriptor.
fn make_dirs(root: &Root, dest: &str, dirs: &[String]) -> Result<OwnedFd, CopyError> {
    let mut path = dest.trim_end_matches('/').to_string();
    let mut fd = root.open(
        if path.is_empty() { "/" } else { &path },
        OFlags::PATH | OFlags::DIRECTORY,
    )?;
    for d in dirs {
        match rustix::fs::mkdirat(&fd, d.as_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(rx(format!("{path}/{d}"))(e)),
        }
        path = format!("{path}/{d}");
        fd = root.open(&path, OFlags::PATH | OFlags::DIRECTORY)?;
    }
    Ok(fd)
}

fn set_mtime(fd: std::os::fd::BorrowedFd, mtime: u64) {
    let t = rustix::fs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    let _ = rustix::fs::futimens(
        fd,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
    );
}

/// Where a copy of `src_is_dir` to `dest` of `root` goes, as docker
/// decides: into an existing directory under the source's name, or as
/// `dest` itself (its parent must exist). Returns the directory to unpack
/// in and the name the top entry takes there.
pub fn destination(
    root: &Root,
    dest: &str,
    src_is_dir: bool,
) -> Result<(String, Option<String>), CopyError> {
    match root.kind(dest)? {
        Some(FileType::Directory) => Ok((dest.to_string(), None)),
        Some(_) if src_is_dir => Err(CopyError::DirToFile(dest.to_string())),
        _ if dest.ends_with('/') => Err(CopyError::NoParent(dest.to_string())),
        _ => {
            let p = Path::new(dest);
            let parent = p
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".to_string());
            match root.kind(&parent)? {
                Some(FileType::Directory) => Ok((parent, Some(base_name(dest)))),
                _ => Err(CopyError::NoParent(parent)),
            }
        }
    }
}

/// A pipe's two ends as files (the archive is written on one thread and
/// unpacked on another).
pub fn pipe() -> Result<(File, File), CopyError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| CopyError::Io("pipe".into(), e.into()))?;
    Ok((File::from(r), File::from(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_stay_below() {
        assert_eq!(entry_path(Path::new("./a/b"), None).unwrap(), ["a", "b"]);
        assert_eq!(entry_path(Path::new("a/b"), Some("c")).unwrap(), ["c", "b"]);
        assert!(entry_path(Path::new("../x"), None).is_err());
        assert!(entry_path(Path::new("a/../../x"), None).is_err());
        assert!(entry_path(Path::new("/etc/passwd"), None).is_err());
        assert_eq!(base_name("/etc/hostname"), "hostname");
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/"), ".");
    }

    /// A hostile archive (a symlink out, then a file "under" it, and a
    /// hard link through it) unpacked on the host writes nothing outside
    /// the destination.
    #[test]
    fn entries_never_leave_the_destination() {
        let outside = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "x", outside.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(5);
        h.set_mode(0o644);
        b.append_data(&mut h, "x/pwned", &b"owned"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        h.set_mode(0o644);
        b.append_link(&mut h, "stolen", "x/secret").unwrap();
        let tar = b.into_inner().unwrap();
        let host = Root::host().unwrap();
        let dest = dst.path().to_string_lossy().into_owned();
        let _ = extract(&host, &dest, &tar[..], None);
        assert!(!outside.path().join("pwned").exists(), "wrote outside");
        let stolen = dst.path().join("stolen");
        if let Ok(text) = std::fs::read_to_string(&stolen) {
            assert_ne!(text, "host", "linked a file from outside");
        }
    }

    /// A process's root is used only when the process is in the
    /// container's cgroup (a record's pid may name another process by now).
    #[test]
    fn live_roots_belong_to_their_container() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(live_root(me, "no-such-container-id").is_none());
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let leaf = own
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .filter_map(|p| p.rsplit('/').next())
            .find(|l| !l.is_empty());
        if let Some(leaf) = leaf {
            assert!(live_root(me, leaf).is_some(), "{own}");
        }
    }

    /// A file whose size changes while it is read (a /proc file says 0 and
    /// has content) is archived with exactly the size in its header, so the
    /// stream stays whole.
    #[test]
    fn archived_files_hold_their_header_size() {
        let proc_self = Root::at(Path::new("/proc/self"), "").unwrap();
        let mut tar = Vec::new();
        archive(&proc_self, "status", &mut tar).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let entries: Vec<u64> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().header().size().unwrap())
            .collect();
        assert_eq!(entries, [0]);
        // A directory of the kernel's is copied without its content.
        let mut tar = Vec::new();
        archive(&proc_self, "fdinfo", &mut tar).unwrap();
        let n = tar::Archive::new(&tar[..]).entries().unwrap().count();
        assert_eq!(n, 1);
        let mut shrunk = Vec::new();
        Exactly::new(&b"ab"[..], 5)
            .read_to_end(&mut shrunk)
            .unwrap();
        assert_eq!(shrunk, b"ab\0\0\0");
        let mut cut = Vec::new();
        Exactly::new(&b"abcdef"[..], 3)
            .read_to_end(&mut cut)
            .unwrap();
        assert_eq!(cut, b"abc");
    }

    /// A tree archived from one root and unpacked under another, with a
    /// symlink that points outside: the link is copied as a link, never
    /// followed, and an entry climbing out is refused.
    #[test]
    fn round_trip_keeps_links_as_links() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d/f"), "hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("d/l")).unwrap();
        let host = Root::host().unwrap();
        let mut tar = Vec::new();
        archive(&host, &src.path().join("d").to_string_lossy(), &mut tar).unwrap();
        let dest = dst.path().to_string_lossy().into_owned();
        extract(&host, &dest, &tar[..], Some("e")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.path().join("e/f")).unwrap(),
            "hello"
        );
        assert_eq!(
            std::fs::read_link(dst.path().join("e/l")).unwrap(),
            Path::new("/etc/passwd")
        );
        // An archive entry that climbs out is refused.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
        h.set_cksum();
        evil.append(&h, &b"x"[..]).unwrap();
        let evil = evil.into_inner().unwrap();
        assert!(matches!(
            extract(&host, &dest, &evil[..], None),
            Err(CopyError::BadEntry(_))
        ));
        assert!(!dst.path().parent().unwrap().join("evil").exists());
    }
}
