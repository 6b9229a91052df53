//! What every backend must do, written once: each backend's tests run
//! these against a store of their own (fresh, nothing written yet).

pub(crate) mod model;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Backend, Error, Event, EventKind, ListOptions, Revision, WatchReceiver};

pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(crate) async fn next_event(rx: &mut WatchReceiver) -> Result<Event, Error> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("watch event timed out")
        .expect("watch channel closed")
}

/// Collects Ok events until one has revision `until`.
pub(crate) async fn collect_until(rx: &mut WatchReceiver, until: Revision) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let ev = next_event(rx).await.unwrap();
        let rev = ev.revision();
        out.push(ev);
        if rev >= until {
            return out;
        }
    }
}

pub(crate) async fn crud_semantics(s: Arc<dyn Backend>) {
    assert_eq!(s.current_revision(), 0);

    let a = s.create("/a", b("1")).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (1, 1));
    assert_eq!(s.current_revision(), 1);
    assert!(matches!(
        s.create("/a", b("x")).await,
        Err(Error::AlreadyExists { key }) if key == "/a"
    ));
    assert_eq!(s.get("/a", None).await.unwrap(), Some(a.clone()));

    let a2 = s.update("/a", b("2"), 1).await.unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (1, 2));
    match s.update("/a", b("3"), 1).await {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (1, 2)),
        other => panic!("expected conflict, got {other:?}"),
    }
    assert!(matches!(
        s.update("/missing", b("3"), 1).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete("/a", Some(1)).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        s.delete("/missing", None).await,
        Err(Error::NotFound { .. })
    ));
    // Failed ops consume no revision.
    assert_eq!(s.current_revision(), 2);

    let d = s.delete("/a", Some(2)).await.unwrap();
    assert_eq!(d.value, b("2"));
    assert_eq!((d.create_revision, d.mod_revision), (1, 3));
    assert_eq!(s.get("/a", None).await.unwrap(), None);
    assert!(matches!(
        s.update("/a", b("4"), 3).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete("/a", None).await,
        Err(Error::NotFound { .. })
    ));

    // Re-create after delete starts a new life.
    let a3 = s.create("/a", b("5")).await.unwrap();
    assert_eq!((a3.create_revision, a3.mod_revision), (4, 4));
    let a4 = s.delete("/a", None).await.unwrap();
    assert_eq!(a4.mod_revision, 5);

    // History reads.
    assert_eq!(s.get("/a", Some(1)).await.unwrap().unwrap().value, b("1"));
    assert_eq!(s.get("/a", Some(2)).await.unwrap().unwrap().value, b("2"));
    assert_eq!(s.get("/a", Some(3)).await.unwrap(), None);
    assert_eq!(s.get("/a", Some(4)).await.unwrap(), Some(a3));
    assert!(matches!(
        s.get("/a", Some(6)).await,
        Err(Error::FutureRevision {
            requested: 6,
            current: 5
        })
    ));
}

pub(crate) async fn list_at_revisions_with_pagination(s: Arc<dyn Backend>) {
    for i in 0..10 {
        s.create(&format!("/registry/pods/default/p{i}"), b(&format!("v{i}")))
            .await
            .unwrap();
    }
    let r10 = s.current_revision();
    assert_eq!(r10, 10);
    s.create("/registry/pods/default2/x", b("other"))
        .await
        .unwrap();
    s.create("/registry/pods/defaul", b("short")).await.unwrap();
    s.update("/registry/pods/default/p3", b("v3b"), 4)
        .await
        .unwrap();
    s.delete("/registry/pods/default/p5", None).await.unwrap();
    s.delete("/registry/pods/default/p0", None).await.unwrap();

    let all = s
        .list("/registry/pods/default/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(all.revision, s.current_revision());
    assert!(!all.more);
    assert_eq!(all.remaining, None, "counted without being asked");
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    let want: Vec<String> = [1, 2, 3, 4, 6, 7, 8, 9]
        .iter()
        .map(|i| format!("/registry/pods/default/p{i}"))
        .collect();
    assert_eq!(keys, want);
    assert_eq!(all.items[2].value, b("v3b"));
    assert_eq!(all.items[2].create_revision, 4);

    // As of r10: all ten, original values.
    let old = s
        .list(
            "/registry/pods/default/",
            ListOptions {
                revision: Some(r10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(old.items.len(), 10);
    assert_eq!(old.items[3].value, b("v3"));
    assert_eq!(old.revision, r10);

    // Pages of 3 at a fixed revision, like continue tokens do.
    let at = all.revision;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut remaining = Vec::new();
    loop {
        let page = s
            .list(
                "/registry/pods/default/",
                ListOptions {
                    revision: Some(at),
                    start_after: after.clone(),
                    limit: Some(3),
                    count_remaining: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|kv| kv.key.clone()));
        remaining.push(page.remaining.unwrap());
        assert_eq!(page.more, page.remaining != Some(0));
        if !page.more {
            break;
        }
        after = page.items.last().map(|kv| kv.key.clone());
    }
    assert_eq!(seen, want);
    assert_eq!(remaining, vec![5, 2, 0]);

    // An exact final page reports nothing remaining.
    let page = s
        .list(
            "/registry/pods/default/",
            ListOptions {
                limit: Some(8),
                count_remaining: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (page.items.len(), page.more, page.remaining),
        (8, false, Some(0))
    );

    // Chunks bounded by bytes: each stops at the first item that reaches
    // the bound, and together they are the whole list, in order.
    for max_bytes in [1, 5, 7, 1000] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s
                .list(
                    "/registry/pods/default/",
                    ListOptions {
                        revision: Some(at),
                        start_after: after.clone(),
                        max_bytes: Some(max_bytes),
                        count_remaining: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(!page.items.is_empty());
            let sizes: Vec<usize> = page.items.iter().map(|kv| kv.value.len()).collect();
            let before_last: usize = sizes[..sizes.len() - 1].iter().sum();
            assert!(before_last < max_bytes, "{max_bytes}: {sizes:?}");
            seen.extend(page.items.iter().map(|kv| kv.key.clone()));
            assert_eq!(page.remaining, Some((want.len() - seen.len()) as u64));
            if !page.more {
                break;
            }
            assert!(sizes.iter().sum::<usize>() >= max_bytes);
            after = page.items.last().map(|kv| kv.key.clone());
        }
        assert_eq!(seen, want, "max_bytes {max_bytes}");
    }

    assert!(matches!(
        s.list(
            "/registry/",
            ListOptions {
                revision: Some(at + 1),
                ..Default::default()
            }
        )
        .await,
        Err(Error::FutureRevision { .. })
    ));
}

pub(crate) async fn prefix_boundaries(s: Arc<dyn Backend>) {
    for k in [
        "/registry/pods/default/a",
        "/registry/pods/default/b",
        "/registry/pods/default2/x",
        "/registry/pods/default",
        "/registry/pods/defaulu",
        "/registry/pods/default/\u{10FFFF}",
        "/registry/pods/dé/x",
    ] {
        s.create(k, b("v")).await.unwrap();
    }
    let list = |p: &'static str| {
        let s = Arc::clone(&s);
        async move {
            s.list(p, ListOptions::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|kv| kv.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("/registry/pods/default/").await,
        vec![
            "/registry/pods/default/a",
            "/registry/pods/default/b",
            "/registry/pods/default/\u{10FFFF}"
        ]
    );
    assert_eq!(
        list("/registry/pods/dé/").await,
        vec!["/registry/pods/dé/x"]
    );
    assert_eq!(list("").await.len(), 7);
    assert_eq!(list("/registry/pods/default").await.len(), 5);
    assert_eq!(s.count("/registry/pods/default/").await.unwrap(), 3);
    assert_eq!(s.count("/registry/").await.unwrap(), 7);
    assert_eq!(s.count("/nothing/").await.unwrap(), 0);
}

pub(crate) async fn watch_catch_up_then_live_without_gaps(s: Arc<dyn Backend>) {
    let mut want = Vec::new();
    for i in 0..40 {
        let kv = s.create(&format!("/w/{i}"), b("0")).await.unwrap();
        if kv.mod_revision > 10 {
            want.push((kv.mod_revision, kv.key));
        }
        s.create(&format!("/x/{i}"), b("0")).await.unwrap();
    }
    // Writers keep going while the watch is made and catches up.
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let mut w = Vec::new();
            for i in 0..40 {
                let key = format!("/w/{i}");
                let kv = s.get(&key, None).await.unwrap().unwrap();
                let kv = s.update(&key, b("1"), kv.mod_revision).await.unwrap();
                w.push((kv.mod_revision, key.clone()));
                s.create(&format!("/x/n{i}"), b("0")).await.unwrap();
                if i % 2 == 0 {
                    let kv = s.delete(&key, None).await.unwrap();
                    w.push((kv.mod_revision, key));
                }
            }
            w
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut rx = s.watch("/w/", 10).await.unwrap();
    want.extend(writer.await.unwrap());
    let last_w = want.last().unwrap().0;
    let got = collect_until(&mut rx, last_w).await;
    let got_keys: Vec<_> = got
        .iter()
        .map(|e| (e.revision(), e.kv.key.clone()))
        .collect();
    assert_eq!(got_keys, want);
    for w in got.windows(2) {
        assert!(w[0].revision() < w[1].revision());
    }
    for ev in &got {
        match ev.kind {
            EventKind::Create => assert!(ev.prev.is_none()),
            EventKind::Update => {
                let prev = ev.prev.as_ref().unwrap();
                assert_eq!(prev.value, b("0"));
                assert_eq!(ev.kv.value, b("1"));
                assert_eq!(prev.create_revision, ev.kv.create_revision);
            }
            EventKind::Delete => {
                let prev = ev.prev.as_ref().unwrap();
                assert_eq!(ev.kv.value, b("1"));
                assert_eq!(prev.value, b("1"));
                assert!(prev.mod_revision < ev.kv.mod_revision);
            }
        }
    }
    // Nothing more is pending for this prefix.
    s.create("/x/after", b("0")).await.unwrap();
    let tail = s.create("/w/after", b("0")).await.unwrap();
    let ev = next_event(&mut rx).await.unwrap();
    assert_eq!(ev.revision(), tail.mod_revision);
    assert_eq!(ev.kind, EventKind::Create);
}

pub(crate) async fn watch_replays_history_events_like_live_ones(s: Arc<dyn Backend>) {
    let mut live = s.watch("/k", 0).await.unwrap();
    let c = s.create("/k", b("1")).await.unwrap();
    s.update("/k", b("2"), c.mod_revision).await.unwrap();
    s.delete("/k", None).await.unwrap();
    s.create("/k", b("3")).await.unwrap();
    let live_events = collect_until(&mut live, 4).await;
    let mut replay = s.watch("/k", 0).await.unwrap();
    let replayed = collect_until(&mut replay, 4).await;
    assert_eq!(live_events, replayed);
    let kinds: Vec<_> = replayed.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Create,
            EventKind::Update,
            EventKind::Delete,
            EventKind::Create
        ]
    );
}

pub(crate) async fn compaction_stops_short_of_held_revisions(s: Arc<dyn Backend>) {
    let mut a = s.create("/a", b("0")).await.unwrap();
    for i in 1..=3 {
        a = s
            .update("/a", b(&i.to_string()), a.mod_revision)
            .await
            .unwrap();
    }
    // A chunked list reading at revision 2 holds it.
    let first = s.hold(2);
    let second = s.hold(3);
    for i in 4..=9 {
        a = s
            .update("/a", b(&i.to_string()), a.mod_revision)
            .await
            .unwrap();
    }
    assert_eq!(s.compact(1).await.unwrap(), 2);
    assert_eq!(s.get("/a", Some(2)).await.unwrap().unwrap().value, b("1"));
    drop(first);
    assert_eq!(s.compact(1).await.unwrap(), 3);
    assert_eq!(s.get("/a", Some(3)).await.unwrap().unwrap().value, b("2"));
    drop(second);
    assert_eq!(s.compact(1).await.unwrap(), 9);
    assert!(matches!(
        s.get("/a", Some(3)).await,
        Err(Error::Compacted { .. })
    ));
}

pub(crate) async fn compaction_keeps_latest_versions(s: Arc<dyn Backend>) {
    let a = s.create("/a", b("1")).await.unwrap(); // 1
    let a = s.update("/a", b("2"), a.mod_revision).await.unwrap(); // 2
    s.create("/b", b("1")).await.unwrap(); // 3
    s.delete("/b", None).await.unwrap(); // 4
    s.create("/c", b("1")).await.unwrap(); // 5
    let a = s.update("/a", b("3"), a.mod_revision).await.unwrap(); // 6
    s.create("/d", b("1")).await.unwrap(); // 7
    s.delete("/d", None).await.unwrap(); // 8
    assert_eq!(s.current_revision(), 8);

    let mut before = s.watch("/", 5).await.unwrap();
    assert_eq!(collect_until(&mut before, 8).await.len(), 3);
    let c = s.compact(2).await.unwrap();
    assert_eq!(c, 6);
    assert_eq!(s.compacted_revision(), 6);
    // Compacting to an older point is a no-op.
    assert_eq!(s.compact(100).await.unwrap(), 6);

    // Everything at and after the compacted revision reads as before.
    assert_eq!(s.get("/a", None).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get("/a", Some(6)).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get("/c", Some(6)).await.unwrap().unwrap().mod_revision, 5);
    assert_eq!(s.get("/b", Some(6)).await.unwrap(), None);
    assert_eq!(s.get("/d", Some(7)).await.unwrap().unwrap().value, b("1"));
    let keys: Vec<_> = s
        .list("/", ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, vec!["/a", "/c"]);
    assert!(matches!(
        s.get("/a", Some(5)).await,
        Err(Error::Compacted {
            requested: 5,
            compacted: 6
        })
    ));
    assert!(matches!(
        s.watch("/", 5).await,
        Err(Error::Compacted { .. })
    ));
    // A watch from the compacted revision replays the rest with prevs.
    let mut rx = s.watch("/", 6).await.unwrap();
    let evs = collect_until(&mut rx, 8).await;
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1].kind, EventKind::Delete);
    assert_eq!(evs[1].prev.as_ref().unwrap().mod_revision, 7);
    // A watch past its catch-up is not affected by compaction.
    s.create("/f", b("1")).await.unwrap(); // 9
    assert_eq!(next_event(&mut before).await.unwrap().revision(), 9);
}
