//! Renewals that wait in memory (`Backend::renew`, `sqlite::deferred`).

use std::time::Duration;

use super::{b, collect_until, open_store, store};
use crate::server::store::sqlite::SqliteBackend;
use crate::server::store::sqlite::SqliteOptions;
use crate::server::store::{Backend, EventKind, ListOptions, Revision};

/// The rows of `key` in the file, as (rev, prev_rev, value), read past the
/// store on a connection of our own.
fn rows_in_file(s: &SqliteBackend, key: &str) -> Vec<(Revision, Revision, String)> {
    let conn = rusqlite::Connection::open(s.path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT rev, prev_rev, value FROM kv WHERE key = ?1 ORDER BY rev")
        .unwrap();
    stmt.query_map([key], |r| {
        let v: Vec<u8> = r.get(2)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            String::from_utf8_lossy(&v).into_owned(),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_are_read_back_before_they_reach_the_file() {
    let (_dir, s) = store();
    let c = s.create("/l/a", b("0")).await.unwrap();
    // The first renewal reserves revisions durably, so it is written.
    let r1 = s.renew("/l/a", b("1"), c.mod_revision).await.unwrap();
    assert_eq!(rows_in_file(&s, "/l/a").len(), 2);
    let r2 = s.renew("/l/a", b("2"), r1.mod_revision).await.unwrap();
    let r3 = s.renew("/l/a", b("3"), r2.mod_revision).await.unwrap();
    assert_eq!((r2.mod_revision, r3.mod_revision), (3, 4));
    assert_eq!(s.current_revision(), 4);
    // Not in the file yet…
    assert_eq!(rows_in_file(&s, "/l/a").len(), 2);
    // …but every read sees them, at every revision.
    assert_eq!(s.get("/l/a", None).await.unwrap(), Some(r3.clone()));
    assert_eq!(s.get("/l/a", Some(3)).await.unwrap(), Some(r2.clone()));
    assert_eq!(s.get("/l/a", Some(2)).await.unwrap(), Some(r1.clone()));
    let list = s.list("/l/", ListOptions::default()).await.unwrap();
    assert_eq!(list.items, vec![r3.clone()]);
    let at3 = s
        .list(
            "/l/",
            ListOptions {
                revision: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at3.items, vec![r2.clone()]);
    assert_eq!(s.count("/l/").await.unwrap(), 1);
    // A watch from before them replays them, with what each replaced.
    let mut rx = s.watch("/l/", c.mod_revision).await.unwrap();
    let evs = collect_until(&mut rx, 4).await;
    let seen: Vec<_> = evs
        .iter()
        .map(|e| {
            (
                e.kind,
                e.revision(),
                e.prev.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (EventKind::Update, 2, Some(1)),
            (EventKind::Update, 3, Some(2)),
            (EventKind::Update, 4, Some(3)),
        ]
    );
    // A conflicting renewal is refused like an update.
    assert!(s.renew("/l/a", b("x"), r2.mod_revision).await.is_err());

    // Any durable write carries the newest renewal into the file; the
    // ones before it are dropped, and the chain of versions stays whole.
    let other = s.create("/other", b("o")).await.unwrap();
    assert_eq!(other.mod_revision, 5);
    assert_eq!(
        rows_in_file(&s, "/l/a"),
        vec![(1, 0, "0".into()), (2, 1, "1".into()), (4, 2, "3".into())]
    );
    assert_eq!(s.get("/l/a", None).await.unwrap(), Some(r3.clone()));
    let mut rx = s.watch("/l/", c.mod_revision).await.unwrap();
    let evs = collect_until(&mut rx, 4).await;
    let revs: Vec<_> = evs.iter().map(|e| e.revision()).collect();
    assert_eq!(revs, vec![2, 4]);
    // A live watcher sees each renewal as it happens.
    let r4 = s.renew("/l/a", b("4"), r3.mod_revision).await.unwrap();
    let ev = super::next_event(&mut rx).await.unwrap();
    assert_eq!((ev.kind, ev.kv), (EventKind::Update, r4));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletes_after_renewals_see_them() {
    let (_dir, s) = store();
    let c = s.create("/l/a", b("0")).await.unwrap();
    let r1 = s.renew("/l/a", b("1"), c.mod_revision).await.unwrap();
    let r2 = s.renew("/l/a", b("2"), r1.mod_revision).await.unwrap();
    // The durable update must name the renewal's revision.
    assert!(s.update("/l/a", b("u"), r1.mod_revision).await.is_err());
    let u = s.update("/l/a", b("u"), r2.mod_revision).await.unwrap();
    let r3 = s.renew("/l/a", b("3"), u.mod_revision).await.unwrap();
    let d = s.delete("/l/a", Some(r3.mod_revision)).await.unwrap();
    assert_eq!(d.value, b("3"));
    assert_eq!(s.get("/l/a", None).await.unwrap(), None);
    // Renewing what is gone fails; nothing of it lingers in the reads.
    assert!(s.renew("/l/a", b("4"), r3.mod_revision).await.is_err());
    assert!(s
        .list("/l/", ListOptions::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let mut rx = s.watch("/l/", 0).await.unwrap();
    let evs = collect_until(&mut rx, d.mod_revision).await;
    let kinds: Vec<_> = evs.iter().map(|e| (e.kind, e.revision())).collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Create, 1),
            (EventKind::Update, 2),
            (EventKind::Update, 3),
            (EventKind::Update, 4),
            (EventKind::Update, 5),
            (EventKind::Delete, 6)
        ]
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_compaction_and_close_write_renewals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/state.db");
    let s = SqliteBackend::open(&path).unwrap();
    let mut kv = s.create("/l/a", b("0")).await.unwrap();
    for i in 1..=3 {
        kv = s
            .renew("/l/a", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    s.flush_renewals().await.unwrap();
    assert_eq!(rows_in_file(&s, "/l/a").last().unwrap().2, "3");
    for i in 4..=5 {
        kv = s
            .renew("/l/a", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    s.compact(1000).await.unwrap();
    assert_eq!(rows_in_file(&s, "/l/a").last().unwrap().2, "5");
    kv = s.renew("/l/a", b("6"), kv.mod_revision).await.unwrap();
    let last = s.current_revision();
    s.close().await;

    // Closed cleanly: the last renewal is there, and revisions go on from
    // the last one handed out (the unused reservation is given back).
    let s = SqliteBackend::open(&path).unwrap();
    assert_eq!(s.get("/l/a", None).await.unwrap(), Some(kv));
    assert_eq!(s.current_revision(), last);
    let next = s.create("/l/b", b("x")).await.unwrap();
    assert_eq!(next.mod_revision, last + 1);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_renewals_do_not_wait_without_bound() {
    let (_dir, s) = store();
    let mut kv = s.create("/l/a", b("0")).await.unwrap();
    for i in 0..600 {
        kv = s
            .renew("/l/a", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    // At most 512 wait: some were written along the way.
    let rows = rows_in_file(&s, "/l/a");
    assert!(rows.len() >= 3, "{rows:?}");
    let newest_in_file = rows.last().unwrap().0;
    assert!(s.current_revision() - newest_in_file <= 512, "{rows:?}");
    assert_eq!(s.get("/l/a", None).await.unwrap(), Some(kv));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_keeps_the_renewals_and_stops_deferring() {
    let (dir, s) = open_store(SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        ..Default::default()
    });
    let c = s.create("/l/a", b("0")).await.unwrap();
    let r1 = s.renew("/l/a", b("1"), c.mod_revision).await.unwrap();
    let r2 = s.renew("/l/a", b("2"), r1.mod_revision).await.unwrap();
    assert_eq!(rows_in_file(&s, "/l/a").len(), 2);

    // Another process holds the write lock: the flush fails, and so does
    // the compaction after it (it would strand the row r2 replaces).
    let other = rusqlite::Connection::open(dir.path().join("db/state.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(s.flush_renewals().await.is_err());
    assert!(s.compact(0).await.is_err());
    assert!(s.ready().await.is_err());
    // The renewal is still read back, and the next one is not acknowledged
    // until it can be written.
    assert_eq!(s.get("/l/a", None).await.unwrap(), Some(r2.clone()));
    assert!(s.renew("/l/a", b("3"), r2.mod_revision).await.is_err());
    other.execute_batch("ROLLBACK").unwrap();

    let r3 = s.renew("/l/a", b("3"), r2.mod_revision).await.unwrap();
    assert_eq!(rows_in_file(&s, "/l/a").last().unwrap().0, r3.mod_revision);
    assert!(s.ready().await.is_ok());
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_between_flushed_renewals_shows_the_one_before() {
    let (_dir, s) = store();
    let c = s.create("/l/a", b("0")).await.unwrap();
    let r1 = s.renew("/l/a", b("1"), c.mod_revision).await.unwrap();
    let r2 = s.renew("/l/a", b("2"), r1.mod_revision).await.unwrap();
    let r3 = s.renew("/l/a", b("3"), r2.mod_revision).await.unwrap();
    s.flush_renewals().await.unwrap();
    // r2 was dropped from the history: at its revision the key reads as r1
    // (the documented cost), never as something newer or gone.
    assert_eq!(
        s.get("/l/a", Some(r2.mod_revision)).await.unwrap(),
        Some(r1)
    );
    assert_eq!(
        s.get("/l/a", Some(r3.mod_revision)).await.unwrap(),
        Some(r3)
    );
    s.close().await;
}
