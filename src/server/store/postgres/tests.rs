//! The store suite on a real PostgreSQL server that this test starts
//! (`tests/support/postgres.rs`), every case on a database of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Endpoint, PostgresBackend, PostgresOptions, TlsFiles};
use crate::server::store::conformance::{self, b, collect_until, model};
use crate::server::store::{Backend, Error, EventKind};

#[path = "../../../../tests/support/postgres.rs"]
#[allow(dead_code)]
mod cluster;

use cluster::PgCluster as Cluster;

impl Cluster {
    async fn database(&self) -> String {
        self.conninfo(&self.create_database())
    }

    async fn fresh(&self) -> Arc<PostgresBackend> {
        let url = self.database().await;
        PostgresBackend::open(&url, &TlsFiles::default())
            .await
            .unwrap()
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
        a_database_that_goes_back_restarts_watches(&pg).await;
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
    let name = pg.create_database();
    let a = PostgresBackend::open(&pg.conninfo(&name), &TlsFiles::default())
        .await
        .unwrap();
    // The other through the URL form, its host the socket's directory.
    let b_ = PostgresBackend::open(&pg.url(&name), &TlsFiles::default())
        .await
        .unwrap();
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
    // A write on one is read at once on the other, at its revision too,
    // and the other's newest revision, asked, covers it.
    let kv = a.create("/k/new", b("x")).await.unwrap();
    assert!(b_.latest_revision().await.unwrap() >= kv.mod_revision);
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

/// FAULT INJECTED for real: the counter set back in the database, as a
/// restore or a failover to a replica that lost commits would leave it.
/// Watchers are told to start over (not that the store closed, which would
/// stop the API server's caches for good).
async fn a_database_that_goes_back_restarts_watches(pg: &Cluster) {
    let name = pg.create_database();
    let s = PostgresBackend::open(&pg.conninfo(&name), &TlsFiles::default())
        .await
        .unwrap();
    for i in 0..5 {
        s.create(&format!("/k/{i}"), b("v")).await.unwrap();
    }
    let mut rx = s.watch("/k/", 0).await.unwrap();
    collect_until(&mut rx, 5).await;
    let (client, conn) = tokio_postgres::connect(&pg.conninfo(&name), tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    client
        .batch_execute("UPDATE skiff_meta SET value = 2 WHERE name = 'rev'; NOTIFY skiff_kv")
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(Err(Error::WatcherLagged))) => {}
        other => panic!("expected the watch to end with WatcherLagged, got {other:?}"),
    }
    // A new watch works from what is there now.
    let mut rx = s.watch("/k/", 2).await.unwrap();
    let kv = s.create("/k/new", b("v")).await;
    // Revision 3 is taken by the row the "restore" left: a refusal here
    // is the database's own word, never a silent reuse.
    match kv {
        Ok(kv) => assert_eq!(conformance::next_event(&mut rx).await.unwrap().kv, kv),
        Err(e) => assert!(e.to_string().contains("duplicate key"), "{e}"),
    }
    s.close().await;
}

async fn a_reopened_store_goes_on_from_its_revision(pg: &Cluster) {
    let url = pg.database().await;
    let s = PostgresBackend::open(&url, &TlsFiles::default())
        .await
        .unwrap();
    s.create("/a", b("1")).await.unwrap();
    s.delete("/a", None).await.unwrap();
    assert_eq!(s.compact(0).await.unwrap(), 2);
    s.close().await;
    assert!(matches!(s.create("/b", b("1")).await, Err(Error::Closed)));
    let s = PostgresBackend::open_with(&url, &TlsFiles::default(), PostgresOptions::default())
        .await
        .unwrap();
    assert_eq!(s.current_revision(), 2);
    assert_eq!(s.compacted_revision(), 2);
    assert_eq!(s.create("/b", b("1")).await.unwrap().mod_revision, 3);
    s.close().await;
}

#[test]
fn a_server_elsewhere_is_reached_over_tls_only() {
    let none = TlsFiles::default();
    // (A CA file of its own: the machine may have no system CAs.)
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, test_pki().0).unwrap();
    let with_ca = TlsFiles {
        ca_file: Some(ca),
        ..Default::default()
    };
    let e = Endpoint::parse("postgres://u:secret@db.example.com/skiff", &with_ca).unwrap();
    assert!(e.encrypted);
    assert_eq!(e.display, "postgres://u@db.example.com/skiff (TLS)");
    for url in [
        "postgres://u:secret@db.example.com/skiff?sslmode=verify-full",
        "postgres://u:secret@db.example.com/skiff?sslmode=verify-ca",
        "postgres://u:secret@db.example.com/skiff?sslmode=require",
        "postgres://u:secret@db.example.com/skiff?sslmode=prefer",
    ] {
        assert!(Endpoint::parse(url, &with_ca).unwrap().encrypted, "{url}");
    }
    let err = Endpoint::parse(
        "postgres://u:secret@db.example.com/skiff?sslmode=disable",
        &none,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("db.example.com") && err.contains("must be encrypted"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    // On this machine: plain unless asked.
    for local in [
        "postgres://u:secret@localhost/skiff",
        "postgres://u@127.0.0.1:5433/skiff",
        "postgresql://u@%2Frun%2Fpostgresql/skiff",
        "host=/run/postgresql user=u dbname=skiff",
    ] {
        let e = Endpoint::parse(local, &none).unwrap();
        assert!(!e.encrypted, "{local}");
        assert!(!e.display.contains("secret"), "{}", e.display);
    }
    let e = Endpoint::parse("postgresql://u@%2Frun%2Fpostgresql/skiff", &none).unwrap();
    assert_eq!(e.display, "postgres://u@/run/postgresql/skiff");
    assert!(
        Endpoint::parse("postgres://u@localhost/skiff?sslmode=require", &none)
            .unwrap()
            .encrypted
    );
    // A CA file that is not there, or holds no certificate, is named.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for ca in [dir.path().join("missing.pem"), empty] {
        let files = TlsFiles {
            ca_file: Some(ca.clone()),
            ..Default::default()
        };
        let err = Endpoint::parse("postgres://u@localhost/skiff", &files)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&ca.display().to_string()), "{err}");
    }
    // hostaddr would connect somewhere the host part does not say.
    let err = Endpoint::parse("postgres://u@localhost/skiff?hostaddr=203.0.113.5", &none)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("hostaddr"), "{err}");
    // TLS cannot go over a unix socket; a client certificate needs TLS.
    let err = Endpoint::parse("host=/run/postgresql user=u sslmode=require", &none)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unix socket"), "{err}");
    let cert_only = TlsFiles {
        cert_file: Some(dir.path().join("c.pem")),
        key_file: Some(dir.path().join("k.pem")),
        ..Default::default()
    };
    let err = Endpoint::parse("postgres://u@localhost/skiff", &cert_only)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not encrypted"), "{err}");
    let half = TlsFiles {
        cert_file: Some(dir.path().join("c.pem")),
        ..Default::default()
    };
    let err = Endpoint::parse("postgres://u@db.example.com/skiff", &half)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("go together"), "{err}");
}

/// A CA and a certificate for `localhost`/127.0.0.1 it signed: PEMs.
fn test_pki() -> (String, cluster::ServerTls) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_der(ca.der(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (
        ca.pem(),
        cluster::ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    )
}

#[test]
fn the_store_speaks_tls_to_postgresql_and_checks_its_certificate() {
    let (ca_pem, server) = test_pki();
    let (other_ca, _) = test_pki();
    let pg = Cluster::start_with(Some(server));
    let db = pg.create_database();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let wrong = dir.path().join("other-ca.pem");
    std::fs::write(&wrong, other_ca).unwrap();
    let url = format!("postgres://postgres@localhost:{}/{db}", pg.port());
    let files = TlsFiles {
        ca_file: Some(ca),
        ..Default::default()
    };
    runtime().block_on(async {
        // The connection is encrypted, as PostgreSQL itself reports.
        let e = Endpoint::parse(&url, &files).unwrap();
        assert!(e.encrypted);
        let (client, conn) = e.config.connect(e.tls.clone()).await.unwrap();
        let conn = tokio::spawn(conn);
        let ssl: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ssl);
        drop(client);
        let _ = conn.await;
        let s = PostgresBackend::open(&url, &files).await.unwrap();
        let kv = s.create("/k", b("v")).await.unwrap();
        let mut rx = s.watch("/", 0).await.unwrap();
        assert_eq!(conformance::next_event(&mut rx).await.unwrap().kv, kv);
        s.close().await;
        // A certificate from another CA is refused.
        let err = PostgresBackend::open(
            &url,
            &TlsFiles {
                ca_file: Some(wrong),
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap()
        .to_string();
        assert!(err.to_lowercase().contains("certificate"), "{err}");
    });
}
