//! Property: concurrent writers from several tasks against a model.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{b, collect_until};
use crate::server::store::{Backend, Error, EventKind, KeyValue, ListOptions, Revision};

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Create(u8),
    Update(u8),
    /// An update through `renew`: it may wait in memory, and a run of
    /// them may leave only its newest in the history.
    Renew(u8),
    Delete(u8),
}

#[derive(Clone, Debug, PartialEq)]
struct Acked {
    rev: Revision,
    kind: EventKind,
    key: String,
    value: Bytes,
    renewal: bool,
}

pub(crate) fn op_strategy() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0u8..5).prop_map(Op::Create),
        (0u8..5).prop_map(Op::Update),
        (0u8..5).prop_map(Op::Renew),
        (0u8..5).prop_map(Op::Delete),
    ]
}

async fn run_task(s: Arc<dyn Backend>, task: usize, ops: Vec<Op>) -> Vec<Acked> {
    let mut acked = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        let value = b(&format!("t{task}-{i}"));
        let res = match op {
            Op::Create(k) => {
                let key = format!("/p/{k}");
                s.create(&key, value.clone())
                    .await
                    .map(|kv| (EventKind::Create, kv))
            }
            Op::Update(k) | Op::Renew(k) | Op::Delete(k) => {
                let key = format!("/p/{k}");
                // Read-modify-write, racing the other tasks.
                let Some(cur) = s.get(&key, None).await.unwrap() else {
                    continue;
                };
                tokio::task::yield_now().await;
                if matches!(op, Op::Update(_)) {
                    s.update(&key, value.clone(), cur.mod_revision)
                        .await
                        .map(|kv| (EventKind::Update, kv))
                } else if matches!(op, Op::Renew(_)) {
                    s.renew(&key, value.clone(), cur.mod_revision)
                        .await
                        .map(|kv| (EventKind::Update, kv))
                } else {
                    s.delete(&key, Some(cur.mod_revision))
                        .await
                        .map(|kv| (EventKind::Delete, kv))
                }
            }
        };
        match res {
            Ok((kind, kv)) => acked.push(Acked {
                rev: kv.mod_revision,
                kind,
                key: kv.key,
                value: kv.value,
                renewal: matches!(op, Op::Renew(_)),
            }),
            Err(Error::AlreadyExists { .. })
            | Err(Error::NotFound { .. })
            | Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    acked
}

/// Runs `tasks` concurrently against `s` (fresh) and checks the outcome
/// against a model.
pub(crate) async fn check_concurrent(s: Arc<dyn Backend>, tasks: Vec<Vec<Op>>) {
    // Two updates racing on the same expected revision: exactly one wins.
    let r = s.create("/race", b("0")).await.unwrap();
    let (x, y) = tokio::join!(
        s.update("/race", b("x"), r.mod_revision),
        s.update("/race", b("y"), r.mod_revision)
    );
    assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
    let loser = if x.is_ok() { y } else { x };
    assert!(matches!(loser, Err(Error::Conflict { .. })));
    let base = s.current_revision();
    assert_eq!(base, 2);

    let handles: Vec<_> = tasks
        .into_iter()
        .enumerate()
        .map(|(t, ops)| tokio::spawn(run_task(Arc::clone(&s), t, ops)))
        .collect();
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.unwrap());
    }
    acked.sort_by_key(|a| a.rev);

    // Revisions: unique, and contiguous since failed ops consume none.
    let revs: Vec<_> = acked.iter().map(|a| a.rev).collect();
    let want: Vec<_> = (base + 1..=base + acked.len() as i64).collect();
    assert_eq!(revs, want);
    assert_eq!(s.current_revision(), base + acked.len() as i64);

    // A watch from 0 replays the acknowledged writes, but for renewals
    // followed by another renewal of the same key, which a flush may have
    // left out of the file.
    let mut rx = s.watch("/p/", 0).await.unwrap();
    let mut replay = Vec::new();
    if let Some(last) = acked.last() {
        replay = collect_until(&mut rx, last.rev)
            .await
            .into_iter()
            .map(|e| Acked {
                rev: e.revision(),
                kind: e.kind,
                key: e.kv.key,
                value: e.kv.value,
                renewal: false,
            })
            .collect();
    }
    let replayed: std::collections::HashSet<Revision> = replay.iter().map(|a| a.rev).collect();
    for (i, a) in acked.iter().enumerate() {
        if replayed.contains(&a.rev) {
            continue;
        }
        let next_on_key = acked[i + 1..].iter().find(|b| b.key == a.key);
        assert!(
            a.renewal && next_on_key.is_some_and(|b| b.renewal),
            "acknowledged write {a:?} missing from the history"
        );
    }
    let expected: Vec<_> = acked
        .iter()
        .filter(|a| replayed.contains(&a.rev))
        .map(|a| Acked {
            renewal: false,
            ..a.clone()
        })
        .collect();
    assert_eq!(replay, expected);

    // Replaying the acks in revision order is a valid history.
    let mut model: BTreeMap<String, KeyValue> = BTreeMap::new();
    for a in &acked {
        match a.kind {
            EventKind::Create => {
                let prev = model.insert(
                    a.key.clone(),
                    KeyValue {
                        key: a.key.clone(),
                        value: a.value.clone(),
                        create_revision: a.rev,
                        mod_revision: a.rev,
                    },
                );
                assert!(prev.is_none(), "create of live key at {}", a.rev);
            }
            EventKind::Update => {
                let cur = model.get_mut(&a.key).expect("update of absent key");
                cur.value = a.value.clone();
                cur.mod_revision = a.rev;
            }
            EventKind::Delete => {
                let cur = model.remove(&a.key).expect("delete of absent key");
                assert_eq!(cur.value, a.value, "delete returns the deleted value");
            }
        }
        // Every acknowledged write in the history is visible at its revision.
        if replayed.contains(&a.rev) {
            let got = s.get(&a.key, Some(a.rev)).await.unwrap();
            assert_eq!(got.as_ref(), model.get(&a.key));
        }
    }

    let list = s.list("/p/", ListOptions::default()).await.unwrap();
    assert_eq!(list.items, model.values().cloned().collect::<Vec<_>>());
}
