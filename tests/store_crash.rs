//! Kill -9 a process in the middle of writing and check that every write it
//! acknowledged survived, with the revision it was acknowledged at. Lease
//! renewals (`Backend::renew`) may be lost, but no revision handed to one is
//! ever handed out again.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff::server::store::sqlite::SqliteBackend;
use skiff::server::store::Backend;

const CHILD_ENV: &str = "SKIFF_STORE_CRASH_CHILD_DB";
const TEST_NAME: &str = "acknowledged_writes_survive_sigkill";
const ROUND_ENV: &str = "SKIFF_STORE_CRASH_ROUND";
const ACKS_BEFORE_KILL: usize = 400;
/// Each round kills a writer on the database the previous rounds left.
const ROUNDS: usize = 3;

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        let round = std::env::var(ROUND_ENV).unwrap_or_default();
        child(PathBuf::from(db), round);
        return;
    }
    parent();
}

/// Writes forever from many tasks; prints `ACK <rev> <key>` once each write
/// is acknowledged (`RENEW <rev> <key>` for a renewal). The last round only
/// renews, so renewals wait in memory when it is killed.
fn child(db: PathBuf, round: String) {
    let renewals_only = round == (ROUNDS - 1).to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = SqliteBackend::open(&db).unwrap();
        let mut tasks: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                let key = format!("/crash/shared/{round}/lease-{t}");
                tokio::spawn(async move {
                    let mut kv = store.create(&key, Bytes::from("0")).await.unwrap();
                    ack(kv.mod_revision, &key);
                    for i in 1u64.. {
                        let value = Bytes::from(format!("renewed-{i}"));
                        kv = store.renew(&key, value, kv.mod_revision).await.unwrap();
                        print_ack("RENEW", kv.mod_revision, &key);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let writers = if renewals_only { 0 } else { 16 };
        tasks.extend((0..writers).map(|t| {
            let store = Arc::clone(&store);
            let round = round.clone();
            tokio::spawn(async move {
                let mut rev_of_shared = None;
                for i in 0u64.. {
                    let key = format!("/crash/{round}/{t}/{i}");
                    let kv = store
                        .create(&key, Bytes::from(format!("value-{t}-{i}")))
                        .await
                        .unwrap();
                    ack(kv.mod_revision, &key);
                    // Updates too, so the log is not only appends of new keys.
                    let shared = format!("/crash/shared/{round}/{t}");
                    let kv = match rev_of_shared {
                        None => store.create(&shared, Bytes::from("0")).await,
                        Some(rev) => {
                            store
                                .update(&shared, Bytes::from(format!("{i}")), rev)
                                .await
                        }
                    }
                    .unwrap();
                    rev_of_shared = Some(kv.mod_revision);
                    ack(kv.mod_revision, &shared);
                }
            })
        }));
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn ack(rev: i64, key: &str) {
    print_ack("ACK", rev, key);
}

fn print_ack(what: &str, rev: i64, key: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what} {rev} {key}").unwrap();
    out.flush().unwrap();
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server/db/state.db");
    // key -> newest acknowledged revision, over all rounds
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    // The newest revision acknowledged to a renewal.
    let mut renewed = 0i64;
    for round in 0..ROUNDS {
        let before = acked.values().copied().max().unwrap_or(0).max(renewed);
        kill_writer_mid_flight(&db, round, &mut acked, &mut renewed);
        check_integrity(&db);
        check_acked(&db, &acked, before, renewed);
    }
}

fn kill_writer_mid_flight(
    db: &Path,
    round: usize,
    acked: &mut BTreeMap<String, i64>,
    renewed: &mut i64,
) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();

    let mut count = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count < ACKS_BEFORE_KILL {
        assert!(Instant::now() < deadline, "child too slow: {count} acks");
        let line = lines.next().expect("child ended early").unwrap();
        if let Some((rev, key)) = parse_ack(&line) {
            record(acked, rev, key);
            count += 1;
        } else if let Some(rev) = parse_renew(&line) {
            *renewed = (*renewed).max(rev);
            count += 1;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    // Acks already in the pipe were acknowledged before the kill.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some((rev, key)) = parse_ack(&line) {
            record(acked, rev, key);
            count += 1;
        } else if let Some(rev) = parse_renew(&line) {
            *renewed = (*renewed).max(rev);
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "child must have been killed");
    eprintln!("round {round}: {count} writes acknowledged before SIGKILL");
}

/// Every acknowledged write is there at its revision, and revisions go on
/// above everything acknowledged, renewals included (`before`: the newest
/// ack of earlier rounds).
fn check_acked(db: &Path, acked: &BTreeMap<String, i64>, before: i64, renewed: i64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteBackend::open(db).unwrap();
        let max_acked = acked.values().copied().max().unwrap().max(renewed);
        assert!(max_acked > before, "this round acknowledged nothing new");
        assert!(store.current_revision() >= max_acked);
        for (key, rev) in acked {
            let kv = store
                .get(key, None)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {key}@{rev} lost"));
            // The shared keys are updated again and again; a later update may
            // have committed with its ack lost in the kill. The other keys
            // are written once, so their revision must match exactly.
            if key.starts_with("/crash/shared/") {
                assert!(
                    kv.mod_revision >= *rev,
                    "{key}: {} < {rev}",
                    kv.mod_revision
                );
            } else {
                assert_eq!(kv.mod_revision, *rev, "{key}");
            }
            let at = store.get(key, Some(*rev)).await.unwrap().unwrap();
            assert_eq!(at.mod_revision, *rev, "{key}");
        }
        let current = store.current_revision();
        let next = store
            .create(&format!("/crash/after/{current}"), Bytes::from("x"))
            .await
            .unwrap();
        assert_eq!(next.mod_revision, current + 1);
        assert!(next.mod_revision > max_acked);
        store.close().await;
    });
}

fn parse_renew(line: &str) -> Option<i64> {
    let rest = line.strip_prefix("RENEW ")?;
    rest.split_once(' ')?.0.parse().ok()
}

fn parse_ack(line: &str) -> Option<(i64, String)> {
    let rest = line.strip_prefix("ACK ")?;
    let (rev, key) = rest.split_once(' ')?;
    Some((rev.parse().ok()?, key.to_owned()))
}

fn record(acked: &mut BTreeMap<String, i64>, rev: i64, key: String) {
    let e = acked.entry(key).or_insert(rev);
    *e = (*e).max(rev);
}

fn check_integrity(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let res: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(res, "ok");
}
