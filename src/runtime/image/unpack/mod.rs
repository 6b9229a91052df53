//! Layer unpacking: one image layer (a tar stream, possibly compressed) into
//! its own directory, which later becomes one read-only overlayfs lower layer.
//!
//! Whiteouts are stored the way overlayfs reads them, not applied: `.wh.NAME`
//! becomes a 0:0 character device `NAME`, `.wh..wh..opq` in a directory sets
//! `trusted.overlay.opaque=y` on it. `trusted.overlay.*` (and
//! `user.overlay.*`) xattrs coming from the image are dropped, so a layer
//! cannot forge either.
//!
//! Layers are hostile input. Every entry is resolved beneath the destination
//! by file descriptors without following any symlink (see `tree.rs`):
//! absolute names are made relative, `..` above the root is refused, an entry
//! below a symlink planted by an earlier entry is refused, hardlinks must name
//! a regular file already unpacked in this layer, and sizes are checked
//! against [`UnpackOptions::size_limit`] before any data is written.
//!
//! **On any error the caller must delete `dest`**: it holds a partial layer.
//! Nothing outside `dest` is ever created, changed or removed, and `dest`
//! itself keeps its owner and mode (a layer's `.` entry is not applied).
//!
//! Nothing is fsynced per file; call [`sync_dir`] once when the snapshot is
//! complete.

mod attrs;
mod kinds;
mod tree;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, BufReader, Cursor, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use tree::{Tree, WalkError};

/// How a layer is unpacked.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Refuse layers whose unpacked file bytes exceed this (the data of
    /// sparse entries counts, their holes do not: they take no space).
    pub size_limit: Option<u64>,
    /// Refuse a sparse entry whose apparent size exceeds this: holes take
    /// no space but reading through them takes time.
    pub sparse_limit: Option<u64>,
    /// Set owners from the tar headers (needs root; true as root).
    pub preserve_ownership: bool,
}

impl Default for UnpackOptions {
    /// No size limit; ownership preserved when running as root.
    fn default() -> Self {
        UnpackOptions {
            size_limit: None,
            sparse_limit: None,
            preserve_ownership: nix::unistd::geteuid().is_root(),
        }
    }
}

/// What one unpack wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied (files, directories, links, nodes, whiteouts).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

/// Why a layer could not be unpacked. Entry errors name the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("layer declared as {media_type} does not start with the {format} magic bytes")]
    CompressionMismatch {
        media_type: String,
        format: &'static str,
    },
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    #[error("malformed or truncated layer tar stream: {0}")]
    Tar(#[source] io::Error),
    #[error("entry {path}: bad tar header: {source}")]
    Header {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("entry {path}: reading its data failed (corrupt or truncated layer): {source}")]
    EntryData {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("entry {path} is truncated: {got} of {expected} bytes")]
    Truncated {
        path: String,
        got: u64,
        expected: u64,
    },
    #[error("entry {path} escapes the layer root")]
    Escapes { path: String },
    #[error("entry {path}: invalid entry: {reason}")]
    Invalid { path: String, reason: &'static str },
    #[error("entry {path}: {component} is a symlink; refusing to write through it")]
    ThroughSymlink { path: String, component: String },
    #[error("entry {path}: {component} exists and is not a directory")]
    NotADirectory { path: String, component: String },
    #[error("hardlink {path} points outside the layer (target {target})")]
    HardlinkOutside { path: String, target: String },
    #[error("hardlink {path}: target {target} {reason}")]
    HardlinkTarget {
        path: String,
        target: String,
        reason: String,
    },
    #[error(
        "entry {path}: {size} bytes would take the layer to {total} bytes, \
         over its size limit of {limit} bytes"
    )]
    SizeLimit {
        path: String,
        size: u64,
        total: u64,
        limit: u64,
    },
    #[error("entry {path}: {op}: {source}")]
    Fs {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer directory {path}: {source}")]
    Dest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Plain,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// `Some(c)` for a declared compression, `None` for "look at the bytes".
fn declared_compression(media_type: &str) -> Result<Option<Compression>, UnpackError> {
    let mt = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mt.is_empty() {
        return Ok(None);
    }
    if mt.ends_with("+gzip") || mt.ends_with(".gzip") {
        return Ok(Some(Compression::Gzip));
    }
    if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
        return Ok(Some(Compression::Zstd));
    }
    // Plain tar (OCI `…v1.tar`, docker `…diff.tar`, `application/x-tar`):
    // sniffed all the same, since mislabelled compressed layers exist.
    if mt.ends_with(".tar") || mt.ends_with("/tar") || mt.ends_with("x-tar") {
        return Ok(None);
    }
    Err(UnpackError::UnsupportedMediaType(media_type.to_string()))
}

/// Compression by media type, with magic-byte sniffing as a fallback (gzip
/// `1f8b`, zstd `28b52ffd`, else plain tar). An empty media type means
/// "sniff" (docker-archive layers have none). Types that are not a tar layer
/// (or use another compression) are refused.
pub fn decompress<'a, R: std::io::Read + 'a>(
    r: R,
    media_type: &str,
) -> Result<Box<dyn std::io::Read + 'a>, UnpackError> {
    let declared = declared_compression(media_type)?;
    let mut r = BufReader::with_capacity(128 * 1024, r);
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UnpackError::Read(e)),
        }
    }
    let head = &magic[..n];
    let sniffed = if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::Plain
    };
    let kind = match declared {
        Some(d) if d != sniffed => {
            return Err(UnpackError::CompressionMismatch {
                media_type: media_type.to_string(),
                format: if d == Compression::Gzip {
                    "gzip"
                } else {
                    "zstd"
                },
            })
        }
        Some(d) => d,
        None => sniffed,
    };
    let src = Cursor::new(head.to_vec()).chain(r);
    Ok(match kind {
        Compression::Plain => Box::new(src),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(src)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(src).map_err(UnpackError::Read)?)
        }
    })
}

/// `syncfs()` on the filesystem holding `dest`: call once after a snapshot
/// is unpacked (nothing is fsynced per file).
pub fn sync_dir(dest: &Path) -> Result<(), UnpackError> {
    let dest_err = |e: io::Error| UnpackError::Dest {
        path: dest.to_path_buf(),
        source: e,
    };
    let fd = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| dest_err(e.into()))?;
    rustix::fs::syncfs(&fd).map_err(|e| dest_err(e.into()))
}

/// Unpack one layer's (decompressed) tar stream into `dest`, an empty
/// directory that becomes one read-only overlayfs lower layer.
///
/// The reader is drained to its end after the tar's end-of-archive marker,
/// so a digest-checking reader underneath sees every byte.
///
/// On error `dest` holds a partial layer: **the caller deletes it**.
pub fn unpack_layer<R: std::io::Read>(
    tar: R,
    dest: &std::path::Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let tree = Tree::open(dest).map_err(|e| UnpackError::Dest {
        path: dest.to_path_buf(),
        source: e,
    })?;
    let mut u = Unpacker {
        tree,
        opts,
        stats: UnpackStats::default(),
        dirs: HashMap::new(),
        buf: vec![0u8; COPY_BUF],
    };
    let budget = Rc::new(Cell::new(UNLIMITED));
    let guarded = MetaBudget {
        inner: tar,
        left: budget.clone(),
    };
    let mut archive = tar::Archive::new(BufReader::with_capacity(64 * 1024, guarded));
    let mut entries = archive.entries().map_err(UnpackError::Tar)?;
    loop {
        // While the parser looks for the next entry it holds GNU long
        // names and PAX records in memory: bound what it may read.
        budget.set(META_LIMIT);
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(UnpackError::Tar)?;
        budget.set(UNLIMITED);
        u.entry(&mut entry)?;
        // Data of entries that carry none for us (directories, skipped
        // types): read here, streamed, so the next parse starts at a header.
        io::copy(&mut entry, &mut io::sink()).map_err(|e| UnpackError::EntryData {
            path: lossy(&entry.path_bytes()),
            source: e,
        })?;
    }
    budget.set(UNLIMITED);
    u.finish()?;
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(UnpackError::Read)?;
    Ok(u.stats)
}

/// Most the tar parser may read between two entries: headers, GNU long
/// names and links, PAX records (all of which it keeps in memory).
const META_LIMIT: u64 = 16 << 20;
const UNLIMITED: u64 = u64::MAX;

/// Reader that fails once `left` bytes were read (unless `UNLIMITED`).
struct MetaBudget<R> {
    inner: R,
    left: Rc<Cell<u64>>,
}

impl<R: Read> Read for MetaBudget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.get();
        if left == UNLIMITED {
            return self.inner.read(buf);
        }
        if left == 0 {
            return Err(io::Error::other(format!(
                "tar metadata (headers, GNU long names, PAX records) of one entry \
                 exceeds {META_LIMIT} bytes"
            )));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

const COPY_BUF: usize = 256 * 1024;

/// Mode and mtime of a directory, applied after all its children exist.
struct DirMeta {
    /// None for the layer root, whose mode stays the store's.
    mode: Option<u32>,
    mtime: Timespec,
}

struct Unpacker<'o> {
    tree: Tree,
    opts: &'o UnpackOptions,
    stats: UnpackStats,
    /// Directories whose mode and mtime are set in the final pass.
    dirs: HashMap<PathBuf, DirMeta>,
    buf: Vec<u8>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fs_err<'p>(path: &'p str, op: &'static str) -> impl FnOnce(Errno) -> UnpackError + 'p {
    move |e| UnpackError::Fs {
        path: path.to_string(),
        op,
        source: e.into(),
    }
}

impl Unpacker<'_> {
    fn walk_err(&self, path: &str, e: WalkError) -> UnpackError {
        match e {
            WalkError::Symlink(c) => UnpackError::ThroughSymlink {
                path: path.to_string(),
                component: c.display().to_string(),
            },
            WalkError::NotDir(c) => UnpackError::NotADirectory {
                path: path.to_string(),
                component: c.display().to_string(),
            },
            WalkError::Missing(c) => UnpackError::Fs {
                path: path.to_string(),
                op: "open parent directory",
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist", c.display()),
                ),
            },
            WalkError::Io(op, source) => UnpackError::Fs {
                path: path.to_string(),
                op,
                source,
            },
        }
    }

    /// Opens the parent directory of an entry, creating missing ones.
    fn parent(
        &mut self,
        comps: &[&OsStr],
        path: &str,
    ) -> Result<std::rc::Rc<OwnedFd>, UnpackError> {
        let parent = &comps[..comps.len() - 1];
        self.tree
            .dir(parent, true)
            .map_err(|e| self.walk_err(path, e))
    }

    /// Removes whatever is at `name` in `dir` so that a new entry can take
    /// its place; forgets cached state below a removed directory.
    fn clear(&mut self, dir: &OwnedFd, comps: &[&OsStr], path: &str) -> Result<(), UnpackError> {
        let name = comps[comps.len() - 1];
        let was_dir = tree::remove_any(dir, name).map_err(|e| UnpackError::Fs {
            path: path.to_string(),
            op: "remove the existing entry",
            source: e,
        })?;
        if was_dir {
            self.tree.invalidate();
            let gone: PathBuf = comps.iter().collect();
            self.dirs.retain(|p, _| !p.starts_with(&gone));
        }
        Ok(())
    }

    /// The apparent size of a sparse entry against `sparse_limit`.
    fn check_sparse(&self, path: &str, apparent: u64) -> Result<(), UnpackError> {
        match self.opts.sparse_limit {
            Some(limit) if apparent > limit => Err(UnpackError::SizeLimit {
                path: path.to_string(),
                size: apparent,
                total: apparent,
                limit,
            }),
            _ => Ok(()),
        }
    }

    fn check_limit(&self, path: &str, size: u64) -> Result<(), UnpackError> {
        if let Some(limit) = self.opts.size_limit {
            let total = self.stats.bytes.saturating_add(size);
            if size > limit || total > limit {
                return Err(UnpackError::SizeLimit {
                    path: path.to_string(),
                    size,
                    total,
                    limit,
                });
            }
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        match kind {
            EntryType::XGlobalHeader => return Ok(()),
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo => {}
            other => {
                tracing::warn!(
                    entry = %lossy(&entry.path_bytes()),
                    kind = ?other,
                    "skipping tar entry of unsupported type"
                );
                return Ok(());
            }
        }
        let raw_path = entry.path_bytes().into_owned();
        let path = lossy(&raw_path);
        let comps =
            tree::normalize(&raw_path).map_err(|()| UnpackError::Escapes { path: path.clone() })?;
        let meta = self.meta(entry, &path)?;

        let Some(last) = comps.last() else {
            // "./" or "/": the layer root itself.
            if kind != EntryType::Directory {
                return Err(UnpackError::Invalid {
                    path,
                    reason: "a non-directory entry names the layer root",
                });
            }
            // Its owner, mode and xattrs are not applied: `dest` belongs to
            // the store, not to the image. A `.` entry of 07777 uid 1000
            // would otherwise open the snapshot to a host user, who could
            // replace any file of every container made from it. (A
            // container's `/` takes its attributes from its own upper
            // directory anyway.) Its mtime is harmless and kept.
            self.dirs.insert(
                PathBuf::new(),
                DirMeta {
                    mode: None,
                    mtime: meta.mtime,
                },
            );
            self.stats.entries += 1;
            return Ok(());
        };

        if let Some(rest) = last.as_bytes().strip_prefix(b".wh.") {
            if rest == b".wh..opq" {
                self.opaque(&comps[..comps.len() - 1], &path)?;
            } else if rest.starts_with(b".wh.") {
                tracing::debug!(entry = %path, "ignoring overlay-internal whiteout entry");
                return Ok(());
            } else {
                if rest.is_empty() || rest == b"." || rest == b".." {
                    return Err(UnpackError::Invalid {
                        path,
                        reason: "whiteout of an empty, . or .. name",
                    });
                }
                let mut target = comps.clone();
                if let Some(last) = target.last_mut() {
                    *last = OsStr::from_bytes(rest);
                }
                self.whiteout(&target, &path)?;
            }
            self.stats.entries += 1;
            return Ok(());
        }

        match kind {
            EntryType::Directory => self.directory(&comps, &meta, &path)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.symlink(&comps, &target, &meta, &path)?
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hardlink(&comps, &target, &path)?
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ty = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                // Fifos have no device number (writers often leave the
                // fields blank).
                let dev = if ty == FileType::Fifo {
                    0
                } else {
                    let h = entry.header();
                    let hdr = |e| UnpackError::Header {
                        path: path.clone(),
                        source: e,
                    };
                    let major = h.device_major().map_err(hdr)?.unwrap_or(0);
                    let minor = h.device_minor().map_err(hdr)?.unwrap_or(0);
                    rustix::fs::makedev(major, minor)
                };
                self.node(&comps, ty, dev, &meta, &path)?
            }
            _ => {
                let sparse = kind == EntryType::GNUSparse;
                self.file(entry, &comps, &meta, &path, sparse)?
            }
        }
        self.stats.entries += 1;
        Ok(())
    }

    /// Final pass: directory modes and mtimes, now that their children
    /// exist (creating a child changes a directory's mtime).
    fn finish(&mut self) -> Result<(), UnpackError> {
        let mut dirs: Vec<(PathBuf, DirMeta)> =
            std::mem::take(&mut self.dirs).into_iter().collect();
        // Deepest first, so that a restrictive parent mode cannot stop us
        // from reaching its children (matters when not root).
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (p, meta) in dirs {
            let path = p.display().to_string();
            let comps: Vec<&OsStr> = p.iter().collect();
            let fd = match self.tree.dir(&comps, false) {
                Ok(fd) => fd,
                // Replaced by a later entry of another type.
                Err(WalkError::Missing(_))
                | Err(WalkError::NotDir(_))
                | Err(WalkError::Symlink(_)) => continue,
                Err(e) => return Err(self.walk_err(&path, e)),
            };
            let fd = rustix::fs::openat(
                &*fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(fs_err(&path, "open directory"))?;
            if let Some(mode) = meta.mode {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                    .map_err(fs_err(&path, "chmod"))?;
            }
            let times = Timestamps {
                last_access: meta.mtime,
                last_modification: meta.mtime,
            };
            rustix::fs::futimens(&fd, &times).map_err(fs_err(&path, "set times"))?;
        }
        Ok(())
    }
}
