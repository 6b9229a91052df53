//! Caches of the objects under one store prefix that requests are decided
//! on (the RBAC policy, the served CRDs, the admission webhooks): one list
//! in pages, then the store's watch from the revision listed, applied in
//! batches; a watch that ends (fell behind, history compacted) is made
//! again from a new list. Each cache says what it builds from the objects
//! ([`Mirror`]); the listing and following is written once, here.
//!
//! Writes under a mirrored prefix are answered once the cache has them
//! (the mirror's [`Follower`]), so a client may rely on what it wrote in
//! its very next request.

use std::sync::Arc;
use std::time::Duration;

use super::object_store::Follower;
use super::ApiState;
use crate::server::store::{self, ListOptions, Revision};

/// Objects per page of the list, and events taken in before a draft is
/// published.
const BATCH: usize = 500;

/// A cache built from the objects under [`Follower::prefix`].
pub trait Mirror: Send + Sync + 'static {
    /// What the cache is built up in before it is published.
    type Draft: Send;

    /// What the cache holds, for logs ("the RBAC policy").
    const WHAT: &'static str;

    fn follower(&self) -> &Follower;

    /// A draft with nothing in it (for a fresh list).
    fn empty(&self) -> Self::Draft;

    /// A draft of what is published now (for watch events to change).
    fn current(&self) -> Self::Draft;

    /// The stored object at `key` is now `value` (`None`: deleted), as of
    /// `rev`.
    fn apply(&self, draft: &mut Self::Draft, key: &str, value: Option<&[u8]>, rev: Revision);

    /// Make `draft` what requests are decided on.
    fn publish(&self, state: &ApiState, draft: Self::Draft);
}

/// Load the cache, then follow the store in a task that ends with the
/// store. Returns once the cache is loaded: requests are decided on it.
pub async fn start<M: Mirror>(
    state: &Arc<ApiState>,
    mirror: fn(&ApiState) -> &M,
) -> Result<(), store::Error> {
    let rev = load(state, mirror(state)).await?;
    mirror(state).follower().set_live(true);
    tokio::spawn(run(state.clone(), mirror, rev));
    Ok(())
}

/// A fresh cache from a list of the store; returns the revision it is of.
async fn load<M: Mirror>(state: &ApiState, m: &M) -> Result<Revision, store::Error> {
    let prefix = m.follower().prefix();
    let mut draft = m.empty();
    let mut opts = ListOptions {
        limit: Some(BATCH),
        ..ListOptions::default()
    };
    let rev = loop {
        let page = state.objects.list_raw(prefix, opts.clone()).await?;
        for kv in &page.items {
            m.apply(&mut draft, &kv.key, Some(&kv.value), kv.mod_revision);
        }
        opts.revision = Some(page.revision);
        opts.start_after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            break page.revision;
        }
    };
    m.publish(state, draft);
    m.follower().applied(rev);
    Ok(rev)
}

async fn run<M: Mirror>(state: Arc<ApiState>, mirror: fn(&ApiState) -> &M, mut rev: Revision) {
    let m = mirror(&state);
    loop {
        match follow(&state, m, rev).await {
            Err(store::Error::Closed) => break,
            // A watch that ends without saying why is made again as well:
            // a cache that stops following would, say, never revoke a grant.
            Ok(()) => tracing::error!("the watch of {} ended; listing again", M::WHAT),
            Err(e) => tracing::debug!("the watch of {} ended ({e}); listing again", M::WHAT),
        }
        // Not at once: a watch that fails as soon as it is made would
        // otherwise spin on lists.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Until a list succeeds the cache stands as it was.
        loop {
            match load(&state, m).await {
                Ok(r) => {
                    rev = r;
                    break;
                }
                Err(store::Error::Closed) => {
                    m.follower().set_live(false);
                    return;
                }
                Err(e) => {
                    tracing::warn!("listing {}: {e}", M::WHAT);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    m.follower().set_live(false);
}

/// Apply the store's changes after `rev` until the watch ends.
async fn follow<M: Mirror>(state: &ApiState, m: &M, rev: Revision) -> Result<(), store::Error> {
    let mut rx = state
        .objects
        .store
        .watch(m.follower().prefix(), rev)
        .await?;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return Ok(());
        }
        let mut draft = m.current();
        let mut last = None;
        let mut ended = None;
        for item in batch.drain(..) {
            match item {
                Ok(ev) => {
                    let value = match ev.kind {
                        store::EventKind::Delete => None,
                        _ => Some(&ev.kv.value[..]),
                    };
                    m.apply(&mut draft, &ev.kv.key, value, ev.kv.mod_revision);
                    last = Some(ev.revision());
                }
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
        }
        if let Some(last) = last {
            m.publish(state, draft);
            m.follower().applied(last);
        }
        if let Some(e) = ended {
            return Err(e);
        }
    }
}
