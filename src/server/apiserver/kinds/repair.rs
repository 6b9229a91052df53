//! Repair of the allocation ranges (`alloc`), as upstream's ipallocator and
//! portallocator repair controllers do it: the bitmap is reconciled with
//! the objects that hold members.
//!
//! Two faults leave them apart. A create that reserved a member and then
//! never stored its object (the process died in between, or giving the
//! member back failed) leaks it: taken, held by nothing. An object whose
//! member is not marked (the bitmap lost a change, or was restored from an
//! older copy) lets the member be handed out twice. A pass marks every held
//! member and frees every leaked one, in one compare-and-swap of the
//! record; a pass that loses the swap changes nothing and the next one
//! tries again.
//!
//! A member reserved by a create still in flight looks leaked until that
//! create stores its object, so a periodic pass frees a member only once
//! it has been seen leaked by [`LEAK_PASSES`] passes in a row (upstream's
//! `numRepairsBeforeLeakCleanup`). The pass at start-up runs before the API
//! takes requests, when nothing is in flight, and frees leaks at once.
//!
//! Each pass reads the record and lists the holders once per range: cheap
//! next to the interval.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::alloc::{self, Bitmap, Range};
use crate::api::status::ApiError;
use crate::server::apiserver::object_store::Objects;
use crate::server::store::ListOptions;

/// How many passes in a row must see a member leaked before it is freed.
pub const LEAK_PASSES: u32 = 3;

/// Time between periodic passes (upstream repairs every 3 minutes).
pub const INTERVAL: Duration = Duration::from_secs(180);

/// What one pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Held members that were not marked, now marked.
    pub marked: Vec<u32>,
    /// Leaked members, now free.
    pub freed: Vec<u32>,
}

/// Leaked members of one range and how many passes in a row saw each.
pub type LeakCounts = HashMap<u32, u32>;

/// One pass over `range`. A member is freed once `leaks` has seen it leaked
/// `passes` times in a row (1: at once). `Ok(None)`: the record changed
/// while the pass ran (or does not exist yet); nothing was written.
pub async fn pass(
    objects: &Objects,
    range: &Range,
    leaks: &mut LeakCounts,
    passes: u32,
) -> Result<Option<Repaired>, ApiError> {
    let Some(kv) = objects
        .store
        .get(range.key, None)
        .await
        .map_err(|e| alloc::store_err(range, e))?
    else {
        // Created on first use from the holders: nothing to repair.
        return Ok(None);
    };
    let old = alloc::decode(range, &kv.value)?;
    let held = holders(objects, range).await?;
    let mut new = old.clone();
    let mut out = Repaired::default();
    for (m, marked) in old.differences(&held) {
        if marked {
            let seen = leaks.entry(m).or_insert(0);
            *seen += 1;
            if *seen >= passes {
                new.set(m, false);
                out.freed.push(m);
            }
        } else {
            new.set(m, true);
            out.marked.push(m);
        }
    }
    leaks.retain(|m, _| old.taken(*m) && !held.taken(*m) && !out.freed.contains(m));
    if new == old {
        return Ok(Some(out));
    }
    if !alloc::swap(objects, range, &new, Some(kv.mod_revision)).await? {
        return Ok(None);
    }
    for m in &out.marked {
        tracing::warn!(
            range = %range.describe,
            member = m,
            "held but not marked allocated: marked"
        );
    }
    for m in &out.freed {
        tracing::warn!(
            range = %range.describe,
            member = m,
            "allocated but held by nothing: freed"
        );
    }
    Ok(Some(out))
}

/// The members the stored objects hold.
async fn holders(objects: &Objects, range: &Range) -> Result<Bitmap, ApiError> {
    let mut held = Bitmap::new(range.size);
    let res = objects
        .list_raw(range.holders_prefix, ListOptions::default())
        .await
        .map_err(|e| alloc::store_err(range, e))?;
    for kv in res.items {
        if let Ok(v) = serde_json::from_slice(&kv.value) {
            for m in range.held(&v) {
                held.set(m, true);
            }
        }
    }
    Ok(held)
}

/// The pass at start-up, before the API takes requests: leaks go at once.
/// A failure is logged; the periodic passes try again.
pub async fn at_start(objects: &Objects) {
    for range in objects.ranges.all() {
        if let Err(e) = pass(objects, range, &mut LeakCounts::new(), 1).await {
            tracing::warn!(range = %range.describe, error = %e.message, "allocation repair failed");
        }
    }
}

/// Periodic passes until `cancel` fires.
pub async fn run(objects: &Objects, cancel: CancellationToken) {
    let ranges = objects.ranges.all();
    let mut leaks: Vec<LeakCounts> = ranges.iter().map(|_| LeakCounts::new()).collect();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = cancel.cancelled() => return,
        }
        for (range, leaks) in ranges.iter().zip(leaks.iter_mut()) {
            if let Err(e) = pass(objects, range, leaks, LEAK_PASSES).await {
                tracing::warn!(range = %range.describe, error = %e.message, "allocation repair failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::server::apiserver::kinds::alloc::Ranges;
    use crate::server::store::sqlite::SqliteBackend;
    use crate::server::store::Backend;

    /// The bitmap as stored, with `members` taken.
    fn record(members: &[u32]) -> Bytes {
        let mut b = Bitmap::new(Ranges::defaults().cluster_ips.size);
        for m in members {
            b.set(*m, true);
        }
        alloc::encode(&Ranges::defaults().cluster_ips, &b)
    }

    fn service(ip: &str) -> Bytes {
        Bytes::from(
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"clusterIP": ip}}).to_string(),
        )
    }

    async fn bitmap(objects: &Objects) -> Bitmap {
        let kv = objects
            .store
            .get(Ranges::defaults().cluster_ips.key, None)
            .await
            .unwrap()
            .unwrap();
        alloc::decode(&Ranges::defaults().cluster_ips, &kv.value).unwrap()
    }

    /// FAULT INJECTED into the store (a crash between reserving and storing
    /// cannot be produced deterministically): member 7 reserved by nothing,
    /// and a Service holding member 5 that the record does not mark.
    #[tokio::test]
    async fn leaks_are_freed_after_the_grace_and_holders_marked_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteBackend::open(&dir.path().join("state.db")).unwrap();
        let objects = Objects::new(store.clone());
        store
            .create(Ranges::defaults().cluster_ips.key, record(&[1, 7, 9]))
            .await
            .unwrap();
        for (name, ip) in [("kubernetes", "10.43.0.1"), ("web", "10.43.0.5")] {
            let key = format!("/registry/services/default/{name}");
            store.create(&key, service(ip)).await.unwrap();
        }
        let mut leaks = LeakCounts::new();
        let first = pass(
            &objects,
            &Ranges::defaults().cluster_ips,
            &mut leaks,
            LEAK_PASSES,
        )
        .await
        .unwrap();
        assert_eq!(
            first,
            Some(Repaired {
                marked: vec![5],
                freed: vec![]
            })
        );
        assert!(bitmap(&objects).await.taken(5));
        // 9 was a create in flight: its Service is stored now, so it is no
        // longer counted as leaked.
        store
            .create("/registry/services/default/late", service("10.43.0.9"))
            .await
            .unwrap();
        let second = pass(
            &objects,
            &Ranges::defaults().cluster_ips,
            &mut leaks,
            LEAK_PASSES,
        )
        .await
        .unwrap();
        assert_eq!(second, Some(Repaired::default()));
        assert_eq!(leaks, LeakCounts::from([(7, 2)]));
        let third = pass(
            &objects,
            &Ranges::defaults().cluster_ips,
            &mut leaks,
            LEAK_PASSES,
        )
        .await
        .unwrap();
        assert_eq!(
            third,
            Some(Repaired {
                marked: vec![],
                freed: vec![7]
            })
        );
        let b = bitmap(&objects).await;
        assert!(!b.taken(7) && b.taken(1) && b.taken(5) && b.taken(9));
        assert!(leaks.is_empty());
        store.close().await;
    }

    /// Without a record there is nothing to repair (it is seeded from the
    /// holders on first use).
    #[tokio::test]
    async fn no_record_no_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteBackend::open(&dir.path().join("state.db")).unwrap();
        let objects = Objects::new(store.clone());
        assert_eq!(
            pass(
                &objects,
                &Ranges::defaults().cluster_ips,
                &mut LeakCounts::new(),
                1
            )
            .await
            .unwrap(),
            None
        );
        store.close().await;
    }
}
