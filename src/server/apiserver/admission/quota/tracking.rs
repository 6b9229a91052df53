//! What quota admission keeps in memory beside the store: per namespace,
//! the writes that change usage and are not finished (so that a recount,
//! which cannot see them, is not stored over them), and how many quotas
//! there are (so that creates where there are none read nothing more).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::super::{each, namespace_of};
use super::quotas_def;
use crate::api::status::ApiError;
use crate::server::apiserver::ApiState;

/// One per API state.
///
/// The quota counts: a quota create counts before it is stored, a delete
/// after, and what is read from the store (once, by the first write that
/// asks, then by every recount) only ever raises a count; so a count is
/// never below the quotas stored (a failed create leaves it one too high,
/// which costs reads, not correctness).
#[derive(Debug, Default)]
pub struct Writes {
    /// Namespace → (writes in flight, writes finished).
    busy: Mutex<HashMap<String, (usize, u64)>>,
    quotas: Mutex<QuotaCounts>,
}

#[derive(Debug, Default)]
struct QuotaCounts {
    loaded: bool,
    by_namespace: HashMap<String, usize>,
}

fn locked<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    match m.lock() {
        Ok(mut g) => f(&mut g),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

impl Writes {
    /// Raise the counts to what was read from the store.
    pub(super) fn merge(&self, quotas: &[Value]) {
        let mut read: HashMap<&str, usize> = HashMap::new();
        for q in quotas {
            *read.entry(namespace_of(q)).or_default() += 1;
        }
        locked(&self.quotas, |c| {
            for (ns, n) in read {
                let have = c.by_namespace.entry(ns.to_string()).or_default();
                *have = (*have).max(n);
            }
            c.loaded = true;
        });
    }

    /// (writes in flight, writes finished) in `ns`.
    pub(super) fn busy(&self, ns: &str) -> (usize, u64) {
        locked(&self.busy, |b| b.get(ns).copied().unwrap_or_default())
    }

    /// Whether `ns` may have quotas, without reading (None: not known yet).
    fn known(&self, ns: &str) -> Option<bool> {
        locked(&self.quotas, |c| {
            c.loaded
                .then(|| c.by_namespace.get(ns).is_some_and(|n| *n > 0))
        })
    }
}

/// Whether `ns` may have quotas (reading them all the first time).
pub(super) async fn may_have_quotas(state: &ApiState, ns: &str) -> Result<bool, ApiError> {
    let w = &state.usage_writes;
    if let Some(known) = w.known(ns) {
        return Ok(known);
    }
    if let Some(qdef) = quotas_def(state) {
        let mut all = Vec::new();
        each(&state.objects, qdef, None, |q| all.push(q)).await?;
        w.merge(&all);
    }
    Ok(w.known(ns).unwrap_or(true))
}

/// A quota is being created in `ns`.
pub fn note_quota(state: &ApiState, ns: &str) {
    locked(&state.usage_writes.quotas, |c| {
        *c.by_namespace.entry(ns.to_string()).or_default() += 1
    });
}

/// A quota of `ns` was deleted.
pub(super) fn forget_quota(state: &ApiState, ns: &str) {
    locked(&state.usage_writes.quotas, |c| {
        if let Some(n) = c.by_namespace.get_mut(ns) {
            *n = n.saturating_sub(1);
        }
    });
}

/// Held by a write for as long as its effect on a namespace's usage may be
/// half done. Idle (held for nothing) where there are no quotas.
#[derive(Debug)]
pub struct Guard<'a> {
    writes: &'a Writes,
    ns: Option<String>,
}

impl<'a> Guard<'a> {
    pub(super) fn idle(state: &'a ApiState) -> Self {
        Guard {
            writes: &state.usage_writes,
            ns: None,
        }
    }

    pub(crate) fn new(state: &'a ApiState, ns: &str) -> Self {
        locked(&state.usage_writes.busy, |b| {
            b.entry(ns.to_string()).or_default().0 += 1
        });
        Guard {
            writes: &state.usage_writes,
            ns: Some(ns.to_string()),
        }
    }

    /// For a delete of an object in `ns` (None: cluster-scoped), taken
    /// before it is deleted: held where quotas may be.
    pub fn for_delete(state: &'a ApiState, ns: Option<&str>) -> Self {
        match ns {
            Some(ns) if state.usage_writes.known(ns) != Some(false) => Guard::new(state, ns),
            _ => Guard::idle(state),
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(ns) = &self.ns {
            locked(&self.writes.busy, |b| {
                if let Some(e) = b.get_mut(ns.as_str()) {
                    e.0 = e.0.saturating_sub(1);
                    e.1 += 1;
                }
            });
        }
    }
}
