use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

mod deferred;
mod model;

use super::{SqliteBackend, SqliteOptions};
use crate::server::store::conformance;
use crate::server::store::{Backend, Error};

pub(super) fn open_store(opts: SqliteOptions) -> (TempDir, Arc<SqliteBackend>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBackend::open_with(&dir.path().join("db/state.db"), opts).unwrap();
    (dir, store)
}

pub(super) fn store() -> (TempDir, Arc<SqliteBackend>) {
    open_store(SqliteOptions::default())
}

pub(super) use crate::server::store::conformance::{b, collect_until, next_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_semantics() {
    let (_dir, s) = store();
    conformance::crud_semantics(s.clone()).await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_ops_on_one_key_see_each_other() {
    // Submitted back to back these usually share one commit group; either
    // way each must be checked against the ones before it.
    let (_dir, s) = store();
    s.create("/other", b("o")).await.unwrap();
    let (c, u, d, c2, c3) = tokio::join!(
        s.create("/k", b("1")),
        s.update("/k", b("2"), 2),
        s.delete("/k", Some(3)),
        s.create("/k", b("3")),
        s.create("/k", b("4")),
    );
    assert_eq!(c.unwrap().mod_revision, 2);
    assert_eq!(u.unwrap().mod_revision, 3);
    let d = d.unwrap();
    assert_eq!((d.mod_revision, d.value.clone()), (4, b("2")));
    assert_eq!(c2.unwrap().create_revision, 5);
    assert!(matches!(c3, Err(Error::AlreadyExists { .. })));
    assert_eq!(s.current_revision(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_fails_every_op_and_publishes_nothing() {
    let (dir, s) = open_store(SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        ..Default::default()
    });
    s.create("/a", b("1")).await.unwrap();
    let mut rx = s.watch("/", 1).await.unwrap();

    // Another process holding the write lock makes the group's transaction fail.
    let other = rusqlite::Connection::open(dir.path().join("db/state.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (x, y, z) = tokio::join!(
        s.create("/b", b("1")),
        s.update("/a", b("2"), 1),
        s.create("/a", b("dup")),
    );
    for r in [x, y, z] {
        assert!(matches!(r, Err(Error::Backend(_))), "{r:?}");
    }
    assert_eq!(s.current_revision(), 1);
    other.execute_batch("ROLLBACK").unwrap();

    // No revision was used up and no event went out.
    let b2 = s.create("/b", b("1")).await.unwrap();
    assert_eq!(b2.mod_revision, 2);
    let ev = next_event(&mut rx).await.unwrap();
    assert_eq!((ev.revision(), ev.kv.key.as_str()), (2, "/b"));
    assert_eq!(s.get("/a", None).await.unwrap().unwrap().value, b("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_at_revisions_with_pagination() {
    let (_dir, s) = store();
    conformance::list_at_revisions_with_pagination(s.clone()).await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_boundaries() {
    let (_dir, s) = store();
    conformance::prefix_boundaries(s.clone()).await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_catch_up_then_live_without_gaps() {
    let (_dir, s) = store();
    conformance::watch_catch_up_then_live_without_gaps(s.clone()).await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_history_events_like_live_ones() {
    let (_dir, s) = store();
    conformance::watch_replays_history_events_like_live_ones(s.clone()).await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_watcher_is_dropped_with_error() {
    let (_dir, s) = open_store(SqliteOptions {
        fanout_events: 4,
        watch_buffer: 2,
        ..Default::default()
    });
    let mut rx = s.watch("/", 0).await.unwrap();
    for i in 0..30 {
        s.create(&format!("/k{i}"), b("v")).await.unwrap();
    }
    let mut oks = 0;
    loop {
        match next_event(&mut rx).await {
            Ok(_) => oks += 1,
            Err(Error::WatcherLagged) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(oks < 30, "got {oks} events");
    assert!(
        rx.recv().await.is_none(),
        "channel must close after the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watch_frees_its_task() {
    let (_dir, s) = store();
    let receivers = || {
        s.published
            .fanout
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .receiver_count()
    };
    let rx = s.watch("/quiet/", 0).await.unwrap();
    assert_eq!(receivers(), 1);
    drop(rx);
    // No write happens: the task must notice the drop by itself.
    for _ in 0..200 {
        if receivers() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("watch task still subscribed after its receiver was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_latest_versions() {
    let (dir, s) = store();
    conformance::compaction_keeps_latest_versions(s.clone()).await;

    // Rows left: /a@6 (newest), /c@5, /d@7 and its tombstone @8 (after C),
    // /f@9.
    s.close().await;
    let conn = rusqlite::Connection::open(dir.path().join("db/state.db")).unwrap();
    let mut stmt = conn.prepare("SELECT rev FROM kv ORDER BY rev").unwrap();
    let revs: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(revs, vec![5, 6, 7, 8, 9]);
    drop(stmt);
    drop(conn);

    // Compacting everything then reopening: revisions never go back.
    let s = SqliteBackend::open(&dir.path().join("db/state.db")).unwrap();
    assert_eq!(s.compacted_revision(), 6);
    s.delete("/f", None).await.unwrap(); // 10, the newest row
    assert_eq!(s.compact(0).await.unwrap(), 10);
    s.close().await;
    let s = SqliteBackend::open(&dir.path().join("db/state.db")).unwrap();
    assert_eq!(s.current_revision(), 10);
    assert_eq!(s.create("/e", b("1")).await.unwrap().mod_revision, 11);
    assert_eq!(s.get("/d", None).await.unwrap(), None);
    assert_eq!(s.count("/").await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_stops_short_of_held_revisions() {
    let (_dir, s) = store();
    conformance::compaction_stops_short_of_held_revisions(s.clone()).await;
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactor_task_runs_and_stops_with_the_store() {
    let (_dir, s) = store();
    for i in 0..5 {
        s.create(&format!("/k{i}"), b("v")).await.unwrap();
    }
    let handle = s.spawn_compactor(Duration::from_millis(10), 2);
    for _ in 0..200 {
        if s.compacted_revision() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(s.compacted_revision(), 3);
    s.close().await;
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_close_keeps_data() {
    let (dir, s) = store();
    let path = dir.path().join("db/state.db");
    let a = s.create("/a", b("1")).await.unwrap();
    s.update("/a", b("2"), a.mod_revision).await.unwrap();
    s.create("/b", b("1")).await.unwrap();
    let mut rx = s.watch("/", 3).await.unwrap();
    s.close().await;
    assert!(matches!(s.create("/c", b("1")).await, Err(Error::Closed)));
    assert!(matches!(next_event(&mut rx).await, Err(Error::Closed)));
    assert!(matches!(s.watch("/", 0).await, Err(Error::Closed)));
    // Closing twice is harmless.
    s.close().await;
    drop(s);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let s = SqliteBackend::open(&path).unwrap();
    assert_eq!(s.current_revision(), 3);
    assert_eq!(s.get("/a", None).await.unwrap().unwrap().value, b("2"));
    assert_eq!(s.get("/a", Some(1)).await.unwrap().unwrap().value, b("1"));
    let c = s.create("/c", b("1")).await.unwrap();
    assert_eq!(c.mod_revision, 4);
    let mut rx = s.watch("/", 0).await.unwrap();
    let evs = collect_until(&mut rx, 4).await;
    assert_eq!(evs.len(), 4);
}

/// A cached statement is not compiled again on each use: SQLite re-prepares
/// one whose plan may depend on the values bound (unless the query
/// planner stability guarantee is on), which was a tenth of the server's
/// CPU when pods were bound by the thousand.
#[tokio::test]
async fn cached_reads_are_not_prepared_again() {
    use rusqlite::StatementStatus;
    let (dir, s) = store();
    for i in 0..20 {
        s.create(&format!("/k/{i}"), b("v")).await.unwrap();
    }
    let mut conn = super::schema::open_reader(&dir.path().join("db/state.db")).unwrap();
    let tx = conn.transaction().unwrap();
    let range = super::read::KeyRange::prefix("/k/");
    for i in 0..10 {
        super::read::get(&tx, &format!("/k/{i}"), 100, &Default::default()).unwrap();
        let after = format!("/k/{i}");
        let start = if i % 2 == 0 {
            None
        } else {
            Some(after.as_str())
        };
        let bounds = super::read::Bounds {
            limit: Some(5),
            max_bytes: None,
            count: false,
        };
        super::read::list(&tx, &range, start, bounds, 100).unwrap();
    }
    let list = &super::read::LIST_SQL;
    for sql in [super::read::GET_SQL, &list.from, &list.after] {
        let st = tx.prepare_cached(sql).unwrap();
        assert_eq!(st.get_status(StatementStatus::RePrepare), 0, "{sql}");
    }
}

/// A page costs its own rows: after a continue key it starts at that key
/// in the index, and the limit ends the scan. The first and the last few
/// of 2,000 keys cost alike, and far less than the whole range.
#[tokio::test]
async fn a_page_does_not_scan_the_whole_range() {
    use rusqlite::StatementStatus;
    let (dir, s) = store();
    for i in 0..2000 {
        s.create(&format!("/k/{i:05}"), b("v")).await.unwrap();
    }
    let mut conn = super::schema::open_reader(&dir.path().join("db/state.db")).unwrap();
    let tx = conn.transaction().unwrap();
    let range = super::read::KeyRange::prefix("/k/");
    let steps = |after: Option<&str>, limit: Option<usize>| {
        let bounds = super::read::Bounds {
            limit,
            max_bytes: None,
            count: false,
        };
        let got = super::read::list(&tx, &range, after, bounds, 10_000).unwrap();
        assert_eq!(got.items.len(), limit.unwrap_or(2000));
        let list = &super::read::LIST_SQL;
        let sql = if after.is_some() {
            &list.after
        } else {
            &list.from
        };
        tx.prepare_cached(sql)
            .unwrap()
            .reset_status(StatementStatus::VmStep)
    };
    let all = steps(None, None);
    let first = steps(None, Some(5));
    let early = steps(Some("/k/00010"), Some(5));
    let late = steps(Some("/k/01990"), Some(5));
    let (lo, hi) = (early.min(late).min(first), early.max(late).max(first));
    assert!(
        hi < 3 * lo,
        "pages of 5 took {first} (first), {early} (early), {late} (late) steps"
    );
    assert!(
        50 * hi < all,
        "a page took {hi} steps, the whole range {all}"
    );
}
