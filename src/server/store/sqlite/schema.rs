//! Table layout and connection setup shared by the writer and the readers.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::server::store::{Error, Revision};

/// The log of key versions. `rev` is an alias of SQLite's rowid, so lookups
/// and range scans by revision need no extra index.
///
/// A delete is a row with `deleted = 1` that carries the deleted value, so a
/// delete event can be replayed even after the rows before it are compacted.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    rev        INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL,
    created    INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev   INTEGER NOT NULL,
    value      BLOB    NOT NULL
);
-- Two writers that both read version N of a key can never both append N+1.
CREATE UNIQUE INDEX IF NOT EXISTS kv_key_prev ON kv (key, prev_rev);
-- Latest row per key (at or below a revision); `deleted` makes range
-- listings and counts answerable from the index alone.
CREATE INDEX IF NOT EXISTS kv_key_rev ON kv (key, rev, deleted);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

pub(crate) const META_COMPACTED: &str = "compacted_rev";
/// Revisions up to this one may have been handed to deferred renewals
/// (see `deferred`): never to be handed out again.
pub(crate) const META_RESERVED: &str = "reserved_rev";

/// Page cache per connection, in KiB (negative `cache_size` means KiB).
/// Kept small: the whole server has to idle under 30 MiB.
const WRITER_CACHE_KIB: i64 = 2048;
const READER_CACHE_KIB: i64 = 1024;

pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    Error::Backend(e.to_string())
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Backend(format!("{what} {}: {e}", path.display()))
}

/// Creates the database file (and its directory) owner-only before SQLite
/// touches it; SQLite gives the -wal and -shm files the same mode.
pub(crate) fn prepare_file(path: &Path) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err("creating directory", dir, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("creating database", path, e))?;
    Ok(())
}

/// One plan per statement whatever values are bound (SQLite's query
/// planner stability guarantee): otherwise SQLite may compile a cached
/// statement again each time its bound values change, and our statements
/// are cached to be compiled once (their plans use the key index either
/// way).
fn stable_plans(conn: &Connection) -> Result<(), Error> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(db_err)?;
    Ok(())
}

fn open_flags() -> OpenFlags {
    // NO_MUTEX: every connection is used by one thread at a time.
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
}

/// Opens the single write connection, switches to WAL and creates the
/// tables.
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Opened, Error> {
    let conn = Connection::open_with_flags(path, open_flags()).map_err(db_err)?;
    // Only another process (a second server on the same file, a backup
    // tool) can hold the write lock; give it a moment, then fail the batch.
    conn.busy_timeout(busy_timeout).map_err(db_err)?;
    stable_plans(&conn)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Backend(format!(
            "database refused WAL mode (got {mode})"
        )));
    }
    // FULL in WAL mode fsyncs the log on every commit: an acknowledged write
    // survives power loss, and group commit keeps that to one fsync per batch.
    // secure_delete: what a delete or a compaction removes is overwritten
    // with zeros, not left in free pages and cells, so old versions of an
    // encrypted Secret (its plaintext, if written before encryption was
    // turned on) are gone from the file once compacted. The cost is small:
    // a page losing a cell is written anyway; only pages freed whole are
    // written once more (zeroed), in the compactor's batch, off the
    // request path.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA cache_size = -{WRITER_CACHE_KIB};
         PRAGMA journal_size_limit = 67108864;
         PRAGMA temp_store = MEMORY;"
    ))
    .map_err(db_err)?;
    conn.execute_batch(SCHEMA).map_err(db_err)?;

    let max_rev: Revision = conn
        .query_row("SELECT COALESCE(MAX(rev), 0) FROM kv", [], |r| r.get(0))
        .map_err(db_err)?;
    let compacted = read_compacted(&conn)?;
    let reserved = read_meta(&conn, META_RESERVED)?;
    // Compaction may remove the newest row (an old tombstone), and a crash
    // loses deferred renewals: revisions must still never be reused, and
    // none above the compacted or the reserved one was handed out.
    Ok(Opened {
        conn,
        last: max_rev.max(compacted).max(reserved),
        compacted,
        reserved,
    })
}

/// The write connection and where the log stands.
pub(crate) struct Opened {
    pub conn: Connection,
    /// The newest revision ever handed out.
    pub last: Revision,
    pub compacted: Revision,
    pub reserved: Revision,
}

/// Opens a connection that only reads (the writer has created the schema).
pub(crate) fn open_reader(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(path, open_flags()).map_err(db_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
    stable_plans(&conn)?;
    conn.execute_batch(&format!(
        "PRAGMA query_only = ON;
         PRAGMA cache_size = -{READER_CACHE_KIB};
         PRAGMA temp_store = MEMORY;"
    ))
    .map_err(db_err)?;
    Ok(conn)
}

pub(crate) fn read_compacted(conn: &Connection) -> Result<Revision, Error> {
    read_meta(conn, META_COMPACTED)
}

fn read_meta(conn: &Connection, name: &str) -> Result<Revision, Error> {
    let rev: Option<Revision> = conn
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .map_err(db_err)?
        .query_row([name], |r| r.get(0))
        .optional()
        .map_err(db_err)?;
    Ok(rev.unwrap_or(0))
}
