//! The tables in PostgreSQL and the connection settings.
//!
//! The same log as SQLite's (`store::log`): `skiff_kv` holds every version
//! of every key, `skiff_meta` the revision counter and the compacted
//! revision. Keys sort in byte order (`COLLATE "C"`), as prefix ranges and
//! continue keys need.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

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
        None => {
            // The driver's own text leaves out the cause ("error performing
            // TLS handshake"): the certificate problem, the refused
            // connection.
            let mut text = format!("postgresql: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            Error::Backend(text)
        }
    }
}

/// TLS files for the connection to the database (k3s's
/// `--datastore-cafile/certfile/keyfile`).
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// The CA the server's certificate must chain to (else the system's).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for servers that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Where the system keeps its trusted CAs (Debian/Ubuntu, Fedora/RHEL,
/// Alpine/Arch).
const SYSTEM_ROOTS: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A parsed `postgres://` endpoint, how to reach it, and where it points,
/// for logs (the password never appears).
pub struct Endpoint {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    /// Whether connections are encrypted.
    pub encrypted: bool,
    pub display: String,
}

impl Endpoint {
    /// Parses a `postgres://` or `postgresql://` URL (or a libpq
    /// `key=value` string). A server on another machine is reached over
    /// TLS only, its certificate checked against `files.ca_file` (or the
    /// system's CAs) and its name; on this machine (a unix socket, a
    /// loopback address) TLS is used when a CA file is given or the
    /// endpoint says `sslmode=require` (`verify-ca` and `verify-full` mean
    /// the same here: the certificate is always checked).
    pub fn parse(url: &str, files: &TlsFiles) -> Result<Endpoint, Error> {
        // tokio-postgres knows disable/prefer/require only.
        let url = url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let mut config = tokio_postgres::Config::from_str(&url)
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
        if !config.get_hostaddrs().is_empty() {
            // tokio-postgres connects to hostaddr and checks the certificate
            // against host: the two could say different things about
            // where the connection goes.
            return Err(Error::Backend(
                "datastore endpoint: hostaddr is not supported; name the server in the host part"
                    .into(),
            ));
        }
        config.application_name("skiff");
        config.connect_timeout(Duration::from_secs(10));
        // A server that vanishes mid-transaction (cut off, or paused) must
        // not keep the revision counter's lock, which every server's writes
        // wait for, until TCP gives up hours later.
        config.options(
            "-c idle_in_transaction_session_timeout=30000 -c lock_timeout=20000 \
             -c statement_timeout=60000",
        );
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.tcp_user_timeout(Duration::from_secs(30));
        if config.get_hosts().len() > 1 {
            // Several hosts: a primary, never a standby that refuses writes.
            config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        }
        let mut hosts = Vec::new();
        let mut remote = None;
        let mut socket = false;
        for host in config.get_hosts() {
            match host {
                Host::Unix(path) => {
                    socket = true;
                    hosts.push(path.display().to_string())
                }
                Host::Tcp(name) => {
                    let local = name == "localhost"
                        || name
                            .trim_matches(|c| c == '[' || c == ']')
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                    if !local {
                        remote.get_or_insert_with(|| name.clone());
                    }
                    hosts.push(name.clone());
                }
            }
        }
        let asked = config.get_ssl_mode();
        let encrypted = match (&remote, asked) {
            (Some(host), SslMode::Disable) => {
                return Err(Error::Backend(format!(
                    "datastore endpoint: {host} is not on this machine: connections to it \
                     must be encrypted (remove sslmode=disable)"
                )))
            }
            (Some(_), _) => true,
            (None, SslMode::Require) => true,
            (None, _) => files.ca_file.is_some(),
        };
        if encrypted && socket {
            return Err(Error::Backend(
                "datastore endpoint: TLS over a unix socket is not possible; use a TCP \
                 address, or no CA file and no sslmode=require"
                    .into(),
            ));
        }
        if !encrypted && (files.cert_file.is_some() || files.key_file.is_some()) {
            return Err(Error::Backend(
                "datastore endpoint: a client certificate is given but the connection is \
                 not encrypted: give --datastore-cafile (or sslmode=require) too"
                    .into(),
            ));
        }
        config.ssl_mode(if encrypted {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        if let ([port], [host]) = (config.get_ports(), hosts.as_mut_slice()) {
            if *port != 5432 {
                host.push_str(&format!(":{port}"));
            }
        }
        let display = format!(
            "postgres://{}@{}/{}{}",
            config.get_user().unwrap_or_default(),
            hosts.join(","),
            config.get_dbname().unwrap_or_default(),
            if encrypted { " (TLS)" } else { "" }
        );
        let tls = MakeRustlsConnect::new(client_config(files, encrypted)?);
        Ok(Endpoint {
            config,
            tls,
            encrypted,
            display,
        })
    }
}

fn read_pem<T>(
    path: &Path,
    what: &str,
    read: impl FnOnce(&Path) -> Result<T, rustls_pki_types::pem::Error>,
) -> Result<T, Error> {
    read(path).map_err(|e| Error::Backend(format!("datastore {what} {}: {e}", path.display())))
}

/// The TLS client: the CA file's certificates (or the system's) as roots,
/// and the client certificate if one is given. Without TLS, nothing is
/// read.
fn client_config(files: &TlsFiles, encrypted: bool) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Backend(format!("datastore TLS: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    if encrypted {
        let ca = match &files.ca_file {
            Some(ca) => Some(ca.clone()),
            None => SYSTEM_ROOTS.iter().map(PathBuf::from).find(|p| p.exists()),
        };
        let Some(ca) = ca else {
            return Err(Error::Backend(
                "datastore TLS: no CA to check the server's certificate against: give \
                 --datastore-cafile"
                    .into(),
            ));
        };
        let certs: Vec<CertificateDer<'static>> = read_pem(&ca, "CA file", |p| {
            CertificateDer::pem_file_iter(p)?.collect()
        })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::Backend(format!(
                "datastore CA file {}: no certificate in it",
                ca.display()
            )));
        }
    }
    let builder = builder.with_root_certificates(roots);
    match (&files.cert_file, &files.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = read_pem(cert, "certificate file", |p| {
                CertificateDer::pem_file_iter(p)?.collect()
            })?;
            let key = read_pem(key, "key file", |p| PrivateKeyDer::from_pem_file(p))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Backend(format!("datastore client certificate: {e}")))
        }
        _ => Err(Error::Backend(
            "datastore TLS: --datastore-certfile and --datastore-keyfile go together".into(),
        )),
    }
}
