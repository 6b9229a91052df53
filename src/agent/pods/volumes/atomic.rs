//! kubelet's atomic writer: a directory of files (a ConfigMap's keys, a
//! Secret's, a token) that a container sees change all at once or not at
//! all. The files live in a timestamped directory; `..data` is a symlink to
//! it, swapped by rename(2); each top-level name is a symlink through
//! `..data`. A reader that opens `dir/key` while an update runs sees the old
//! set or the new one, never half of each.
//!
//! ```text
//! <dir>/..2026_12_02_21_40_00.123456789/key    the files, with their modes
//! <dir>/..data -> ..2026_12_02_21_40_00.123456789
//! <dir>/key -> ..data/key
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

pub const DATA_LINK: &str = "..data";
const DATA_LINK_TMP: &str = "..data_tmp";

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → file.
pub type Payload = BTreeMap<String, File>;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("invalid path {0:?} in the volume's items: it must be relative, without '..'")]
    BadPath(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files of `payload` in the new directory `ts_dir`.
fn write_set(ts_dir: &Path, payload: &Payload, group: Option<u32>) -> Result<(), WriteError> {
    let own = |path: &Path, dir: bool| -> Result<(), WriteError> {
        let Some(gid) = group else { return Ok(()) };
        std::os::unix::fs::lchown(path, None, Some(gid)).map_err(io_at(path))?;
        if dir {
            fs::set_permissions(path, fs::Permissions::from_mode(0o2755)).map_err(io_at(path))?;
        }
        Ok(())
    };
    fs::set_permissions(ts_dir, fs::Permissions::from_mode(0o755)).map_err(io_at(ts_dir))?;
    own(ts_dir, true)?;
    for (p, f) in payload {
        let path = ts_dir.join(p);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
            // Each directory of the path, below the set's own.
            let mut at = parent;
            while at != ts_dir {
                own(at, true)?;
                match at.parent() {
                    Some(up) => at = up,
                    None => break,
                }
            }
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode)
            .open(&path)
            .map_err(io_at(&path))?;
        out.write_all(&f.data).map_err(io_at(&path))?;
        // The umask may have taken bits the payload asks for.
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode)).map_err(io_at(&path))?;
        own(&path, false)?;
    }
    Ok(())
}

/// A payload path is relative, has no `..` and does not start with `..`
/// (the writer's own names).
fn check_path(p: &str) -> Result<(), WriteError> {
    let bad = || WriteError::BadPath(p.to_string());
    if p.is_empty() || p.starts_with("..") || p.len() > 4096 {
        return Err(bad());
    }
    for c in Path::new(p).components() {
        match c {
            Component::Normal(_) => {}
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// The first component of a payload path: what gets a symlink at the top.
fn top(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// Make `dir` hold exactly `payload`; nothing is written when it already
/// does. Returns whether anything changed.
pub fn write(dir: &Path, payload: &Payload) -> Result<bool, WriteError> {
    write_owned(dir, payload, None)
}

/// [`write`], the new set's files and directories given to `group` (a
/// pod's fsGroup) before `..data` points at them, so that no reader in the
/// group ever sees them unreadable.
pub fn write_owned(dir: &Path, payload: &Payload, group: Option<u32>) -> Result<bool, WriteError> {
    for p in payload.keys() {
        check_path(p)?;
    }
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let data_link = dir.join(DATA_LINK);
    let old = fs::read_link(&data_link).ok();
    if let Some(old) = &old {
        if holds(&dir.join(old), payload) {
            return Ok(false);
        }
    }
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let ts_dir = dir.join(&stamp);
    fs::create_dir(&ts_dir).map_err(io_at(&ts_dir))?;
    let tmp = dir.join(DATA_LINK_TMP);
    let swapped = write_set(&ts_dir, payload, group).and_then(|()| {
        let _ = fs::remove_file(&tmp);
        symlink(&stamp, &tmp).map_err(io_at(&tmp))?;
        fs::rename(&tmp, &data_link).map_err(io_at(&data_link))
    });
    if let Err(e) = swapped {
        // A set left behind that `..data` does not name would hold the
        // room (a tmpfs's) the next try needs.
        let _ = fs::remove_file(&tmp);
        if let Err(e) = fs::remove_dir_all(&ts_dir) {
            tracing::warn!("removing {}: {e}", ts_dir.display());
        }
        return Err(e);
    }
    let wanted: BTreeSet<&str> = payload.keys().map(|p| top(p)).collect();
    for name in &wanted {
        let link = dir.join(name);
        let target = Path::new(DATA_LINK).join(name);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let _ = fs::remove_file(&link);
            symlink(&target, &link).map_err(io_at(&link))?;
        }
    }
    // What the old set had and the new one has not.
    for entry in fs::read_dir(dir).map_err(io_at(dir))?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("..") {
            if name != DATA_LINK && name != stamp && entry.path().is_dir() {
                let path = entry.path();
                if let Err(e) = fs::remove_dir_all(&path) {
                    tracing::warn!("removing {}: {e}", path.display());
                }
            }
            continue;
        }
        if !wanted.contains(name) && entry.file_type().is_ok_and(|t| t.is_symlink()) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(true)
}

/// Whether `ts_dir` holds `payload` exactly (contents and modes).
fn holds(ts_dir: &Path, payload: &Payload) -> bool {
    let mut found = BTreeSet::new();
    if !collect(ts_dir, ts_dir, &mut found) {
        return false;
    }
    if found.len() != payload.len() {
        return false;
    }
    payload.iter().all(|(p, f)| {
        let path = ts_dir.join(p);
        found.contains(p)
            && fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == f.mode)
            && fs::read(&path).is_ok_and(|d| d == f.data)
    })
}

/// Every regular file under `dir`, relative to `base`; false if unreadable.
fn collect(base: &Path, dir: &Path, out: &mut BTreeSet<String>) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            return false;
        };
        if kind.is_dir() {
            if !collect(base, &path, out) {
                return false;
            }
        } else if let Some(rel) = path.strip_prefix(base).ok().and_then(|p| p.to_str()) {
            out.insert(rel.to_string());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> File {
        File {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn writes_swaps_and_prunes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let mut p = Payload::new();
        p.insert("index.html".into(), file("one", 0o644));
        p.insert("conf/app.ini".into(), file("x=1", 0o600));
        assert!(write(&dir, &p).unwrap());
        assert_eq!(fs::read_to_string(dir.join("index.html")).unwrap(), "one");
        assert_eq!(fs::read_to_string(dir.join("conf/app.ini")).unwrap(), "x=1");
        let mode = fs::metadata(dir.join("conf/app.ini"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = fs::read_link(dir.join(DATA_LINK)).unwrap();
        // The same payload writes nothing.
        assert!(!write(&dir, &p).unwrap());
        assert_eq!(fs::read_link(dir.join(DATA_LINK)).unwrap(), first);
        // A change swaps the whole set; a key gone loses its link.
        let mut q = Payload::new();
        q.insert("index.html".into(), file("two", 0o644));
        assert!(write(&dir, &q).unwrap());
        assert_eq!(fs::read_to_string(dir.join("index.html")).unwrap(), "two");
        assert!(!dir.join("conf").exists());
        assert!(!dir.join(&first).exists(), "the old set is removed");
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        // A mode change alone is a change.
        q.insert("index.html".into(), file("two", 0o400));
        assert!(write(&dir, &q).unwrap());
    }

    #[test]
    fn a_set_that_cannot_be_written_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let good = Payload::from([("k".to_string(), file("v", 0o644))]);
        write(dir.path(), &good).unwrap();
        // "a" is a file, so "a/b" cannot be made: the write fails midway.
        let bad = Payload::from([
            ("a".to_string(), file("1", 0o644)),
            ("a/b".to_string(), file("2", 0o644)),
        ]);
        assert!(write(dir.path(), &bad).is_err());
        let sets = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("..") && n != DATA_LINK
            })
            .count();
        assert_eq!(sets, 1, "only the set in use is left");
        assert_eq!(fs::read_to_string(dir.path().join("k")).unwrap(), "v");
    }

    #[test]
    fn refuses_paths_out_of_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", "..data", "", "..x"] {
            let mut p = Payload::new();
            p.insert(bad.into(), file("x", 0o644));
            assert!(
                matches!(write(tmp.path(), &p), Err(WriteError::BadPath(_))),
                "{bad}"
            );
        }
    }
}
