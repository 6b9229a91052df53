//! A PostgreSQL server of a test's own: Debian's `postgresql` package's
//! programs, `initdb` into a temporary directory, listening on a unix
//! socket there only (nothing on the network), stopped when dropped (and
//! killed with the test process if that dies first). Shared by the
//! library's store tests (`#[path]`) and the integration tests.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct PgCluster {
    dir: tempfile::TempDir,
    postmaster: Child,
    databases: AtomicUsize,
    port: u16,
}

/// A server certificate and key (PEM) for a cluster that speaks TLS.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The newest installed server's programs.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (the test command installs Debian's postgresql)")
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
        .1
}

impl PgCluster {
    pub fn start() -> PgCluster {
        Self::start_with(None)
    }

    /// With `tls`, the server also listens on 127.0.0.1 (a free port) and
    /// speaks TLS there with that certificate.
    pub fn start_with(tls: Option<ServerTls>) -> PgCluster {
        // PostgreSQL refuses to run as root: its own system user runs it.
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("the postgres user (made by Debian's postgresql package)");
        let dir = tempfile::Builder::new()
            .prefix("skiff-pg-")
            .tempdir()
            .unwrap();
        nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        let bin = bin_dir();
        let as_postgres = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            cmd.uid(user.uid.as_raw())
                .gid(user.gid.as_raw())
                .env("HOME", dir.path())
                .current_dir(dir.path());
            cmd
        };
        let data = dir.path().join("data");
        let out = as_postgres("initdb")
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut postmaster = as_postgres("postgres");
        postmaster
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("server.log")).unwrap(),
            ));
        // If the test process dies without its destructors, so does the
        // server (its backends exit when the postmaster is gone).
        unsafe {
            postmaster.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut port = 5432;
        if let Some(tls) = tls {
            // A free port on loopback (the listener is closed just before
            // the server binds it).
            port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            for (name, pem) in [("server.crt", &tls.cert_pem), ("server.key", &tls.key_pem)] {
                let path = dir.path().join(name);
                std::fs::write(&path, pem).unwrap();
                nix::unistd::chown(&path, Some(user.uid), Some(user.gid)).unwrap();
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
            }
            postmaster
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on", "-p"])
                .arg(port.to_string())
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    dir.path().join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    dir.path().join("server.key").display()
                ));
        }
        let postmaster = postmaster.spawn().unwrap();
        let cluster = PgCluster {
            dir,
            postmaster,
            databases: AtomicUsize::new(0),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cluster
            .socket_dir()
            .join(format!(".s.PGSQL.{}", cluster.port))
            .exists()
        {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                cluster.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A libpq connection string for database `db`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// The TCP port (on 127.0.0.1, when started with TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The same as a `postgres://` URL (the socket directory
    /// percent-encoded as the host).
    pub fn url(&self, db: &str) -> String {
        let host = self.socket_dir().display().to_string().replace('/', "%2F");
        format!("postgres://postgres@{host}:{}/{db}", self.port)
    }

    /// A new, empty database; returns its name.
    pub fn create_database(&self) -> String {
        let name = format!("case{}", self.databases.fetch_add(1, Ordering::Relaxed));
        // The server may still be starting up after its socket appeared.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(bin_dir().join("psql"))
                .arg("-h")
                .arg(self.socket_dir())
                .arg("-p")
                .arg(self.port.to_string())
                .args([
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                ])
                .arg(format!("CREATE DATABASE {name}"))
                .output()
                .unwrap();
            if out.status.success() {
                return name;
            }
            assert!(
                Instant::now() < deadline,
                "create database: {}{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Fast shutdown (SIGINT), then a kill if it hangs.
        let pid = nix::unistd::Pid::from_raw(self.postmaster.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.postmaster.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.postmaster.kill();
        let _ = self.postmaster.wait();
    }
}
