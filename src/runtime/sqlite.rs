//! Opening the node-local SQLite files (image metadata, container state)
//! that CLIs, shims and an agent share.
//!
//! Every opener waits for the others through a busy timeout, but SQLite does
//! not apply that timeout to the switch into WAL mode: two processes (or two
//! threads of one pull) opening a brand-new file at once would see one of them
//! fail with "database is locked". The first-time set-up therefore runs under
//! an flock on a sidecar file; once the file is in WAL mode (it stays so) the
//! lock is never taken again.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// How long a writer waits for another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// SQLite's `synchronous` setting for a file.
#[derive(Debug, Clone, Copy)]
pub enum Sync {
    /// Each commit is on disk when it returns (content we cannot rebuild).
    Full,
    /// A power cut may lose the last commits but never corrupts the file.
    Normal,
}

/// Open `path` in WAL mode and make sure `schema` (idempotent DDL) exists.
pub fn open(path: &Path, sync: Sync, schema: &str) -> Result<Connection, OpenError> {
    private_files(path)?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Held until the schema exists, so no opener sees a half-made file.
    let _setup = if is_wal(&conn)? {
        None
    } else {
        let held = setup_lock(path)?;
        // Another opener may have finished the set-up while we waited.
        if !is_wal(&conn)? {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        Some(held)
    };
    conn.execute_batch(schema)?;
    let level = match sync {
        Sync::Full => "FULL",
        Sync::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every CLI call and shim opens these files for a moment. By default the
    // last connection to close checkpoints the log into the file and deletes
    // it (fsyncs, and a new inode and a synced log header on the next open);
    // with the log kept, a short-lived connection costs neither. The first
    // connection to open a file rebuilds its index by reading the whole log,
    // so the log is kept short: commits checkpoint it every 64 pages.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.pragma_update(None, "wal_autocheckpoint", 64)?;
    conn.pragma_update(None, "journal_size_limit", 1 << 20)?;
    Ok(conn)
}

/// The records hold secrets (container environments): the file is created
/// 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` the mode
/// of the main file), and files left looser by an older version are made so.
fn private_files(db: &Path) -> Result<(), OpenError> {
    let err = |path: PathBuf| move |source| OpenError::Io { path, source };
    crate::runtime::private::append_file(db).map_err(err(db.to_path_buf()))?;
    for ext in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(ext);
        let p = PathBuf::from(name);
        crate::runtime::private::tighten_path(&p).map_err(err(p.clone()))?;
    }
    Ok(())
}

fn setup_lock(db: &Path) -> Result<crate::lockfile::Guard, OpenError> {
    let path = db.with_extension("init-lock");
    crate::lockfile::exclusive(&path).map_err(|source| OpenError::Lock { path, source })
}

fn is_wal(conn: &Connection) -> rusqlite::Result<bool> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT);";

    /// Many threads opening one brand-new file at once, each writing right
    /// away: without the serialised set-up some fail with "database is locked".
    #[test]
    fn concurrent_first_opens_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("r{round}.db"));
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let path = path.clone();
                    std::thread::spawn(move || -> Result<(), OpenError> {
                        let conn = open(&path, Sync::Normal, SCHEMA)?;
                        conn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [i])?;
                        Ok(())
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
            let conn = open(&path, Sync::Normal, SCHEMA).unwrap();
            let n: i64 = conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 8);
        }
    }
}
