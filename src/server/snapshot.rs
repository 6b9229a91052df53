//! Snapshots of a server's state, for flash storage that fails and boxes
//! that are replaced (k3s's `etcd-snapshot`): one file holding a
//! consistent copy of the datastore, taken while the server runs, and the
//! cluster's credentials (CA and service-account keys, tokens, the
//! encryption configuration that Secrets at rest need), so that a fresh
//! data directory restored from it serves the same cluster.
//!
//! The copy is SQLite's `VACUUM INTO` on a read-only connection: one read
//! transaction, so it holds exactly the writes committed (and so
//! acknowledged) before it began, whatever the server writes meanwhile.
//! The file is a gzipped tar, 0600 in `<data-dir>/server/snapshots`
//! (0700): it holds private keys.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Where a data directory keeps its snapshots.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("snapshots")
}

/// What goes with the datastore: paths under the data directory (the
/// credentials, and the manifests the server applies).
const CREDENTIALS: [&str; 4] = [
    "server/tls",
    "server/cred",
    "server/token",
    "server/manifests",
];
const DB: &str = "server/db/state.db";
const SUFFIX: &str = ".snapshot.tar.gz";
/// The largest file a snapshot may hold when restored, and the most it may
/// hold in all (a hostile or corrupt file must not fill the disk).
const MAX_ENTRY: u64 = 64 << 30;
const MAX_TOTAL: u64 = 64 << 30;
/// The most entries a snapshot may hold (a few dozen in practice).
const MAX_ENTRIES: usize = 10_000;
/// Saves retried when the credentials change while one is taken.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("copying the datastore {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Refused(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let what = what.into();
    move |source| SnapshotError::Io { what, source }
}

/// One snapshot on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Seconds since the epoch, from the name.
    pub taken: i64,
}

/// Take a snapshot of the server at `data_dir` (running or not), named
/// `<name>-<seconds since the epoch>`, into `into` (default: its
/// snapshots directory). The path of the snapshot.
pub fn save(data_dir: &Path, name: &str, into: Option<&Path>) -> Result<PathBuf, SnapshotError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(SnapshotError::Refused(format!(
            "snapshot name {name:?}: use letters, digits, '-' and '_' (at most 64)"
        )));
    }
    let db = data_dir.join(DB);
    if !db.exists() {
        return Err(SnapshotError::Refused(format!(
            "no datastore at {}: is {} a skiff server's data directory? (A server \
             that keeps its state in PostgreSQL, --datastore-endpoint, is backed up \
             with PostgreSQL's own tools, such as pg_dump)",
            db.display(),
            data_dir.display()
        )));
    }
    let out_dir = match into {
        // Ours: made (or tightened) 0700.
        None => {
            let d = dir(data_dir);
            crate::runtime::private::ensure_dir(&d)
                .map_err(io_err(format!("creating {}", d.display())))?;
            d
        }
        // The user's: used as it is, never changed, if nobody else can
        // write in it (the snapshot's names are predictable).
        Some(d) => {
            user_dir(d)?;
            d.to_path_buf()
        }
    };
    // One save at a time in a directory; what an interrupted one left is
    // removed.
    let _lock = crate::lockfile::exclusive(&out_dir.join(".lock"))
        .map_err(io_err(format!("locking {}", out_dir.display())))?;
    remove_leftovers(&out_dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stem = format!("{name}-{now}");
    let target = out_dir.join(format!("{stem}{SUFFIX}"));
    if target.exists() {
        return Err(SnapshotError::Refused(format!(
            "{} exists already",
            target.display()
        )));
    }
    // The copy of the datastore, beside the snapshot while it is made.
    let copy = out_dir.join(format!(".{stem}.db"));
    let tmp = out_dir.join(format!(".{stem}.tmp"));
    // A key rotation that finishes while the copy is made would pair the
    // datastore with keys it was not written with (Secrets encrypted with
    // the old key): the credentials must be the same before and after.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = fingerprint(data_dir);
        let made = copy_db(&db, &copy).and_then(|()| write_archive(data_dir, &copy, &tmp));
        let _ = fs::remove_file(&copy);
        if let Err(e) = made {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if fingerprint(data_dir) != before {
            let _ = fs::remove_file(&tmp);
            if attempt >= ATTEMPTS {
                return Err(SnapshotError::Refused(
                    "the cluster's credentials changed while the snapshot was taken (a key rotation?), three times: try again".into(),
                ));
            }
            continue;
        }
        fs::rename(&tmp, &target).map_err(io_err(format!("writing {}", target.display())))?;
        // The snapshot is there: a directory that cannot be synced is
        // worth a warning, not a failed save.
        if let Err(e) = sync_dir(&out_dir) {
            tracing::warn!("{e}");
        }
        return Ok(target);
    }
}

/// A directory the user named for snapshots: an existing one that only
/// its owner (root, or us) can write in, or a new one made 0700.
pub fn user_dir(d: &Path) -> Result<(), SnapshotError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match fs::symlink_metadata(d) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(io_err(format!("creating {}", d.display()))),
        Err(e) => Err(io_err(format!("reading {}", d.display()))(e)),
        Ok(m) => {
            let me = nix::unistd::geteuid().as_raw();
            let ok = m.is_dir() && m.mode() & 0o022 == 0 && (m.uid() == me || m.uid() == 0);
            if ok {
                Ok(())
            } else {
                Err(SnapshotError::Refused(format!(
                    "{}: snapshots hold the cluster's keys; use a directory that only its owner can write in (not a symlink)",
                    d.display()
                )))
            }
        }
    }
}

/// The credentials' contents, hashed (small files: keys, tokens,
/// configuration; a large one by its size and time), over what a snapshot
/// would archive.
fn fingerprint(data_dir: &Path) -> Vec<u8> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let mut hasher = sha2::Sha256::new();
    for e in kept_entries(data_dir) {
        hasher.update(e.name.as_os_str().as_encoded_bytes());
        if e.meta.is_file() && e.meta.len() <= 1 << 20 {
            if let Ok(bytes) = fs::read(&e.path) {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        } else {
            hasher.update(e.meta.len().to_le_bytes());
            hasher.update(e.meta.mtime_nsec().to_le_bytes());
            hasher.update(e.meta.mtime().to_le_bytes());
        }
    }
    hasher.finalize().to_vec()
}

/// One file or directory that goes with the datastore.
struct Kept {
    /// Its path in the archive (relative to the data directory).
    name: PathBuf,
    path: PathBuf,
    meta: fs::Metadata,
}

/// What goes with the datastore, in order: regular files and directories
/// only, as restore takes them. Links are never followed and special files
/// never read: a link or FIFO a user left among the manifests is skipped
/// (with a warning), not archived into a snapshot that could not be
/// restored.
fn kept_entries(data_dir: &Path) -> Vec<Kept> {
    fn walk(path: PathBuf, name: PathBuf, depth: usize, out: &mut Vec<Kept>) {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return;
        };
        if meta.is_file() {
            out.push(Kept { name, path, meta });
        } else if meta.is_dir() && depth < 8 {
            let mut entries: Vec<_> = fs::read_dir(&path)
                .map(|d| d.flatten().collect())
                .unwrap_or_default();
            entries.sort_by_key(|e| e.file_name());
            out.push(Kept {
                name: name.clone(),
                path,
                meta,
            });
            for e in entries {
                walk(e.path(), name.join(e.file_name()), depth + 1, out);
            }
        } else {
            tracing::warn!(path = %path.display(), "not a regular file or directory: left out of the snapshot");
        }
    }
    let mut out = Vec::new();
    for part in CREDENTIALS {
        walk(data_dir.join(part), PathBuf::from(part), 0, &mut out);
    }
    out
}

/// A rename is durable once its directory is synced.
fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}

/// Remove what an interrupted save left (its dot-files), under the lock.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && (name.ends_with(".db") || name.ends_with(".tmp")) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// A consistent copy of the database at `db` into `to` (made here, empty
/// and 0600, so the copy is never readable by others), on a read-only
/// connection: the server's writes go on.
fn copy_db(db: &Path, to: &Path) -> Result<(), SnapshotError> {
    {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(to)
            .map_err(io_err(format!("creating {}", to.display())))?;
    }
    let err = |source| SnapshotError::Db {
        path: db.to_path_buf(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(err)?;
    let target = to
        .to_str()
        .ok_or_else(|| SnapshotError::Refused(format!("{} is not UTF-8", to.display())))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(err)?;
    Ok(())
}

fn write_archive(data_dir: &Path, db_copy: &Path, to: &Path) -> Result<(), SnapshotError> {
    let file = crate::runtime::private::create_file(to)
        .map_err(io_err(format!("creating {}", to.display())))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let what = || format!("writing {}", to.display());
    tar.append_path_with_name(db_copy, DB)
        .map_err(io_err(what()))?;
    for e in kept_entries(data_dir) {
        let added = if e.meta.is_dir() {
            tar.append_dir(&e.name, &e.path)
        } else {
            tar.append_path_with_name(&e.path, &e.name)
        };
        added.map_err(io_err(what()))?;
    }
    let gz = tar.into_inner().map_err(io_err(what()))?;
    let file = gz.finish().map_err(io_err(what()))?;
    file.sync_all().map_err(io_err(what()))
}

/// The snapshots in `in_dir`, oldest first.
pub fn list(in_dir: &Path) -> Result<Vec<Snapshot>, SnapshotError> {
    let entries = match fs::read_dir(in_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("reading {}", in_dir.display()))(e)),
    };
    let mut out: Vec<Snapshot> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let name = file.strip_suffix(SUFFIX)?.to_string();
            let taken = name.rsplit_once('-')?.1.parse().ok()?;
            Some(Snapshot {
                size: e.metadata().ok()?.len(),
                path: e.path(),
                name,
                taken,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.taken, &a.name).cmp(&(b.taken, &b.name)));
    Ok(out)
}

/// Remove all but the newest `keep` snapshots of `in_dir` whose name
/// starts with `prefix` (the `--name` they were saved with). The removed.
pub fn prune(in_dir: &Path, prefix: &str, keep: usize) -> Result<Vec<Snapshot>, SnapshotError> {
    let mine: Vec<Snapshot> = list(in_dir)?
        .into_iter()
        .filter(|s| s.name.rsplit_once('-').is_some_and(|(n, _)| n == prefix))
        .collect();
    let excess = mine.len().saturating_sub(keep);
    let gone: Vec<Snapshot> = mine.into_iter().take(excess).collect();
    for s in &gone {
        fs::remove_file(&s.path).map_err(io_err(format!("removing {}", s.path.display())))?;
    }
    Ok(gone)
}

/// Restore `snapshot` into the data directory `data_dir`, which must not
/// hold a datastore (a fresh one, or one whose `server/db` was moved
/// away) and which no server may be using. Only the snapshot's own paths
/// are written; anything else in it refuses the restore.
pub fn restore(snapshot: &Path, data_dir: &Path) -> Result<(), SnapshotError> {
    let db = data_dir.join(DB);
    let db_dir = db.parent().unwrap_or(&db).to_path_buf();
    // Not over a datastore, nor beside its leftovers: a stale WAL would be
    // replayed into the restored database.
    let used = fs::read_dir(&db_dir).is_ok_and(|mut e| e.next().is_some());
    if used {
        return Err(SnapshotError::Refused(format!(
            "{} holds a datastore already: restore into a fresh data directory (or move {} away first)",
            data_dir.display(),
            db_dir.display()
        )));
    }
    let file =
        fs::File::open(snapshot).map_err(io_err(format!("opening {}", snapshot.display())))?;
    let staging = data_dir.join("server").join(".restore");
    let _ = fs::remove_dir_all(&staging);
    crate::runtime::private::ensure_dir(&staging)
        .map_err(io_err(format!("creating {}", staging.display())))?;
    let unpacked = unpack(file, &staging);
    let result = unpacked.and_then(|()| {
        if !staging.join(DB).is_file() {
            return Err(SnapshotError::Refused(format!(
                "{} holds no datastore: not a skiff snapshot",
                snapshot.display()
            )));
        }
        check_db(&staging.join(DB))?;
        // Until the datastore is in place the server refuses to start
        // here: credentials without their datastore would start a new,
        // empty cluster under the old CA.
        let marker = incomplete_marker(data_dir);
        crate::runtime::private::write_file(&marker, b"a snapshot restore is in progress\n")
            .map_err(io_err(format!("writing {}", marker.display())))?;
        for part in CREDENTIALS.iter().chain([&DB]) {
            let from = staging.join(part);
            if !from.exists() {
                continue;
            }
            let to = data_dir.join(part);
            if let Some(parent) = to.parent() {
                crate::runtime::private::ensure_dir(parent)
                    .map_err(io_err(format!("creating {}", parent.display())))?;
            }
            if to.is_dir() {
                fs::remove_dir_all(&to).map_err(io_err(format!("replacing {}", to.display())))?;
            }
            fs::rename(&from, &to).map_err(io_err(format!("restoring {}", to.display())))?;
            if let Some(parent) = to.parent() {
                sync_dir(parent)?;
            }
        }
        fs::remove_file(&marker).map_err(io_err(format!("removing {}", marker.display())))?;
        sync_dir(&data_dir.join("server"))
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Present while a restore into the data directory has not finished.
pub fn incomplete_marker(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join(".restore-incomplete")
}

/// Unpack the snapshot's entries into `staging`, each checked: only the
/// paths a snapshot holds, regular files and directories (0600 but for
/// certificates, 0700), none larger than `MAX_ENTRY`.
fn unpack(file: fs::File, staging: &Path) -> Result<(), SnapshotError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let what = || "reading the snapshot".to_string();
    let (mut count, mut total) = (0usize, 0u64);
    for entry in archive.entries().map_err(io_err(what()))? {
        let mut entry = entry.map_err(io_err(what()))?;
        count += 1;
        if count > MAX_ENTRIES || total > MAX_TOTAL {
            return Err(SnapshotError::Refused(
                "the snapshot holds more than any skiff snapshot does: refused".into(),
            ));
        }
        let path = entry.path().map_err(io_err(what()))?.into_owned();
        let allowed = path.components().all(|c| matches!(c, Component::Normal(_)))
            && (path == Path::new(DB)
                || CREDENTIALS
                    .iter()
                    .any(|p| path == Path::new(p) || path.starts_with(p)));
        if !allowed {
            return Err(SnapshotError::Refused(format!(
                "the snapshot holds {:?}, which no skiff snapshot has: refused",
                path.display().to_string()
            )));
        }
        let to = staging.join(&path);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&to)
                .map_err(io_err(format!("creating {}", to.display())))?;
            continue;
        }
        if !kind.is_file() {
            return Err(SnapshotError::Refused(format!(
                "the snapshot's {} is not a regular file: refused",
                path.display()
            )));
        }
        if entry.header().size().map_err(io_err(what()))? > MAX_ENTRY {
            return Err(SnapshotError::Refused(format!(
                "the snapshot's {} is too large",
                path.display()
            )));
        }
        if let Some(parent) = to.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err(format!("creating {}", parent.display())))?;
        }
        // Certificates are public; everything else (keys, tokens, the
        // datastore) 0600, whatever the archive says.
        let public = path.extension().is_some_and(|e| e == "crt");
        let mode = if public { 0o644 } else { 0o600 };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&to)
            .map_err(io_err(format!("writing {}", to.display())))?;
        // What is written counts, not what the headers claim (a PAX size
        // could say less).
        let room = MAX_ENTRY.min(MAX_TOTAL - total);
        let size = entry.size();
        let written = io::copy(&mut (&mut entry).take(room), &mut out)
            .map_err(io_err(format!("writing {}", to.display())))?;
        if written < size {
            return Err(SnapshotError::Refused(
                "the snapshot holds more than any skiff snapshot does: refused".into(),
            ));
        }
        total += written;
        out.sync_all()
            .map_err(io_err(format!("writing {}", to.display())))?;
    }
    // The gzip trailer's checksum is checked only when it is read.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| {
        SnapshotError::Refused(format!(
            "the snapshot is damaged ({e}): restore another snapshot"
        ))
    })?;
    Ok(())
}

/// The restored datastore must be a whole SQLite database.
fn check_db(path: &Path) -> Result<(), SnapshotError> {
    let err = |source| SnapshotError::Db {
        path: path.to_path_buf(),
        source,
    };
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err)?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(err)?;
    if verdict != "ok" {
        return Err(SnapshotError::Refused(format!(
            "the snapshot's datastore is damaged ({verdict}): restore another snapshot"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot whose entries are `entries` (path, is a symlink).
    fn archive(dir: &Path, entries: &[(&str, bool)]) -> PathBuf {
        let path = dir.join("s.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, link) in entries {
            let mut h = tar::Header::new_gnu();
            if *link {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, "/etc/passwd").unwrap();
            } else {
                h.set_size(2);
                h.set_mode(0o755);
                h.set_cksum();
                // Written raw: the builder would refuse a `..` itself.
                let bytes = name.as_bytes();
                h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                h.set_cksum();
                b.append(&h, &b"ok"[..]).unwrap();
            }
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn a_hostile_snapshot_is_refused_and_writes_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        for (entries, why) in [
            (
                vec![("server/../../escape", false)],
                "which no skiff snapshot has",
            ),
            (vec![("etc/cron.d/x", false)], "which no skiff snapshot has"),
            (
                vec![("server/tls/server-ca.key", true)],
                "not a regular file",
            ),
            (vec![("server/token", false)], "holds no datastore"),
        ] {
            let data = dir.path().join("data");
            let _ = fs::remove_dir_all(&data);
            let file = archive(dir.path(), &entries);
            let e = restore(&file, &data).unwrap_err();
            assert!(e.to_string().contains(why), "{entries:?}: {e}");
            for escaped in ["escape", "data/escape", "data/server/escape"] {
                assert!(!dir.path().join(escaped).exists(), "{escaped}");
            }
            assert!(
                !data.join("server/token").exists(),
                "a refused restore left files"
            );
        }
    }

    #[test]
    fn a_truncated_or_corrupt_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = archive(dir.path(), &[("server/token", false)]);
        let mut bytes = fs::read(&file).unwrap();
        // The gzip trailer's CRC, wrong: the entries read fine, the
        // whole does not.
        let n = bytes.len();
        bytes[n - 8] ^= 0xff;
        fs::write(&file, &bytes).unwrap();
        let staging = dir.path().join("staging");
        fs::create_dir_all(&staging).unwrap();
        let e = unpack(fs::File::open(&file).unwrap(), &staging).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn restored_files_other_than_certificates_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = archive(dir.path(), &[("server/token", false)]);
        let staging = dir.path().join("staging");
        fs::create_dir_all(&staging).unwrap();
        unpack(fs::File::open(file).unwrap(), &staging).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(staging.join("server/token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
