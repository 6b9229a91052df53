//! Which backend holds the cluster's state (`--datastore-endpoint`): the
//! embedded SQLite file by default, or a PostgreSQL database that several
//! servers can share.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::postgres::{PostgresBackend, TlsFiles};
use super::sqlite::SqliteBackend;
use super::{Backend, Error, Result};

pub enum Datastore {
    Sqlite(Arc<SqliteBackend>),
    Postgres(Arc<PostgresBackend>),
}

impl Datastore {
    /// Opens what `endpoint` names (`sqlite://` or none: the file at
    /// `sqlite_path`; `postgres://…`, `postgresql://…`, reached with `tls`).
    pub async fn open(
        endpoint: Option<&str>,
        tls: &TlsFiles,
        sqlite_path: &Path,
    ) -> Result<Datastore> {
        match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
            None => Self::open_sqlite(sqlite_path).await,
            Some(e) if e == "sqlite" || e.starts_with("sqlite://") => {
                if !matches!(e, "sqlite" | "sqlite://") {
                    return Err(Error::Backend(format!(
                        "datastore endpoint {e}: SQLite is always the file in the data \
                         directory; use `sqlite://` (or no endpoint)"
                    )));
                }
                Self::open_sqlite(sqlite_path).await
            }
            Some(e) if e.starts_with("postgres://") || e.starts_with("postgresql://") => {
                Ok(Datastore::Postgres(PostgresBackend::open(e, tls).await?))
            }
            Some(e) => {
                // Only the scheme: the rest may hold a password.
                let scheme = e.split_once("://").map_or("(none)", |(s, _)| s);
                Err(Error::Backend(format!(
                    "datastore endpoint: unknown scheme {scheme}: use sqlite:// or postgres://USER@HOST/DATABASE"
                )))
            }
        }
    }

    /// Whether `endpoint` names a datastore several servers can share (so
    /// the cluster's CAs and keys live in it too).
    pub fn shareable(endpoint: Option<&str>) -> bool {
        endpoint
            .map(str::trim)
            .is_some_and(|e| e.starts_with("postgres://") || e.starts_with("postgresql://"))
    }

    async fn open_sqlite(path: &Path) -> Result<Datastore> {
        let path = path.to_owned();
        let store = tokio::task::spawn_blocking(move || SqliteBackend::open(&path))
            .await
            .map_err(|e| Error::Backend(format!("opening the database: {e}")))??;
        Ok(Datastore::Sqlite(store))
    }

    pub fn backend(&self) -> Arc<dyn Backend> {
        match self {
            Datastore::Sqlite(s) => s.clone(),
            Datastore::Postgres(s) => s.clone(),
        }
    }

    /// The embedded store, which the data directory's snapshots copy.
    pub fn sqlite(&self) -> Option<&Arc<SqliteBackend>> {
        match self {
            Datastore::Sqlite(s) => Some(s),
            Datastore::Postgres(_) => None,
        }
    }

    pub fn spawn_compactor(&self, interval: Duration, keep: i64) -> tokio::task::JoinHandle<()> {
        match self {
            Datastore::Sqlite(s) => s.spawn_compactor(interval, keep),
            Datastore::Postgres(s) => s.spawn_compactor(interval, keep),
        }
    }

    pub async fn close(&self) {
        match self {
            Datastore::Sqlite(s) => s.close().await,
            Datastore::Postgres(s) => s.close().await,
        }
    }
}
