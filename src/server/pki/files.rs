//! Small file helpers: private directories, atomic writes with a fixed mode,
//! reads that tell "missing" apart from "unreadable".

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::PkiError;

/// Mode of private keys, tokens and kubeconfigs.
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of certificates (public material).
pub(crate) const PUBLIC: u32 = 0o644;

/// Creates `dir` (and missing parents) with `mode`.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| PkiError::io("creating directory", dir, e))
}

/// Reads a UTF-8 file; `Ok(None)` when it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| PkiError::invalid(path, "not valid UTF-8")),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("reading", path, e)),
    }
}

/// Whether `path` is a regular file of ours, mode exactly [`PRIVATE`],
/// holding exactly `data`. Opened without following a symlink and without
/// blocking (a FIFO put in its place answers false, not a hang), checked on
/// the open file, and read no further than `data` is long.
pub(super) fn holds_private(path: &Path, data: &[u8]) -> bool {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
        .open(path)
    else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file()
        || meta.mode() & 0o7777 != PRIVATE
        || meta.uid() != nix::unistd::geteuid().as_raw()
        || meta.len() != data.len() as u64
    {
        return false;
    }
    let mut have = Vec::with_capacity(data.len());
    file.take(data.len() as u64 + 1)
        .read_to_end(&mut have)
        .is_ok_and(|_| have == data)
}

/// Writes `data` to `path` atomically: a temporary file in the same directory,
/// created with `mode` (never widened later), flushed, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| PkiError::invalid(path, "not a file path"))?
        .to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}",
        hex::encode(rand::random::<[u8; 6]>())
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| PkiError::io("creating", &tmp, e))?;
        f.write_all(data)
            .map_err(|e| PkiError::io("writing", &tmp, e))?;
        f.sync_all().map_err(|e| PkiError::io("syncing", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| PkiError::io("renaming into place", path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
