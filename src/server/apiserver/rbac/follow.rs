//! Keeping the RBAC policy current: one list of the RBAC resources, then
//! the store's watch from the revision listed, in batches; a watch that
//! ends (fell behind, history compacted) is made again from a new list.

use std::sync::Arc;
use std::time::Duration;

use super::policy::{Policy, PREFIX};
use crate::server::apiserver::ApiState;
use crate::server::store::{self, ListOptions, Revision};

/// Objects per page of the list, and events taken in before the policy is
/// swapped.
const BATCH: usize = 500;

/// Load the policy, then follow the store in a task that ends with the
/// store. Returns once the policy is loaded: requests are decided on it.
pub async fn start(state: &Arc<ApiState>) -> Result<(), store::Error> {
    let rev = load(state).await?;
    state.rbac.follower.set_live(true);
    tokio::spawn(run(state.clone(), rev));
    Ok(())
}

/// A fresh policy from a list of the store; returns the revision it is of.
async fn load(state: &ApiState) -> Result<Revision, store::Error> {
    let mut policy = Policy::default();
    let mut opts = ListOptions {
        limit: Some(BATCH),
        ..ListOptions::default()
    };
    let rev = loop {
        let page = state.objects.list_raw(PREFIX, opts.clone()).await?;
        for kv in &page.items {
            policy.apply(&kv.key, Some(&kv.value));
        }
        opts.revision = Some(page.revision);
        opts.start_after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            break page.revision;
        }
    };
    policy.reindex();
    state.rbac.replace(policy);
    state.rbac.follower.applied(rev);
    Ok(rev)
}

async fn run(state: Arc<ApiState>, mut rev: Revision) {
    loop {
        match follow(&state, rev).await {
            Err(store::Error::Closed) => break,
            // A watch that ends without saying why is made again as well:
            // a policy that stops following would never revoke anything.
            Ok(()) => tracing::error!("the RBAC policy's watch ended; listing again"),
            Err(e) => tracing::debug!("the RBAC policy's watch ended ({e}); listing again"),
        }
        // Until a list succeeds the policy stands as it was.
        loop {
            match load(&state).await {
                Ok(r) => {
                    rev = r;
                    break;
                }
                Err(store::Error::Closed) => {
                    state.rbac.follower.set_live(false);
                    return;
                }
                Err(e) => {
                    tracing::warn!("listing the RBAC policy: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    state.rbac.follower.set_live(false);
}

/// Apply the store's changes after `rev` until the watch ends.
async fn follow(state: &ApiState, rev: Revision) -> Result<(), store::Error> {
    let mut rx = state.objects.store.watch(PREFIX, rev).await?;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return Ok(());
        }
        let mut policy = Policy::clone(&state.rbac.policy());
        let mut last = None;
        let mut ended = None;
        for item in batch.drain(..) {
            match item {
                Ok(ev) => {
                    let value = match ev.kind {
                        store::EventKind::Delete => None,
                        _ => Some(&ev.kv.value[..]),
                    };
                    policy.apply(&ev.kv.key, value);
                    last = Some(ev.revision());
                }
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
        }
        if let Some(last) = last {
            policy.reindex();
            state.rbac.replace(policy);
            state.rbac.follower.applied(last);
        }
        if let Some(e) = ended {
            return Err(e);
        }
    }
}
