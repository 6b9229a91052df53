//! The store suite on a real PostgreSQL server: this test starts its own
//! (Debian's `postgresql` package, `initdb` into a temporary directory,
//! listening on a unix socket there only), gives every case a database of
//! its own, and stops it at the end, also when a case fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use super::{Endpoint, PostgresBackend, PostgresOptions};
use crate::server::store::conformance::{self, b, collect_until, model};
use crate::server::store::{Backend, Error, EventKind};

/// A PostgreSQL server of the test's own.
struct Cluster {
    dir: tempfile::TempDir,
    postmaster: Child,
    databases: std::sync::atomic::AtomicUsize,
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

impl Cluster {
    fn start() -> Cluster {
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
            // Unix socket only: nothing listens on the network.
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
        let postmaster = postmaster.spawn().unwrap();
        let cluster = Cluster {
            dir,
            postmaster,
            databases: Default::default(),
        };
        cluster.wait_ready();
        cluster
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn conninfo(&self, db: &str) -> String {
        format!(
            "host={} user=postgres dbname={db}",
            self.socket_dir().display()
        )
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.socket_dir().join(".s.PGSQL.5432").exists() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A database of its own for one case.
    async fn database(&self) -> String {
        let n = self
            .databases
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("case{n}");
        // The server may still be starting up after its socket appeared.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let made = async {
                let (client, conn) =
                    tokio_postgres::connect(&self.conninfo("postgres"), NoTls).await?;
                let conn = tokio::spawn(conn);
                let res = client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await;
                drop(client);
                let _ = conn.await;
                res
            }
            .await;
            match made {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("create database: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("create database: {e}"),
            }
        }
        self.conninfo(&name)
    }

    async fn fresh(&self) -> Arc<PostgresBackend> {
        let url = self.database().await;
        PostgresBackend::open(&url).await.unwrap()
    }
}

impl Drop for Cluster {
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_store_suite_passes_on_postgresql() {
    let pg = Cluster::start();
    let rt = runtime();
    rt.block_on(async {
        macro_rules! case {
            ($name:ident) => {{
                let s = pg.fresh().await;
                conformance::$name(s.clone()).await;
                s.close().await;
            }};
        }
        case!(crud_semantics);
        case!(list_at_revisions_with_pagination);
        case!(prefix_boundaries);
        case!(watch_catch_up_then_live_without_gaps);
        case!(watch_replays_history_events_like_live_ones);
        case!(compaction_keeps_latest_versions);
        case!(compaction_stops_short_of_held_revisions);
        several_servers_share_one_log(&pg).await;
        a_reopened_store_goes_on_from_its_revision(&pg).await;
    });
    // The model-based concurrency test, with fewer cases than on SQLite
    // (each makes a database).
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 6,
        ..Default::default()
    });
    let strategy =
        proptest::collection::vec(proptest::collection::vec(model::op_strategy(), 1..12), 8);
    runner
        .run(&strategy, |tasks| {
            rt.block_on(async {
                let s = pg.fresh().await;
                model::check_concurrent(s.clone(), tasks).await;
                s.close().await;
            });
            Ok(())
        })
        .unwrap();
}

/// Two servers on one database: writes from both get one sequence of
/// revisions, each sees the other's writes in reads, and both watch the
/// same history.
async fn several_servers_share_one_log(pg: &Cluster) {
    let url = pg.database().await;
    let a = PostgresBackend::open(&url).await.unwrap();
    let b_ = PostgresBackend::open(&url).await.unwrap();
    let mut watch_a = a.watch("/k/", 0).await.unwrap();
    let mut watch_b = b_.watch("/k/", 0).await.unwrap();
    let mut tasks = Vec::new();
    for (i, s) in [a.clone(), b_.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for n in 0..25 {
                let key = format!("/k/{}", n % 5);
                let res = match s.get(&key, None).await.unwrap() {
                    None => s.create(&key, b(&format!("{i}-{n}"))).await,
                    Some(cur) => {
                        s.update(&key, b(&format!("{i}-{n}")), cur.mod_revision)
                            .await
                    }
                };
                match res {
                    Ok(kv) => revs.push(kv.mod_revision),
                    Err(Error::Conflict { .. } | Error::AlreadyExists { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            revs
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort();
    let want: Vec<i64> = (1..=acked.len() as i64).collect();
    assert_eq!(
        acked, want,
        "revisions from both servers: one gapless sequence"
    );
    let last = *acked.last().unwrap();
    let seen_a = collect_until(&mut watch_a, last).await;
    let seen_b = collect_until(&mut watch_b, last).await;
    assert_eq!(seen_a, seen_b);
    assert_eq!(seen_a.len(), acked.len());
    // A write on one is read at once on the other, at its revision too.
    let kv = a.create("/k/new", b("x")).await.unwrap();
    assert_eq!(b_.get("/k/new", None).await.unwrap(), Some(kv.clone()));
    assert_eq!(
        b_.get("/k/new", Some(kv.mod_revision)).await.unwrap(),
        Some(kv.clone())
    );
    let ev = conformance::next_event(&mut watch_b).await.unwrap();
    assert_eq!((ev.kind, ev.kv), (EventKind::Create, kv));
    // Compaction on one is seen by the other.
    let c = a.compact(1).await.unwrap();
    assert!(matches!(
        b_.get("/k/0", Some(1)).await,
        Err(Error::Compacted { .. })
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while b_.compacted_revision() < c {
        assert!(
            Instant::now() < deadline,
            "the other server never saw the compaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.close().await;
    b_.close().await;
}

async fn a_reopened_store_goes_on_from_its_revision(pg: &Cluster) {
    let url = pg.database().await;
    let s = PostgresBackend::open(&url).await.unwrap();
    s.create("/a", b("1")).await.unwrap();
    s.delete("/a", None).await.unwrap();
    assert_eq!(s.compact(0).await.unwrap(), 2);
    s.close().await;
    assert!(matches!(s.create("/b", b("1")).await, Err(Error::Closed)));
    let s = PostgresBackend::open_with(&url, PostgresOptions::default())
        .await
        .unwrap();
    assert_eq!(s.current_revision(), 2);
    assert_eq!(s.compacted_revision(), 2);
    assert_eq!(s.create("/b", b("1")).await.unwrap().mod_revision, 3);
    s.close().await;
}

#[test]
fn an_endpoint_off_this_machine_is_refused_until_tls_is_spoken() {
    let err = Endpoint::parse("postgres://u:secret@db.example.com/skiff")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("db.example.com") && err.contains("not encrypted"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    for local in [
        "postgres://u:secret@localhost/skiff",
        "postgres://u@127.0.0.1:5433/skiff",
        "postgresql://u@%2Frun%2Fpostgresql/skiff",
        "host=/run/postgresql user=u dbname=skiff",
    ] {
        let e = Endpoint::parse(local).unwrap();
        assert!(!e.display.contains("secret"), "{}", e.display);
    }
    let e = Endpoint::parse("postgresql://u@%2Frun%2Fpostgresql/skiff").unwrap();
    assert_eq!(e.display, "postgres://u@/run/postgresql/skiff");
}
