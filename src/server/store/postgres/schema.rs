//! The tables in PostgreSQL and the connection settings.
//!
//! The same log as SQLite's (`store::log`): `skiff_kv` holds every version
//! of every key, `skiff_meta` the revision counter and the compacted
//! revision. Keys sort in byte order (`COLLATE "C"`), as prefix ranges and
//! continue keys need.

use std::str::FromStr;

use tokio_postgres::config::Host;

use crate::server::store::Error;

/// Everything here is created if missing, under an advisory lock so that
/// servers starting together do not race on the catalog.
pub(super) const SCHEMA: &str = r#"
SELECT pg_advisory_xact_lock(7235046329501);
CREATE TABLE IF NOT EXISTS skiff_kv (
    rev        BIGINT  PRIMARY KEY,
    key        TEXT    COLLATE "C" NOT NULL,
    created    BOOLEAN NOT NULL,
    deleted    BOOLEAN NOT NULL,
    create_rev BIGINT  NOT NULL,
    prev_rev   BIGINT  NOT NULL,
    value      BYTEA   NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS skiff_kv_key_prev ON skiff_kv (key, prev_rev);
CREATE INDEX IF NOT EXISTS skiff_kv_key_rev ON skiff_kv (key, rev) INCLUDE (deleted);
CREATE TABLE IF NOT EXISTS skiff_meta (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO skiff_meta (name, value) VALUES ('rev', 0), ('compacted_rev', 0)
    ON CONFLICT (name) DO NOTHING;
"#;

/// The channel a commit notifies, so every server's watchers wake at once.
pub(super) const CHANNEL: &str = "skiff_kv";

pub(super) fn db_err(e: tokio_postgres::Error) -> Error {
    // The driver's text for a server error is only "db error"; the
    // server's own message says what went wrong.
    match e.as_db_error() {
        Some(db) => Error::Backend(format!(
            "postgresql: {}: {}",
            db.code().code(),
            db.message()
        )),
        None => Error::Backend(format!("postgresql: {e}")),
    }
}

/// A parsed `postgres://` endpoint, and where it points, for logs (the
/// password never appears).
pub struct Endpoint {
    pub config: tokio_postgres::Config,
    pub display: String,
}

impl Endpoint {
    /// Parses a `postgres://` or `postgresql://` URL (or a libpq
    /// `key=value` string). Connections go without TLS, so only to a unix
    /// socket or a loopback address: a datastore on another machine needs
    /// TLS, which this backend does not speak yet, and credentials and
    /// every object would cross the network in clear.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| Error::Backend(format!("datastore endpoint: {e}")))?;
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            config.user("postgres");
        }
        if config.get_dbname().is_none() {
            config.dbname("skiff");
        }
        config.application_name("skiff");
        config.connect_timeout(std::time::Duration::from_secs(10));
        let mut hosts = Vec::new();
        for host in config.get_hosts() {
            match host {
                Host::Unix(path) => hosts.push(path.display().to_string()),
                Host::Tcp(name) => {
                    let local = name == "localhost"
                        || name
                            .trim_matches(|c| c == '[' || c == ']')
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                    if !local {
                        return Err(Error::Backend(format!(
                            "datastore endpoint: {name} is not on this machine, and \
                             connections to PostgreSQL are not encrypted yet; connect \
                             through a unix socket (postgres://user@%2Frun%2Fpostgresql/db) \
                             or a loopback address"
                        )));
                    }
                    hosts.push(name.clone());
                }
            }
        }
        let display = format!(
            "postgres://{}@{}/{}",
            config.get_user().unwrap_or_default(),
            hosts.join(","),
            config.get_dbname().unwrap_or_default()
        );
        Ok(Endpoint { config, display })
    }
}
